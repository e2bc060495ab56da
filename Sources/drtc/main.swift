import ArgumentParser
import Identity
import Logging
import Node

#if canImport(Glibc)
import Glibc
#endif

struct Drtc: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drtc",
        abstract: "A node of the decentralized real-time communication network.",
        version: DrtcNode.version,
        subcommands: [NodeCommand.self, KeygenCommand.self, IdCommand.self, SimCommand.self])
}

struct DataDirOption: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Directory holding identity.key and the registry (env DRTC_DATA_DIR; default ./drtc-data).")
    var dataDir: String?

    var resolved: String {
        dataDir ?? ProcessInfo.processInfo.environment["DRTC_DATA_DIR"] ?? "./drtc-data"
    }
}

import Foundation

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a node: registry, HTTP API, mesh.",
        discussion: """
            Settings come from flags, then DRTC_* environment variables (DRTC_DATA_DIR, DRTC_REGION, \
            DRTC_GEO, …; repeatable settings comma-separated), then the JSON --config file (keys are \
            flag names), then defaults. SIGTERM or SIGINT: the node gossips a signed tombstone, closes \
            its store and exits 0.
            """)

    @Option(name: .customLong("data-dir"), help: "Directory for identity.key and the LMDB registry (default ./drtc-data).")
    var dataDir: String?
    @Option(name: .customLong("listen"), help: "libp2p listen multiaddr; repeatable (default /ip4/127.0.0.1/tcp/4001).")
    var listen: [String] = []
    @Option(name: .customLong("api"), help: "HTTP API HOST:PORT (default 127.0.0.1:8080; port 0 picks a free port).")
    var api: String?
    @Option(name: .customLong("media"), help: "Media UDP HOST:PORT (default 127.0.0.1:40000).")
    var media: String?
    @Option(name: .customLong("bootstrap"), help: "Multiaddr of a peer to join through; repeatable (none: a one-node mesh).")
    var bootstrap: [String] = []
    @Option(name: .customLong("region"), help: "EU|NAM|ASI|SAM|AFR|OCE (default EU).")
    var region: String?
    @Option(name: .customLong("geo"), help: "This node's position as LAT,LON (-90<=LAT<=90, -180<=LON<=180); write --geo=-33.9,18.4 when LAT is negative.")
    var geo: String?
    @Option(name: .customLong("config"), help: "JSON file of settings; keys are flag names, e.g. {\"region\": \"EU\", \"listen\": [\"/ip4/0.0.0.0/tcp/4001\"]}.")
    var config: String?
    @Option(name: .customLong("public-url"), help: "Public base URL of this node's API (default http://API).")
    var publicURL: String?
    @Option(name: .customLong("max-sessions"), help: "Media sessions this node accepts (default 0: undeclared).")
    var maxSessions: String?
    @Option(name: .customLong("bandwidth-up-kbps"), help: "Uplink capacity in kbit/s (default 0: undeclared).")
    var bandwidthUp: String?
    @Option(name: .customLong("bandwidth-down-kbps"), help: "Downlink capacity in kbit/s (default 0: undeclared).")
    var bandwidthDown: String?
    @Option(name: .customLong("cpu-cores"), help: "CPU cores offered (default: all of the machine's).")
    var cpuCores: String?
    @Option(name: .customLong("refresh-interval"), help: "Seconds between republications of this node's record (default 30).")
    var refreshInterval: String?
    @Option(name: .customLong("ttl"), help: "Seconds after which peers drop this node's record if not refreshed (default 90).")
    var ttl: String?
    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical (default info).")
    var logLevel: String?
    @Option(name: .customLong("min-peers"), help: "Connections below which the node dials more peers (default 8).")
    var minPeers: String?
    @Option(name: .customLong("max-peers"), help: "Connections above which the node closes some (default 12).")
    var maxPeers: String?
    @Option(name: .customLong("gossip-heartbeat-ms"), help: "Gossipsub heartbeat interval in ms (default 1000).")
    var gossipHeartbeatMs: String?
    @Option(name: .customLong("gossip-forward-delay-ms"), help: "Least ms a validated message is held before it is forwarded (default 5); the hold follows each link: 0.8 x its round-trip time, up to 250 ms.")
    var gossipForwardDelayMs: String?
    @Option(name: .customLong("sync-interval"), help: "Seconds between anti-entropy syncs with one random peer (default 30).")
    var syncInterval: String?
    @Option(name: .customLong("admin-api"), help: "true|false: serve /admin/deny and /admin/allow to loopback clients (default false).")
    var adminAPI: String?
    @Option(name: .customLong("open-media"), help: "true|false: accept WHIP/WHEP without a media token (default false: a token from POST /allocate is required).")
    var openMedia: String?
    @Option(name: .customLong("trusted-orchestrator"), help: "PeerID of an orchestrator allowed to command this node and sign its media tokens; repeatable (none: any node with a live registry record).")
    var trustedOrchestrators: [String] = []
    @Option(name: .customLong("reward-weights"), help: "w_A,w_H,w_L,w_C: weights of availability, history, location and coverage in the unit reward, summing to 1 (default 0.4,0.2,0.2,0.2).")
    var rewardWeights: String?
    @Option(name: .customLong("reward-k"), help: "Curvature k of the unit reward's sigmoid in the QoS score V (default 10).")
    var rewardK: String?
    @Option(name: .customLong("reward-r-asym"), help: "Asymptote r_asym of the unit reward, 0 < r_asym <= 2 (default 1).")
    var rewardRAsym: String?
    @Option(name: .customLong("reward-h-min"), help: "Lower bound H_min of the history score, 0..1 (default 0.5).")
    var rewardHMin: String?
    @Option(name: .customLong("reward-location-radius-km"), help: "Radius of the participant demand counted in the location score, km (default 500).")
    var rewardLocationRadius: String?
    @Option(name: .customLong("reward-coverage-radius-km"), help: "Radius of the media-node density counted in the coverage score, km (default 500).")
    var rewardCoverageRadius: String?
    @Option(name: .customLong("reward-stream-kbps"), help: "b_av, the bitrate of one stream in the data-supplied formula, kbit/s (default 700).")
    var rewardStreamKbps: String?
    @Option(name: .customLong("qos"), help: "true|false: run QoS tests as challenger and prover (default true).")
    var qos: String?
    @Option(name: .customLong("qos-epoch"), help: "QoS epoch in seconds, the same on every node (default 1320).")
    var qosEpoch: String?
    @Option(name: .customLong("qos-test-duration"), help: "QoS test length in seconds; the rest of the epoch is setup (default 1200).")
    var qosTestDuration: String?
    @Option(name: .customLong("qos-sample-interval"), help: "Seconds between QoS samples, at least 0.5 (default 5).")
    var qosSampleInterval: String?
    @Option(name: .customLong("qos-bitrate-kbps"), help: "Payload rate of the QoS test stream in kbit/s (default 1000).")
    var qosBitrateKbps: String?

    func run() async throws {
        var flags: [String: [String]] = [:]
        let single: [(String, String?)] = [
            ("data-dir", dataDir), ("api", api), ("media", media), ("region", region), ("geo", geo),
            ("public-url", publicURL), ("max-sessions", maxSessions), ("bandwidth-up-kbps", bandwidthUp),
            ("bandwidth-down-kbps", bandwidthDown), ("cpu-cores", cpuCores), ("refresh-interval", refreshInterval),
            ("ttl", ttl), ("log-level", logLevel), ("min-peers", minPeers), ("max-peers", maxPeers),
            ("gossip-heartbeat-ms", gossipHeartbeatMs), ("gossip-forward-delay-ms", gossipForwardDelayMs), ("sync-interval", syncInterval), ("admin-api", adminAPI),
            ("open-media", openMedia),
            ("reward-weights", rewardWeights), ("reward-k", rewardK), ("reward-r-asym", rewardRAsym),
            ("reward-h-min", rewardHMin), ("reward-location-radius-km", rewardLocationRadius),
            ("reward-coverage-radius-km", rewardCoverageRadius), ("reward-stream-kbps", rewardStreamKbps),
            ("qos", qos), ("qos-epoch", qosEpoch), ("qos-test-duration", qosTestDuration), ("qos-sample-interval", qosSampleInterval),
            ("qos-bitrate-kbps", qosBitrateKbps),
        ]
        for (name, value) in single { if let value { flags[name] = [value] } }
        if !listen.isEmpty { flags["listen"] = listen }
        if !bootstrap.isEmpty { flags["bootstrap"] = bootstrap }
        if !trustedOrchestrators.isEmpty { flags["trusted-orchestrator"] = trustedOrchestrators }
        let config: NodeConfig
        do {
            config = try NodeConfig.resolve(flags: flags, env: ProcessInfo.processInfo.environment, configFile: self.config)
        } catch let error as ConfigError {
            fail(error.description, code: 2)
        }
        var logger = Logger(label: "drtc")
        logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info
        let node: DrtcNode
        do {
            node = try DrtcNode(config: config, logger: logger)
        } catch let error as IdentityError {
            fail("identity: \(error.message)", code: 1)
        } catch let error as NodeStartError {
            fail(error.description, code: 1)
        } catch {
            fail("cannot start: \(error)", code: 1)
        }
        do {
            try await runNode(node)
        } catch let error as NodeStartError {
            fail(error.description, code: 1)
        }
    }

    func runNode(_ node: DrtcNode) async throws {
        try await node.run { bound in
            // One machine-readable line on stdout for scripts; logs go to stderr.
            print("drtc: API listening on http://\(bound) peerId=\(node.peerID)")
            fflush(nil)
        }
    }
}

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Create the node identity (identity.key, mode 0600) if absent; print its PeerID.")
    @OptionGroup var options: DataDirOption

    func run() throws {
        do {
            let result = try KeyFile.loadOrCreate(dataDir: options.resolved)
            print(result.keyPair.peerID)
            if case .loaded = result {
                FileHandle.standardError.write(Data("identity already exists at \(KeyFile.path(inDataDir: options.resolved)); kept it\n".utf8))
            }
        } catch let error as IdentityError {
            fail("identity: \(error.message)", code: 1)
        }
    }
}

