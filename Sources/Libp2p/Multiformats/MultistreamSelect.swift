import Identity

/// multistream-select 1.0 protocol negotiation (multiformats/multistream-select; libp2p/specs
/// `connections/README.md` § Protocol Negotiation) as a sans-I/O state machine.
///
/// Every message is `uvarint(n) ‖ line ‖ '\n'`, with `n` counting the newline. Both sides send
/// the header `/multistream/1.0.0`; the initiator then proposes protocols one at a time and the
/// responder echoes the first one it supports or answers `na`.
///
/// The initiator pipelines its header with its first proposal, as go- and rust-libp2p do, which
/// saves a round trip when the first proposal is accepted. The responder sends its header at
/// `start()` — the spec lets both sides send the header without waiting.
///
/// Usage: send the bytes from `start()`, then feed every received chunk to `receive(_:)`, send
/// the bytes each step carries, and stop at `.selected` (hand `remainder` — bytes the peer sent
/// after its last negotiation line — to the selected protocol) or `.noneSupported` (close).
/// `ls` is not implemented: a responder answers it with `na`, like any unsupported protocol.
public struct MultistreamSelect: Sendable {
    /// The header both sides send first.
    public static let protocolID = "/multistream/1.0.0"
    /// The responder's answer to an unsupported proposal.
    public static let notAvailable = "na"

    public enum Role: Equatable, Sendable {
        /// Proposes `proposals` in order until one is accepted.
        case initiator(proposals: [String])
        /// Accepts the first proposal found in `supported`.
        case responder(supported: [String])
    }

    public struct Limits: Equatable, Sendable {
        /// Largest message, counting the newline but not the length prefix. go-multistream
        /// rejects messages over 1024 bytes too.
        public var maxMessageLength: Int
        /// How many proposals a responder answers with `na` before giving up on the peer.
        public var maxRejectedProposals: Int

        public init(maxMessageLength: Int = 1024, maxRejectedProposals: Int = 16) {
            self.maxMessageLength = maxMessageLength
            self.maxRejectedProposals = maxRejectedProposals
        }
    }

    private enum State: Sendable {
        /// `start()` not called yet.
        case idle
        /// Initiator: header and `proposals[index]` sent; the peer's header not yet read.
        case initiatorAwaitingHeader(proposal: Int)
        /// Initiator: header read; waiting for the echo of, or `na` to, `proposals[index]`.
        case initiatorAwaitingAnswer(proposal: Int)
        /// Responder: header sent; the peer's header not yet read.
        case responderAwaitingHeader
        /// Responder: waiting for a proposal, having refused `rejected` so far.
        case responderAwaitingProposal(rejected: Int)
        /// A protocol was selected, or the initiator ran out of proposals.
        case finished
        case failed(MultistreamError)
    }

    public let role: Role
    public let limits: Limits
    private var state: State = .idle
    private var decoder: LengthPrefixedDecoder

    /// - Throws: `.invalidProtocolID` if a protocol id is empty, contains a newline, is one of
    ///   the reserved words (`na`, `ls`, the header) or does not fit `maxMessageLength`; or if
    ///   an initiator has no proposals.
    public init(role: Role, limits: Limits = Limits()) throws(MultistreamError) {
        self.role = role
        self.limits = limits
        self.decoder = LengthPrefixedDecoder(maxMessageSize: max(0, limits.maxMessageLength))
        let ids: [String]
        switch role {
        case .initiator(let proposals):
            guard !proposals.isEmpty else {
                throw MultistreamError(.invalidProtocolID, "multistream: an initiator needs at least one protocol to propose")
            }
            ids = proposals
        case .responder(let supported):
            ids = supported
        }
        for id in ids {
            let reserved = [MultistreamSelect.protocolID, MultistreamSelect.notAvailable, "ls"]
            guard !id.isEmpty, !id.utf8.contains(UInt8(ascii: "\n")), !reserved.contains(id),
                  id.utf8.count + 1 <= limits.maxMessageLength else {
                throw MultistreamError(.invalidProtocolID,
                    "multistream: '\(LogText.escape(id))' cannot be negotiated: protocol ids must be non-empty, without newlines, not 'na'/'ls'/the header, and at most \(limits.maxMessageLength - 1) bytes")
            }
        }
    }

