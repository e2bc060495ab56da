import Identity
import Testing
import RTC

struct RFC5769File: Decodable {
    struct Vector: Decodable {
        var name: String
        var hex: String
        var software: String
        var username: String?
        var priority: UInt32?
        var iceControlled: String?
        var mappedAddress: String?
        var port: UInt16?
    }
    var password: String
    var transactionID: String
    var vectors: [Vector]
}

@Suite struct STUNTests {
    static let file: RFC5769File = {
        do { return try Fixtures.load("stun-rfc5769.json", as: RFC5769File.self) } catch { fatalError("\(error)") }
    }()

    static var key: [UInt8] { Array(file.password.utf8) }

    @Test(arguments: 0..<3) func rfc5769VectorDecodesVerifiesAndReencodesByteExact(index: Int) throws {
        let vector = STUNTests.file.vectors[index]
        let bytes = unhex(vector.hex)
        let message = try STUNMessage(decoding: bytes)
        #expect(message.method == .binding)
        #expect(message.messageClass == (index == 0 ? .request : .successResponse))
        #expect(message.transactionID.bytes == unhex(STUNTests.file.transactionID))
        #expect(message.first { if case .software(let s) = $0 { s } else { nil } } == vector.software)
        #expect(message.username == vector.username)
        #expect(message.priority == vector.priority)
        #expect(message.iceControlled == vector.iceControlled.map { UInt64($0, radix: 16)! })
        if let ip = vector.mappedAddress, let port = vector.port {
            #expect(message.xorMappedAddress == SocketAddress(ip, port: port))
        }
        #expect(STUNMessage.checkIntegrity(bytes[...], key: STUNTests.key) == .valid)
        #expect(STUNMessage.checkFingerprint(bytes[...]) == .valid)
        #expect(STUNMessage.checkIntegrity(bytes[...], key: Array("wrong".utf8)) == .invalid)

        // Rebuild from the typed attributes: MI and FP recomputed, 0x20 padding as in the RFC.
        var stripped = message
        stripped.attributes.removeAll { $0.type == 0x0008 || $0.type == 0x8028 }
        #expect(stripped.encoded(integrityKey: STUNTests.key, fingerprint: true, padding: 0x20) == bytes)
        // And verbatim: MI and FP attributes as decoded.
        #expect(message.encoded(padding: 0x20) == bytes)
    }

    @Test func anyFlippedBitBreaksIntegrityOrFingerprint() throws {
        let bytes = unhex(STUNTests.file.vectors[0].hex)
        for i in 20..<bytes.count {
            var copy = bytes
            copy[i] ^= 0x01
            let mi = STUNMessage.checkIntegrity(copy[...], key: STUNTests.key)
            let fp = STUNMessage.checkFingerprint(copy[...])
            #expect(mi != .valid || fp != .valid, "flip at \(i) went unnoticed")
        }
    }

    @Test func messageTypeBitsInterleaveClassAndMethod() throws {
        // RFC 8489 §5: Binding error response is 0x0111, indication 0x0011.
        let id = STUNTransactionID(high: 1, low: 2)
        #expect(STUNMessage(messageClass: .errorResponse, transactionID: id).encoded().prefix(2) == [0x01, 0x11])
        #expect(STUNMessage(messageClass: .indication, transactionID: id).encoded().prefix(2) == [0x00, 0x11])
        let odd = STUNMessage(method: STUNMethod(rawValue: 0xABC), messageClass: .errorResponse, transactionID: id)
        #expect(try STUNMessage(decoding: odd.encoded()) == odd)
    }

    @Test func errorCodeAndUnknownAttributes() throws {
        let request = STUNMessage(messageClass: .request, transactionID: STUNTransactionID(high: 9, low: 9))
        let response = STUNMessage.errorResponse(to: request, .unknownAttribute, unknownAttributes: [0x7777, 0x0003, 0x0042])
        let bytes = response.encoded()
        // ERROR-CODE: 00 00 04 14 "Unknown Attribute" → class 4, number 20.
        #expect(Array(bytes[20..<28]) == [0x00, 0x09, 0x00, 0x15, 0x00, 0x00, 0x04, 0x14])
        let decoded = try STUNMessage(decoding: bytes)
        #expect(decoded.errorCode == STUNErrorCode(code: 420, reason: "Unknown Attribute"))
        #expect(decoded.attributes.last == .unknownAttributes([0x7777, 0x0003, 0x0042]))
        #expect(bytes.count == 20 + 4 + 24 + 4 + 8)  // 4+17 reason bytes pad to 24; 3 types (6 bytes) pad to 8
    }

