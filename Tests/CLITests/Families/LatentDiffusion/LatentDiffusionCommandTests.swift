import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenEval
import GenData

/// The latent-diffusion commands on tiny settings: `train autoencoder-kl` through the real
/// executable (the checkpoint with its latent scale, the reconstruction scores on stdout), `train
/// ldm` on it, `sample ldm` with a class and guidance, resume refused with another autoencoder, and
/// bad-input errors.
final class LatentDiffusionCommandTests: CommandTestCase {
    /// `train ldm`'s flags for a tiny run (width 8, two steps) on a tiny autoencoder trained in `dir`
    /// on a labelled folder of 3 images per class.
    func tinyLatentModelFlags(_ dir: URL) throws -> [String] {
        let data = try tinyLabelledFolder(dir, perClass: 3)
        try run(["train", "autoencoder-kl", "--out", dir.appendingPathComponent("ae").path, "--width", "8", "--batch-size", "8",
                 "--max-steps", "2", "--eval-count", "0", "--data", data])
        let ae = dir.appendingPathComponent("ae/checkpoint.safetensors").path
        return ["--width", "8", "--batch-size", "4", "--epochs", "1", "--max-steps", "2", "--data", data, "--autoencoder", ae]
    }

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

    func testLatentModelTrainsSamplesAndRefusesAnotherAutoencoder() throws {
        let dir = tempDir()
        let data = try tinyLabelledFolder(dir)
        let tinyAE = ["--width", "8", "--batch-size", "8", "--max-steps", "2", "--eval-count", "0", "--data", data]
        try run(["train", "autoencoder-kl", "--out", dir.appendingPathComponent("ae").path] + tinyAE)
        try run(["train", "autoencoder-kl", "--out", dir.appendingPathComponent("ae2").path, "--seed", "1"] + tinyAE)
        let ae = dir.appendingPathComponent("ae/checkpoint.safetensors").path
        let ldm = dir.appendingPathComponent("ldm").path
        let tinyLDM = ["--width", "8", "--batch-size", "8", "--epochs", "1", "--max-steps", "2", "--condition", "class", "--data", data]
        try run(["train", "ldm", "--autoencoder", ae, "--out", ldm] + tinyLDM)
        let checkpoint = try Checkpoint(contentsOf: URL(fileURLWithPath: ldm + "/checkpoint.safetensors"))
        XCTAssertEqual(checkpoint.metadata["model"], "ldm")
        XCTAssertNotNil(checkpoint.tensors["autoencoder.decoder.conv_out.weight"], "the autoencoder travels in the checkpoint")
        let model = try LatentDiffusionTraining.load(checkpoint)
        XCTAssertEqual(model.diffusion.imageShape, [7, 7, 4])
        XCTAssertEqual(model.classCount, 4)
        XCTAssertEqual(model.config.autoencoderSHA256, try SHA256.hex(contentsOf: URL(fileURLWithPath: ae)))

        let out = dir.appendingPathComponent("s.npy")
        try run(["sample", "ldm", "--checkpoint", ldm + "/checkpoint.safetensors", "--count", "3", "--class", "2", "--guidance", "2",
                 "--steps", "4", "--out", out.path])
        let images = try NPY.readImages(out)
        XCTAssertEqual(images.shape, [3, 28, 28, 1])
        XCTAssertTrue(images.scalars(as: Float.self).allSatisfy { $0 >= 0 && $0 <= 1 })
        // Another sampler of the DDPM's table runs on the latents too.
        try run(["sample", "ldm", "--checkpoint", ldm + "/checkpoint.safetensors", "--count", "2", "--sampler", "ddpm", "--steps", "5",
                 "--out", dir.appendingPathComponent("a.npy").path])

        let other = dir.appendingPathComponent("ae2/checkpoint.safetensors").path
        let message = errorMessage(["train", "ldm", "--autoencoder", other, "--out", ldm, "--resume"] + tinyLDM) ?? ""
        XCTAssertTrue(message.contains("--autoencoder") && message.contains("not the autoencoder"), message)
        XCTAssertTrue(errorMessage(["train", "ldm", "--autoencoder", dir.appendingPathComponent("nope").path, "--out",
                                    dir.appendingPathComponent("x").path])?.contains("--autoencoder") ?? false)
        XCTAssertTrue(errorMessage(["sample", "ldm", "--checkpoint", ldm + "/checkpoint.safetensors", "--guidance", "2"])?
            .contains("--guidance") ?? false)
    }

