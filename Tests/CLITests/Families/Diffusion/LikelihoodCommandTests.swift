import Foundation
@testable import generative
import GenTrain
import GenNN
import XCTest

/// `generative eval CHECKPOINT --likelihood`: bits/dim with its standard error, the same for any
/// batching (dequantisation and probes are keyed by image index), and refused for families without
/// a likelihood.
final class LikelihoodCommandTests: CommandTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Checkpoints/legacy-2026-12b")

    func measure(_ arguments: [String]) throws -> LikelihoodReport {
        let command = try XCTUnwrap(try Generative.parseAsRoot(["eval"] + arguments) as? Eval)
        return try command.measureLikelihood(log: { _ in })
    }

    func testBitsPerDimOfAScoreModel() throws {
        let checkpoint = Self.folder.appendingPathComponent("sgm-ve.safetensors").path
        let common = [checkpoint, "--likelihood", "--count", "3", "--likelihood-steps", "4"]
        let whole = try measure(common + ["--batch-size", "3"])
        XCTAssertEqual(whole.count, 3)
        XCTAssertEqual(whole.likelihoodMethod, "ode")
        XCTAssertTrue(whole.bitsPerDim.isFinite && whole.bitsPerDimSE.isFinite && whole.bitsPerDimSE >= 0)
        let single = try measure(common + ["--batch-size", "1"])
        XCTAssertEqual(single.bitsPerDim, whole.bitsPerDim, accuracy: 1e-3, "the batching does not change an image's figure")
        let object = try JSONSerialization.jsonObject(with: Data(try whole.json().utf8)) as? [String: Any]
        for key in ["bits_per_dim", "bits_per_dim_se", "likelihood_method"] { XCTAssertNotNil(object?[key], key) }
        XCTAssertTrue(errorMessage(["eval", checkpoint, "--likelihood", "--likelihood-method", "vlb"])?.contains("not vlb") ?? false)
    }

    /// A DDPM measures its variational bound (the default: T network evaluations per image) and its
    /// probability-flow ODE, read as the VP SDE of its linear table; neither depends on the batching.
    func testBitsPerDimOfADDPM() throws {
        // A small random network on a 50-step table, so that the bound costs 50 evaluations per image.
        var config = DDPMConfiguration()
        config.width = 8
        config.steps = 50
        var stored = Checkpoint()
        DDPMTraining(config: config, learningRate: 1e-3, seed: 3).store(into: &stored)
        stored.metadata["model"] = DDPMTraining.kind
        let checkpoint = tempDir().appendingPathComponent("ddpm.safetensors").path
        try stored.write(to: URL(fileURLWithPath: checkpoint))
        let vlb = try measure([checkpoint, "--likelihood", "--count", "2", "--batch-size", "2"])
        XCTAssertEqual(vlb.likelihoodMethod, "vlb")
        XCTAssertNil(vlb.steps)
        XCTAssertTrue(vlb.bitsPerDim.isFinite && vlb.bitsPerDim > 0, "\(vlb.bitsPerDim)")
        let vlbByOne = try measure([checkpoint, "--likelihood", "--count", "2", "--batch-size", "1"])
        XCTAssertEqual(vlbByOne.bitsPerDim, vlb.bitsPerDim, accuracy: 1e-5, "float rounding of the network across batch sizes only")
        let ode = try measure([checkpoint, "--likelihood", "--likelihood-method", "ode", "--count", "2", "--likelihood-steps", "3"])
        XCTAssertEqual(ode.likelihoodMethod, "ode")
        XCTAssertTrue(ode.bitsPerDim.isFinite, "\(ode.bitsPerDim)")
        XCTAssertTrue(errorMessage(["eval", checkpoint, "--likelihood", "--likelihood-method", "exact"])?.contains("not exact") ?? false)
    }

    /// A VAE reports its negative ELBO in bits/dim, below the 8 bits of uniform noise for test images.
    func testBitsPerDimOfAVAE() throws {
        let checkpoint = Self.folder.appendingPathComponent("vae-conv.safetensors").path
        let whole = try measure([checkpoint, "--likelihood", "--count", "4", "--batch-size", "4"])
        XCTAssertEqual(whole.likelihoodMethod, "vlb")
        XCTAssertTrue(whole.bitsPerDim > 0 && whole.bitsPerDim < 8, "\(whole.bitsPerDim)")
        let byOne = try measure([checkpoint, "--likelihood", "--count", "4", "--batch-size", "1"])
        XCTAssertEqual(byOne.bitsPerDim, whole.bitsPerDim, accuracy: 1e-5)
        XCTAssertTrue(errorMessage(["eval", checkpoint, "--likelihood", "--likelihood-method", "ode"])?.contains("not ode") ?? false)
    }

    func testFamiliesWithoutALikelihoodAreRefused() {
        let gan = Self.folder.appendingPathComponent("dcgan.safetensors").path
        XCTAssertEqual(errorMessage(["eval", gan, "--likelihood"]), "\(gan): 'gan' models have no likelihood")
        XCTAssertTrue(errorMessage(["eval", "noise", "--images", "x.npy"])?.contains("--likelihood") ?? false)
    }
}
