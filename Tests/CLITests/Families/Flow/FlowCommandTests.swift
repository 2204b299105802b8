import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The flow commands end to end on tiny settings: train (RealNVP and Glow), sample at a temperature,
/// the exact likelihood, encode and decode, and their bad-input errors.
final class FlowCommandTests: CommandTestCase {
    static let tiny = ["--channels", "4", "--blocks", "1", "--batch-size", "16", "--max-steps", "3"]

    func testTrainSampleLikelihoodEncodeDecode() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        try self.run(["train", "realnvp", "--out", run, "--clip-grad-norm", "100"] + Self.tiny)
        let checkpoint = run + "/checkpoint.safetensors"
        let stored = try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint))
        XCTAssertEqual(stored.metadata["model"], "realnvp")
        XCTAssertEqual(stored.storedConfiguration["clip_grad_norm"], "100.0")

        let samples = dir.appendingPathComponent("s.npy")
        try self.run(["sample", "realnvp", "--checkpoint", checkpoint, "--count", "5", "--temperature", "0.7", "--out", samples.path])
        let images = try NPY.readImages(samples)
        XCTAssertEqual(images.shape, [5, 28, 28, 1])
        let values = images.scalars(as: Float.self)
        XCTAssertTrue(values.allSatisfy { $0 >= 0 && $0 <= 1 })
        // Image i depends only on (seed, i): a smaller batch gives the same images.
        let again = dir.appendingPathComponent("again.npy")
        try self.run(["sample", "realnvp", "--checkpoint", checkpoint, "--count", "3", "--batch-size", "2", "--temperature", "0.7",
                      "--out", again.path])
        XCTAssertEqual(try NPY.readImages(again).scalars(as: Float.self), Array(values.prefix(3 * 784)))

        let eval = try XCTUnwrap(try Generative.parseAsRoot(["eval", checkpoint, "--likelihood", "--count", "6", "--batch-size", "4"]) as? Eval)
        let report = try eval.measureLikelihood(log: { _ in })
        XCTAssertEqual(report.likelihoodMethod, "exact")
        XCTAssertNil(report.steps, "an exact likelihood has no ODE steps")
        XCTAssertFalse(try report.json().contains("probes"))
        XCTAssertEqual(report.count, 6)
        XCTAssertTrue(report.bitsPerDim > 0 && report.bitsPerDim < 16 && report.bitsPerDimSE > 0)
        let byOne = try XCTUnwrap(try Generative.parseAsRoot(["eval", checkpoint, "--likelihood", "--count", "6", "--batch-size", "1"]) as? Eval)
        XCTAssertEqual(try byOne.measureLikelihood(log: { _ in }).bitsPerDim, report.bitsPerDim, accuracy: 1e-4,
                       "the dequantisation noise is keyed by image index, not by batch")

        // encode then decode returns the test images' 8-bit pixels.
        let test = try loadDataset(nil, split: .test).images.sliced(axis: 0, 0..<4)
        let input = dir.appendingPathComponent("x.npy"), latents = dir.appendingPathComponent("z.npy")
        try NPY.writeImages(test, to: input)
        try self.run(["realnvp", "encode", "--checkpoint", checkpoint, "--input", input.path, "--out", latents.path])
        XCTAssertEqual(try NPY.read(latents).shape, [4, 784])
        let decoded = dir.appendingPathComponent("d.npy")
        try self.run(["realnvp", "decode", "--checkpoint", checkpoint, "--input", latents.path, "--out", decoded.path])
        let levels = { (t: Tensor) in t.scalars(as: Float.self).map { ($0 * 255).rounded() } }
        XCTAssertEqual(levels(try NPY.readImages(decoded)), levels(test))

        XCTAssertEqual(errorMessage(["sample", "realnvp", "--checkpoint", checkpoint, "--temperature", "-1"]),
                       "--temperature must be a non-negative number")
        XCTAssertTrue(errorMessage(["realnvp", "decode", "--checkpoint", checkpoint, "--input", input.path])?.contains("the flow's latents are N x 784") ?? false)
        XCTAssertTrue(errorMessage(["realnvp", "encode", "--checkpoint", checkpoint, "--input", input.path, "--out", "z.png"])?.contains("--out") ?? false)
        XCTAssertTrue(errorMessage(["eval", checkpoint, "--likelihood", "--likelihood-method", "ode"])?.contains("not ode") ?? false)
    }

    func testGlowTrainsAndSamples() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("glow").path
        try self.run(["train", "realnvp", "--flow", "glow", "--flow-steps", "1", "--coupling", "additive", "--out", run] + Self.tiny)
        let checkpoint = run + "/checkpoint.safetensors"
        let model = try FlowTraining.load(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)))
        XCTAssertEqual(model.config.architecture, .glow)
        XCTAssertEqual(model.config.coupling, .additive)
        // Activation normalisation was initialised from the first batch.
        XCTAssertTrue(model.model.layers.compactMap { $0 as? ActNorm }.allSatisfy(\.isInitialized))
        try self.run(["sample", "realnvp", "--checkpoint", checkpoint, "--count", "2", "--out", dir.appendingPathComponent("g.png").path])
    }

    func testBadInputsGetClearErrors() {
        XCTAssertEqual(errorMessage(["train", "realnvp", "--clip-grad-norm", "0"]), "--clip-grad-norm must be a positive number")
        XCTAssertEqual(errorMessage(["train", "realnvp", "--scales", "0"]),
                       "--scales, --channels and --flow-steps must be at least 1, --blocks at least 0")
        XCTAssertTrue(errorMessage(["train", "realnvp", "--scales", "4", "--out", tempDir().path + "/x", "--max-steps", "1"])?
            .contains("do not halve") ?? false)
    }
}
