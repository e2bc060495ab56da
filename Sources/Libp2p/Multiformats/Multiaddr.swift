import Identity

/// A multiaddr (multiformats/multiaddr): a self-describing network address made of
/// components, read left to right, e.g. `/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…`.
///
/// Text form: `(/name[/value])+`. Binary form: `(uvarint(code) ‖ value)+`, where a value is
/// fixed-size (`ip4`, `ip6`, `tcp`, `udp`), absent (`ws`, `quic-v1`, …) or
/// `uvarint(length) ‖ bytes` (`dns*`, `p2p`, `certhash`, `sni`). Both parsers reject unknown
/// protocols, truncated or oversized values, and addresses whose binary form exceeds
/// `maxBinarySize`; the empty address is rejected as input, as go-multiaddr does.
public struct Multiaddr: Hashable, Sendable, CustomStringConvertible {
    /// The components, outermost (network) first.
    public var components: [MultiaddrComponent]

    /// Largest accepted binary form. Multiaddrs travel in Identify and peer records; 1 KiB is
    /// far above any real address and bounds what one hostile address can cost.
    public static let maxBinarySize = 1024
    /// Largest accepted text form. A zero-value component such as `/p2p-circuit` is 12
    /// characters of text for 2 bytes of binary, so 8 KiB of text covers every address that
    /// fits `maxBinarySize`.
    public static let maxTextSize = 8192

    public init(_ components: [MultiaddrComponent]) {
        self.components = components
    }

    /// Parses the text form. A single trailing `/` is accepted (`/ip4/1.2.3.4/tcp/80/`).
    public init(_ text: String) throws(MultiaddrError) {
        let utf8 = text.utf8
        guard utf8.count <= Multiaddr.maxTextSize else {
            throw MultiaddrError(.tooLarge, "multiaddr: text of \(utf8.count) bytes exceeds the \(Multiaddr.maxTextSize)-byte limit")
        }
        guard utf8.first == UInt8(ascii: "/") else {
            throw MultiaddrError(.malformed, "multiaddr: '\(LogText.escape(text))' does not start with '/'")
        }
        // Split on the '/' byte, not the Character: a combining mark after '/' would otherwise
        // fuse with it into one grapheme and hide the separator.
        var segments = utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .dropFirst()
            .map { String(decoding: $0, as: UTF8.self) }[...]
        if segments.last == "" { segments.removeLast() }
        guard !segments.isEmpty else { throw MultiaddrError(.empty, "multiaddr: empty address") }

        var components: [MultiaddrComponent] = []
        var rest = segments
        while let name = rest.popFirst() {
            guard let proto = MultiaddrProtocol(name: name) else {
                let reason = name.isEmpty ? "empty protocol name" : "unknown protocol '\(LogText.escape(name))'"
                throw MultiaddrError(.unknownProtocol, "multiaddr: '/\(LogText.escape(name))': \(reason)")
            }
            var value: String?
            if case .none = proto.valueLayout {} else { value = rest.popFirst() }
            do {
                components.append(try MultiaddrComponent.parse(proto, text: value))
            } catch {
                let shown = value.map { "/\(name)/\(LogText.escape($0))" } ?? "/\(name)"
                throw MultiaddrError(error.code, "multiaddr: '\(shown)': \(error.message)")
            }
        }
        self.components = components
        let size = binarySize
        guard size <= Multiaddr.maxBinarySize else {
            throw MultiaddrError(.tooLarge, "multiaddr: binary form of \(size) bytes exceeds the \(Multiaddr.maxBinarySize)-byte limit")
        }
    }

