// swift-tools-version:6.0
import PackageDescription

// Layout and dependency rules: see DESIGN.md. Cores (Identity, Registry, …) never import
// adapters (Store, HTTPAPI, Node); system libraries are wrapped by thin C-module targets.
let package = Package(
    name: "drtc",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "drtc", targets: ["drtc"]),
        .executable(name: "drtc-bench", targets: ["drtc-bench"]),
        .executable(name: "drtc-p2p-probe", targets: ["drtc-p2p-probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        // MARK: C system libraries (Debian -dev packages, found through pkg-config)
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // sendmmsg(2), which Swift's Glibc module does not export (libc only, nothing to link).
        .systemLibrary(name: "CUDP"),

        // MARK: base
        .target(name: "Identity", dependencies: ["CSodium"]),

        // MARK: cores (pure: no sockets, clocks or tasks)
        .target(
            name: "Registry",
            dependencies: [
                "Identity",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        .target(
            name: "Libp2p",
            dependencies: [
                "Identity", "CSodium",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        .target(name: "Gossipsub", dependencies: ["Identity", "Libp2p"]),
        // The registry's gossip policy (validation pipeline, parameters, dial planner), shared
        // by the production shell (Node) and the simulator.
        .target(name: "RegistryGossip", dependencies: ["Identity", "Registry", "Gossipsub", "QoS", "Rewards"]),
        // The simulator: virtual clock, simulated links, scenarios, reports (Specs/simulation.md).
        .target(name: "Simulation", dependencies: ["Identity", "Registry", "Gossipsub", "RegistryGossip", "QoS", "Rewards"]),

        // STUN, ICE-lite, DTLS (OpenSSL memory BIOs), SRTP (libsrtp2), SDP, RTP/RTCP: value types
        // and state machines; OpenSSL and libsrtp2 only ever see memory buffers.
        .target(name: "RTC", dependencies: ["Identity", "COpenSSL", "CSRTP"]),
        .target(name: "SFU", dependencies: ["RTC"]),
        // Allocation policy, signed RPC, media tokens, cascade placements (Specs/orchestrator.md, rpc.md).
        .target(name: "Orchestrator", dependencies: ["Identity", "Registry"]),
        // Rewards (whitepaper 2.3, Specs/rewards.md): scores, unit and session reward, the
        // per-epoch ledger; plain-value inputs filled by the node from checkable evidence.
        .target(name: "Rewards", dependencies: ["Identity", "Registry", "QoS", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // QoS tests (Specs/qos.md): epochs, verifiable assignment (ECVRF tickets), the
        // challenger's measurement and the whitepaper's scores, the test stream, signed
        // reports, the replicated report set and its aggregation. Pure.
        .target(
            name: "QoS",
            dependencies: [
                "Identity", "Registry", "RTC", "SFU",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),

        // MARK: adapters
        .target(
            name: "Libp2pNIO",
            dependencies: [
                "Libp2p", "Identity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "MediaNIO",
            dependencies: [
                "RTC", "SFU", "CUDP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Store", dependencies: ["CLMDB"]),
        .target(
            name: "HTTPAPI",
            dependencies: [
                "Registry", "Identity", "Orchestrator", "SFU", "Rewards", "QoS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The dashboard's page, script and map, compiled into the binary: a node serves
            // every asset itself and the page makes no request elsewhere (Specs/dashboard.md).
            resources: [
                .embedInCode("Dashboard/index.html"),
                .embedInCode("Dashboard/dashboard.js"),
                .embedInCode("Dashboard/dashboard.css"),
                .embedInCode("Dashboard/coastline.json"),
            ]
        ),
        .target(
            name: "Node",
            dependencies: [
                "Identity", "Registry", "Store", "HTTPAPI", "Libp2p", "Libp2pNIO", "Gossipsub", "RegistryGossip",
                "RTC", "SFU", "MediaNIO", "Orchestrator", "Rewards", "QoS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),

        // MARK: executables
        .executableTarget(
            name: "drtc",
            dependencies: [
                "Node", "Identity", "Simulation", "QoS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "drtc-bench",
            dependencies: [
                "Node", "Registry", "Identity", "Store", "HTTPAPI", "Libp2p", "Libp2pNIO", "Gossipsub", "Simulation",
                "RTC", "SFU", "MediaNIO", "Orchestrator", "Rewards", "QoS", "CUDP",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .executableTarget(
            name: "drtc-p2p-probe",
            dependencies: [
                "Libp2pNIO", "Libp2p", "Identity",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: tests
        .testTarget(name: "SystemLibrariesTests", dependencies: ["CSodium", "CLMDB", "CSRTP", "COpenSSL"]),
        .testTarget(name: "IdentityTests", dependencies: ["Identity"]),
        .testTarget(name: "RTCTests", dependencies: ["RTC", "CSRTP", "Identity"]),
        .testTarget(name: "SFUTests", dependencies: ["SFU", "RTC", "Identity"]),
        .testTarget(name: "StoreTests", dependencies: ["Store"]),
        .testTarget(name: "Libp2pTests", dependencies: ["Libp2p", "Identity"]),
        .testTarget(
            name: "Libp2pNIOTests",
            dependencies: [
                "Libp2pNIO", "Libp2p", "Identity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "MediaNIOTests",
            dependencies: [
                "MediaNIO", "SFU", "RTC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "Identity"]),
        .testTarget(name: "OrchestratorTests", dependencies: ["Orchestrator", "Registry", "Identity"]),
        .testTarget(name: "RewardsTests", dependencies: ["Rewards", "Registry", "Identity", "RegistryGossip", "Gossipsub"]),
        .testTarget(name: "GossipsubTests", dependencies: ["Gossipsub", "Identity", "Libp2p"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "RegistryGossip", "Registry", "Gossipsub", "Identity", "QoS", "Rewards"]),
        .testTarget(name: "QoSTests", dependencies: ["QoS", "Identity", "Registry", "RTC", "SFU", "RegistryGossip", "Gossipsub", "Rewards"]),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "HTTPAPI", "Registry", "Identity", "Store", "Libp2p", "Orchestrator", "Rewards",
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
