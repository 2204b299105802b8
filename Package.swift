// swift-tools-version:6.0
import PackageDescription

/// Release builds use `-Ounchecked` (no overflow or bounds traps in
/// kernels) and `-target-cpu native` (without it Swift on Linux emits SSE2 only).
let fastFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "native"], .when(configuration: .release)),
]

let package = Package(
    name: "generative",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "generative", targets: ["generative"]),
        .library(name: "GenTensor", targets: ["GenTensor"]),
        .library(name: "GenNN", targets: ["GenNN"]),
        .library(name: "GenModels", targets: ["GenModels"]),
        .library(name: "GenData", targets: ["GenData"]),
        .library(name: "GenEval", targets: ["GenEval"]),
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
        .target(name: "GenNN", dependencies: ["GenTensor"], swiftSettings: fastFlags),
        .target(name: "GenModels", dependencies: ["GenTensor", "GenNN"], swiftSettings: fastFlags),
        .target(name: "GenData", dependencies: ["GenTensor", "CZlib", "CPNG"], swiftSettings: fastFlags),
        .target(name: "GenEval", dependencies: ["GenTensor", "GenNN", "GenModels", "GenData"], resources: [.copy("Resources")],
                swiftSettings: fastFlags),
        .target(name: "GenTrain", dependencies: ["GenModels", "GenData", "GenEval"], swiftSettings: fastFlags),
        .executableTarget(
            name: "generative",
            dependencies: [
                "GenTensor", "GenNN", "GenModels", "GenData", "GenEval", "GenTrain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastFlags),
        .target(name: "GenTestSupport", dependencies: ["GenTensor", "GenModels"], path: "Tests/GenTestSupport", swiftSettings: fastFlags),
        .testTarget(name: "GenTensorTests", dependencies: ["GenTensor", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenNNTests", dependencies: ["GenNN", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenDataTests", dependencies: ["GenData", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenEvalTests", dependencies: ["GenEval", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenTrainTests", dependencies: ["GenTrain", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "CLITests", dependencies: ["generative", "GenTrain", "GenTestSupport"], swiftSettings: fastFlags),
        .testTarget(name: "GenModelsTests", dependencies: ["GenTensor", "GenNN", "GenModels", "GenTestSupport"], swiftSettings: fastFlags),
    ],
    swiftLanguageModes: [.v5]
)
