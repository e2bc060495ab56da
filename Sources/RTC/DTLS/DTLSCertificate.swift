import COpenSSL

/// A certificate fingerprint as carried in SDP (`a=fingerprint:sha-256 AB:CD:…`, RFC 8122 §5).
/// Only SHA-256 is supported: every current browser and WebRTC library offers it.
public struct DTLSFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// The hash function's SDP name; always `sha-256`.
    public let algorithm: String
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// From raw SHA-256 digest bytes.
    public init(sha256 bytes: [UInt8]) throws(DTLSError) {
        guard bytes.count == 32 else {
            throw DTLSError(.configuration, "fingerprint: expected 32 SHA-256 bytes, got \(bytes.count)")
        }
        self.algorithm = "sha-256"
        self.bytes = bytes
    }

    /// Parses the value of an `a=fingerprint` attribute: `"sha-256 AB:CD:…"`, or the bare
    /// colon-separated hex (`"AB:CD:…"`, hex digits in either case).
    public init(sdp value: String) throws(DTLSError) {
        let fields = value.split(separator: " ", omittingEmptySubsequences: true)
        let hex: Substring
        switch fields.count {
        case 1:
            hex = fields[0]
        case 2:
            guard fields[0].lowercased() == "sha-256" else {
                throw DTLSError(
                    .configuration,
                    "fingerprint: only sha-256 is supported, got hash function '\(fields[0])'")
            }
            hex = fields[1]
        default:
            throw DTLSError(.configuration, "fingerprint: expected 'sha-256 AB:CD:…', got '\(value)'")
        }
        let octets = hex.split(separator: ":", omittingEmptySubsequences: false)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for octet in octets {
            guard octet.count == 2, let byte = UInt8(octet, radix: 16) else {
                throw DTLSError(
                    .configuration,
                    "fingerprint: expected colon-separated hex octets like 'AB:CD', got '\(hex)'")
            }
            bytes.append(byte)
        }
        guard bytes.count == 32 else {
            throw DTLSError(
                .configuration, "fingerprint: sha-256 needs 32 octets, got \(bytes.count) in '\(hex)'")
        }
        self.algorithm = "sha-256"
        self.bytes = bytes
    }

    /// Uppercase colon-separated hex, as SDP writes it: `AB:CD:…`.
    public var hex: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for (i, b) in bytes.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ":")) }
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The full attribute value: `sha-256 AB:CD:…`.
    public var sdpValue: String { "\(algorithm) \(hex)" }
    public var description: String { sdpValue }
}

/// A self-signed ECDSA P-256 X.509 v3 certificate and its private key, generated once at start-up
/// and shared (read-only) by all DTLS endpoints of a node. WebRTC authenticates it by fingerprint
/// (RFC 8827 §6.5), not by chain, so the subject and validity are nominal.
public final class DTLSCertificate: @unchecked Sendable {
    // @unchecked Sendable: both objects are immutable after init; OpenSSL reference-counts them
    // and allows concurrent read-only use (SSL_CTX_use_certificate / _PrivateKey take references).
    let key: OpaquePointer  // EVP_PKEY *
    let x509: OpaquePointer  // X509 *

    /// The certificate's SHA-256 fingerprint, for `a=fingerprint`.
    public let fingerprint: DTLSFingerprint
    /// The certificate in DER form.
    public let der: [UInt8]

    /// Generates a fresh P-256 key and a certificate valid from one day ago (clock skew) for
    /// `validityDays` days, with a random 64-bit serial. `commonName` is informational.
    public init(commonName: String = "drtc", validityDays: Int = 30) throws(DTLSError) {
        ERR_clear_error()
        guard let key = drtc_generate_p256_key() else {
            throw DTLSError(.certificate, openSSLErrorString("generating the P-256 key failed"))
        }
        guard let x509 = X509_new() else {
            EVP_PKEY_free(key)
            throw DTLSError(.certificate, openSSLErrorString("X509_new failed"))
        }
        // From here on deinit-style cleanup on failure.
        func fail(_ what: String) -> DTLSError {
            X509_free(x509)
            EVP_PKEY_free(key)
            return DTLSError(.certificate, openSSLErrorString(what))
        }
        guard X509_set_version(x509, 2) == 1 else { throw fail("X509_set_version(v3) failed") }  // 2 = v3

        // RFC 5280 §4.1.2.2: positive serial, at most 20 octets; 63 random bits keeps it positive.
        guard let serial = BN_new() else { throw fail("BN_new failed") }
        defer { BN_free(serial) }
        guard BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
            BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x509)) != nil
        else { throw fail("setting a random serial failed") }

        guard X509_gmtime_adj(X509_getm_notBefore(x509), -86_400) != nil,
            X509_gmtime_adj(X509_getm_notAfter(x509), max(1, validityDays) * 86_400) != nil
        else { throw fail("setting the validity period failed") }

        guard let name = X509_get_subject_name(x509),
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1,
            X509_set_issuer_name(x509, name) == 1
        else { throw fail("setting the subject/issuer name failed") }

        guard X509_set_pubkey(x509, key) == 1 else { throw fail("X509_set_pubkey failed") }
        guard X509_sign(x509, key, EVP_sha256()) > 0 else { throw fail("signing the certificate failed") }

        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        guard X509_digest(x509, EVP_sha256(), &digest, &digestLength) == 1, digestLength == 32 else {
            throw fail("computing the SHA-256 fingerprint failed")
        }
        var derPointer: UnsafeMutablePointer<UInt8>? = nil
        let derLength = i2d_X509(x509, &derPointer)
        guard derLength > 0, let derPointer else { throw fail("DER-encoding the certificate failed") }
        self.der = Array(UnsafeBufferPointer(start: derPointer, count: Int(derLength)))
        CRYPTO_free(derPointer, #fileID, #line)

        self.key = key
        self.x509 = x509
        self.fingerprint = try! DTLSFingerprint(sha256: Array(digest.prefix(32)))
    }

    deinit {
        X509_free(x509)
        EVP_PKEY_free(key)
    }

    /// SHA-256 fingerprint of an arbitrary `X509 *` (used for the peer's certificate).
    static func fingerprint(of x509: OpaquePointer) -> DTLSFingerprint? {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(x509, EVP_sha256(), &digest, &length) == 1, length == 32 else { return nil }
        return try? DTLSFingerprint(sha256: Array(digest.prefix(32)))
    }
}
