import Identity
import COpenSSL

/// Why DTLS set-up or a DTLS association failed. Shaped like drtc's `CodedError`
/// (a stable machine `code` plus a human `message`, STYLE.md §5); when this target is merged
/// into `RTC` it can become `CodedError<DTLSErrorDomain>`.
public struct DTLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// Generating or loading the local certificate / key failed.
        case certificate
        /// The configuration was rejected (bad fingerprint string, unsupported profile, …).
        case configuration
        /// The DTLS handshake failed; `message` carries OpenSSL's error string.
        case handshake
        /// The peer's certificate does not match the fingerprint from its SDP.
        case fingerprintMismatch
        /// The handshake ended without a DTLS-SRTP profile both sides support.
        case noSRTPProfile
        /// The peer sent a fatal alert.
        case fatalAlert
        /// OpenSSL gave up retransmitting (no answer from the peer).
        case timeout
        /// An operation was attempted in a state that does not allow it.
        case invalidState
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// A libsrtp2 failure, carrying libsrtp's status (e.g. `srtp_err_status_auth_fail`).
public struct SRTPError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: Hashable, Sendable, CustomStringConvertible {
        /// libsrtp returned this `srtp_err_status_t` value.
        case libsrtp(SRTPStatus)
        /// The input could not be handed to libsrtp (too short, too long, no room for the trailer).
        case invalidInput
        /// Keys of the wrong length for the profile.
        case invalidKey
        public var description: String {
            switch self {
            case .libsrtp(let status): status.name
            case .invalidInput: "invalid_input"
            case .invalidKey: "invalid_key"
            }
        }
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    /// The libsrtp status, if libsrtp produced this error.
    public var status: SRTPStatus? {
        if case .libsrtp(let s) = code { return s }
        return nil
    }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// libsrtp2's `srtp_err_status_t`, by value, with its C name.
public struct SRTPStatus: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let fail = SRTPStatus(rawValue: 1)
    public static let badParam = SRTPStatus(rawValue: 2)
    public static let authFail = SRTPStatus(rawValue: 7)
    public static let cipherFail = SRTPStatus(rawValue: 8)
    public static let replayFail = SRTPStatus(rawValue: 9)
    public static let replayOld = SRTPStatus(rawValue: 10)
    public static let parseErr = SRTPStatus(rawValue: 21)

    private static let names: [String] = [
        "ok", "fail", "bad_param", "alloc_fail", "dealloc_fail", "init_fail", "terminus",
        "auth_fail", "cipher_fail", "replay_fail", "replay_old", "algo_fail", "no_such_op",
        "no_ctx", "cant_check", "key_expired", "socket_err", "signal_err", "nonce_bad",
        "read_fail", "write_fail", "parse_err", "encode_err", "semaphore_err", "pfkey_err",
        "bad_mki", "pkt_idx_old", "pkt_idx_adv",
    ]

    /// The C enumerator name, e.g. `srtp_err_status_auth_fail`.
    public var name: String {
        rawValue < Self.names.count
            ? "srtp_err_status_\(Self.names[Int(rawValue)])" : "srtp_err_status_\(rawValue)"
    }
    public var description: String { name }
}

/// Drains OpenSSL's (thread-local) error queue into one readable string.
func openSSLErrorString(_ fallback: String) -> String {
    var parts: [String] = []
    var buffer = [CChar](repeating: 0, count: 256)
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        ERR_error_string_n(code, &buffer, buffer.count)
        parts.append(String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return parts.isEmpty ? fallback : "\(fallback): \(parts.joined(separator: "; "))"
}