    /// The wire form of one negotiation line: `uvarint(len + 1) ‖ line ‖ '\n'`.
    public static func encodeMessage(_ line: String) -> [UInt8] {
        var body = Array(line.utf8)
        body.append(UInt8(ascii: "\n"))
        return LengthPrefixedDecoder.frame(body)
    }

    /// True once negotiation ended, successfully or not.
    public var isFinished: Bool {
        switch state {
        case .finished, .failed: true
        default: false
        }
    }

    /// The bytes to send first. Calling it again returns nothing.
    public mutating func start() -> [UInt8] {
        guard case .idle = state else { return [] }
        let header = MultistreamSelect.encodeMessage(MultistreamSelect.protocolID)
        switch role {
        case .initiator(let proposals):
            state = .initiatorAwaitingHeader(proposal: 0)
            return header + MultistreamSelect.encodeMessage(proposals[0])
        case .responder:
            state = .responderAwaitingHeader
            return header
        }
    }

    /// Feeds received bytes, in any chunking (one byte at a time works).
    ///
    /// - Throws: `MultistreamError` when the peer breaks the protocol; negotiation is then over
    ///   and the stream should be closed. Calling `receive` before `start()` or after the end
    ///   throws `.invalidTransition`.
    public mutating func receive(_ bytes: [UInt8]) throws(MultistreamError) -> MultistreamStep {
        switch state {
        case .idle:
            throw MultistreamError(.invalidTransition, "multistream: receive(_:) called before start()")
        case .finished:
            throw MultistreamError(.invalidTransition, "multistream: negotiation already finished; later bytes belong to the selected protocol")
        case .failed(let error):
            throw error
        default:
            break
        }
        decoder.append(bytes)
        var send: [UInt8] = []
        while true {
            try rejectEarlyIfNotHeader()
            guard let line = try nextLine() else { return .needMoreInput(send: send) }
            switch (state, role) {
            case (.initiatorAwaitingHeader(let index), _):
                try expectHeader(line)
                state = .initiatorAwaitingAnswer(proposal: index)

            case (.initiatorAwaitingAnswer(let index), .initiator(let proposals)):
                if sameBytes(line, proposals[index]) {
                    state = .finished
                    return .selected(protocol: line, send: send, remainder: decoder.takeBufferedBytes())
                }
                guard sameBytes(line, MultistreamSelect.notAvailable) else {
                    throw failure(.unexpectedMessage,
                        "multistream: proposed '\(LogText.escape(proposals[index]))', peer answered '\(LogText.escape(line))' (expected the echo or 'na')")
                }
                let next = index + 1
                guard next < proposals.count else {
                    state = .finished
                    return .noneSupported(triedProtocols: proposals)
                }
                send += MultistreamSelect.encodeMessage(proposals[next])
                state = .initiatorAwaitingAnswer(proposal: next)

            case (.responderAwaitingHeader, _):
                try expectHeader(line)
                state = .responderAwaitingProposal(rejected: 0)

            case (.responderAwaitingProposal(let rejected), .responder(let supported)):
                if supported.contains(where: { sameBytes($0, line) }) {
                    send += MultistreamSelect.encodeMessage(line)
                    state = .finished
                    return .selected(protocol: line, send: send, remainder: decoder.takeBufferedBytes())
                }
                guard rejected < limits.maxRejectedProposals else {
                    throw failure(.tooManyRounds,
                        "multistream: peer proposed \(rejected + 1) protocols, none supported (last '\(LogText.escape(line))'); giving up after \(limits.maxRejectedProposals)")
                }
                send += MultistreamSelect.encodeMessage(MultistreamSelect.notAvailable)
                state = .responderAwaitingProposal(rejected: rejected + 1)

            default:
                // Role and state are set together; no other pairing is reachable.
                throw failure(.invalidTransition, "multistream: internal state does not match role \(role)")
            }
        }
    }

