import Identity
import QoS
import Registry
import RegistryGossip
import Rewards

import Foundation
import Libp2p

/// A configuration error: names the setting as the operator wrote it (`--geo`), what was
/// wrong, and what is accepted. The CLI exits with code 2 on these.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var setting: String
    public var message: String
    public var description: String { "\(setting): \(message)" }
    public init(_ setting: String, _ message: String) {
        self.setting = setting
        self.message = message
    }
}

public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func parse(_ text: String, setting: String) throws -> HostPort {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ConfigError(setting, "expected [IPv6]:PORT, got '\(text)'")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ConfigError(setting, "expected HOST:PORT, got '\(text)'") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty else { throw ConfigError(setting, "expected HOST:PORT with a non-empty host, got '\(text)'") }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigError(setting, "port must be 0..65535, got '\(portText)'")
        }
        return HostPort(host: String(host), port: port)
    }
}

/// Everything a node needs to start. Built by `NodeConfig.resolve`, which applies the
/// precedence flags > `DRTC_*` environment > `--config` file > defaults.
public struct NodeConfig: Sendable {
    public var dataDir = "./drtc-data"
    public var listen = [try! Multiaddr("/ip4/127.0.0.1/tcp/4001")]
    public var api = HostPort(host: "127.0.0.1", port: 8080)
    public var media = HostPort(host: "127.0.0.1", port: 40000)
    public var bootstrap: [Multiaddr] = []
    public var region = Region.EU
    public var geo: GeoPoint?
    public var publicURL: String?
    public var capacity = Capacity()
    public var refreshIntervalSeconds = MediaNodeRecord.defaultRefreshIntervalSeconds
    public var ttlSeconds = MediaNodeRecord.defaultTTLSeconds
    public var logLevel = "info"
    /// Connections the node keeps: it dials below `minPeers` and trims above `maxPeers`.
    public var minPeers = 8
    public var maxPeers = 12
    public var gossipHeartbeatMs: UInt64 = 1_000
    /// How long a validated message is held before it is forwarded, so that IDONTWANT travels
    /// ahead (Specs/gossip.md "Duplicates"). About one link latency on WAN meshes.
    public var gossipForwardDelayMs: UInt64 = RegistryGossip.defaultParameters().forwardDelayMs
    /// Seconds between anti-entropy syncs with one random peer.
    public var syncIntervalSeconds: UInt64 = 30
    /// Enables the loopback-only `/admin/*` endpoints (connection gater), for tests and operators.
    public var adminAPI = false
    /// WHIP/WHEP without tokens or redirects (development and tests); the default requires a
    /// media token from an orchestrator this node accepts (Specs/orchestrator.md "Tokens").
    public var openMedia = false
    /// When set, only these orchestrators may command this node (RPC) and sign its media
    /// tokens; otherwise any node with a live registry record (Specs/rpc.md "Accepted keys").
    public var trustedOrchestrators: [PeerID] = []
    /// The reward function's parameters (Specs/rewards.md "Parameters"), the same on every node.
    public var rewardParameters = RewardParameters.standard
    /// Run QoS tests as challenger and prover (Specs/qos.md). The set is replicated and scores
    /// served either way.
    public var qos = true
    /// The network's QoS schedule (every node must run the same).
    public var qosSchedule = QoSSchedule.standard
    /// Payload rate of the test stream this node sends as prover.
    public var qosBitrateKbps = 1000

    public init() {}

    /// One documented setting: its flag name (without `--`), whether it repeats, and help.
    public struct Setting: Sendable {
        public var name: String
        public var repeats: Bool
        public var help: String
        public var envName: String { "DRTC_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
    }

