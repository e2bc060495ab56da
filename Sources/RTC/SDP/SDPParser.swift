// Parsing and serializing SessionDescription (RFC 8866 §5 line grammar).

extension SessionDescription {
    /// Parses SDP text. Lines end in CRLF or LF (RFC 8866 §5 asks for CRLF; LF is tolerated as
    /// RFC 8866 §5 allows). Unknown attributes are kept; lines that break the grammar, or typed
    /// attributes whose value does not parse, throw `.malformedLine` naming the line number.
    public init(parsing text: String) throws(SDPError) {
        self.init()
        var sawVersion = false
        var current: SDPMediaSection?
        var pending = PendingCodecs()
        var lineNumber = 0

        func finishMedia() {
            guard var m = current else { return }
            pending.assemble(into: &m)
            media.append(m)
            current = nil
            pending = PendingCodecs()
        }

        // "\r\n" is one Character (a grapheme cluster) in Swift, so match it as well as "\n".
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\r\n" || $0 == "\n" }) {
            lineNumber += 1
            var line = rawLine
            if line.last == "\r" { line = line.dropLast() }
            if line.isEmpty { continue }
            func bad(_ why: String) -> SDPError {
                SDPError(.malformedLine, "line \(lineNumber) '\(line.prefix(80))': \(why)")
            }
            // RFC 8866 §9: values are byte-strings, which exclude NUL, CR and LF. A bare CR kept
            // in a value would end the line when the description is serialized again.
            if line.utf8.contains(where: { $0 == 0x0D || $0 == 0x00 }) {
                throw bad("contains a NUL or a CR that does not end the line (RFC 8866 §9 byte-string)")
            }
            let chars = Array(line.utf8.prefix(2))
            guard chars.count == 2, chars[1] == UInt8(ascii: "="), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(chars[0]) else {
                throw bad("expected '<letter>=<value>' (RFC 8866 §5)")
            }
            let type = Character(Unicode.Scalar(chars[0]))
            let value = line.dropFirst(2)
            if !sawVersion {
                guard type == "v", value == "0" else { throw bad("an SDP must start with 'v=0' (RFC 8866 §5.1)") }
                sawVersion = true
                continue
            }
            switch type {
            case "o": origin = String(value)
            case "s": sessionName = String(value)
            case "t": timing = String(value)
            case "c":
                if current != nil { current?.connection = String(value) } else { connection = String(value) }
            case "b":
                current?.bandwidths.append(String(value))
            case "m":
                finishMedia()
                let tokens = value.split(separator: " ")
                guard tokens.count >= 3 else { throw bad("m= needs '<media> <port> <proto> <fmt>…' (RFC 8866 §5.14)") }
                let portText = tokens[1].split(separator: "/", maxSplits: 1).first ?? ""
                guard let port = UInt16(portText) else { throw bad("m= port '\(tokens[1])' is not a number 0–65535") }
                current = SDPMediaSection(kind: String(tokens[0]), port: port, proto: String(tokens[2]),
                                          formats: tokens.dropFirst(3).map(String.init))
            case "a":
                let colon = value.firstIndex(of: ":")
                let name = String(colon.map { value[..<$0] } ?? value)
                let attrValue: Substring? = colon.map { value[value.index(after: $0)...] }
                if var m = current {
                    try SessionDescription.applyMediaAttribute(name, attrValue, to: &m, pending: &pending, bad: bad)
                    current = m
                } else {
                    try applySessionAttribute(name, attrValue, bad: bad)
                }
            default:
                break  // i=, u=, e=, p=, z=, k=, r=: not needed by WebRTC
            }
        }
        guard sawVersion else { throw SDPError(.malformedLine, "line 1: empty SDP; it must start with 'v=0' (RFC 8866 §5.1)") }
        finishMedia()
    }

    private mutating func applySessionAttribute(_ name: String, _ value: Substring?, bad: (String) -> SDPError) throws(SDPError) {
        switch name {
        case "ice-lite": iceLite = true
        case "ice-ufrag": iceUfrag = try SessionDescription.required(value, name, bad)
        case "ice-pwd": icePwd = try SessionDescription.required(value, name, bad)
        case "ice-options": iceOptions = value.map(String.init)
        case "fingerprint": fingerprints.append(try SessionDescription.fingerprint(value, bad))
        case "setup": setup = try SessionDescription.setup(value, bad)
        case "group":
            let tokens = (value ?? "").split(separator: " ")
            guard let semantics = tokens.first else { throw bad("a=group needs '<semantics> <mid>…' (RFC 5888 §5)") }
            groups.append(SDPGroup(semantics: String(semantics), mids: tokens.dropFirst().map(String.init)))
        case "msid-semantic": msidSemantic = value.map { $0.trimmingSDPSpaces() }
        case "extmap-allow-mixed": extmapAllowMixed = true
        case "extmap": extmaps.append(try SessionDescription.extmap(value, bad))
        default: otherAttributes.append(SDPAttribute(name: name, value: value.map(String.init)))
        }
    }

    private static func applyMediaAttribute(_ name: String, _ value: Substring?, to m: inout SDPMediaSection,
                                     pending: inout PendingCodecs, bad: (String) -> SDPError) throws(SDPError) {
        switch name {
        case "mid": m.mid = try required(value, name, bad)
        case "bundle-only": m.bundleOnly = true
        case "sendrecv", "sendonly", "recvonly", "inactive": m.direction = SDPDirection(rawValue: name)
        case "ice-ufrag": m.iceUfrag = try SessionDescription.required(value, name, bad)
        case "ice-pwd": m.icePwd = try SessionDescription.required(value, name, bad)
        case "ice-options": m.iceOptions = value.map(String.init)
        case "fingerprint": m.fingerprints.append(try SessionDescription.fingerprint(value, bad))
        case "setup": m.setup = try SessionDescription.setup(value, bad)
        case "rtcp-mux": m.rtcpMux = true
        case "rtcp-rsize": m.rtcpReducedSize = true
        case "rtcp": m.rtcp = value.map(String.init)
        case "extmap": m.extmaps.append(try SessionDescription.extmap(value, bad))
        case "candidate": m.candidates.append(try required(value, name, bad))
        case "end-of-candidates": m.endOfCandidates = true
        case "rtpmap":
            // RFC 8866 §6.6: <payload type> <encoding name>/<clock rate>[/<encoding parameters>]
            let (pt, rest) = try SessionDescription.payloadType(value, name, bad)
            let parts = rest.split(separator: "/")
            guard parts.count >= 2, let rate = UInt32(parts[1]) else { throw bad("rtpmap needs '<pt> <name>/<clock rate>[/<channels>]'") }
            var channels: UInt8?
            if parts.count >= 3 {
                guard let c = UInt8(parts[2]) else { throw bad("rtpmap channel count '\(parts[2])' is not a number") }
                channels = c
            }
            pending.rtpmaps[pt] = (String(parts[0]), rate, channels)
        case "fmtp":
            let (pt, rest) = try SessionDescription.payloadType(value, name, bad)
            pending.fmtps[pt] = rest
        case "rtcp-fb":
            // RFC 4585 §4.2: <pt or *> <type> [<subtype>]
            let text = value ?? ""
            guard let space = text.firstIndex(of: " ") else { throw bad("rtcp-fb needs '<pt|*> <feedback>'") }
            let ptText = text[..<space]
            let feedback = text[text.index(after: space)...].trimmingSDPSpaces()
            if ptText == "*" {
                pending.wildcardFeedback.append(feedback)
            } else {
                guard let pt = UInt8(ptText), pt < 128 else { throw bad("rtcp-fb payload type '\(ptText)' is not 0–127 or '*'") }
                pending.feedback[pt, default: []].append(feedback)
            }
        case "ssrc":
            let text = value ?? ""
            let (idText, rest) = SessionDescription.splitFirstSpace(text)
            guard let ssrc = UInt32(idText), let rest, !rest.isEmpty else { throw bad("ssrc needs '<ssrc-id> <attribute>[:<value>]' (RFC 5576 §4.1)") }
            let colon = rest.firstIndex(of: ":")
            m.sourceAttributes.append(SDPSourceAttribute(ssrc: ssrc, attribute: String(colon.map { rest[..<$0] } ?? rest[...]),
                                                         value: colon.map { String(rest[rest.index(after: $0)...]) }))
        case "ssrc-group":
            let tokens = (value ?? "").split(separator: " ")
            guard let semantics = tokens.first else { throw bad("ssrc-group needs '<semantics> <ssrc>…' (RFC 5576 §4.2)") }
            var ssrcs: [UInt32] = []
            for t in tokens.dropFirst() {
                guard let s = UInt32(t) else { throw bad("ssrc-group member '\(t)' is not a 32-bit number") }
                ssrcs.append(s)
            }
            m.sourceGroups.append(SDPSourceGroup(semantics: String(semantics), ssrcs: ssrcs))
        case "rid":
            let tokens = (value ?? "").split(separator: " ", maxSplits: 2)
            guard tokens.count >= 2, let direction = SDPRid.Direction(rawValue: String(tokens[1])) else {
                throw bad("rid needs '<id> send|recv [<restrictions>]' (RFC 8851 §4)")
            }
            m.rids.append(SDPRid(id: String(tokens[0]), direction: direction, restrictions: tokens.count > 2 ? String(tokens[2]) : nil))
        case "simulcast":
            m.simulcast = try SessionDescription.simulcast(value, bad)
        case "msid":
            let tokens = (value ?? "").split(separator: " ")
            guard let stream = tokens.first else { throw bad("msid needs '<stream id> [<track id>]' (RFC 8830 §2)") }
            m.msids.append(SDPMediaStreamID(streamID: String(stream), trackID: tokens.count > 1 ? String(tokens[1]) : nil))
        default:
            m.otherAttributes.append(SDPAttribute(name: name, value: value.map(String.init)))
        }
    }

    // MARK: value grammars

    private static func required(_ value: Substring?, _ name: String, _ bad: (String) -> SDPError) throws(SDPError) -> String {
        guard let value, !value.isEmpty else { throw bad("a=\(name) needs a value") }
        return String(value)
    }

    private static func splitFirstSpace(_ text: Substring) -> (Substring, Substring?) {
        guard let space = text.firstIndex(of: " ") else { return (text, nil) }
        return (text[..<space], text[text.index(after: space)...])
    }

    private static func payloadType(_ value: Substring?, _ name: String, _ bad: (String) -> SDPError) throws(SDPError) -> (UInt8, String) {
        let (ptText, rest) = splitFirstSpace(value ?? "")
        guard let pt = UInt8(ptText), pt < 128 else { throw bad("\(name) payload type '\(ptText)' is not 0–127") }
        return (pt, rest.map { $0.trimmingSDPSpaces() } ?? "")
    }

    private static func fingerprint(_ value: Substring?, _ bad: (String) -> SDPError) throws(SDPError) -> SDPFingerprint {
        let tokens = (value ?? "").split(separator: " ")
        guard tokens.count == 2 else { throw bad("fingerprint needs '<hash-func> <hex:hex:…>' (RFC 8122 §5)") }
        return SDPFingerprint(hashFunction: tokens[0].lowercased(), value: String(tokens[1]))
    }

    private static func setup(_ value: Substring?, _ bad: (String) -> SDPError) throws(SDPError) -> SDPSetupRole {
        guard let value, let role = SDPSetupRole(rawValue: String(value)) else {
            throw bad("setup must be active, passive, actpass or holdconn (RFC 4145 §4)")
        }
        return role
    }

    private static func extmap(_ value: Substring?, _ bad: (String) -> SDPError) throws(SDPError) -> SDPExtmap {
        let tokens = (value ?? "").split(separator: " ", maxSplits: 2)
        guard tokens.count >= 2 else { throw bad("extmap needs '<id>[/<direction>] <uri>' (RFC 8285 §5)") }
        let idParts = tokens[0].split(separator: "/", maxSplits: 1)
        guard let idText = idParts.first, let id = UInt16(idText), (1...4095).contains(id) else {
            throw bad("extmap id '\(tokens[0])' is not 1–4095")
        }
        var direction: SDPDirection?
        if idParts.count == 2 {
            guard let d = SDPDirection(rawValue: String(idParts[1])) else { throw bad("extmap direction '\(idParts[1])' is not a direction") }
            direction = d
        }
        return SDPExtmap(id: id, direction: direction, uri: String(tokens[1]), attributes: tokens.count > 2 ? String(tokens[2]) : nil)
    }

    /// RFC 8853 §5.1: `send <streams> [recv <streams>]` or the reverse; streams `a,b;~c`.
    private static func simulcast(_ value: Substring?, _ bad: (String) -> SDPError) throws(SDPError) -> SDPSimulcast {
        let tokens = (value ?? "").split(separator: " ")
        guard !tokens.isEmpty, tokens.count % 2 == 0 else { throw bad("simulcast needs 'send|recv <rid list>' pairs (RFC 8853 §5.1)") }
        var result = SDPSimulcast()
        for i in stride(from: 0, to: tokens.count, by: 2) {
            let streams: [[SDPSimulcast.Alternative]] = tokens[i + 1].split(separator: ";").map { stream in
                stream.split(separator: ",").map { alt in
                    alt.hasPrefix("~") ? .init(rid: String(alt.dropFirst()), paused: true) : .init(rid: String(alt))
                }
            }
            switch tokens[i] {
            case "send": result.send = streams
            case "recv": result.recv = streams
            default: throw bad("simulcast direction '\(tokens[i])' is not send or recv")
            }
        }
        return result
    }

    // MARK: serializing

    /// The SDP text, CRLF line endings (RFC 8866 §5), typed attributes in JSEP order then the rest.
    public var serialized: String {
        var lines = ["v=0", "o=" + origin, "s=" + sessionName]
        if let connection { lines.append("c=" + connection) }
        lines.append("t=" + timing)
        if iceLite { lines.append("a=ice-lite") }
        for g in groups { lines.append("a=group:" + ([g.semantics] + g.mids).joined(separator: " ")) }
        if extmapAllowMixed { lines.append("a=extmap-allow-mixed") }
        if let msidSemantic { lines.append("a=msid-semantic:" + msidSemantic) }
        if let iceUfrag { lines.append("a=ice-ufrag:" + iceUfrag) }
        if let icePwd { lines.append("a=ice-pwd:" + icePwd) }
        if let iceOptions { lines.append("a=ice-options:" + iceOptions) }
        for f in fingerprints { lines.append("a=fingerprint:\(f.hashFunction) \(f.value)") }
        if let setup { lines.append("a=setup:" + setup.rawValue) }
        for e in extmaps { lines.append(SessionDescription.extmapLine(e)) }
        lines += otherAttributes.map(\.line)
        for m in media { lines += SessionDescription.lines(of: m) }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func extmapLine(_ e: SDPExtmap) -> String {
        "a=extmap:\(e.id)" + (e.direction.map { "/" + $0.rawValue } ?? "") + " " + e.uri + (e.attributes.map { " " + $0 } ?? "")
    }

    static func lines(of m: SDPMediaSection) -> [String] {
        var lines = ["m=\(m.kind) \(m.port) \(m.proto) " + m.formats.joined(separator: " ")]
        if let c = m.connection { lines.append("c=" + c) }
        lines += m.bandwidths.map { "b=" + $0 }
        if let rtcp = m.rtcp { lines.append("a=rtcp:" + rtcp) }
        if let u = m.iceUfrag { lines.append("a=ice-ufrag:" + u) }
        if let p = m.icePwd { lines.append("a=ice-pwd:" + p) }
        if let o = m.iceOptions { lines.append("a=ice-options:" + o) }
        for f in m.fingerprints { lines.append("a=fingerprint:\(f.hashFunction) \(f.value)") }
        if let s = m.setup { lines.append("a=setup:" + s.rawValue) }
        if let mid = m.mid { lines.append("a=mid:" + mid) }
        if m.bundleOnly { lines.append("a=bundle-only") }
        for e in m.extmaps { lines.append(extmapLine(e)) }
        if let d = m.direction { lines.append("a=" + d.rawValue) }
        for msid in m.msids { lines.append("a=msid:" + msid.streamID + (msid.trackID.map { " " + $0 } ?? "")) }
        if m.rtcpMux { lines.append("a=rtcp-mux") }
        if m.rtcpReducedSize { lines.append("a=rtcp-rsize") }
        for c in m.codecs {
            lines.append("a=rtpmap:\(c.payloadType) \(c.name)/\(c.clockRate)" + (c.channels.map { "/\($0)" } ?? ""))
            for fb in c.feedback { lines.append("a=rtcp-fb:\(c.payloadType) \(fb)") }
            if let f = c.formatParameters { lines.append("a=fmtp:\(c.payloadType) \(f)") }
        }
        for g in m.sourceGroups { lines.append("a=ssrc-group:" + ([g.semantics] + g.ssrcs.map(String.init)).joined(separator: " ")) }
        for s in m.sourceAttributes { lines.append("a=ssrc:\(s.ssrc) \(s.attribute)" + (s.value.map { ":" + $0 } ?? "")) }
        for r in m.rids { lines.append("a=rid:\(r.id) \(r.direction.rawValue)" + (r.restrictions.map { " " + $0 } ?? "")) }
        if let sim = m.simulcast { lines.append("a=simulcast:" + sim.value) }
        lines += m.otherAttributes.map(\.line)
        lines += m.candidates.map { "a=candidate:" + $0 }
        if m.endOfCandidates { lines.append("a=end-of-candidates") }
        return lines
    }
}

/// rtpmap/fmtp/rtcp-fb lines of one m-section, joined into codecs when the section ends (they
/// may come in any order).
private struct PendingCodecs {
    var rtpmaps: [UInt8: (String, UInt32, UInt8?)] = [:]
    var fmtps: [UInt8: String] = [:]
    var feedback: [UInt8: [String]] = [:]
    var wildcardFeedback: [String] = []

    func assemble(into m: inout SDPMediaSection) {
        var seen = Set<UInt8>()
        for format in m.formats {
            guard let pt = UInt8(format), let (name, rate, channels) = rtpmaps[pt], seen.insert(pt).inserted else { continue }
            m.codecs.append(SDPCodec(payloadType: pt, name: name, clockRate: rate, channels: channels,
                                     formatParameters: fmtps[pt], feedback: (feedback[pt] ?? []) + wildcardFeedback))
        }
    }
}
