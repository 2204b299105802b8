// swift-tools-version:6.0
import PackageDescription

/// Release builds use `-Ounchecked` (no overflow or bounds traps in
/// kernels) and `-target-cpu native` (without it Swift on Linux emits SSE2 only).
let fastFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "native"], .when(configuration: .release)),
]

/// GenFormats parses files that may be hostile (safetensors, IDX, PNG, .npy): every size in them comes
/// from the file. Its release build uses `-O`, not `-Ounchecked`, so that a bounds or overflow bug in a
/// parser traps instead of reading or writing out of bounds. The parsers run once per file, outside the
/// training and sampling loops, so the checks cost little. `-target-cpu native` as for the kernels.
let checkedFlags: [SwiftSetting] = [
    .unsafeFlags(["-O", "-target-cpu", "native"], .when(configuration: .release)),
]

let package = Package(
    name: "generative",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "generative", targets: ["generative"]),
        .library(name: "GenTensor", targets: ["GenTensor"]),
        .library(name: "GenFormats", targets: ["GenFormats"]),
        .library(name: "GenNN", targets: ["GenNN"]),
        .library(name: "GenModels", targets: ["GenModels"]),
        .library(name: "GenData", targets: ["GenData"]),
        .library(name: "GenEval", targets: ["GenEval"]),
        .library(name: "GenTrain", targets: ["GenTrain"]),
        .library(name: "GenerativeKit", targets: ["GenerativeKit"]),
        .library(name: "GenDistributed", targets: ["GenDistributed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    ],
    targets: [
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .target(
            name: "GenTensor",
            dependencies: ["CDNNL", .product(name: "Numerics", package: "swift-numerics")],
            swiftSettings: fastFlags),
        .target(name: "GenFormats", dependencies: ["GenTensor", "CZlib", "CPNG"], swiftSettings: checkedFlags),
        .target(name: "GenNN", dependencies: ["GenTensor", "GenFormats"], swiftSettings: fastFlags),
        .target(name: "GenModels", dependencies: ["GenTensor", "GenNN"], swiftSettings: fastFlags),
        .target(name: "GenData", dependencies: ["GenTensor", "GenFormats"], swiftSettings: fastFlags),
        .target(name: "GenEval", dependencies: ["GenTensor", "GenNN", "GenModels", "GenData"], resources: [.copy("Resources")],
                swiftSettings: fastFlags),
        .target(name: "GenTrain", dependencies: ["GenModels", "GenData", "GenEval"], swiftSettings: fastFlags,
                plugins: ["BuildInfo"]),
        /// Records the source commit in GenTrain (`buildCommit`) for `--version` and checkpoints.
        .plugin(name: "BuildInfo", capability: .buildTool()),
        /// The Open MPI binding, loaded at run time (`dlopen`) only under `mpirun`, so that nothing needs
        /// Open MPI to build or to run in one process (docs/distributed.md). Depends on nothing.
        .target(name: "GenDistributed", swiftSettings: checkedFlags),
        .target(name: "GenerativeKit",
                dependencies: ["GenTensor", "GenFormats", "GenNN", "GenModels", "GenData", "GenEval", "GenTrain"]),
        .executableTarget(
            name: "generative",
            dependencies: [
                "GenTensor", "GenNN", "GenModels", "GenData", "GenEval", "GenTrain", "GenDistributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastFlags),
        .target(name: "GenTestSupport", dependencies: ["GenTensor", "GenFormats", "GenModels", "CPNG"], path: "Tests/GenTestSupport", swiftSettings: fastFlags),
        .testTarget(name: "GenTensorTests", dependencies: ["GenTensor", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenFormatsTests", dependencies: ["GenFormats", "GenData", "GenTestSupport"],
                    swiftSettings: checkedFlags),
        .testTarget(name: "GenNNTests", dependencies: ["GenNN", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenDataTests", dependencies: ["GenData", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenEvalTests", dependencies: ["GenEval", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenTrainTests", dependencies: ["GenTrain", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "CLITests", dependencies: ["generative", "GenTrain", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenDistributedTests", dependencies: ["GenDistributed"], swiftSettings: checkedFlags),
        .testTarget(name: "GenModelsTests", dependencies: ["GenTensor", "GenNN", "GenModels", "GenTestSupport"], swiftSettings: fastFlags),
    ],
    swiftLanguageModes: [.v5]
)