    /// Parses the binary form.
    public init<Bytes: Collection>(bytes input: Bytes) throws(MultiaddrError) where Bytes.Element == UInt8 {
        guard input.count <= Multiaddr.maxBinarySize else {
            throw MultiaddrError(.tooLarge, "multiaddr: binary form of \(input.count) bytes exceeds the \(Multiaddr.maxBinarySize)-byte limit")
        }
        let bytes = Array(input)
        guard !bytes.isEmpty else { throw MultiaddrError(.empty, "multiaddr: empty address") }
        var components: [MultiaddrComponent] = []
        var offset = 0
        while offset < bytes.count {
            let start = offset
            let prefix: (value: UInt64, length: Int)?
            do {
                prefix = try UVarint.decode(bytes[offset...])
            } catch {
                throw MultiaddrError(.malformed, "multiaddr: bad protocol code at byte \(start): \(error)")
            }
            guard let (code, codeLength) = prefix else {
                throw MultiaddrError(.truncated, "multiaddr: truncated protocol code at byte \(start)")
            }
            offset += codeLength
            guard let proto = MultiaddrProtocol(code: code) else {
                throw MultiaddrError(.unknownProtocol, "multiaddr: unknown protocol code \(code) (0x\(String(code, radix: 16))) at byte \(start)")
            }
            let context = "multiaddr: '/\(proto.name)' at byte \(start)"
            let valueLength: Int
            switch proto.valueLayout {
            case .none:
                valueLength = 0
            case .fixed(let size):
                valueLength = size
            case .lengthPrefixed:
                let lengthPrefix: (value: UInt64, length: Int)?
                do {
                    lengthPrefix = try UVarint.decode(bytes[offset...])
                } catch {
                    throw MultiaddrError(.malformed, "\(context): bad value length: \(error)")
                }
                guard let (length, prefixLength) = lengthPrefix else {
                    throw MultiaddrError(.truncated, "\(context): truncated value length")
                }
                offset += prefixLength
                guard length <= UInt64(bytes.count - offset) else {
                    throw MultiaddrError(.truncated, "\(context): value of \(length) bytes but only \(bytes.count - offset) remain")
                }
                valueLength = Int(length)
            }
            guard valueLength <= bytes.count - offset else {
                throw MultiaddrError(.truncated, "\(context): needs \(valueLength) value bytes but only \(bytes.count - offset) remain")
            }
            let value = bytes[offset..<offset + valueLength]
            offset += valueLength
            do {
                components.append(try MultiaddrComponent.decode(proto, value: value))
            } catch {
                throw MultiaddrError(error.code, "\(context): \(error.message)")
            }
        }
        self.components = components
    }

    /// The binary form.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(binarySize)
        for component in components { component.appendBinary(to: &out) }
        return out
    }

    private var binarySize: Int {
        components.reduce(0) { total, component in
            let value = component.valueBytes.count
            var size = UVarint.encodedLength(component.protocol.code) + value
            if case .lengthPrefixed = component.protocol.valueLayout {
                size += UVarint.encodedLength(UInt64(value))
            }
            return total + size
        }
    }

    /// The text form; `""` for an address without components.
    public var description: String {
        components.map(\.description).joined()
    }

    /// The peer this address reaches: the value of a final `/p2p` component. A `/p2p` earlier
    /// in the address names a relay (`…/p2p/RELAY/p2p-circuit`), not the peer, so it is ignored.
    public var peerID: PeerID? {
        if case .p2p(let id)? = components.last { return id }
        return nil
    }

    /// This address without its final `/p2p` component, if it has one.
    public var withoutPeerID: Multiaddr {
        guard peerID != nil else { return self }
        return Multiaddr(Array(components.dropLast()))
    }

    /// This address with `component` added at the end (e.g. `.p2p(id)`).
    public func appending(_ component: MultiaddrComponent) -> Multiaddr {
        Multiaddr(components + [component])
    }

    /// Host and port of a plain TCP address: `/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT`, optionally
    /// followed by `/p2p/ID`. Nil for anything layered on top (`/ws`, `/tls`, `/p2p-circuit`),
    /// which a plain TCP dialler must not treat as TCP. IPv6 hosts come without brackets.
    public var tcpEndpoint: (host: String, port: UInt16)? {
        let core = withoutPeerID.components
        guard core.count == 2, case .tcp(let port) = core[1] else { return nil }
        switch core[0] {
        case .ip4(let address): return (address.description, port)
        case .ip6(let address): return (address.description, port)
        case .dns(let name), .dns4(let name), .dns6(let name): return (name, port)
        default: return nil
        }
    }
}

/// A multiaddr that could not be parsed. The message names the offending component, e.g.
/// `multiaddr: '/ip4/300.1.1.1': not an IPv4 address`.
public typealias MultiaddrError = CodedError<MultiaddrErrorDomain>

public enum MultiaddrErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// No components.
        case empty
        /// Over `Multiaddr.maxBinarySize` / `maxTextSize`.
        case tooLarge
        /// A protocol name or code this implementation does not know.
        case unknownProtocol
        /// A protocol that takes a value is missing it.
        case missingValue
        /// A value that is not valid for its protocol.
        case invalidValue
        /// The binary form ends inside a component.
        case truncated
        /// Not a multiaddr at all (no leading `/`, broken varint).
        case malformed
        public var description: String { rawValue }
    }
}
