/// A DTLS-SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2) that drtc supports.
public enum SRTPProfile: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// SRTP_AEAD_AES_128_GCM (0x0007): AES-128-GCM, 16-byte tag, 12-byte salt. Preferred.
    case aeadAES128GCM = "SRTP_AEAD_AES_128_GCM"
    /// SRTP_AES128_CM_SHA1_80 (0x0001): AES-128 counter mode + HMAC-SHA1 truncated to 80 bits.
    case aes128CMSHA1_80 = "SRTP_AES128_CM_SHA1_80"

    /// The profile's name in OpenSSL's `use_srtp` list (also its IANA name).
    public var openSSLName: String { rawValue }
    /// The IANA DTLS-SRTP protection profile identifier.
    public var identifier: UInt16 {
        switch self {
        case .aeadAES128GCM: 0x0007
        case .aes128CMSHA1_80: 0x0001
        }
    }
    /// Master key length in bytes.
    public var keyLength: Int { 16 }
    /// Master salt length in bytes (RFC 3711: 112 bits; RFC 7714: 96 bits).
    public var saltLength: Int {
        switch self {
        case .aeadAES128GCM: 12
        case .aes128CMSHA1_80: 14
        }
    }
    /// Authentication tag bytes appended to each SRTP packet.
    public var rtpTagLength: Int {
        switch self {
        case .aeadAES128GCM: 16
        case .aes128CMSHA1_80: 10
        }
    }
    /// Bytes SRTCP appends to an RTCP packet: E-flag + 31-bit index (4) plus the tag.
    public var rtcpTrailerLength: Int { 4 + rtpTagLength }

    init?(openSSLName: String) { self.init(rawValue: openSSLName) }
    public var description: String { rawValue }
}

/// SRTP master keys exported from a DTLS association (RFC 5764 §4.2), already assigned by role:
/// `local*` protects what this side sends, `remote*` unprotects what the peer sends.
public struct SRTPKeyingMaterial: Hashable, Sendable {
    public var profile: SRTPProfile
    public var localKey: [UInt8]
    public var localSalt: [UInt8]
    public var remoteKey: [UInt8]
    public var remoteSalt: [UInt8]

    public init(profile: SRTPProfile, localKey: [UInt8], localSalt: [UInt8], remoteKey: [UInt8], remoteSalt: [UInt8]) {
        self.profile = profile
        self.localKey = localKey
        self.localSalt = localSalt
        self.remoteKey = remoteKey
        self.remoteSalt = remoteSalt
    }

    /// Splits the exporter output `client_key | server_key | client_salt | server_salt`
    /// (RFC 5764 §4.2) and assigns local/remote by DTLS role.
    init?(profile: SRTPProfile, exported: [UInt8], isClient: Bool) {
        let k = profile.keyLength, s = profile.saltLength
        guard exported.count == 2 * (k + s) else { return nil }
        let clientKey = Array(exported[0..<k])
        let serverKey = Array(exported[k..<(2 * k)])
        let clientSalt = Array(exported[(2 * k)..<(2 * k + s)])
        let serverSalt = Array(exported[(2 * k + s)..<(2 * k + 2 * s)])
        self.profile = profile
        if isClient {
            (localKey, localSalt, remoteKey, remoteSalt) = (clientKey, clientSalt, serverKey, serverSalt)
        } else {
            (localKey, localSalt, remoteKey, remoteSalt) = (serverKey, serverSalt, clientKey, clientSalt)
        }
    }
}