    public static let settings: [Setting] = [
        Setting(name: "data-dir", repeats: false, help: "directory for identity.key and the LMDB registry (default ./drtc-data)"),
        Setting(name: "listen", repeats: true, help: "libp2p listen multiaddr, repeatable (default /ip4/127.0.0.1/tcp/4001)"),
        Setting(name: "api", repeats: false, help: "HTTP API HOST:PORT (default 127.0.0.1:8080; port 0 picks a free one)"),
        Setting(name: "media", repeats: false, help: "media UDP HOST:PORT (default 127.0.0.1:40000)"),
        Setting(name: "bootstrap", repeats: true, help: "multiaddr of a peer to join through, repeatable (none: a one-node mesh)"),
        Setting(name: "region", repeats: false, help: "EU|NAM|ASI|SAM|AFR|OCE (default EU)"),
        Setting(name: "geo", repeats: false, help: "LAT,LON of this node, -90<=LAT<=90, -180<=LON<=180"),
        Setting(name: "public-url", repeats: false, help: "public base URL of this node's API (default http://API)"),
        Setting(name: "max-sessions", repeats: false, help: "media sessions this node accepts (0: undeclared)"),
        Setting(name: "bandwidth-up-kbps", repeats: false, help: "uplink capacity in kbit/s (0: undeclared)"),
        Setting(name: "bandwidth-down-kbps", repeats: false, help: "downlink capacity in kbit/s (0: undeclared)"),
        Setting(name: "cpu-cores", repeats: false, help: "CPU cores offered (default: the machine's)"),
        Setting(name: "refresh-interval", repeats: false, help: "seconds between republications of this node's record (default 30)"),
        Setting(name: "ttl", repeats: false, help: "seconds after which peers drop this node's record if not refreshed (default 90)"),
        Setting(name: "log-level", repeats: false, help: "trace|debug|info|notice|warning|error|critical (default info)"),
        Setting(name: "min-peers", repeats: false, help: "connections below which the node dials more peers (default 8)"),
        Setting(name: "max-peers", repeats: false, help: "connections above which the node closes some (default 12)"),
        Setting(name: "gossip-heartbeat-ms", repeats: false, help: "gossipsub heartbeat interval in ms (default 1000)"),
        Setting(name: "gossip-forward-delay-ms", repeats: false, help: "least ms a validated message is held before it is forwarded (default 5); the hold follows each link: 0.8 x its round-trip time, up to 250 ms"),
        Setting(name: "sync-interval", repeats: false, help: "seconds between anti-entropy syncs with a random peer (default 30)"),
        Setting(name: "admin-api", repeats: false, help: "true|false: serve /admin/deny and /admin/allow (connection gater) to loopback clients (default false)"),
        Setting(name: "open-media", repeats: false, help: "true|false: accept WHIP/WHEP without a media token (default false: a token from POST /allocate is required)"),
        Setting(name: "trusted-orchestrator", repeats: true, help: "PeerID of an orchestrator allowed to command this node and sign its media tokens, repeatable (none: any node with a live registry record)"),
        Setting(name: "reward-weights", repeats: false, help: "w_A,w_H,w_L,w_C: weights of availability, history, location, coverage, summing to 1 (default 0.4,0.2,0.2,0.2)"),
        Setting(name: "reward-k", repeats: false, help: "curvature k of the reward's sigmoid in V (default 10)"),
        Setting(name: "reward-r-asym", repeats: false, help: "asymptote r_asym of the unit reward, 0 < r_asym <= 2 (default 1)"),
        Setting(name: "reward-h-min", repeats: false, help: "lower bound H_min of the history score, 0..1 (default 0.5)"),
        Setting(name: "reward-location-radius-km", repeats: false, help: "radius of the participant demand counted in the location score (default 500)"),
        Setting(name: "reward-coverage-radius-km", repeats: false, help: "radius of the media-node density counted in the coverage score (default 500)"),
        Setting(name: "reward-stream-kbps", repeats: false, help: "b_av, the bitrate of one stream in the data-supplied formula, kbit/s (default 700)"),
        Setting(name: "qos", repeats: false, help: "true|false: run QoS tests as challenger and prover (default true)"),
        Setting(name: "qos-epoch", repeats: false, help: "QoS epoch in seconds, the same on every node (default 1320)"),
        Setting(name: "qos-test-duration", repeats: false, help: "QoS test length in seconds; the rest of the epoch is setup (default 1200)"),
        Setting(name: "qos-sample-interval", repeats: false, help: "seconds between QoS samples, >= 0.5 (default 5)"),
        Setting(name: "qos-bitrate-kbps", repeats: false, help: "payload rate of the QoS test stream in kbit/s (default 1000)"),
    ]

    /// Resolves settings from their sources. `flags` holds what was given on the command line
    /// (name → values); `env` is the process environment; `configFile` is read if given (the
    /// `--config` flag, else `DRTC_CONFIG`).
    public static func resolve(flags: [String: [String]], env: [String: String], configFile: String?) throws -> NodeConfig {
        var fromFile: [String: [String]] = [:]
        let configPath = configFile ?? env["DRTC_CONFIG"]
        if let configPath { fromFile = try loadConfigFile(configPath) }
        var raw: [String: [String]] = [:]
        for s in settings {
            if let v = flags[s.name], !v.isEmpty {
                raw[s.name] = v
            } else if let e = env[s.envName] {
                raw[s.name] = s.repeats ? e.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } : [e]
            } else if let f = fromFile[s.name] {
                raw[s.name] = f
            }
        }
        return try NodeConfig(raw: raw)
    }

