import Foundation
@testable import generative
import GenTestSupport
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Checkpoints written by earlier code load and sample the images that code sampled from them
/// (`Tests/Checkpoints/README.md` lists how each was made), with every sampler; and a sampler
/// registered by a test runs through `generative sample` without any command knowing it.
final class LegacyCheckpointTests: CommandTestCase {
    static let ddpmFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Checkpoints/ddpm-2026-12")

    /// The sample commands of the README, by the name of the samples they wrote.
    static let ddpmSamples: [(String, [String])] = [
        ("ddpm-class3", ["--sampler", "ddpm", "--class", "3"]),
        ("ddpm-noclip-cfg2-class1", ["--sampler", "ddpm", "--no-clip", "--class", "1", "--guidance", "2"]),
        ("ddim10-class3", ["--sampler", "ddim", "--steps", "10", "--class", "3"]),
        ("ddim7-linspace-eta05-noclip", ["--sampler", "ddim", "--steps", "7", "--spacing", "linspace", "--eta", "0.5", "--no-clip"]),
        ("ddim6-trailing-eta1", ["--sampler", "ddim", "--steps", "6", "--spacing", "trailing", "--eta", "1"]),
        ("ddim10-cfg3-class3", ["--sampler", "ddim", "--steps", "10", "--class", "3", "--guidance", "3"]),
        ("ddim5-raw", ["--sampler", "ddim", "--steps", "5", "--no-ema"]),
        ("ddim5-classifier4-class2", ["--sampler", "ddim", "--steps", "5", "--class", "2", "--guidance", "4", "--classifier", "CLASSIFIER"]),
        ("ddpm-classifier4-class2", ["--sampler", "ddpm", "--class", "2", "--guidance", "4", "--classifier", "CLASSIFIER"]),
    ]

    /// The largest difference allowed from the images the CPU backend wrote: 1e-5 on the CPU backend
    /// (bit for bit on the machine that wrote them; another CPU's kernels may round differently), and
    /// the backend seam's bar of 1e-4 on another backend (GENERATIVE_BACKEND=reference).
    static var tolerance: Float { Backend.current.name == "cpu" ? 1e-5 : 1e-4 }

    /// Every sampler, both guidances: the same images as the code that wrote the checkpoint, within
    /// `tolerance`.
    func testDDPMCheckpointSamplesTheSameImages() throws {
        let dir = tempDir()
        let checkpoint = Self.ddpmFolder.appendingPathComponent("ddpm.safetensors").path
        let classifier = Self.ddpmFolder.appendingPathComponent("noisy-classifier.safetensors").path
        for (name, arguments) in Self.ddpmSamples {
            let out = dir.appendingPathComponent("\(name).npy")
            try run(["sample", "ddpm", "--checkpoint", checkpoint, "--count", "2", "--seed", "5", "--out", out.path]
                    + arguments.map { $0 == "CLASSIFIER" ? classifier : $0 })
            let expected = try NPY.readImages(Self.ddpmFolder.appendingPathComponent("\(name).npy")).scalars(as: Float.self)
            let actual = try NPY.readImages(out).scalars(as: Float.self)
            XCTAssertEqual(actual.count, expected.count, name)
            XCTAssertLessThan(zip(actual, expected).map { abs($0 - $1) }.max() ?? 1, Self.tolerance, name)
        }
    }

    static let familiesFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Checkpoints/legacy-2026-12b")

    /// The commands that wrote each expected .npy of `legacy-2026-12b` (CHECKPOINT: the folder's file).
    static let familySamples: [(String, [String])] = [
        ("vae-seed5", ["sample", "vae", "--checkpoint", "vae-conv.safetensors", "--count", "3", "--seed", "5"]),
        ("vae-reconstruct", ["vae", "reconstruct", "--checkpoint", "vae-conv.safetensors", "--count", "2"]),
        ("vae-interpolate", ["vae", "interpolate", "--checkpoint", "vae-conv.safetensors", "--from", "3", "--to", "4", "--steps", "3"]),
        ("dcgan-seed5", ["sample", "dcgan", "--checkpoint", "dcgan.safetensors", "--count", "3", "--seed", "5"]),
        ("dcgan-seed5-raw", ["sample", "dcgan", "--checkpoint", "dcgan.safetensors", "--count", "3", "--seed", "5", "--no-ema"]),
        ("sngan-seed2", ["sample", "sngan", "--checkpoint", "sngan.safetensors", "--count", "3", "--seed", "2"]),
        ("sgm-ode-heun5", ["sample", "sgm", "--checkpoint", "sgm-ve.safetensors", "--count", "2", "--seed", "5", "--steps", "5"]),
        ("sgm-pc6", ["sample", "sgm", "--checkpoint", "sgm-ve.safetensors", "--count", "2", "--seed", "5", "--steps", "6", "--sampler", "pc"]),
    ]

