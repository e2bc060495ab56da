import Testing
import Foundation
import RTC

@Suite struct SDPTests {
    static let offers = Fixtures.sdpNames(prefix: "aiortc-") + Fixtures.sdpNames(prefix: "chrome-")
        + Fixtures.sdpNames(prefix: "gstreamer-")

    static func options(tracks: [String: SDPOutgoingTrack] = [:], sendRecv: SDPDirection = .recvonly) -> SDPAnswerOptions {
        SDPAnswerOptions(
            iceUfrag: "srvU", icePwd: "server-password-0123456789",
            fingerprint: SDPFingerprint(digest: (0..<32).map { UInt8($0) }),
            candidates: [SDPCandidate(address: SocketAddress("192.0.2.1", port: 40000)!),
                         SDPCandidate(foundation: "2", priority: 2_130_706_430, address: SocketAddress("2001:db8::1", port: 40000)!)],
            sessionID: 123_456_789, answerToSendRecv: sendRecv, outgoingTracks: tracks)
    }

    static let supportedExtensions = SDPCapabilities.defaultHeaderExtensions

    @Test func fixturesExist() {
        #expect(SDPTests.offers.filter { $0.hasPrefix("aiortc-") }.count >= 3)
        #expect(SDPTests.offers.filter { $0.hasPrefix("chrome-") }.count >= 4)
        #expect(SDPTests.offers.filter { $0.hasPrefix("gstreamer-") }.count >= 3)
    }

    @Test(arguments: SDPTests.offers) func offerParsesAndSurvivesReserialization(name: String) throws {
        let text = try Fixtures.text("sdp/" + name)
        let offer = try SessionDescription(parsing: text)
        #expect(!offer.media.isEmpty)
        #expect(offer.bundleGroup?.mids == offer.media.compactMap(\.mid))
        for m in offer.media {
            #expect(offer.iceUfrag(for: m) != nil)
            #expect(offer.icePwd(for: m) != nil)
            #expect(offer.fingerprints(for: m).contains { $0.hashFunction == "sha-256" })
            #expect(offer.setup(for: m) == .actpass)
            if m.kind != "application" {
                #expect(m.rtcpMux)
                #expect(!m.codecs.isEmpty)
                #expect(m.codecs.count == m.formats.count, "every payload type has an rtpmap in \(name)")
            }
        }
        // The model is stable under serialize → parse.
        let again = try SessionDescription(parsing: offer.serialized)
        #expect(again == offer)
    }

