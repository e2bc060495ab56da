import Dispatch
import Foundation
import RTC

/// Raw SRTP throughput, one core: packets per second for a 12-byte RTP header plus a 1,200-byte
/// payload, protected and unprotected in place (no allocation per packet), for libsrtp2 with
/// AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM, and for OpenSSL EVP (`EVPSRTP`, what
/// `SRTPSession` uses for RTP). One JSON line per (implementation, profile, direction).
///
/// `aesBackend` says whose AES (and MAC) code does the work. Debian's libsrtp2 2.5.0 is built
/// with `--enable-nss`: its cipher and HMAC calls go to NSS PK11 (`ldd`: libnss3; `objdump -T`:
/// PK11_CipherOp, PK11_DigestOp…), i.e. NSS's freebl, which has AES-NI and PCLMUL code paths and
/// picks them at run time when the CPU has the flags (unless NSS_DISABLE_HW_AES is set), but
/// computes SHA-1 in plain C (its code has no SHA-NI instructions). Running with
/// NSS_DISABLE_HW_AES=1 cuts AES-GCM about tenfold, which confirms AES-NI is in use otherwise.
/// The figures are for picking an implementation, so there is no target.
enum SRTPBench {
    static let payloadBytes = 1200
    static let headerBytes = 12
    static var packetBytes: Int { headerBytes + payloadBytes }
    /// Room in each packet slot for the largest trailer (GCM's 16-byte tag).
    static let slotBytes = 1232
    static let timedSeconds = 1.0