    // MARK: - Helpers

    private var awaitingHeader: Bool {
        switch state {
        case .initiatorAwaitingHeader, .responderAwaitingHeader: true
        default: false
        }
    }

    /// The header message starts with its length, 0x13. Anything else (an HTTP request, TLS
    /// ClientHello) is rejected on its first byte rather than read as a bogus length; the
    /// error shows the raw input up to its first line break.
    private mutating func rejectEarlyIfNotHeader() throws(MultistreamError) {
        guard awaitingHeader, let first = decoder.bufferedBytes.first else { return }
        let expected = MultistreamSelect.encodeMessage(MultistreamSelect.protocolID)[0]
        guard first != expected else { return }
        var raw = decoder.bufferedBytes.prefix(while: { $0 != UInt8(ascii: "\n") })
        if raw.last == UInt8(ascii: "\r") { raw = raw.dropLast() }
        throw failure(.unexpectedHeader,
            "multistream: expected \(MultistreamSelect.protocolID), got '\(LogText.escape(raw))'")
    }

    private mutating func expectHeader(_ line: String) throws(MultistreamError) {
        guard sameBytes(line, MultistreamSelect.protocolID) else {
            throw failure(.unexpectedHeader,
                "multistream: expected \(MultistreamSelect.protocolID), got '\(LogText.escape(line))'")
        }
    }

    /// The next complete line without its newline, or nil if more bytes are needed.
    private mutating func nextLine() throws(MultistreamError) -> String? {
        let message: [UInt8]?
        do {
            message = try decoder.next()
        } catch {
            throw failure(error.code == .messageTooLarge ? .messageTooLarge : .malformedMessage,
                                "multistream: \(error.message)")
        }
        guard let message else { return nil }
        guard message.last == UInt8(ascii: "\n") else {
            throw failure(.malformedMessage, "multistream: message '\(LogText.escape(message))' does not end with a newline")
        }
        guard let line = String(validating: message.dropLast(), as: UTF8.self) else {
            throw failure(.malformedMessage, "multistream: message '\(LogText.escape(message.dropLast()))' is not UTF-8")
        }
        return line
    }

    /// Protocol ids match byte for byte, as in go- and rust-libp2p. Swift's `==` on strings uses
    /// Unicode canonical equivalence, under which "/\u{212A}ad" (KELVIN SIGN) equals "/Kad".
    private func sameBytes(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8)
    }

    /// Records the failure so later calls rethrow it, and returns it for throwing.
    private mutating func failure(_ code: MultistreamError.Code, _ message: String) -> MultistreamError {
        let error = MultistreamError(code, message)
        state = .failed(error)
        return error
    }
}

/// What to do after feeding bytes to `MultistreamSelect.receive(_:)`.
public enum MultistreamStep: Equatable, Sendable {
    /// Negotiation goes on: send `send` (possibly empty) and feed more received bytes.
    case needMoreInput(send: [UInt8])
    /// Both sides agreed on `protocol`. Send `send` (the responder's echo; empty for the
    /// initiator), then give `remainder` — bytes that followed the last negotiation line — to
    /// the selected protocol before anything read later.
    case selected(protocol: String, send: [UInt8], remainder: [UInt8])
    /// Initiator only: the responder refused every proposal. Close the stream.
    case noneSupported(triedProtocols: [String])
}

/// A failed negotiation.
public typealias MultistreamError = CodedError<MultistreamErrorDomain>

public enum MultistreamErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// The first message was not `/multistream/1.0.0`.
        case unexpectedHeader
        /// A message longer than `Limits.maxMessageLength`.
        case messageTooLarge
        /// Bad framing: broken length prefix, no trailing newline, not UTF-8.
        case malformedMessage
        /// The responder answered neither the echo nor `na`.
        case unexpectedMessage
        /// The initiator kept proposing past `Limits.maxRejectedProposals`.
        case tooManyRounds
        /// A protocol id we were asked to negotiate cannot be sent.
        case invalidProtocolID
        /// `receive` before `start` or after the end.
        case invalidTransition
        public var description: String { rawValue }
    }
}
