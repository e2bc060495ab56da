/// What differs from one run of the same configuration to the next (wall time, memory):
/// written to `run.json` and shown in `report.html`, never in `report.json`.
public struct RunInfo: Sendable {
    public var wallSeconds: Double
    public var peakRSSBytes: Int

    public init(wallSeconds: Double, peakRSSBytes: Int) {
        self.wallSeconds = wallSeconds
        self.peakRSSBytes = peakRSSBytes
    }

    public func json() -> String {
        let w = JSONWriter()
        w.object {
            w.field("wallSeconds", wallSeconds)
            w.field("peakRSSBytes", peakRSSBytes)
        }
        return w.out + "\n"
    }
}