    static func run() throws {
        let key = (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }
        var results: [(String, SRTPProfile, String, Double)] = []
        for implementation in [SRTPSession.RTPImplementation.libsrtp2, .openSSLEVP] {
            for profile in [SRTPProfile.aes128CMSHA1_80, .aeadAES128GCM] {
                let salt = (0..<profile.saltLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) }
                let session = { (direction: SRTPSession.Direction) in
                    try SRTPSession(profile: profile, key: key, salt: salt, direction: direction, rtpImplementation: implementation)
                }
                results.append((implementation.rawValue, profile, "protect", try rawProtectRate(profile: profile, implementation: implementation)))
                results.append((implementation.rawValue, profile, "unprotect",
                                try measureUnprotect(prepare: { try session(.outbound) }, receiver: { try session(.inbound) })))
            }
        }
        // Only now: NSS loads freebl (its AES code) lazily, at the first cipher operation.
        let backends = ["libsrtp2": nssDescription(), "openssl-evp": openSSLDescription()]
        for (implementation, profile, direction, perSecond) in results {
            emit(implementation, profile, direction, perSecond, backend: backends[implementation]!)
        }
    }

    /// Packets per second one outbound session protects in place on this thread (12-byte
    /// header, 1,200-byte payload): `sfu-forward` reports its rate as a share of this.
    static func rawProtectRate(profile: SRTPProfile, implementation: SRTPSession.RTPImplementation = .openSSLEVP) throws -> Double {
        let key = (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }
        let salt = (0..<profile.saltLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) }
        let outbound = try SRTPSession(profile: profile, key: key, salt: salt, direction: .outbound, rtpImplementation: implementation)
        return measureProtect { buffer, length in try outbound.protect(rtpInPlace: buffer, length: length) }
    }

    static func emit(_ implementation: String, _ profile: SRTPProfile, _ direction: String, _ perSecond: Double, backend: String) {
        Bench.emit(["benchmark": "srtp", "implementation": implementation, "profile": profile.rawValue, "direction": direction,
                    "payloadBytes": payloadBytes, "packetsPerSecond": Int(perSecond),
                    "nanosecondsPerPacket": Bench.round3(1e9 / perSecond),
                    "payloadGbitPerSecond": Bench.round3(perSecond * Double(payloadBytes * 8) / 1e9),
                    "aesBackend": backend, "libsrtp": SRTPLibrary.version, "threads": 1])
    }

    static func rtpHeader(sequence: UInt16) -> [UInt8] {
        [0x80, 96, UInt8(sequence >> 8), UInt8(truncatingIfNeeded: sequence), 0, 0, 0x0B, 0xB8, 0x12, 0x34, 0x56, 0x78]
    }

    /// Protects one packet buffer over and over with a new sequence number each time (the
    /// payload is whatever the last pass left; its content does not change the cost).
    static func measureProtect(_ protect: (UnsafeMutableRawBufferPointer, Int) throws -> Int) -> Double {
        var buffer = [UInt8](repeating: 0xA5, count: slotBytes)
        var sequence: UInt16 = 0
        var packets = 0
        var elapsed = 0.0
        var warm = false
        while elapsed < timedSeconds {
            let batch = 4096
            let start = DispatchTime.now().uptimeNanoseconds
            buffer.withUnsafeMutableBytes { b in
                for _ in 0..<batch {
                    sequence &+= 1
                    b[2] = UInt8(sequence >> 8)
                    b[3] = UInt8(truncatingIfNeeded: sequence)
                    b[0] = 0x80
                    b[1] = 96
                    for i in 8..<12 { b[i] = 0x42 }
                    _ = try! protect(b, packetBytes)
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if warm {
                elapsed += seconds
                packets += batch
            }
            warm = true
        }
        return Double(packets) / elapsed
    }

    /// Unprotect needs a distinct, authentic packet each time (the replay check rejects
    /// repeats): protect a batch once, then per round copy it (untimed) and unprotect every
    /// packet with a fresh inbound session.
    static func measureUnprotect(prepare: () throws -> SRTPSession, receiver: () throws -> SRTPSession) throws -> Double {
        let count = 16_384
        let sender = try prepare()
        var protected = [UInt8](repeating: 0, count: count * slotBytes)
        var lengths = [Int](repeating: 0, count: count)
        let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        try protected.withUnsafeMutableBytes { all in
            for i in 0..<count {
                let slot = UnsafeMutableRawBufferPointer(rebasing: all[(i * slotBytes)..<((i + 1) * slotBytes)])
                slot.copyBytes(from: rtpHeader(sequence: UInt16(i)) + payload)
                lengths[i] = try sender.protect(rtpInPlace: slot, length: packetBytes)
            }
        }
        var work = protected
        var packets = 0
        var elapsed = 0.0
        var round = 0
        while elapsed < timedSeconds {
            work.withUnsafeMutableBytes { w in protected.withUnsafeBytes { w.copyMemory(from: $0) } }
            let inbound = try receiver()
            let start = DispatchTime.now().uptimeNanoseconds
            try work.withUnsafeMutableBytes { all in
                for i in 0..<count {
                    let slot = UnsafeMutableRawBufferPointer(rebasing: all[(i * slotBytes)..<((i + 1) * slotBytes)])
                    let n = try inbound.unprotect(srtpInPlace: slot, length: lengths[i])
                    precondition(n == packetBytes, "unprotect returned \(n) bytes")
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if round > 0 {
                elapsed += seconds
                packets += count
            }
            round += 1
        }
        return Double(packets) / elapsed
    }

    // MARK: what does the AES

    /// A C function `const char *name(void)` (or `(int)` for OpenSSL_version) already loaded in
    /// this process, called through dlsym so that drtc-bench needs no C module of its own.
    static func loadedVersion(library: String, symbol: String, argument: Int32? = nil) -> String? {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD) else { return nil }
        defer { dlclose(handle) }
        guard let f = dlsym(handle, symbol) else { return nil }
        if let argument {
            typealias Fn = @convention(c) (Int32) -> UnsafePointer<CChar>?
            return unsafeBitCast(f, to: Fn.self)(argument).map { String(cString: $0) }
        }
        typealias Fn = @convention(c) () -> UnsafePointer<CChar>?
        return unsafeBitCast(f, to: Fn.self)().map { String(cString: $0) }
    }

    /// A /proc file in full (`String(contentsOfFile:)` stops after the first read of one page).
    static func procFile(_ path: String) -> String {
        String(decoding: FileHandle(forReadingAtPath: path)?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
    }

    static var cpuFlags: Set<Substring> {
        let info = procFile("/proc/cpuinfo")
        let line = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        return Set(line.split(separator: " "))
    }

    /// Which crypto library libsrtp2 runs on, from the libraries mapped into this process, and
    /// whether that library can use AES-NI here.
    static func nssDescription() -> String {
        let maps = procFile("/proc/self/maps")
        guard maps.contains("libnss3.so") else { return "not NSS (libnss3 is not mapped): libsrtp2's own AES or OpenSSL" }
        let version = loadedVersion(library: "libnss3.so", symbol: "NSS_GetVersion") ?? "?"
        let flags = cpuFlags
        let hardware = flags.contains("aes") && ProcessInfo.processInfo.environment["NSS_DISABLE_HW_AES"] == nil
        return "NSS \(version) (freebl): AES " + (hardware ? "with AES-NI" : "in C (no AES-NI)")
            + (flags.contains("pclmulqdq") && hardware ? ", GCM with PCLMUL" : "") + ", HMAC-SHA1 in C"
    }

    static func openSSLDescription() -> String {
        let version = loadedVersion(library: "libcrypto.so.3", symbol: "OpenSSL_version", argument: 0) ?? "OpenSSL ?"
        let flags = cpuFlags
        return "\(version) EVP: AES " + (flags.contains("aes") ? "with AES-NI" : "in C")
            + ", HMAC-SHA1 " + (flags.contains("sha_ni") ? "with SHA-NI" : "with SSSE3/AVX2 assembly")
    }
}
