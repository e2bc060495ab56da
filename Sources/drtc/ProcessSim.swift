import ArgumentParser
import Foundation

struct ProcessSim {
    let count: Int
    let duration: Double
    let reportDir: String
    let quiet: Bool

    func run() async throws {
        throw CleanExit.message("not yet")
    }
}
