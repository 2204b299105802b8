import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels

/// `generative train autoencoder-kl` through the real executable on tiny settings: the checkpoint
/// with its latent scale, the reconstruction scores on stdout, and bad-input errors.
final class AutoencoderKLCommandTests: CommandTestCase {
    func testTrainsStoresTheLatentScaleAndScoresReconstructions() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("ae").path
        let result = try runExecutable(["train", "autoencoder-kl", "--out", run, "--width", "8", "--latent-channels", "3",
                                        "--batch-size", "8", "--max-steps", "3", "--eval-count", "20", "--threads", "1"])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.out.contains("PSNR") && result.out.contains("FID against the test split"), result.out)
        XCTAssertTrue(result.out.contains("latent scale:"), result.out)
        XCTAssertFalse(result.out.contains("epoch 1/"), "progress belongs on stderr")
        let checkpoint = try Checkpoint(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors"))
        XCTAssertEqual(checkpoint.metadata["model"], "autoencoder-kl")
        XCTAssertNotNil(checkpoint.tensors["latent_scale"])
        let model = try AutoencoderKLTraining.load(checkpoint)
        XCTAssertEqual(model.config.latentShape, [7, 7, 3])
        // It samples nothing from noise, and says so.
        let message = errorMessage(["eval", run + "/checkpoint.safetensors", "--count", "4"]) ?? ""
        XCTAssertTrue(message.contains("autoencoder-kl"), message)
    }

    func testBadInputsGetClearErrors() {
        XCTAssertTrue(errorMessage(["train", "autoencoder-kl", "--width", "12"])?.contains("--width") ?? false)
        XCTAssertTrue(errorMessage(["train", "autoencoder-kl", "--kl-weight", "-1"])?.contains("--kl-weight") ?? false)
        XCTAssertTrue(errorMessage(["train", "autoencoder-kl", "--latent-channels", "0"])?.contains("--latent-channels") ?? false)
        XCTAssertTrue(errorMessage(["train", "autoencoder-kl", "--reconstruction", "l3"])?.contains("reconstruction") ?? false)
    }
}
