/// One room on this node, as operators see it.
public struct RoomSummary: Hashable, Sendable {
    public var room: String
    /// WHIP sessions (publishers) and WHEP sessions (viewers).
    public var publishers: Int
    public var viewers: Int
    /// Producers: one per published audio or video track.
    public var tracks: Int

    public init(room: String, publishers: Int, viewers: Int, tracks: Int) {
        self.room = room
        self.publishers = publishers
        self.viewers = viewers
        self.tracks = tracks
    }
}