    @Test(arguments: SDPTests.offers) func everyFixtureOfferYieldsAValidAnswer(name: String) throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/" + name))
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options())
        let text = answer.serialized
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.first == "v=0")
        #expect(lines.contains("a=ice-lite"))
        #expect(lines.contains("a=ice-ufrag:srvU"))
        #expect(lines.contains("a=ice-pwd:server-password-0123456789"))
        #expect(lines.contains { $0.hasPrefix("a=fingerprint:sha-256 00:01:02:03:") })
        #expect(lines.contains("a=setup:passive"))
        let accepted = offer.media.filter { ($0.kind == "audio" || $0.kind == "video") }.compactMap(\.mid)
        #expect(lines.contains("a=group:BUNDLE " + accepted.joined(separator: " ")))
        // JSEP (RFC 8829 §5.3.1): no a=bundle-only in answers, bundle-only offers included.
        #expect(!lines.contains("a=bundle-only"))

        // The answer parses back, with one section per offered one, in order.
        let parsed = try SessionDescription(parsing: text)
        #expect(parsed == answer)
        #expect(parsed.media.count == offer.media.count)
        // The transport is written in every m-section, rejected ones included (RFC 8829 §5.3.1,
        // RFC 8842): webrtcbin refuses a section without a=setup. Not at session level too,
        // where webrtcbin would take a second fingerprint for a conflicting one.
        #expect(parsed.iceUfrag == nil && parsed.icePwd == nil && parsed.fingerprints.isEmpty && parsed.setup == nil)
        for a in parsed.media {
            #expect(a.setup == .passive, "\(name): m=\(a.kind) mid \(a.mid ?? "-") has no a=setup:passive")
            #expect(a.iceUfrag == "srvU")
            #expect(a.icePwd == "server-password-0123456789")
            #expect(a.fingerprints.map(\.hashFunction) == ["sha-256"])
            #expect(!a.bundleOnly)
        }
        for (m, a) in zip(offer.media, parsed.media) {
            #expect(a.mid == m.mid)
            #expect(a.kind == m.kind)
            guard m.kind == "audio" || m.kind == "video" else {
                #expect(a.port == 0, "\(m.kind) is rejected")
                continue
            }
            #expect(a.port == 40000)
            #expect(a.connection == "IN IP4 192.0.2.1")
            #expect(a.rtcpMux)
            #expect(a.candidates == ["1 1 udp 2130706431 192.0.2.1 40000 typ host", "2 1 udp 2130706430 2001:db8::1 40000 typ host"])
            #expect(a.endOfCandidates)
            #expect(a.direction == m.effectiveDirection.reversed)
            // Codecs: supported ones only, offer payload types, rtx only with its primary.
            let primaries = a.codecs.filter { $0.name.lowercased() != "rtx" }
            #expect(!primaries.isEmpty)
            for c in primaries {
                let name = c.name.lowercased()
                #expect(m.kind == "audio" ? name == "opus" : (name == "vp8" || name == "h264"), "\(name) in \(name)")
                #expect(m.codec(c.payloadType)?.name == c.name)
                if name == "h264" {
                    #expect(c.parameters["packetization-mode"] == "1")
                    #expect(["42e0", "4200"].contains(c.parameters["profile-level-id"].map { String($0.prefix(4)) } ?? ""))
                }
                #expect(c.feedback.allSatisfy { ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"].contains($0) })
                #expect(Set(c.feedback) == Set(m.codec(c.payloadType)!.feedback.filter { ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"].contains($0) }))
            }
            for rtx in a.codecs where rtx.name.lowercased() == "rtx" {
                let apt = UInt8(rtx.parameters["apt"] ?? "")
                #expect(primaries.contains { $0.payloadType == apt })
            }
            // Every kept primary whose offer had an rtx keeps it.
            for c in primaries {
                let offeredRTX = m.codecs.filter { $0.name == "rtx" && $0.parameters["apt"] == String(c.payloadType) }
                for r in offeredRTX { #expect(a.codec(r.payloadType) != nil) }
            }
            #expect(a.formats == a.codecs.map { String($0.payloadType) })
            // Extensions: the supported ones the offer had, with the offer's IDs.
            let expected = m.extmaps.filter { SDPTests.supportedExtensions.contains($0.uri) }.map { "\($0.id) \($0.uri)" }
            #expect(a.extmaps.map { "\($0.id) \($0.uri)" } == expected)
        }
    }

    @Test func chromeAudioOfferKeepsOpusOnly() throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/chrome-audio-sendonly.sdp"))
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options())
        let audio = try #require(answer.media.first)
        #expect(audio.codecs.map(\.name) == ["opus"])
        #expect(audio.codecs.first?.formatParameters == "minptime=10;useinbandfec=1")
        #expect(audio.codecs.first?.feedback == ["transport-cc"])
        #expect(audio.direction == .recvonly)
        #expect(answer.extmapAllowMixed)
        #expect(answer.serialized.contains("a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"))
    }

    @Test func chromeSimulcastOfferGetsRidRecvAndSimulcastRecv() throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/chrome-simulcast-sendonly.sdp"))
        let video = try #require(offer.media.first { $0.kind == "video" })
        #expect(video.rids.map(\.id) == ["q", "h", "f"])
        #expect(video.simulcast?.send.map { $0.map(\.rid) } == [["q"], ["h"], ["f"]])
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options())
        let text = answer.serialized
        for line in ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f",
                     "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                     "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
                     "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"] {
            #expect(text.contains(line + "\r\n"), "missing \(line)")
        }
        // VP8 96 + rtx 97, H264 102 (42001f) + 103, H264 108 (42e01f) + 109; not 104/114 (mode 0), 116 (main), AV1, VP9.
        let answered = try #require(answer.media.first { $0.kind == "video" })
        #expect(answered.codecs.map(\.payloadType) == [96, 97, 102, 103, 108, 109])
        #expect(answered.codecs.first?.feedback == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"])
    }

    @Test func viewerAnswerCarriesOurSendonlyTracks() throws {
        for name in ["chrome-viewer-recvonly.sdp", "aiortc-viewer-recvonly.sdp"] {
            let offer = try SessionDescription(parsing: try Fixtures.text("sdp/" + name))
            let videoMid = try #require(offer.media.first { $0.kind == "video" }?.mid)
            let audioMid = try #require(offer.media.first { $0.kind == "audio" }?.mid)
            let tracks = [
                videoMid: SDPOutgoingTrack(ssrc: 1111, rtxSSRC: 2222, cname: "sfu", streamID: "room1", trackID: "cam"),
                audioMid: SDPOutgoingTrack(ssrc: 3333, cname: "sfu", streamID: "room1", trackID: "mic"),
            ]
            let answer = try SessionDescription.answer(to: offer, options: SDPTests.options(tracks: tracks))
            let text = answer.serialized
            for line in ["a=sendonly", "a=msid:room1 cam", "a=ssrc-group:FID 1111 2222", "a=ssrc:1111 cname:sfu",
                         "a=ssrc:2222 cname:sfu", "a=ssrc:1111 msid:room1 cam", "a=msid:room1 mic", "a=ssrc:3333 cname:sfu"] {
                #expect(text.contains(line + "\r\n"), "\(name): missing \(line)")
            }
            #expect(!text.contains("a=recvonly"))
        }
    }

    @Test func sendrecvIsAnsweredPerCallerChoice() throws {
        var text = try Fixtures.text("sdp/aiortc-audio-sendonly.sdp")
        text = text.replacingOccurrences(of: "a=sendonly", with: "a=sendrecv")
        let offer = try SessionDescription(parsing: text)
        #expect(try SessionDescription.answer(to: offer, options: SDPTests.options()).media[0].direction == .recvonly)
        #expect(try SessionDescription.answer(to: offer, options: SDPTests.options(sendRecv: .sendrecv)).media[0].direction == .sendrecv)
    }

    @Test func dataChannelIsRejectedAndLeftOutOfBundle() throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/chrome-datachannel-video.sdp"))
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options())
        let app = try #require(answer.media.first { $0.kind == "application" })
        #expect(app.port == 0)
        #expect(answer.bundleGroup?.mids == ["0"])
        #expect(answer.serialized.contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"))
    }

    // MARK: max-bundle offers with bundle-only sections (GStreamer webrtcbin)

    /// Answers to real offers, byte for byte, with `SDPTests.options()` (and, for viewers, the
    /// tracks of `viewerTracks`). Kept in Fixtures/sdp/answers; RTC_RECORD_ANSWERS=1 rewrites
    /// them (then read the diff).
    static let pinnedAnswers = ["gstreamer-video-audio-sendonly.sdp", "gstreamer-datachannel-video-audio.sdp",
                                "gstreamer-viewer-recvonly.sdp", "chrome-audio-video-sendonly.sdp",
                                "chrome-datachannel-video.sdp", "aiortc-viewer-recvonly.sdp"]

    static func viewerTracks(_ offer: SessionDescription) -> [String: SDPOutgoingTrack] {
        var tracks: [String: SDPOutgoingTrack] = [:]
        for (i, m) in offer.media.enumerated() where m.effectiveDirection == .recvonly {
            if let mid = m.mid {
                tracks[mid] = SDPOutgoingTrack(ssrc: 1000 + UInt32(i), rtxSSRC: 2000 + UInt32(i), cname: "drtc-room", streamID: "room", trackID: "\(m.kind)-\(i)")
            }
        }
        return tracks
    }

    @Test(arguments: SDPTests.pinnedAnswers) func answerIsByteExact(name: String) throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/" + name))
        let sends = offer.media.contains { $0.effectiveDirection == .recvonly }
        let options = sends ? SDPTests.options(tracks: SDPTests.viewerTracks(offer), sendRecv: .sendonly) : SDPTests.options()
        let text = try SessionDescription.answer(to: offer, options: options).serialized
        let path = "sdp/answers/" + name
        if ProcessInfo.processInfo.environment["RTC_RECORD_ANSWERS"] != nil {
            try text.write(to: Fixtures.directory.appendingPathComponent(path), atomically: true, encoding: .utf8)
        }
        let expected = try Fixtures.text(path)
        #expect(text == expected, "answer to \(name) differs from Fixtures/\(path):\n\(text)")
    }

    @Test func bundleOnlyAudioIsAcceptedIntoTheBundle() throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/gstreamer-video-audio-sendonly.sdp"))
        let audio = try #require(offer.media.first { $0.kind == "audio" })
        #expect(audio.port == 0 && audio.bundleOnly, "the fixture is webrtcbin's max-bundle shape")
        #expect(!audio.isDisabled)
        #expect(offer.offererTaggedSection()?.mid == "video0")
        let text = try SessionDescription.answer(to: offer, options: SDPTests.options()).serialized
        #expect(text.contains("a=group:BUNDLE video0 audio1\r\n"))
        #expect(text.contains("m=video 40000 UDP/TLS/RTP/SAVPF 96\r\n"))
        #expect(text.contains("m=audio 40000 UDP/TLS/RTP/SAVPF 111\r\n"))
        #expect(text.contains("a=mid:audio1\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:111 OPUS/48000/2\r\n"))
        #expect(text.components(separatedBy: "a=setup:passive\r\n").count == 3, "one a=setup per m-section")
    }

    @Test func rejectedBundleOnlyDataChannelStillCarriesTheTransport() throws {
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/gstreamer-datachannel-video-audio.sdp"))
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options())
        #expect(answer.bundleGroup?.mids == ["video0", "audio1"])
        let app = [
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:srvU", "a=ice-pwd:server-password-0123456789",
            "a=fingerprint:sha-256 " + (0..<32).map { String(format: "%02X", $0) }.joined(separator: ":"),
            "a=setup:passive", "a=mid:application2", "a=inactive",
        ]
        #expect(answer.serialized.hasSuffix(app.joined(separator: "\r\n") + "\r\n"))
    }

    /// RFC 8843 §7.2: a bundle-only section may leave out the IDENTICAL and TRANSPORT attributes
    /// (ICE, fingerprint, setup, rtcp-mux, rtcp-rsize); the tagged section's apply to it.
    @Test func bundleOnlySectionWithoutTransportAttributesUsesTheTaggedOnes() throws {
        var text = try Fixtures.text("sdp/gstreamer-video-audio-sendonly.sdp")
        let audioStart = try #require(text.range(of: "m=audio"))
        let transport = ["a=setup:", "a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=rtcp-mux", "a=rtcp-rsize"]
        let audio = text[audioStart.lowerBound...].components(separatedBy: "\r\n")
            .filter { line in !transport.contains { line.hasPrefix($0) } }.joined(separator: "\r\n")
        text = String(text[..<audioStart.lowerBound]) + audio
        let offer = try SessionDescription(parsing: text)
        let m = try #require(offer.media.last)
        #expect(m.setup == nil && m.iceUfrag == nil && !m.rtcpMux && m.bundleOnly)
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options())
        let a = try #require(answer.media.last)
        #expect(a.port == 40000)
        #expect(a.rtcpMux && a.rtcpReducedSize && a.setup == .passive)
        #expect(answer.bundleGroup?.mids == ["video0", "audio1"])
    }

    @Test func portZeroWithoutBundleOnlyIsStillDisabled() throws {
        let text = try Fixtures.text("sdp/gstreamer-video-audio-sendonly.sdp").replacingOccurrences(of: "a=bundle-only\r\n", with: "")
        let answer = try SessionDescription.answer(to: try SessionDescription(parsing: text), options: SDPTests.options())
        #expect(answer.media.map(\.port) == [40000, 0])
        #expect(answer.media[1].setup == .passive)
        #expect(answer.bundleGroup?.mids == ["video0"])
    }

    @Test func bundleOnlyWithoutATaggedSectionIsRefused() throws {
        // Every section port 0: the video one disabled, the audio one bundle-only with nothing
        // to bundle into (RFC 8843 §7.3.1 finds no offerer-tagged section).
        let text = try Fixtures.text("sdp/gstreamer-video-audio-sendonly.sdp").replacingOccurrences(of: "m=video 9 ", with: "m=video 0 ")
        let error = answerError(text)
        #expect(error?.code == .notBundleable)
        #expect(error?.message.contains("m-section 1 (audio) is bundle-only") == true)
    }

    @Test func answererTagComesFirstInTheGroup() throws {
        // A group that names a bundle-only section first: the tag is the first one with a port.
        let text = try Fixtures.text("sdp/gstreamer-video-audio-sendonly.sdp")
            .replacingOccurrences(of: "a=group:BUNDLE video0 audio1", with: "a=group:BUNDLE audio1 video0")
        let answer = try SessionDescription.answer(to: try SessionDescription(parsing: text), options: SDPTests.options())
        #expect(answer.bundleGroup?.mids == ["video0", "audio1"])
    }

    // MARK: errors

    func answerError(_ text: String) -> SDPError? {
        do {
            let offer = try SessionDescription(parsing: text)
            _ = try SessionDescription.answer(to: offer, options: SDPTests.options())
            return nil
        } catch {
            return error
        }
    }

    func chromeVideo() throws -> String { try Fixtures.text("sdp/chrome-video-sendonly.sdp") }

    func removing(_ prefix: String, from text: String) -> String {
        text.components(separatedBy: "\r\n").filter { !$0.hasPrefix(prefix) }.joined(separator: "\r\n")
    }

    @Test func noFingerprint() throws {
        let error = answerError(removing("a=fingerprint", from: try chromeVideo()))
        #expect(error?.code == .noFingerprint)
        #expect(error?.message.contains("m-section 0 (video)") == true)
    }

    @Test func noICECredentials() throws {
        #expect(answerError(removing("a=ice-ufrag", from: try chromeVideo()))?.code == .noICECredentials)
        #expect(answerError(removing("a=ice-pwd", from: try chromeVideo()))?.code == .noICECredentials)
    }

    @Test func noCommonCodec() throws {
        // Audio with only PCMU/PCMA.
        var text = try Fixtures.text("sdp/chrome-audio-sendonly.sdp")
        text = text.replacingOccurrences(of: "UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", with: "UDP/TLS/RTP/SAVPF 0 8")
        let error = answerError(text)
        #expect(error?.code == .noCommonCodec)
        #expect(error?.message.contains("m-section 0 (audio)") == true)
        #expect(error?.message.contains("PCMU/8000") == true)
        // Video with only H264 packetization-mode=0 and AV1.
        let video = try chromeVideo().replacingOccurrences(
            of: #"UDP/TLS/RTP/SAVPF [0-9 ]+"#, with: "UDP/TLS/RTP/SAVPF 104 45", options: .regularExpression)
        #expect(answerError(video)?.code == .noCommonCodec)
    }

    @Test func notBundleable() throws {
        #expect(answerError(removing("a=group:BUNDLE", from: try chromeVideo()))?.code == .notBundleable)
        #expect(answerError(removing("a=rtcp-mux", from: try chromeVideo()))?.code == .notBundleable)
        #expect(answerError(removing("a=mid", from: try chromeVideo()))?.code == .notBundleable)
        let outside = try chromeVideo().replacingOccurrences(of: "a=group:BUNDLE 0", with: "a=group:BUNDLE 7")
        #expect(answerError(outside)?.message.contains("not in the offer's BUNDLE group") == true)
    }

    @Test func passiveOfferIsUnsupported() throws {
        let text = try chromeVideo().replacingOccurrences(of: "a=setup:actpass", with: "a=setup:passive")
        #expect(answerError(text)?.code == .unsupportedSetup)
        let active = try chromeVideo().replacingOccurrences(of: "a=setup:actpass", with: "a=setup:active")
        #expect(answerError(active) == nil)
    }

    @Test func malformedLinesAreNamed() throws {
        func parseError(_ text: String) -> SDPError? {
            do { _ = try SessionDescription(parsing: text); return nil } catch { return error }
        }
        let base = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        let e1 = parseError(base + "garbage\r\n")
        #expect(e1?.code == .malformedLine)
        #expect(e1?.message.hasPrefix("line 5 ") == true)
        #expect(parseError(base + "m=video x UDP/TLS/RTP/SAVPF 96\r\n")?.message.hasPrefix("line 5 ") == true)
        #expect(parseError(base + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8\r\n")?.message.hasPrefix("line 6 ") == true)
        #expect(parseError(base + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:300 VP8/90000\r\n")?.code == .malformedLine)
        #expect(parseError(base + "a=fingerprint:sha-256\r\n")?.code == .malformedLine)
        #expect(parseError(base + "a=setup:sideways\r\n")?.code == .malformedLine)
        #expect(parseError(base + "m=video 9 P 96\r\na=extmap:0 urn:x\r\n")?.code == .malformedLine)
        #expect(parseError(base + "m=video 9 P 96\r\na=simulcast:send\r\n")?.code == .malformedLine)
        #expect(parseError(base + "m=video 9 P 96\r\na=ssrc:abc cname:x\r\n")?.code == .malformedLine)
        #expect(parseError("o=- 1 1 IN IP4 0.0.0.0\r\n")?.message.contains("v=0") == true)
        #expect(parseError("")?.code == .malformedLine)
        // LF-only line endings are accepted.
        #expect(parseError(base.replacingOccurrences(of: "\r\n", with: "\n")) == nil)
    }

    @Test func noMedia() {
        let offer = try? SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
        #expect(throws: SDPError.self) { try SessionDescription.answer(to: offer!, options: SDPTests.options()) }
    }

    @Test func simulcastGrammar() throws {
        let text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=simulcast:recv 1,~2;3 send a\r\n"
        let sim = try #require(try SessionDescription(parsing: text).media.first?.simulcast)
        #expect(sim.recv == [[.init(rid: "1"), .init(rid: "2", paused: true)], [.init(rid: "3")]])
        #expect(sim.send == [[.init(rid: "a")]])
    }
}

