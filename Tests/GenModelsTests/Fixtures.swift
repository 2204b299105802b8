import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// A fixture folder or file that is missing or unreadable; the message says where and why.
struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// The PyTorch parity fixtures (see `Tests/Fixtures/README.md`).
///
/// The folder is `$FIXTURES_DIR` when set, else the repository's `Tests/Fixtures`.
/// A missing folder or file fails the test: parity is not optional.
enum Fixtures {
    /// The fixtures folder (one definition for every test target: `FixtureFiles.directory`).
    static var directory: URL { FixtureFiles.directory.standardizedFileURL }

    /// Opens `name` (for example `vae.io.safetensors`) from the fixtures folder; records a test
    /// failure with a clear message and throws when the folder or file is missing or invalid.
    static func open(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> SafeTensorsFile {
        let dir = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            let message = FixtureFiles.missingMessage(dir.path)
            XCTFail(message, file: file, line: line)
            throw FixtureError(description: message)
        }
        let url = dir.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            let message = FixtureFiles.missingMessage(url.path)
            XCTFail(message, file: file, line: line)
            throw FixtureError(description: message)
        }
        do {
            return try SafeTensorsFile(contentsOf: url)
        } catch {
            XCTFail("parity fixture \(url.path) cannot be read: \(error)", file: file, line: line)
            throw error
        }
    }

    /// Loads a model's parameters from `NAME.params.safetensors` (strict: every tensor of the file
    /// must belong to the model, and every model parameter must be in the file).
    /// The U-Net that `unet.params` was saved from, loaded strictly: width, input channels and class
    /// count come from the file; multipliers, blocks per level and groups are the defaults of the
    /// UNet in scripts/torch_reference/models.py, and the strict load then checks every name and shape both ways.
    static func unet() throws -> UNet {
        let params = try open("unet.params.safetensors")
        let convIn = try params.entry("conv_in.weight").shape  // (ch, in, 3, 3)
        let classes = params.contains("class_emb.weight") ? try params.entry("class_emb.weight").shape[0] - 1 : 0
        let model = UNet(UNetConfig(inChannels: convIn[1], width: convIn[0], numClasses: classes),
                         generator: RandomGenerator(seed: 1))
        try load(model, from: "unet.params.safetensors")
        return model
    }

    static func load(_ model: some Module, from name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let params = try open(name, file: file, line: line)
        do {
            try model.load(from: params, strict: true)
        } catch {
            XCTFail("loading \(name): \(error)", file: file, line: line)
            throw error
        }
    }
}

extension SafeTensorsFile {
    /// Tensor `name`, recording a test failure (naming the file and tensor) when it is absent.
    func required(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
        do {
            return try tensor(name)
        } catch {
            XCTFail("\(path): \(error)", file: file, line: line)
            throw error
        }
    }

    /// An NCHW image tensor of the file as a channels-last (N, H, W, C) tensor.
    func image(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
        let t = try required(name, file: file, line: line)
        XCTAssertEqual(t.rank, 4, "\(name) should be NCHW", file: file, line: line)
        return t.permuted([0, 2, 3, 1])
    }
}

/// NCHW from channels-last (N, H, W, C), to compare with the fixtures.
func nchw(_ t: Tensor) -> Tensor { t.permuted([0, 3, 1, 2]) }

/// The worst |actual - expected| divided by the parity tolerance (the README's: 1e-4 of the
/// largest expected magnitude, floor 1e-6); <= 1 passes. Infinity for a shape mismatch or NaN.
func parityErrorRatio(_ actual: Tensor, _ expected: Tensor, relative: Double = parityRelativeTolerance,
                      floor: Double = parityAbsoluteFloor) -> Double {
    guard actual.shape == expected.shape else { return .infinity }
    let a = actual.doubleScalars(), e = expected.doubleScalars()
    let tol = max(relative * e.reduce(0) { max($0, abs($1)) }, floor)
    var worst = 0.0
    for i in 0..<a.count {
        let d = abs(a[i] - e[i])
        if !(d <= worst) { worst = d }
    }
    return worst.isNaN ? .infinity : worst / tol
}

/// `assertClose` with the README's tolerance, printing the error ratio when `PARITY_VERBOSE` is set
/// (to see how much margin each fixture value has).
func assertParity(_ actual: Tensor, _ expected: Tensor, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    if ProcessInfo.processInfo.environment["PARITY_VERBOSE"] != nil {
        let padded = label.padding(toLength: max(label.count, 36), withPad: " ", startingAt: 0)
        print("parity \(padded) error/tolerance " + String(format: "%.4f", parityErrorRatio(actual, expected)))
    }
    assertClose(actual, expected, label, file: file, line: line)
}

/// Asserts that the `prefix`-named gradient tensors of `io` are exactly one per trainable parameter
/// of `model` (so a fixture draw with an extra or missing gradient fails instead of being skipped),
/// and compares each with `grads` (in `namedTrainableParameters` order, engine layout).
func assertGradients(_ grads: [Tensor], of model: some Module, io: SafeTensorsFile, prefix: String,
                     file: StaticString = #filePath, line: UInt = #line) throws {
    let named = model.namedTrainableParameters
    XCTAssertEqual(grads.count, named.count, file: file, line: line)
    let fileKeys = Set(io.names.filter { $0.hasPrefix(prefix) })
    let modelKeys = Set(named.map { prefix + $0.0 })
    XCTAssertEqual(fileKeys.subtracting(modelKeys).sorted(), [], "\(io.path): gradients of no model parameter",
                   file: file, line: line)
    XCTAssertEqual(modelKeys.subtracting(fileKeys).sorted(), [], "\(io.path): model parameters without a gradient",
                   file: file, line: line)
    for ((name, param), grad) in zip(named, grads) {
        let expected = try io.required(prefix + name, file: file, line: line)
        assertParity(param.layout.toPyTorch(grad), expected, prefix + name, file: file, line: line)
    }
}

/// Asserts that the io file's names other than those starting with one of `gradientPrefixes` are
/// exactly `expected`.
func assertKeys(of io: SafeTensorsFile, are expected: Set<String>, besides gradientPrefixes: [String],
                file: StaticString = #filePath, line: UInt = #line) {
    let plain = io.names.filter { name in !gradientPrefixes.contains { name.hasPrefix($0) } }
    XCTAssertEqual(Set(plain).sorted(), expected.sorted(), "\(io.path): tensor names", file: file, line: line)
}