struct IdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "id", abstract: "Print this node's PeerID (first line).")
    @OptionGroup var options: DataDirOption

    func run() throws {
        let path = KeyFile.path(inDataDir: options.resolved)
        do {
            guard let key = try KeyFile.load(path: path) else {
                fail("identity: no identity at \(path); run `drtc keygen --data-dir \(options.resolved)` or start a node", code: 1)
            }
            print(key.peerID)
            print("publicKey: \(Hex.encode(key.publicKey.protobufEncoding))")
        } catch let error as IdentityError {
            fail("identity: \(error.message)", code: 1)
        }
    }
}

func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("drtc: \(message)\n".utf8))
    exit(code)
}

func runAsync<C: AsyncParsableCommand>(_ command: C) async throws {
    var command = command
    try await command.run()
}

// Argument errors exit with code 2 (the conventional usage-error code), naming the flag.
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
do {
    var command = try Drtc.parseAsRoot()
    if let asyncCommand = command as? any AsyncParsableCommand {
        try await runAsync(asyncCommand)
    } else {
        try command.run()
    }
} catch {
    let code = Drtc.exitCode(for: error)
    if code == .success {
        Drtc.exit(withError: error)
    }
    FileHandle.standardError.write(Data((Drtc.fullMessage(for: error) + "\n").utf8))
    exit(code == .validationFailure ? 2 : code.rawValue)
}
