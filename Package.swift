// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "photo-sorter",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "photo-sorter", targets: ["PhotoSorterCLI"]),
        // For bench/identity, which depends on this package by path.
        .library(name: "PhotoSorterCore", targets: ["PhotoSorterCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent.git", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-kit.git", from: "1.57.0"),
        .package(url: "https://github.com/vapor/fluent-sqlite-driver.git", from: "4.9.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver.git", from: "2.14.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // Pure core: domain types, scanner, embedding codec, identity resolution. No framework imports.
        .target(name: "PhotoSorterCore", dependencies: ["CNibbleScan"]),
        // The identity index's 4-bit scan kernel in C: AVX2 and AVX-512 VNNI variants chosen at run time, a plain C one elsewhere.
        .target(name: "CNibbleScan"),
        // librdkafka's C API for the Kafka work queue (Debian: librdkafka-dev; scripts/install-ml.sh installs it).
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // exempi's C API (the Adobe XMP Toolkit) for `xmp write`'s sidecars (Debian: libexempi-dev; scripts/install-ml.sh installs it).
        .systemLibrary(name: "CExempi", pkgConfig: "exempi-2.0", providers: [.apt(["libexempi-dev"])]),
        // Adapters and composition: HTTP (Vapor), persistence (Fluent), work queues (database, Kafka), workers, schedulers, ML client,
        // XMP sidecars (exempi).
        .target(
            name: "PhotoSorterServer",
            dependencies: [
                "PhotoSorterCore",
                "CRdKafka",
                "CExempi",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The people web page (index.html, app.css and the ES modules app.js imports), served by WebController; the OpenAPI document.
            resources: [.copy("Web"), .copy("OpenAPI")]
        ),
        .executableTarget(
            name: "PhotoSorterCLI",
            dependencies: [
                "PhotoSorterServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test helpers shared by both test targets: the real-embedding fixture and clustering scores.
        .target(name: "PhotoSorterTestSupport", dependencies: ["PhotoSorterCore"], path: "Tests/PhotoSorterTestSupport"),
        .testTarget(name: "PhotoSorterCoreTests", dependencies: ["PhotoSorterCore", "PhotoSorterTestSupport"]),
        .testTarget(
            name: "PhotoSorterServerTests",
            dependencies: [
                "PhotoSorterServer",
                "PhotoSorterTestSupport",
                .product(name: "XCTVapor", package: "vapor"),
            ]
        ),
    ]
)
