import Identity

/// The noise-libp2p handshake (libp2p noise spec) as a sans-I/O state machine: Noise XX plus
/// the libp2p identity payload, for one connection.
///
/// The shell moves bytes: it frames what this returns with `NoiseFrame.encode`, and hands each
/// frame that `NoiseFrameDecoder` yields to `receive`. Nothing here touches sockets or clocks;
/// handshake timeouts belong to the shell.
///
///     initiator                                   responder
///     start()            ── msg 1: e ──────────▶  receive(msg 1) → .send(msg 2)
///     receive(msg 2)     ◀─ msg 2: e, ee, s, es, payload(responder)
///       → .sendAndComplete(msg 3, result)
///                        ── msg 3: s, se, payload(initiator) ─▶  receive(msg 3) → .complete(result)
///
/// Each side verifies the other's payload as soon as it arrives: the initiator checks the
/// responder (signature, then the expected PeerID) before sending message 3, so a dialler
/// that reached the wrong node never reveals its own identity.
///
/// Any error moves the handshake to a failed state it does not leave (Noise §5: the
/// `HandshakeState` is deleted); later calls throw `handshakeAlreadyFailed`.
public struct NoiseHandshake: Sendable {
    /// The default muxer list advertised in `NoiseExtensions.stream_muxers`.
    public static let defaultStreamMuxers = ["/yamux/1.0.0"]

    private enum State: Sendable {
        /// Initiator before `start()`.
        case initiatorReady(NoiseHandshakeState)
        /// Initiator has sent message 1.
        case initiatorAwaitingMessage2(NoiseHandshakeState)
        /// Responder waits for the initiator's ephemeral key.
        case responderAwaitingMessage1(NoiseHandshakeState)
        /// Responder has sent message 2.
        case responderAwaitingMessage3(NoiseHandshakeState)
        /// The result has been handed out; frames now go to `NoiseTransport`.
        case complete
        case failed(NoiseError)
    }

    public let role: NoiseRole
    /// The PeerID being dialled (`/p2p/<id>`), if known; the remote must authenticate as it.
    public let expectedRemotePeer: PeerID?
    private var state: State
    /// Our serialised `NoiseHandshakePayload`, signed once at init.
    private let localPayload: [UInt8]

    /// - Parameters:
    ///   - identity: this node's libp2p identity; it signs `staticKey`.
    ///   - staticKey: the Noise static key, per node or per connection (libp2p noise spec,
    ///     "Static Key Authentication").
    ///   - expectedRemotePeer: when dialling `/p2p/<id>`, that id; the handshake fails with
    ///     `peerMismatch` if the remote proves a different identity.
    ///   - streamMuxers: advertised in the payload's extensions; empty omits the extensions.
    public init(
        role: NoiseRole,
        identity: Ed25519KeyPair,
        staticKey: X25519KeyPair,
        expectedRemotePeer: PeerID? = nil,
        streamMuxers: [String] = NoiseHandshake.defaultStreamMuxers
    ) {
        self.role = role
        self.expectedRemotePeer = expectedRemotePeer
        localPayload = NoiseIdentityPayload.make(identity: identity, staticPublicKey: staticKey.publicKey, streamMuxers: streamMuxers)
        // libp2p noise spec, "Noise Protocol Name": XX with an empty prologue.
        let noise = NoiseHandshakeState(role: role, staticKey: staticKey)
        state = role == .initiator ? .initiatorReady(noise) : .responderAwaitingMessage1(noise)
    }

    /// True once `receive` has returned the result.
    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    /// Begins the handshake. The initiator gets message 1 (unframed) to send; the responder
    /// gets nil, as it speaks only after receiving message 1.
    public mutating func start() throws(NoiseError) -> [UInt8]? {
        switch state {
        case .initiatorReady(var noise):
            // The initiator's first payload has no secrecy, so it carries nothing (libp2p noise spec).
            let message: [UInt8]
            do {
                message = try noise.writeMessage(payload: []).message
            } catch {
                state = .failed(error)
                throw error
            }
            state = .initiatorAwaitingMessage2(noise)
            return message
        case .responderAwaitingMessage1:
            return nil
        case .initiatorAwaitingMessage2, .responderAwaitingMessage3, .complete:
            throw .unexpectedEvent(event: "start()", state: stateDescription)
        case .failed(let cause):
            throw .handshakeAlreadyFailed(cause: cause)
        }
    }

    /// Processes one unframed handshake message from the remote and says what to do next.
    public mutating func receive(_ message: [UInt8]) throws(NoiseError) -> NoiseHandshakeStep {
        let transition: Result<(State, NoiseHandshakeStep), NoiseError>
        switch state {
        case .responderAwaitingMessage1(let noise):
            transition = Result { () throws(NoiseError) in try onMessage1(message, noise) }
        case .initiatorAwaitingMessage2(let noise):
            transition = Result { () throws(NoiseError) in try onMessage2(message, noise) }
        case .responderAwaitingMessage3(let noise):
            transition = Result { () throws(NoiseError) in try onMessage3(message, noise) }
        case .initiatorReady, .complete:
            // Caller misuse rather than a protocol failure: the state stays as it is.
            throw .unexpectedEvent(event: "receive()", state: stateDescription)
        case .failed(let cause):
            throw .handshakeAlreadyFailed(cause: cause)
        }
        switch transition {
        case .success(let (next, step)):
            state = next
            return step
        case .failure(let error):
            // Noise §5: a failed DECRYPT() or DH() deletes the HandshakeState; a payload that fails
            // verification MUST terminate the connection (libp2p noise spec). Either way it is over.
            state = .failed(error)
            throw error
        }
    }

