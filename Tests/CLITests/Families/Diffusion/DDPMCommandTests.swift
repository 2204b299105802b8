import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// `train ddpm` and `sample ddpm` end to end on tiny settings; exact resume; bad flags.
final class DDPMCommandTests: CommandTestCase {
    func weights(_ path: String) throws -> [String: [Float]] {
        let c = try Checkpoint(contentsOf: URL(fileURLWithPath: path))
        return c.tensors.filter { $0.key.hasPrefix("model.") || $0.key.hasPrefix("ema.") }
            .mapValues { $0.dtype == .float32 ? $0.scalars(as: Float.self) : [] }
    }

    func testTrainResumeAndSampleConditional() throws {
        let dir = tempDir()
        let tiny = ["--width", "8", "--batch-size", "4", "--classes"]
        let straight = dir.appendingPathComponent("a").path, resumed = dir.appendingPathComponent("b").path
        try run(["train", "ddpm", "--max-steps", "3", "--out", straight] + tiny)
        try run(["train", "ddpm", "--steps", "2", "--out", resumed] + tiny)  // the older spelling
        try run(["train", "ddpm", "--max-steps", "3", "--resume", "--out", resumed] + tiny)
        XCTAssertEqual(try weights(straight + "/checkpoint.safetensors"), try weights(resumed + "/checkpoint.safetensors"))
        let checkpoint = straight + "/checkpoint.safetensors"
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        try run(["sample", "ddpm", "--checkpoint", checkpoint, "--steps", "3", "--count", "3", "--class", "2",
                 "--guidance", "3", "--out", a.path])
        // Image i depends only on the seed and i: 3 images in batches of 2 give the first 3 of 5.
        try run(["sample", "ddpm", "--checkpoint", checkpoint, "--steps", "3", "--count", "5", "--class", "2",
                 "--guidance", "3", "--batch-size", "2", "--out", b.path])
        let x = try NPY.readImages(a).scalars(as: Float.self), y = try NPY.readImages(b).scalars(as: Float.self)
        XCTAssertEqual(x.count, 3 * 784)
        XCTAssertLessThan(zip(x, y.prefix(x.count)).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        XCTAssertTrue(x.allSatisfy { $0 >= 0 && $0 <= 1 })
        try run(["sample", "ddpm", "--checkpoint", checkpoint, "--sampler", "ddim", "--steps", "2", "--eta", "1",
                 "--spacing", "trailing", "--no-ema", "--count", "2", "--out", dir.appendingPathComponent("c.png").path])
        XCTAssertTrue(errorMessage(["sample", "ddpm", "--checkpoint", checkpoint, "--class", "10"])?.contains("--class") ?? false)
        XCTAssertTrue(errorMessage(["sample", "ddpm", "--checkpoint", checkpoint, "--guidance", "2"])?.contains("--class") ?? false)
        XCTAssertTrue(errorMessage(["sample", "ddpm", "--checkpoint", checkpoint, "--sampler", "euler"])?.contains("--sampler") ?? false)
        XCTAssertTrue(errorMessage(["train", "ddpm", "--width", "12"])?.contains("--width") ?? false)
        XCTAssertTrue(errorMessage(["sample", "vae", "--checkpoint", checkpoint])?.contains("not a vae") ?? false)
    }

    func testClassifierGuidance() throws {
        let dir = tempDir()
        let ddpm = dir.appendingPathComponent("ddpm").path, clf = dir.appendingPathComponent("clf").path
        try run(["train", "ddpm", "--max-steps", "1", "--width", "8", "--batch-size", "4", "--out", ddpm])
        try run(["train", "noisy-classifier", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--out", clf])
        let guided = dir.appendingPathComponent("g.npy"), plain = dir.appendingPathComponent("p.npy")
        let common = ["sample", "ddpm", "--checkpoint", ddpm + "/checkpoint.safetensors", "--steps", "3", "--count", "2"]
        try run(common + ["--class", "1", "--guidance", "50", "--classifier", clf + "/checkpoint.safetensors", "--out", guided.path])
        try run(common + ["--out", plain.path])
        let g = try NPY.readImages(guided).scalars(as: Float.self), p = try NPY.readImages(plain).scalars(as: Float.self)
        XCTAssertGreaterThan(zip(g, p).map { abs($0 - $1) }.max() ?? 0, 1e-4, "guidance changes the samples")
        XCTAssertTrue(errorMessage(common + ["--classifier", clf + "/checkpoint.safetensors"])?.contains("--classifier") ?? false)
        XCTAssertTrue(errorMessage(common + ["--class", "1", "--guidance", "2", "--classifier", ddpm + "/checkpoint.safetensors"])?
            .contains("not a noisy-classifier") ?? false)
    }

    /// `--sampler ode-rk45` on a DDPM: the U-Net sees fractional timesteps between its table's; image
    /// i is the same whatever the batch (within the tolerance: float rounding in the network can move
    /// one accept/reject decision), and eval reports the evaluations the run used.
    func testAdaptiveODESampler() throws {
        let dir = tempDir()
        let ddpm = dir.appendingPathComponent("ddpm").path
        try run(["train", "ddpm", "--max-steps", "1", "--width", "8", "--batch-size", "4", "--out", ddpm])
        let checkpoint = ddpm + "/checkpoint.safetensors"
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        let common = ["sample", "ddpm", "--checkpoint", checkpoint, "--sampler", "ode-rk45", "--rtol", "1e-3", "--atol", "1e-3"]
        try run(common + ["--count", "3", "--out", a.path])
        try run(common + ["--count", "5", "--batch-size", "2", "--out", b.path])
        let x = try NPY.readImages(a).scalars(as: Float.self), y = try NPY.readImages(b).scalars(as: Float.self)
        XCTAssertEqual(x.count, 3 * 784)
        XCTAssertTrue(x.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertLessThan(zip(x, y.prefix(x.count)).map { abs($0 - $1) }.max() ?? 1, 1e-3)
        let report = try Eval.parse([checkpoint, "--count", "20", "--sampler", "ode-rk45", "--rtol", "1e-3", "--atol", "1e-3",
                                     "--fid-at", "10,20"]).evaluate(log: { _ in })
        XCTAssertGreaterThanOrEqual(report.sampling?.networkEvaluationsPerImage ?? 0, 9)
        XCTAssertTrue(report.sampling?.model.contains("ODE-RK45 rtol 0.001, atol 0.001") ?? false, report.sampling?.model ?? "")
    }

    func testMinutesBudgetLeavesACheckpoint() throws {
        let dir = tempDir()
        let out = dir.appendingPathComponent("m").path
        try run(["train", "ddpm", "--minutes", "0.001", "--width", "8", "--batch-size", "4", "--out", out])
        let c = try Checkpoint(contentsOf: URL(fileURLWithPath: out + "/checkpoint.safetensors"))
        XCTAssertGreaterThanOrEqual(try c.integer("step"), 1)
        XCTAssertNotNil(c.metadata["ddpm_config"])
    }
}
