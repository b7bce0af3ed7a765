// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "spendwall",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "spendwall", targets: ["spendwall"]),
        .executable(name: "spendwall-bench", targets: ["SpendwallBench"]),
        .executable(name: "spendwall-tokenizer-bench", targets: ["TokenizerBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Money, usage, providers, caps, windows and decisions. Pure: no I/O.
        .target(name: "SpendwallCore"),
        // The built-in price table (a resource) with overrides and estimation.
        .target(
            name: "SpendwallPricing",
            dependencies: ["SpendwallCore", "SpendwallTokenizer"],
            resources: [.copy("Resources/prices.json")]
        ),
        // The policy engine actor: windows, reservations, decisions.
        .target(name: "SpendwallPolicy", dependencies: ["SpendwallCore", "SpendwallPricing"]),
        // The SQLite ledger: schema, migrations, batched writer, queries.
        .target(
            name: "SpendwallLedger",
            dependencies: [
                "SpendwallCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // TOML configuration files, validation with line numbers, paths and environment.
        .target(
            name: "SpendwallConfig",
            dependencies: ["SpendwallCore", "SpendwallPricing", "SpendwallStripe", "TOMLKit"]
        ),
        // Stripe webhook signatures, invoice mapping, billing periods and cost exports. Pure: no I/O.
        .target(name: "SpendwallStripe", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // libcurl's SMTP client behind a small C shim (curl_easy_setopt is variadic).
        .target(name: "CSpendwallCurl", linkerSettings: [.linkedLibrary("curl")]),
        // Alerts out: routing, rate limits, backoff, Slack / webhook / email transports, dead letters.
        .target(
            name: "SpendwallAlerts",
            dependencies: [
                "SpendwallCore", "SpendwallConfig", "SpendwallLedger", "CSpendwallCurl",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Team mode: ships ledger rows to PostgreSQL and holds team caps through budget leases.
        .target(
            name: "SpendwallTeam",
            dependencies: [
                "SpendwallCore", "SpendwallLedger", "SpendwallPolicy", "SpendwallConfig",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The proxy's pure parts: routes, attribution headers, SSE and usage readers (no I/O).
        .target(name: "SpendwallProxy", dependencies: ["SpendwallCore"]),
        // OpenAI BPE tokenizers (o200k_base, cl100k_base) with tiktoken's exact ids. Pure: no I/O.
        .target(name: "SpendwallTokenizer"),
        // Finding, verifying (SHA-256) and installing the tokenizers' rank files.
        .target(
            name: "SpendwallTokenizerFiles",
            dependencies: [
                "SpendwallTokenizer",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // Who is calling: SO_PEERCRED, /proc and labels.toml.
        .target(name: "SpendwallPeer", dependencies: ["SpendwallCore"]),
        // libsystemd: sd_notify and sd_listen_fds.
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // The panel's assets (compiled in from Assets/) and its access rules. Pure but for
        // the token file.
        .target(
            name: "SpendwallPanel",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Assets"]
        ),
        // Composition: the socket API, lifecycle and systemd integration.
        .target(
            name: "SpendwallDaemon",
            dependencies: [
                "SpendwallCore", "SpendwallPricing", "SpendwallPolicy", "SpendwallLedger",
                "SpendwallConfig", "SpendwallPeer", "SpendwallPanel", "CSystemd", "SpendwallAlerts", "SpendwallStripe",
                "SpendwallTokenizer", "SpendwallTokenizerFiles", "SpendwallTeam",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CompressNIO", package: "compress-nio"),
                "SpendwallProxy",
            ]
        ),
        // `spendwall mcp`: the stdio MCP server, a client of the socket API.
        .target(
            name: "SpendwallMCP",
            dependencies: ["SpendwallClient", "SpendwallCore", .product(name: "MCP", package: "swift-sdk")]
        ),
        // `spendwall run`'s process side: a program in a pseudo-terminal (or pipes), stopped
        // gracefully; its output, resume command and git snapshot. Glibc and Foundation only.
        .target(name: "SpendwallRun"),
        // A Swift client of the socket API (CLI, MCP server, benchmarks).
        .target(
            name: "SpendwallClient",
            dependencies: [
                "SpendwallCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The CLI's commands, kept out of the executable so they can be tested.
        .target(
            name: "SpendwallCommands",
            dependencies: [
                "SpendwallCore", "SpendwallConfig", "SpendwallDaemon", "SpendwallClient",
                "SpendwallPricing", "SpendwallLedger", "SpendwallMCP", "SpendwallRun", "SpendwallTokenizer",
                "SpendwallTokenizerFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "spendwall", dependencies: ["SpendwallCommands"]),
        .executableTarget(
            name: "SpendwallBench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "bench/Sources/SpendwallBench"
        ),
        .executableTarget(
            name: "TokenizerBench",
            dependencies: ["SpendwallTokenizer", "SpendwallTokenizerFiles"],
            path: "bench/Sources/TokenizerBench"
        ),
        .target(
            name: "SpendwallTestSupport",
            dependencies: ["SpendwallClient", "SpendwallCore"],
            path: "Tests/SpendwallTestSupport"
        ),
        .testTarget(name: "SpendwallCoreTests", dependencies: ["SpendwallCore"]),
        .testTarget(name: "SpendwallPricingTests", dependencies: ["SpendwallPricing"]),
        .testTarget(name: "SpendwallPolicyTests", dependencies: ["SpendwallPolicy", "SpendwallPricing"]),
        .testTarget(
            name: "SpendwallLedgerTests",
            dependencies: ["SpendwallLedger", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(name: "SpendwallConfigTests", dependencies: ["SpendwallConfig"]),
        .testTarget(name: "SpendwallStripeTests", dependencies: ["SpendwallStripe"]),
        .testTarget(name: "SpendwallAlertsTests", dependencies: ["SpendwallAlerts", "SpendwallConfig"]),
        .testTarget(name: "SpendwallPeerTests", dependencies: ["SpendwallPeer"]),
        .testTarget(name: "SpendwallRunTests", dependencies: ["SpendwallRun"]),
        .testTarget(
            name: "SpendwallTokenizerTests", dependencies: ["SpendwallTokenizer", "SpendwallTokenizerFiles"]),
        .testTarget(name: "SpendwallPanelTests", dependencies: ["SpendwallPanel"]),
        .testTarget(
            name: "SpendwallProxyTests", dependencies: ["SpendwallProxy", "SpendwallCore"],
            resources: [.copy("Streams")]),
        .testTarget(
            name: "SpendwallDaemonTests", dependencies: ["SpendwallDaemon", "SpendwallPolicy", "SpendwallCore"]),
        .testTarget(
            name: "SpendwallEndToEndTests",
            dependencies: ["SpendwallTestSupport", "SpendwallClient", "SpendwallCore"],
            // These tests build and read untyped JSON ([String: Any]) to check the wire format
            // as a client sees it; Swift 5 mode spares them Sendable ceremony for that.
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