    /// VAE, GAN and score-model checkpoints of the code before the model interface: the same images
    /// from the same commands, within `tolerance`.
    func testFamilyCheckpointsSampleTheSameImages() throws {
        let dir = tempDir()
        for (name, arguments) in Self.familySamples {
            let out = dir.appendingPathComponent("\(name).npy")
            let resolved = arguments.map { $0.hasSuffix(".safetensors") ? Self.familiesFolder.appendingPathComponent($0).path : $0 }
            try run(resolved + ["--out", out.path])
            let expected = try NPY.readImages(Self.familiesFolder.appendingPathComponent("\(name).npy")).scalars(as: Float.self)
            let actual = try NPY.readImages(out).scalars(as: Float.self)
            XCTAssertEqual(actual.count, expected.count, name)
            XCTAssertLessThan(zip(actual, expected).map { abs($0 - $1) }.max() ?? 1, Self.tolerance, name)
        }
    }

    /// Scripts written before the family verbs moved under their model's name still run: the older
    /// top-level spelling (`generative reconstruct`) writes what `generative vae reconstruct` writes,
    /// after a note on stderr naming the new spelling, and stays out of `--help`.
    func testFormerVerbSpellingsStillRun() throws {
        let dir = tempDir()
        let checkpoint = Self.familiesFolder.appendingPathComponent("vae-conv.safetensors").path
        let old = dir.appendingPathComponent("old.npy"), new = dir.appendingPathComponent("new.npy")
        try run(["reconstruct", "--checkpoint", checkpoint, "--count", "2", "--out", old.path])
        try run(["vae", "reconstruct", "--checkpoint", checkpoint, "--count", "2", "--out", new.path])
        XCTAssertEqual(try Data(contentsOf: old), try Data(contentsOf: new))
        XCTAssertNotNil(try Generative.parseAsRoot(["translate", "--checkpoint", "c", "--input", "x"]) as? FormerVerbSpelling<CycleGANVerbs, Translate>)
        for verb in ["reconstruct", "interpolate", "translate", "encode", "decode", "inpaint", "upscale"] {
            XCTAssertFalse(Generative.helpMessage().contains("  \(verb) "), verb)
        }
        let result = try runExecutable(["interpolate", "--checkpoint", checkpoint, "--frames", "3",
                                        "--out", dir.appendingPathComponent("i.npy").path])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.err.contains("note: `generative interpolate` is now `generative vae interpolate`"), result.err)
    }

    /// A sampler registered here is a `--sampler` value of `generative sample ddpm` and `eval`.
    func testATestOnlySamplerRunsThroughTheCommands() throws {
        SamplerRegistry.registerIfAbsent(TestOnlySamplers.oneStep)
        let dir = tempDir()
        let checkpoint = Self.ddpmFolder.appendingPathComponent("ddpm.safetensors").path
        let out = dir.appendingPathComponent("one.npy")
        try run(["sample", "ddpm", "--checkpoint", checkpoint, "--sampler", "test-one-step", "--count", "3", "--out", out.path])
        let images = try NPY.readImages(out)
        XCTAssertEqual(images.shape, [3, 28, 28, 1])
        // The same as running the sampler on the model directly.
        let model = try DDPMTraining.load(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)))
        let direct = model.sample(count: 3, sampler: try Sampler(named: "test-one-step", options: SamplerOptions()), seed: 0,
                                  labels: [10, 10, 10])
        XCTAssertLessThan(zip(images.scalars(as: Float.self), direct.scalars(as: Float.self)).map { abs($0 - $1) }.max() ?? 1, 1e-6)
        XCTAssertTrue(errorMessage(["sample", "ddpm", "--checkpoint", checkpoint, "--sampler", "nope"])?
            .contains("test-one-step") ?? false, "the error lists the registered samplers")
    }
}