    /// Inpainting keeps every unmasked pixel of its input exactly; upscaling takes 14x14 inputs; each
    /// verb refuses the other kind of model.
    func testInpaintKeepsTheUnmaskedPixelsAndUpscaleDoubles() throws {
        let dir = tempDir()
        let tiny = try tinyLatentModelFlags(dir)
        try run(["train", "ldm", "--condition", "inpaint", "--out", dir.appendingPathComponent("inpaint").path] + tiny)
        try run(["train", "ldm", "--condition", "upscale", "--out", dir.appendingPathComponent("upscale").path] + tiny)
        let inpaintModel = dir.appendingPathComponent("inpaint/checkpoint.safetensors").path
        let upscaleModel = dir.appendingPathComponent("upscale/checkpoint.safetensors").path

        let images = try ImageDataset.fashionMNIST(split: .test).subset(Array(0..<3)).images
        let input = dir.appendingPathComponent("x.npy"), maskFile = dir.appendingPathComponent("m.npy")
        try NPY.write(images, to: input)
        try NPY.write(InpaintingMasks.centre(count: 1), to: maskFile)
        let out = dir.appendingPathComponent("filled.npy")
        try run(["ldm", "inpaint", "--checkpoint", inpaintModel, "--input", input.path, "--mask", maskFile.path, "--steps", "3", "--out", out.path])
        let filled = try NPY.readImages(out).scalars(as: Float.self), original = images.scalars(as: Float.self)
        let mask = InpaintingMasks.centre(count: 3).scalars(as: Float.self)
        XCTAssertEqual(filled.count, original.count)
        var changed = 0
        for i in original.indices {
            if mask[i] == 0 { XCTAssertEqual(filled[i], original[i], "pixel \(i) is outside the mask") } else if filled[i] != original[i] { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 0, "the masked pixels were filled")

        let low = dir.appendingPathComponent("low.npy")
        try NPY.write(resizeImages(images, height: 14, width: 14), to: low)
        let up = dir.appendingPathComponent("up.npy")
        try run(["ldm", "upscale", "--checkpoint", upscaleModel, "--input", low.path, "--steps", "3", "--out", up.path])
        XCTAssertEqual(try NPY.readImages(up).shape, [3, 28, 28, 1])

        // Under mpirun -np 2, both verbs split the images by index (batches of one: whole batches per
        // rank) and write one process's images bit for bit.
        if executableOnPath("mpirun") != nil {
            let verbs: [(name: String, arguments: [String])] = [
                ("inpaint", ["ldm", "inpaint", "--checkpoint", inpaintModel, "--input", input.path, "--mask", maskFile.path]),
                ("upscale", ["ldm", "upscale", "--checkpoint", upscaleModel, "--input", low.path])]
            for (name, arguments) in verbs {
                let common = arguments + ["--steps", "3", "--batch-size", "1", "--threads", "1"]
                let one = dir.appendingPathComponent("\(name)-one.npy"), two = dir.appendingPathComponent("\(name)-two.npy")
                let single = try runExecutable(common + ["--out", one.path])
                XCTAssertEqual(single.status, 0, single.err)
                let ranks = try runOnTwoRanks(common + ["--out", two.path], skipping: "")
                XCTAssertEqual(ranks.status, 0, ranks.err)
                XCTAssertEqual(ranks.out.components(separatedBy: "wrote ").count - 1, 1, ranks.out)
                XCTAssertEqual(try NPY.readImages(one).scalars(as: Float.self), try NPY.readImages(two).scalars(as: Float.self), name)
            }
        }
        // The interpolation baseline, without a model: bicubic, clamped to [0, 1].
        let bicubic = dir.appendingPathComponent("bicubic.npy")
        try run(["ldm", "upscale", "--baseline", "bicubic", "--input", low.path, "--out", bicubic.path])
        let expected = resizeImages(try NPY.readImages(low), height: 28, width: 28, filter: .bicubic).scalars(as: Float.self).map { min(max($0, 0), 1) }
        XCTAssertEqual(try NPY.readImages(bicubic).scalars(as: Float.self), expected)
        XCTAssertEqual(errorMessage(["ldm", "upscale", "--baseline", "bicubic", "--checkpoint", upscaleModel, "--input", low.path, "--out", up.path]),
                       "--baseline interpolates without a model: give it or --checkpoint, not both")
        XCTAssertTrue(errorMessage(["ldm", "upscale", "--input", low.path, "--out", up.path])?.hasPrefix("--checkpoint") ?? false)

        XCTAssertTrue(errorMessage(["ldm", "upscale", "--checkpoint", inpaintModel, "--input", low.path, "--out", up.path])?
            .contains("--condition inpaint") ?? false)
        XCTAssertTrue(errorMessage(["ldm", "upscale", "--checkpoint", upscaleModel, "--input", input.path, "--out", up.path])?
            .contains("--input") ?? false, "28x28 inputs to a 14x14 upscaler")
        let twoMasks = dir.appendingPathComponent("m2.npy")
        try NPY.write(InpaintingMasks.centre(count: 2), to: twoMasks)
        XCTAssertTrue(errorMessage(["ldm", "inpaint", "--checkpoint", inpaintModel, "--input", input.path, "--mask", twoMasks.path,
                                    "--out", out.path])?.contains("--mask") ?? false)
        XCTAssertTrue(errorMessage(["sample", "ldm", "--checkpoint", inpaintModel, "--count", "2"])?.contains("generative ldm inpaint") ?? false)

        // export --ema-only checks an input-conditioned model on fixed inputs, not on samples from noise.
        for model in [inpaintModel, upscaleModel] {
            let small = dir.appendingPathComponent("ema-only.safetensors").path
            try run(["export", "--checkpoint", model, "--weights-only", "--ema-only", "--out", small])
            let restored = try LatentDiffusionTraining.load(try Checkpoint(contentsOf: URL(fileURLWithPath: small)))
            let original = try LatentDiffusionTraining.load(try Checkpoint(contentsOf: URL(fileURLWithPath: model)))
            let options = SamplingOptions(sampler: try Sampler(named: "ddim", options: SamplerOptions(steps: 3)))
            XCTAssertEqual(try restored.fixedInputSamples(count: 2, seed: 1, options: options).scalars(as: Float.self),
                           try original.fixedInputSamples(count: 2, seed: 1, options: options).scalars(as: Float.self))
        }
    }

    /// `ldm score` on the two input-conditioned models: the model's row, its baselines computed as
    /// documented (the mean-image fill, bicubic and bilinear interpolation), and the test images.
    func testScoreComparesInpaintingAndUpscalingWithTheirBaselines() throws {
        let dir = tempDir()
        let tiny = try tinyLatentModelFlags(dir)
        let test = try ImageDataset.fashionMNIST(split: .test)
        let originals = test.images.sliced(axis: 0, 0..<4)
        func meanPSNR(_ images: Tensor) -> Double {
            let values = peakSignalToNoiseRatio(images, originals: originals)
            return values.reduce(0, +) / Double(values.count)
        }
        for condition in ["inpaint", "upscale"] {
            let model = dir.appendingPathComponent(condition).path
            try run(["train", "ldm", "--condition", condition, "--out", model] + tiny)
            let result = try runExecutable(["ldm", "score", "--checkpoint", model + "/checkpoint.safetensors", "--count", "4", "--steps", "2",
                                            "--threads", "1", "--json"])
            XCTAssertEqual(result.status, 0, result.err)
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
            XCTAssertEqual(object["condition"] as? String, condition)
            let rows = try XCTUnwrap(object["rows"] as? [[String: Any]])
            let methods = rows.compactMap { $0["method"] as? String }
            let psnr = Dictionary(uniqueKeysWithValues: rows.map { ($0["method"] as! String, $0["psnr"] as? Double) })
            let baseline: Tensor
            if condition == "inpaint" {
                XCTAssertEqual(methods, ["ldm inpaint", "mean-image fill", "test images"])
                let mean = try ImageDataset.fashionMNIST(split: .train).images.mean(axis: 0, keepDims: true)
                let masks = InpaintingMasks.centre(count: 4)
                baseline = originals * (1 - masks) + masks * mean
                XCTAssertEqual(try XCTUnwrap(psnr["mean-image fill"] ?? nil), meanPSNR(baseline), accuracy: 1e-4)
            } else {
                XCTAssertEqual(methods, ["ldm upscale", "bicubic", "bilinear", "test images"])
                let low = resizeImages(originals, height: 14, width: 14)
                baseline = resizeImages(low, height: 28, width: 28, filter: .bicubic).clamped(min: 0, max: 1)
                XCTAssertEqual(try XCTUnwrap(psnr["bicubic"] ?? nil), meanPSNR(baseline), accuracy: 1e-4)
            }
            XCTAssertNil(psnr["test images"] ?? nil, "the originals have no PSNR against themselves")
            XCTAssertTrue((psnr["ldm \(condition)"] ?? nil)?.isFinite ?? false)
            XCTAssertNotNil(rows[0]["images_per_second"], "the model's row is timed")
            XCTAssertTrue(rows.allSatisfy { ($0["images"] as? Int) == 4 })
        }
        let plain = dir.appendingPathComponent("plain").path
        try run(["train", "ldm", "--out", plain] + tiny)
        XCTAssertTrue(errorMessage(["ldm", "score", "--checkpoint", plain + "/checkpoint.safetensors"])?.contains("generative eval") ?? false)
        XCTAssertTrue(errorMessage(["ldm", "score", "--checkpoint", plain + "/checkpoint.safetensors", "--count", "1"])?.contains("--count") ?? false)
    }

    /// A prompt model trains on captions, samples a prompt with guidance, and refuses a prompt that
    /// names nothing it knows.
    func testPromptModelSamplesAPromptAndRefusesAnUnknownOne() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("prompt").path
        try self.run(["train", "ldm", "--condition", "prompt", "--out", run] + (try tinyLatentModelFlags(dir)))
        let checkpoint = run + "/checkpoint.safetensors"
        let model = try LatentDiffusionTraining.load(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)))
        XCTAssertEqual(model.config.vocabulary, FashionCaptions.vocabulary, "the tokenizer travels in the checkpoint")
        XCTAssertNotNil(model.diffusion.model.textEncoder)
        let out = dir.appendingPathComponent("p.npy")
        try self.run(["sample", "ldm", "--checkpoint", checkpoint, "--prompt", "a pair of trousers", "--guidance", "3", "--count", "2",
                      "--steps", "3", "--out", out.path])
        XCTAssertEqual(try NPY.readImages(out).shape, [2, 28, 28, 1])
        let message = errorMessage(["sample", "ldm", "--checkpoint", checkpoint, "--prompt", "a photo of a cat", "--out", out.path]) ?? ""
        XCTAssertTrue(message.contains("--prompt") && message.contains("names no clothing item"), message)
        XCTAssertTrue(errorMessage(["sample", "ldm", "--checkpoint", checkpoint, "--prompt", "a bag", "--class", "1", "--out", out.path])?
            .contains("--class and --prompt") ?? false)

        // A class is asked for by the prompt naming it: --class 1 is "a pair of trousers", image for image.
        let byClass = dir.appendingPathComponent("c.npy")
        try self.run(["sample", "ldm", "--checkpoint", checkpoint, "--class", "1", "--guidance", "3", "--count", "2",
                      "--steps", "3", "--out", byClass.path])
        XCTAssertEqual(try NPY.readImages(byClass).scalars(as: Float.self), try NPY.readImages(out).scalars(as: Float.self))
        XCTAssertEqual(FashionCaptions.prompt(naming: 9), "an ankle boot")
        // So eval reports a prompt model's class agreement, and ldm score sweeps the guidance.
        let eval = try runExecutable(["eval", checkpoint, "--count", "4", "--guidance", "3", "--steps", "2", "--threads", "1", "--json"])
        XCTAssertEqual(eval.status, 0, eval.err)
        XCTAssertTrue(eval.out.contains("\"class_agreement\""), eval.out)
        let score = try runExecutable(["ldm", "score", "--checkpoint", checkpoint, "--count", "4", "--guidance-scales", "0", "3",
                                       "--steps", "2", "--threads", "1"])
        XCTAssertEqual(score.status, 0, score.err)
        XCTAssertTrue(score.out.contains("| guidance 0 | 4 |") && score.out.contains("| guidance 3 | 4 |"), score.out)
    }
}
