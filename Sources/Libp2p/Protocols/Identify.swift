import Identity
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// libp2p Identify (`/ipfs/id/1.0.0`) and Identify Push (`/ipfs/id/push/1.0.0`),
/// libp2p/specs identify/README.md. The message is sent once, uvarint-length-prefixed, and the
/// sender closes its side of the stream.
public struct IdentifyInfo: Sendable, Equatable {
    public static let protocolID = "/ipfs/id/1.0.0"
    public static let pushProtocolID = "/ipfs/id/push/1.0.0"
    /// Identify messages are small; anything larger is refused.
    public static let maxMessageSize = 64 * 1024

    public var protocolVersion: String
    public var agentVersion: String
    public var publicKey: LibP2PPublicKey?
    public var listenAddrs: [Multiaddr]
    public var observedAddr: Multiaddr?
    public var protocols: [String]

    public init(protocolVersion: String = "ipfs/0.1.0", agentVersion: String, publicKey: LibP2PPublicKey?,
                listenAddrs: [Multiaddr], observedAddr: Multiaddr?, protocols: [String]) {
        self.protocolVersion = protocolVersion
        self.agentVersion = agentVersion
        self.publicKey = publicKey
        self.listenAddrs = listenAddrs
        self.observedAddr = observedAddr
        self.protocols = protocols
    }

    /// The length-prefixed wire message.
    public func encoded() -> [UInt8] {
        var m = Drtc_Libp2p_Identify()
        m.protocolVersion = protocolVersion
        m.agentVersion = agentVersion
        if let publicKey { m.publicKey = Data(publicKey.protobufEncoding) }
        m.listenAddrs = listenAddrs.map { Data($0.bytes) }
        if let observedAddr { m.observedAddr = Data(observedAddr.bytes) }
        m.protocols = protocols
        let body: [UInt8] = (try? m.serializedBytes()) ?? []
        return LengthPrefixedDecoder.frame(body)
    }

    /// Parses one message body (without its length prefix). Addresses that do not parse are
    /// skipped: a peer may listen on transports this node does not know.
    public init(body: [UInt8]) throws {
        let m = try Drtc_Libp2p_Identify(serializedBytes: body)
        protocolVersion = m.protocolVersion
        agentVersion = m.agentVersion
        publicKey = m.hasPublicKey ? try LibP2PPublicKey(protobuf: Array(m.publicKey)) : nil
        listenAddrs = m.listenAddrs.compactMap { try? Multiaddr(bytes: Array($0)) }
        observedAddr = m.hasObservedAddr ? try? Multiaddr(bytes: Array(m.observedAddr)) : nil
        protocols = m.protocols
    }
}

/// libp2p Ping (`/ipfs/ping/1.0.0`, libp2p/specs ping/ping.md): the dialer sends 32 random
/// bytes, the listener echoes them, repeatedly on one stream.
public enum Ping {
    public static let protocolID = "/ipfs/ping/1.0.0"
    public static let payloadSize = 32
}