@Suite struct SDPAnswerPrintout {
    /// Prints one answer when RTC_PRINT_ANSWER is set, for eyeballing against the offer.
    @Test func printSimulcastAnswer() throws {
        guard ProcessInfo.processInfo.environment["RTC_PRINT_ANSWER"] != nil else { return }
        let offer = try SessionDescription(parsing: try Fixtures.text("sdp/chrome-simulcast-sendonly.sdp"))
        print(try SessionDescription.answer(to: offer, options: SDPTests.options()).serialized)
    }
}

@Suite struct SDPAnswerInterop {
    /// Interop hook for Fixtures/check-answers.py: answers the offer in $RTC_OFFER_FILE into
    /// $RTC_ANSWER_FILE, so a live aiortc or Chromium peer can apply it as the remote description.
    @Test func answerOfferFromEnvironment() throws {
        let env = ProcessInfo.processInfo.environment
        guard let offerPath = env["RTC_OFFER_FILE"], let answerPath = env["RTC_ANSWER_FILE"] else { return }
        let offer = try SessionDescription(parsing: try String(contentsOfFile: offerPath, encoding: .utf8))
        var tracks: [String: SDPOutgoingTrack] = [:]
        for (i, m) in offer.media.enumerated() where m.effectiveDirection == .recvonly {
            if let mid = m.mid {
                tracks[mid] = SDPOutgoingTrack(ssrc: 1000 + UInt32(i), rtxSSRC: 2000 + UInt32(i), cname: "sfu", streamID: "room", trackID: "t\(i)")
            }
        }
        let answer = try SessionDescription.answer(to: offer, options: SDPTests.options(tracks: tracks))
        try answer.serialized.write(toFile: answerPath, atomically: true, encoding: .utf8)
    }
}
