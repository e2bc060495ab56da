import CLMDB
import COpenSSL
import CSRTP
import CSodium
import Testing

/// One call into each C library, so that a missing or broken system package fails loudly.
@Suite struct SystemLibrariesTests {
    @Test func libsodiumInitialises() {
        #expect(sodium_init() >= 0)
        #expect(crypto_sign_BYTES == 64)
    }

    @Test func lmdbReportsItsVersion() {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        let text = String(cString: mdb_version(&major, &minor, &patch))
        #expect(major == 0 && minor == 9)
        #expect(text.contains("LMDB"))
    }

    /// srtp_init() itself belongs to RTC's `LibSRTP` (once per process, under a lock); calling it
    /// here too would race with the RTC tests running in the same process.
    @Test func libsrtp2IsVersion2() {
        #expect(srtp_get_version() >= 0x0200_0000)
        let version = String(cString: srtp_get_version_string())
        #expect(version.contains("libsrtp2"))
    }

    @Test func openSSLIsVersion3() {
        let version = drtc_openssl_version_num()
        #expect(version >= 0x3000_0000)
        #expect(OPENSSL_init_ssl(0, nil) == 1)
    }
}
