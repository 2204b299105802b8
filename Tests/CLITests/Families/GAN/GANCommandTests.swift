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

/// The GAN commands end to end on tiny settings (`train MODEL` then `sample MODEL`), and their
/// bad-input errors.
final class GANCommandTests: CommandTestCase {
    /// Trains `model` for two generator steps and samples it with and without EMA.
    func trainAndSample(_ model: String, _ extra: [String] = [], dir: URL) throws -> String {
        let run = dir.appendingPathComponent(model).path
        try self.run(["train", model, "--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--out", run] + extra)
        let checkpoint = run + "/checkpoint.safetensors"
        let c = try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint))
        XCTAssertEqual(c.metadata["variant"], model)
        XCTAssertEqual(c.metadata["step"], "2")
        let a = dir.appendingPathComponent(model + "-ema.npy"), b = dir.appendingPathComponent(model + "-raw.npy")
        try self.run(["sample", model, "--checkpoint", checkpoint, "--count", "5", "--seed", "3", "--out", a.path])
        try self.run(["sample", model, "--checkpoint", checkpoint, "--count", "5", "--seed", "3", "--out", b.path, "--no-ema"])
        let ema = try NPY.readImages(a), raw = try NPY.readImages(b)
        XCTAssertEqual(ema.shape, [5, 28, 28, 1])
        XCTAssertTrue(ema.scalars(as: Float.self).allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertNotEqual(ema.scalars(as: Float.self), raw.scalars(as: Float.self), "\(model): --no-ema changed nothing")
        return checkpoint
    }

    func testGANAndDCGANTrainAndSample() throws {
        let dir = tempDir()
        _ = try trainAndSample("gan", ["--loss", "minimax", "--d-steps", "2"], dir: dir)
        let checkpoint = try trainAndSample("dcgan", dir: dir)
        try run(["sample", "dcgan", "--checkpoint", checkpoint, "--count", "4", "--out", dir.appendingPathComponent("g.png").path])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("g.png").path))
        // Resume continues the run to a higher step count.
        try run(["train", "dcgan", "--epochs", "1", "--max-steps", "3", "--batch-size", "16", "--resume",
                 "--out", dir.appendingPathComponent("dcgan").path])
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)).metadata["step"], "3")
        // The ablation without the discriminator's BatchNorm trains, resumes and samples.
        let ablation = try trainAndSample("dcgan", ["--no-d-batchnorm", "--channels", "8"],
                                          dir: dir.appendingPathComponent("no-bn"))
        let stored = try Checkpoint(contentsOf: URL(fileURLWithPath: ablation))
        XCTAssertFalse(try GANTraining.configuration(in: stored).discriminatorBatchNorm)
        XCTAssertNil(stored.tensors["discriminator.net.3.weight"])
        XCTAssertNotNil(stored.tensors["discriminator.net.5.weight"])
        try run(["train", "dcgan", "--no-d-batchnorm", "--channels", "8", "--epochs", "1", "--max-steps", "3",
                 "--batch-size", "16", "--resume", "--out", dir.appendingPathComponent("no-bn/dcgan").path])
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: ablation)).metadata["step"], "3")
    }

    /// `--init-from NETWORK=FILE` through the executable: an exported generator starts a new run
    /// (logged on stderr); a state_dict of the wrong network is refused on one line, exit 1.
    func testInitFromExportedNetworks() throws {
        let dir = tempDir()
        let checkpoint = try trainAndSample("dcgan", dir: dir)
        let g = dir.appendingPathComponent("g.safetensors").path, d = dir.appendingPathComponent("d.safetensors").path
        try run(["export", "--checkpoint", checkpoint, "--out", g])
        try run(["export", "--checkpoint", checkpoint, "--network", "discriminator", "--out", d])
        let common = ["train", "dcgan", "--epochs", "1", "--max-steps", "1", "--batch-size", "16", "--threads", "1"]
        let (status, _, err) = try runExecutable(common + ["--init-from", "generator=" + g, "--init-from", "discriminator=" + d,
                                                          "--out", dir.appendingPathComponent("second").path])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("initialised the generator from \(g)"), err)
        XCTAssertTrue(err.contains("initialised the discriminator from \(d)"), err)
        let (badStatus, _, badErr) = try runExecutable(common + ["--init-from", d, "--out", dir.appendingPathComponent("third").path])
        XCTAssertEqual(badStatus, 1)
        let lines = badErr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        XCTAssertEqual(lines.count, 1, badErr)
        XCTAssertTrue(lines.first?.hasPrefix("Error: --init-from \(d): the state_dict does not fit the generator: ") ?? false, badErr)
        XCTAssertTrue(lines.first?.contains(" missing (") ?? false, badErr)
        XCTAssertTrue(lines.first?.contains(" unexpected (") ?? false, badErr)
    }

    func testWassersteinAndLeastSquaresVariantsTrainAndSample() throws {
        let dir = tempDir()
        let wgan = try trainAndSample("wgan", ["--channels", "8"], dir: dir)
        let config = try GANTraining.configuration(in: try Checkpoint(contentsOf: URL(fileURLWithPath: wgan)))
        XCTAssertEqual(config.discriminatorSteps, 5)
        XCTAssertEqual(config.optimizer, .rmsprop)
        XCTAssertEqual(config.generatorLearningRate, 5e-5)
        let gp = try trainAndSample("wgan-gp", ["--channels", "8", "--d-steps", "2"], dir: dir)
        let gpConfig = try GANTraining.configuration(in: try Checkpoint(contentsOf: URL(fileURLWithPath: gp)))
        XCTAssertEqual([gpConfig.beta1, gpConfig.beta2, gpConfig.generatorLearningRate, gpConfig.penaltyWeight], [0, 0.9, 1e-4, 10])
        _ = try trainAndSample("lsgan", ["--channels", "8", "--lr", "1e-3"], dir: dir)
        let sn = try trainAndSample("sngan", ["--channels", "8"], dir: dir)
        XCTAssertNotNil(try Checkpoint(contentsOf: URL(fileURLWithPath: sn)).tensors["discriminator.net.2.weight_orig"])
        let standard = try trainAndSample("sngan", ["--channels", "8", "--generator", "sn-cnn", "--critic", "sn-cnn"],
                                          dir: dir.appendingPathComponent("sn-cnn"))
        let standardConfig = try GANTraining.configuration(in: try Checkpoint(contentsOf: URL(fileURLWithPath: standard)))
        XCTAssertEqual(standardConfig.zDim, 128, "the standard-CNN generator's own latent size")
        XCTAssertNotNil(try Checkpoint(contentsOf: URL(fileURLWithPath: standard)).tensors["discriminator.c3_0.weight_orig"])
        _ = try trainAndSample("wgan-gp", ["--channels", "8", "--d-steps", "2", "--generator", "resnet", "--critic", "resnet"],
                               dir: dir.appendingPathComponent("resnet"))
        let cgan = try trainAndSample("cgan", ["--channels", "8"], dir: dir)
        let one = dir.appendingPathComponent("class4.npy")
        let labels = dir.appendingPathComponent("labels.npy")
        try run(["sample", "cgan", "--checkpoint", cgan, "--count", "3", "--class", "4", "--out", one.path, "--labels-out", labels.path])
        XCTAssertEqual(try NPY.readImages(one).shape, [3, 28, 28, 1])
        XCTAssertEqual(try NPY.read(labels).scalars(as: Int64.self), [4, 4, 4])
        XCTAssertTrue(errorMessage(["sample", "cgan", "--checkpoint", cgan, "--class", "10"])?.contains("--class") ?? false)
        // A checkpoint of one variant is refused by another's sampler, naming both.
        let message = errorMessage(["sample", "dcgan", "--checkpoint", wgan]) ?? ""
        XCTAssertTrue(message.contains("wgan") && message.contains("sample wgan"), message)
    }

    func testCycleGANTrainsAndTranslates() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("cyclegan").path
        try self.run(["train", "cyclegan", "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--channels", "4",
                      "--residual-blocks", "1", "--out", run])
        let checkpoint = run + "/checkpoint.safetensors"
        let c = try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint))
        XCTAssertEqual(c.metadata["model"], "cyclegan")
        XCTAssertEqual(c.tensors["preview.a"]?.shape, [8, 28, 28, 1], "preview from the test split")
        // Ten test sneakers as a .npy, translated both ways, by `translate` and by `sample cyclegan`.
        let input = dir.appendingPathComponent("in.npy")
        try NPY.writeImages(try XCTUnwrap(c.tensors["preview.a"]), to: input)
        let out = dir.appendingPathComponent("out.npy")
        let translate = try Translate.parse(["--checkpoint", checkpoint, "--input", input.path, "--out", out.path])
        try translate.run()
        XCTAssertEqual(try NPY.readImages(out).shape, [8, 28, 28, 1])
        let back = dir.appendingPathComponent("back.png")
        try self.run(["sample", "cyclegan", "--checkpoint", checkpoint, "--input", out.path, "--direction", "b2a", "--out", back.path])
        XCTAssertTrue(FileManager.default.fileExists(atPath: back.path))
        XCTAssertTrue(errorMessage(["train", "cyclegan", "--data-a", dir.path])?.contains("--data-b") ?? false)
        XCTAssertTrue(errorMessage(["train", "cyclegan", "--domain-a", "3", "--domain-b", "3"])?.contains("differ") ?? false)
        XCTAssertTrue(errorMessage(["train", "cyclegan", "--d-steps", "2"])?.contains("cyclegan") ?? false)
        XCTAssertNotNil(errorMessage(["sample", "cyclegan", "--checkpoint", checkpoint, "--input", input.path, "--direction", "up"]))
        let wrong = dir.appendingPathComponent("gan")
        try self.run(["train", "gan", "--epochs", "1", "--max-steps", "1", "--batch-size", "4", "--out", wrong.path])
        let wrongKind = errorMessage(["cyclegan", "translate", "--checkpoint", wrong.path + "/checkpoint.safetensors",
                                      "--input", input.path, "--out", out.path]) ?? ""
        XCTAssertTrue(wrongKind.contains("'gan' checkpoint, not a cyclegan one") && wrongKind.contains("generative sample gan"),
                      wrongKind)
    }

    func testBadInputsGetClearErrors() throws {
        let dir = tempDir()
        XCTAssertTrue(errorMessage(["train", "dcgan", "--d-steps", "0"])?.contains("--d-steps") ?? false)
        XCTAssertTrue(errorMessage(["train", "gan", "--lr", "-1"])?.contains("--lr") ?? false)
        XCTAssertTrue(errorMessage(["train", "gan", "--loss", "hinge"])?.contains("loss") ?? false)
        XCTAssertTrue(errorMessage(["train", "wgan", "--beta1", "0.5", "--out", dir.path])?.contains("RMSprop") ?? false
                      || errorMessage(["train", "wgan", "--beta1", "0.5", "--out", dir.path])?.contains("rmsprop") ?? false)
        XCTAssertTrue(errorMessage(["train", "wgan-gp", "--beta2", "1"])?.contains("--beta2") ?? false)
        XCTAssertTrue(errorMessage(["train", "wgan", "--clip", "0", "--out", dir.path])?.contains("clipping") ?? false)
        XCTAssertTrue(errorMessage(["train", "lsgan", "--ema-decay", "1"])?.contains("--ema-decay") ?? false)
        XCTAssertNotNil(errorMessage(["train", "wgan-gp", "--gp-weight", "x"]))
        XCTAssertTrue(errorMessage(["train", "sngan", "--critic", "resnet50"])?.contains("--critic") ?? false)
        XCTAssertTrue(errorMessage(["train", "dcgan", "--generator", "sn-cnn"])?.contains("--generator") ?? false)
        let missing = dir.appendingPathComponent("nope").path
        XCTAssertTrue(errorMessage(["train", "gan", "--data", missing, "--out", dir.path])?.contains(missing) ?? false)
        let notCheckpoint = dir.appendingPathComponent("x.safetensors")
        try Data("garbage".utf8).write(to: notCheckpoint)
        XCTAssertTrue(errorMessage(["sample", "gan", "--checkpoint", notCheckpoint.path])?.contains(notCheckpoint.path) ?? false)
        XCTAssertTrue(errorMessage(["sample", "wgan", "--checkpoint", notCheckpoint.path, "--count", "0"])?.contains("--count") ?? false)
    }

    func testHelpShowsTheVariantDefaults() {
        let help = TrainWGANGP.helpMessage().split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        XCTAssertTrue(help.contains("--d-steps"), help)
        XCTAssertTrue(help.contains("default: 10"), help)
        XCTAssertTrue(SampleCommand<GANSample<DCGANVariant>>.helpMessage().contains("--no-ema"))
    }
}