    static func loadConfigFile(_ path: String) throws -> [String: [String]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("--config", "cannot read '\(path)'")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigError("--config", "'\(path)' is not a JSON object of settings (keys are flag names, e.g. {\"region\": \"EU\"})")
        }
        var out: [String: [String]] = [:]
        let known = Set(settings.map(\.name))
        for (key, value) in object {
            guard known.contains(key) else {
                throw ConfigError("--config", "unknown setting '\(key)' in '\(path)'; known: \(known.sorted().joined(separator: ", "))")
            }
            switch value {
            case let s as String: out[key] = [s]
            case let a as [Any]: out[key] = a.map { "\($0)" }
            case let n as NSNumber: out[key] = [n.stringValue]
            default: throw ConfigError("--config", "setting '\(key)' in '\(path)' must be a string, number or list")
            }
        }
        return out
    }

    init(raw: [String: [String]]) throws {
        func one(_ name: String) -> String? { raw[name]?.last }
        func uint<T: FixedWidthInteger>(_ name: String, _ range: ClosedRange<T>) throws -> T? {
            guard let text = one(name) else { return nil }
            guard let v = T(text), range.contains(v) else {
                throw ConfigError("--\(name)", "expected an integer \(range.lowerBound)..\(range.upperBound), got '\(text)'")
            }
            return v
        }
        if let d = one("data-dir") {
            guard !d.isEmpty else { throw ConfigError("--data-dir", "must not be empty") }
            dataDir = d
        }
        if let l = raw["listen"], !l.isEmpty {
            listen = try l.map { text in
                let addr = try Self.parseMultiaddr(text, setting: "--listen", example: "/ip4/127.0.0.1/tcp/4001")
                guard addr.tcpEndpoint != nil, addr.peerID == nil else {
                    throw ConfigError("--listen", "expected /ip4|/ip6/ADDRESS/tcp/PORT (without /p2p), got '\(text)'")
                }
                return addr
            }
        }
        if let a = one("api") { api = try HostPort.parse(a, setting: "--api") }
        if let m = one("media") { media = try HostPort.parse(m, setting: "--media") }
        if let b = raw["bootstrap"] {
            bootstrap = try b.map { text in
                let addr = try Self.parseMultiaddr(text, setting: "--bootstrap", example: "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…")
                guard addr.tcpEndpoint != nil, addr.peerID != nil else {
                    throw ConfigError("--bootstrap", "expected a TCP multiaddr ending in /p2p/<peerId>, got '\(text)'")
                }
                return addr
            }
        }
        if let r = one("region") {
            guard let region = Region(rawValue: r.uppercased()) else {
                throw ConfigError("--region", "expected one of \(Region.allCases.map(\.rawValue).joined(separator: "|")), got '\(r)'")
            }
            self.region = region
        }
        if let g = one("geo") { geo = try Self.parseGeo(g) }
        if let u = one("public-url") {
            guard u.hasPrefix("http://") || u.hasPrefix("https://") else {
                throw ConfigError("--public-url", "expected an http:// or https:// URL, got '\(u)'")
            }
            publicURL = u
        }
        if let v: UInt32 = try uint("max-sessions", 0...1_000_000) { capacity.maxSessions = v }
        if let v: UInt64 = try uint("bandwidth-up-kbps", 0...100_000_000) { capacity.bandwidthUpKbps = v }
        if let v: UInt64 = try uint("bandwidth-down-kbps", 0...100_000_000) { capacity.bandwidthDownKbps = v }
        capacity.cpuCores = try uint("cpu-cores", 1...4096) ?? UInt32(ProcessInfo.processInfo.activeProcessorCount)
        if let v: UInt32 = try uint("refresh-interval", 1...86_400) { refreshIntervalSeconds = v }
        if let v: UInt32 = try uint("ttl", 1...604_800) { ttlSeconds = v }
        else if one("refresh-interval") != nil { ttlSeconds = max(ttlSeconds, refreshIntervalSeconds * 3) }
        guard ttlSeconds >= refreshIntervalSeconds else {
            throw ConfigError("--ttl", "must be at least --refresh-interval (\(refreshIntervalSeconds) s), got \(ttlSeconds)")
        }
        if let v: Int = try uint("min-peers", 1...1_000) { minPeers = v }
        if let v: Int = try uint("max-peers", 1...1_000) { maxPeers = v }
        guard maxPeers >= minPeers else {
            throw ConfigError("--max-peers", "must be at least --min-peers (\(minPeers)), got \(maxPeers)")
        }
        if let v: UInt64 = try uint("gossip-heartbeat-ms", 50...60_000) { gossipHeartbeatMs = v }
        if let v: UInt64 = try uint("gossip-forward-delay-ms", 0...1_000) { gossipForwardDelayMs = v }
        if let v: UInt64 = try uint("sync-interval", 1...86_400) { syncIntervalSeconds = v }
        if let a = one("admin-api") {
            guard a == "true" || a == "false" else { throw ConfigError("--admin-api", "expected true or false, got '\(a)'") }
            adminAPI = a == "true"
            guard !adminAPI || ["127.0.0.1", "::1", "localhost"].contains(api.host) else {
                throw ConfigError("--admin-api", "only allowed with a loopback --api (127.0.0.1, ::1, localhost), got \(api.host)")
            }
        }
        if let o = one("open-media") {
            guard o == "true" || o == "false" else { throw ConfigError("--open-media", "expected true or false, got '\(o)'") }
            openMedia = o == "true"
        }
        if let t = raw["trusted-orchestrator"] {
            trustedOrchestrators = try t.map { text in
                guard let id = try? PeerID(text) else {
                    throw ConfigError("--trusted-orchestrator", "expected a PeerID (12D3KooW…), got '\(text.prefix(80))'")
                }
                return id
            }
        }
        try parseRewardParameters(one)
        if let q = one("qos") {
            guard q == "true" || q == "false" else { throw ConfigError("--qos", "expected true or false, got '\(q)'") }
            qos = q == "true"
        }
        if let v: UInt32 = try uint("qos-epoch", 10...86_400) { qosSchedule.epochSeconds = v }
        if let v: UInt32 = try uint("qos-test-duration", 1...86_400) { qosSchedule.testSeconds = v }
        else if one("qos-epoch") != nil {
            // A shorter epoch alone keeps the default 2-minute setup where it fits, else 10 %.
            let e = qosSchedule.epochSeconds
            qosSchedule.testSeconds = e > 240 ? e - 120 : max(1, e - max(4, e / 10))
            // … and, unless given, samples often enough for at least four in the test.
            if one("qos-sample-interval") == nil {
                qosSchedule.sampleIntervalMs = min(qosSchedule.sampleIntervalMs, max(500, qosSchedule.testSeconds * 1000 / 4))
            }
        }
        if let text = one("qos-sample-interval") {
            guard let v = Double(text), v.isFinite, v >= 0.5, v <= 60 else {
                throw ConfigError("--qos-sample-interval", "expected seconds 0.5..60, got '\(text)'")
            }
            qosSchedule.sampleIntervalMs = UInt32((v * 1000).rounded())
        }
        if let problem = qosSchedule.problem {
            let setting = problem.hasPrefix("--") ? String(problem.prefix { $0 != " " }) : "--qos-test-duration"
            throw ConfigError(setting, String(problem.dropFirst(problem.hasPrefix("--") ? setting.count + 1 : 0)))
        }
        if let v: Int = try uint("qos-bitrate-kbps", 50...100_000) { qosBitrateKbps = v }
        if let l = one("log-level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(l) else { throw ConfigError("--log-level", "expected one of \(levels.joined(separator: "|")), got '\(l)'") }
            logLevel = l
        }
    }

    /// The `--reward-*` settings, then the whole parameter set's validation (weights summing
    /// to 1 can only be checked together).
    mutating func parseRewardParameters(_ one: (String) -> String?) throws {
        func number(_ name: String) throws -> Double? {
            guard let text = one(name) else { return nil }
            guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw ConfigError("--\(name)", "expected a number, got '\(text)'")
            }
            return v
        }
        var p = rewardParameters
        if let text = one("reward-weights") {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 4, let a = parts[0], let h = parts[1], let l = parts[2], let c = parts[3] else {
                throw ConfigError("--reward-weights", "expected four numbers w_A,w_H,w_L,w_C summing to 1 (e.g. 0.4,0.2,0.2,0.2), got '\(text)'")
            }
            p.weights = .init(availability: a, history: h, location: l, coverage: c)
        }
        if let v = try number("reward-k") { p.k = v }
        if let v = try number("reward-r-asym") { p.rAsym = v }
        if let v = try number("reward-h-min") { p.hMin = v }
        if let v = try number("reward-location-radius-km") { p.locationRadiusKm = v }
        if let v = try number("reward-coverage-radius-km") { p.coverageRadiusKm = v }
        if let v = try number("reward-stream-kbps") { p.streamBitrateKbps = v }
        if let problem = p.problem { throw ConfigError(problem.setting, problem.message) }
        rewardParameters = p
    }

    static func parseMultiaddr(_ text: String, setting: String, example: String) throws -> Multiaddr {
        do { return try Multiaddr(text) } catch {
            throw ConfigError(setting, "expected a multiaddr like \(example): \(error)")
        }
    }

    static func parseGeo(_ text: String) throws -> GeoPoint {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let lat = Double(parts[0]), let lon = Double(parts[1]),
              GeoPoint(latitude: lat, longitude: lon).isValid
        else {
            throw ConfigError("--geo", "expected LAT,LON with -90<=LAT<=90 and -180<=LON<=180, got '\(text)'")
        }
        return GeoPoint(latitude: lat, longitude: lon)
    }
}