    /// Responder, message 1 (`-> e`). Its payload is unauthenticated and, per the libp2p spec,
    /// empty; it is ignored. Replies with message 2 carrying our identity.
    private func onMessage1(_ message: [UInt8], _ noise: NoiseHandshakeState) throws(NoiseError) -> (State, NoiseHandshakeStep) {
        var noise = noise
        _ = try noise.readMessage(message)
        let reply = try noise.writeMessage(payload: localPayload).message
        return (.responderAwaitingMessage3(noise), .send(reply))
    }

    /// Initiator, message 2 (`<- e, ee, s, es`): verifies the responder before replying with
    /// message 3 carrying our identity, which completes the handshake.
    private func onMessage2(_ message: [UInt8], _ noise: NoiseHandshakeState) throws(NoiseError) -> (State, NoiseHandshakeStep) {
        var noise = noise
        let payload = try noise.readMessage(message).payload
        let remote = try verifiedRemote(payload, noise: noise, message: 2)
        let (reply, split) = try noise.writeMessage(payload: localPayload)
        guard let split else { preconditionFailure("XX splits after message 3") }
        return (.complete, .sendAndComplete(reply, result(remote, noise: noise, split: split)))
    }

    /// Responder, message 3 (`-> s, se`): verifies the initiator, which completes the handshake.
    private func onMessage3(_ message: [UInt8], _ noise: NoiseHandshakeState) throws(NoiseError) -> (State, NoiseHandshakeStep) {
        var noise = noise
        let (payload, split) = try noise.readMessage(message)
        guard let split else { preconditionFailure("XX splits after message 3") }
        let remote = try verifiedRemote(payload, noise: noise, message: 3)
        return (.complete, .complete(result(remote, noise: noise, split: split)))
    }

    /// Verifies the payload against the static key the same message delivered, then checks
    /// the PeerID that was dialled.
    private func verifiedRemote(_ payload: [UInt8], noise: NoiseHandshakeState, message: Int) throws(NoiseError) -> NoiseIdentityPayload.Verified {
        guard let remoteStatic = noise.remoteStaticKey else { preconditionFailure("XX sends s before the payload") }
        let remote = try NoiseIdentityPayload.verify(payload, remoteStaticKey: remoteStatic, message: message)
        if let expectedRemotePeer, expectedRemotePeer != remote.peer {
            throw .peerMismatch(expected: expectedRemotePeer, actual: remote.peer)
        }
        return remote
    }

    private func result(_ remote: NoiseIdentityPayload.Verified, noise: NoiseHandshakeState, split: NoiseCipherPair) -> NoiseHandshakeResult {
        NoiseHandshakeResult(
            transport: NoiseTransport(role: role, split: split),
            remotePeer: remote.peer,
            remoteIdentityKey: remote.identityKey,
            remoteStaticKey: noise.remoteStaticKey ?? [],
            remoteStreamMuxers: remote.streamMuxers,
            handshakeHash: noise.handshakeHash)
    }

    private var stateDescription: String {
        switch state {
        case .initiatorReady: return "the initiator has not started"
        case .initiatorAwaitingMessage2: return "the initiator awaits message 2"
        case .responderAwaitingMessage1: return "the responder awaits message 1"
        case .responderAwaitingMessage3: return "the responder awaits message 3"
        case .complete: return "the handshake is complete (pass frames to NoiseTransport)"
        case .failed(let cause): return "the handshake has failed (\(cause))"
        }
    }
}

/// What the shell must do after `NoiseHandshake.receive`.
public enum NoiseHandshakeStep: Sendable {
    /// Send this unframed message; the handshake continues.
    case send([UInt8])
    /// Send this unframed message (message 3); the handshake is complete. The initiator may
    /// send transport frames right behind it.
    case sendAndComplete([UInt8], NoiseHandshakeResult)
    /// The handshake is complete; nothing to send.
    case complete(NoiseHandshakeResult)

    /// The message to send, if any.
    public var messageToSend: [UInt8]? {
        switch self {
        case .send(let message), .sendAndComplete(let message, _): return message
        case .complete: return nil
        }
    }

    /// The established session, if the handshake is complete.
    public var result: NoiseHandshakeResult? {
        switch self {
        case .send: return nil
        case .sendAndComplete(_, let result), .complete(let result): return result
        }
    }
}

/// An established, authenticated noise-libp2p session.
public struct NoiseHandshakeResult: Sendable {
    /// The ciphers for transport frames; move it into the connection.
    public var transport: NoiseTransport
    /// The authenticated remote: its identity key signed the Noise static key it used.
    public let remotePeer: PeerID
    public let remoteIdentityKey: LibP2PPublicKey
    /// The remote's X25519 static public key.
    public let remoteStaticKey: [UInt8]
    /// `NoiseExtensions.stream_muxers` from the remote's payload (early data, usable only now
    /// that the payload is verified); empty if it sent none.
    public let remoteStreamMuxers: [String]
    /// Noise `GetHandshakeHash()`, equal on both sides, for channel binding (Noise §11.2).
    public let handshakeHash: [UInt8]
}
