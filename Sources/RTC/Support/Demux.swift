/// What a datagram arriving on the shared media port is, by its first byte (RFC 7983 §7, as
/// updated by RFC 7983bis / RFC 9443 for the ranges below), plus the RTP/RTCP split of RFC 5761 §4.
public enum DatagramKind: Hashable, Sendable, CustomStringConvertible {
    /// First byte 0–3: STUN (RFC 8489).
    case stun
    /// First byte 16–19: ZRTP (RFC 6189). Not used by WebRTC; callers drop it.
    case zrtp
    /// First byte 20–63: DTLS record (RFC 9147).
    case dtls
    /// First byte 64–79: TURN ChannelData (RFC 8656). Not used by an ICE-lite server.
    case turnChannel
    /// First byte 128–191 and second byte's payload type outside 192–223: RTP (RFC 3550).
    case rtp
    /// First byte 128–191 and second byte 192–223: RTCP (RFC 5761 §4: packet types 200–204 and
    /// the feedback types all fall in 192–223 once the marker bit is folded in).
    case rtcp
    /// Empty, or a first byte in no range above.
    case unknown

    public var description: String {
        switch self {
        case .stun: "STUN"
        case .zrtp: "ZRTP"
        case .dtls: "DTLS"
        case .turnChannel: "TURN channel"
        case .rtp: "RTP"
        case .rtcp: "RTCP"
        case .unknown: "unknown"
        }
    }

    /// Classifies one datagram. Never reads past its end; RTP/RTCP need at least two bytes.
    public init(classifying datagram: ArraySlice<UInt8>) {
        guard let first = datagram.first else {
            self = .unknown
            return
        }
        switch first {
        case 0...3: self = .stun
        case 16...19: self = .zrtp
        case 20...63: self = .dtls
        case 64...79: self = .turnChannel
        case 128...191:
            guard datagram.count >= 2 else {
                self = .unknown
                return
            }
            // RFC 5761 §4: the second octet is M(1)+PT(7) for RTP and PT(8) for RTCP; RTCP
            // packet types 192–223 collide only with RTP payload types 64–95, which WebRTC avoids.
            let second = datagram[datagram.startIndex + 1]
            self = (192...223).contains(second) ? .rtcp : .rtp
        default: self = .unknown
        }
    }

    public init(classifying datagram: [UInt8]) {
        self.init(classifying: datagram[...])
    }
}
