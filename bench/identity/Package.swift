// swift-tools-version:6.1
import PackageDescription

// Benchmarks of identity resolution (PhotoSorterCore) with ordo-one/benchmark. A separate package, so the
// service's build does not pull in the benchmark tooling. Run: see README.md.
let package = Package(
    name: "identity-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "photo-sorter", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "IdentityResolution",
            dependencies: [
                .product(name: "PhotoSorterCore", package: "photo-sorter"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/IdentityResolution",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
