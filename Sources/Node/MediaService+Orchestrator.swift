import HTTPAPI
import MediaNIO
import SFU

/// What the orchestrator and the RPC handlers use of the media engine.
extension MediaService {
    var current: MediaEngine? { engine.withLock { $0 } }

    var sessionCount: Int { current?.snapshot.sessions ?? 0 }
    var pipeCount: Int { current?.snapshot.pipes ?? 0 }

    func roomStatus(_ room: String?) async -> [RoomStatus] {
        await current?.roomStatus(room) ?? []
    }

    func onPipeEvent(_ sink: @escaping @Sendable (MediaServer.Event) -> Void) {
        current?.onEvent(sink)
    }
}