    @Test func xorMappedAddressIPv6UsesTransactionID() throws {
        let id = STUNTransactionID(high: 0x0102_0304, low: 0x0506_0708_090A_0B0C)
        let address = SocketAddress("2001:db8::1", port: 443)!
        let bytes = STUNMessage(messageClass: .successResponse, transactionID: id, attributes: [.xorMappedAddress(address)]).encoded()
        let decoded = try STUNMessage(decoding: bytes)
        #expect(decoded.xorMappedAddress == address)
        // The encoded address differs from the plain one (it is XOR-ed).
        #expect(Array(bytes[28..<44]) != address.ip.bytes)
    }

    @Test func comprehensionRequiredUnknownsAreReported() throws {
        let m = STUNMessage(messageClass: .request, transactionID: STUNTransactionID(high: 0, low: 1), attributes: [
            .other(type: 0x0031, value: [1]), .other(type: 0xC057, value: [0, 1, 0, 0]), .other(type: 0x0015, value: [0x41]),
        ])
        let decoded = try STUNMessage(decoding: m.encoded())
        // 0xC057 is comprehension-optional; NONCE (0x0015) is known to STUN.
        #expect(decoded.unknownComprehensionRequired == [0x0031])
    }

    @Test func attributesAfterIntegrityAreIgnoredAndAfterFingerprintRejected() throws {
        let id = STUNTransactionID(high: 3, low: 4)
        var bytes = STUNMessage(messageClass: .request, transactionID: id, attributes: [.username("a:b")])
            .encoded(integrityKey: [1, 2, 3])
        // Append PRIORITY after MESSAGE-INTEGRITY: ignored (RFC 8489 §14.5).
        bytes += [0x00, 0x24, 0x00, 0x04, 0, 0, 0, 1]
        bytes[3] = UInt8(bytes.count - 20)
        let decoded = try STUNMessage(decoding: bytes)
        #expect(decoded.priority == nil)
        #expect(decoded.hasMessageIntegrity)

        var withFP = STUNMessage(messageClass: .request, transactionID: id).encoded(fingerprint: true)
        withFP += [0x00, 0x24, 0x00, 0x04, 0, 0, 0, 1]
        withFP[3] = UInt8(withFP.count - 20)
        #expect(throws: STUNError.self) { try STUNMessage(decoding: withFP) }
        do {
            _ = try STUNMessage(decoding: withFP)
        } catch {
            #expect(error.code == .attributeAfterFingerprint)
        }
    }

    @Test func headerErrorsSayWhatWasWrong() {
        func code(_ bytes: [UInt8]) -> STUNErrorDomain.Code? {
            do { _ = try STUNMessage(decoding: bytes); return nil } catch { return error.code }
        }
        let good = STUNMessage(messageClass: .request, transactionID: STUNTransactionID(high: 1, low: 1),
                               attributes: [.priority(5)]).encoded()
        #expect(code(Array(good.prefix(19))) == .truncated)
        var b = good; b[0] = 0x80
        #expect(code(b) == .notSTUN)
        b = good; b[4] = 0
        #expect(code(b) == .badMagicCookie)
        b = good; b[3] = 7
        #expect(code(b) == .badLength)
        b = good; b[3] = 12
        #expect(code(b) == .truncated)
        b = good; b[23] = 3  // PRIORITY length 3
        #expect(code(b) == .malformedAttribute)
        #expect(code(good + [0, 0, 0, 0]) == .badLength)
    }

    /// Drip-feed: every strict prefix of each vector must fail to decode (a datagram is all or nothing).
    @Test func everyPrefixOfAVectorIsRejected() {
        for vector in STUNTests.file.vectors {
            let bytes = unhex(vector.hex)
            for n in 0..<bytes.count {
                #expect(throws: STUNError.self) { try STUNMessage(decoding: bytes.prefix(n)) }
            }
        }
    }

    @Test func ipv6TextFormsParseAndPrint() {
        #expect(IPAddress("2001:db8:1234:5678:11:2233:4455:6677")?.description == "2001:db8:1234:5678:11:2233:4455:6677")
        #expect(IPAddress("2001:0db8:0:0:0:0:0:1")?.description == "2001:db8::1")
        #expect(IPAddress("::")?.description == "::")
        #expect(IPAddress("::ffff:192.0.2.1")?.bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1])
        #expect(IPAddress("192.0.2.256") == nil)
        #expect(IPAddress("1::2::3") == nil)
        #expect(IPAddress("12345::") == nil)
        #expect(SocketAddress("fd00::2", port: 9)?.description == "[fd00::2]:9")
    }
}
