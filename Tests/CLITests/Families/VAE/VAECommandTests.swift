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

/// The VAE commands end to end on tiny settings, and their bad-input errors.
final class VAECommandTests: CommandTestCase {
    func testTrainSampleReconstructInterpolateExport() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        try self.run(["train", "vae", "--epochs", "1", "--max-steps", "3", "--batch-size", "32", "--out", run])
        let checkpoint = run + "/checkpoint.safetensors"
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint))
        for out in ["s.png", "s.npy", "folder"] {
            try self.run(["sample", "vae", "--checkpoint", checkpoint, "--count", "5", "--out", dir.appendingPathComponent(out).path])
        }
        let npy = try NPY.readImages(dir.appendingPathComponent("s.npy"))
        XCTAssertEqual(npy.shape, [5, 28, 28, 1])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("folder").path).count, 5)
        try self.run(["vae", "reconstruct", "--checkpoint", checkpoint, "--count", "4", "--out", dir.appendingPathComponent("r.png").path])
        try self.run(["vae", "interpolate", "--checkpoint", checkpoint, "--frames", "4", "--out", dir.appendingPathComponent("i.npy").path])
        XCTAssertEqual(try NPY.readImages(dir.appendingPathComponent("i.npy")).shape, [4, 28, 28, 1])
        let exported = dir.appendingPathComponent("w.safetensors")
        try self.run(["export", "--checkpoint", checkpoint, "--out", exported.path])
        let state = try SafeTensorsFile(contentsOf: exported)
        XCTAssertEqual(state.names, ["fc1.bias", "fc1.weight", "fc3.bias", "fc3.weight", "fc4.bias", "fc4.weight",
                                     "fc_logvar.bias", "fc_logvar.weight", "fc_mu.bias", "fc_mu.weight"])
        // The exported state_dict initialises a new run (`--init`): after one step at a negligible
        // learning rate its weights are the first run's.
        let second = dir.appendingPathComponent("second").path
        try self.run(["train", "vae", "--epochs", "1", "--max-steps", "1", "--init-from", exported.path, "--out", second,
                      "--lr", "1e-12", "--seed", "5"])
        let a = try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)), b = try Checkpoint(contentsOf: URL(fileURLWithPath: second + "/checkpoint.safetensors"))
        for name in state.names {
            let x = try XCTUnwrap(a.tensors["model." + name]).scalars(as: Float.self)
            let y = try XCTUnwrap(b.tensors["model." + name]).scalars(as: Float.self)
            XCTAssertLessThan(zip(x, y).map { abs($0 - $1) }.max() ?? 0, 1e-6, name)
        }
        XCTAssertNotNil(errorMessage(["train", "vae", "--model", "conv", "--init-from", exported.path, "--out", second + "x"]),
                        "MLP weights must not load into the conv VAE")
    }

    func testConvVAEAndAutoencoderTrain() throws {
        let dir = tempDir()
        for model in ["conv", "ae"] {
            let run = dir.appendingPathComponent(model).path
            try self.run(["train", "vae", "--model", model, "--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--out", run])
            try self.run(["sample", "vae", "--checkpoint", run + "/checkpoint.safetensors", "--count", "3",
                          "--out", dir.appendingPathComponent(model + ".npy").path])
        }
    }

    func testSameSeedSameSamples() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        try self.run(["train", "vae", "--epochs", "1", "--max-steps", "2", "--out", run])
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        try self.run(["sample", "vae", "--checkpoint", run + "/checkpoint.safetensors", "--seed", "3", "--count", "4", "--out", a.path])
        try self.run(["sample", "vae", "--checkpoint", run + "/checkpoint.safetensors", "--seed", "3", "--count", "4", "--out", b.path])
        XCTAssertEqual(try Data(contentsOf: a), try Data(contentsOf: b))
    }

    func testBadInputsGetClearErrors() throws {
        let dir = tempDir()
        XCTAssertTrue(errorMessage(["train", "vae", "--epochs", "0"])?.contains("--epochs") ?? false)
        XCTAssertTrue(errorMessage(["train", "vae", "--lr", "abc"])?.contains("lr") ?? false)
        XCTAssertTrue(errorMessage(["train", "vae", "--reconstruction", "laplace"])?.contains("reconstruction") ?? false)
        let missing = dir.appendingPathComponent("nope").path
        XCTAssertTrue(errorMessage(["train", "vae", "--data", missing, "--out", dir.path])?.contains(missing) ?? false)
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertNotNil(errorMessage(["train", "vae", "--data", empty.path, "--out", dir.path]))
        let notCheckpoint = dir.appendingPathComponent("x.safetensors")
        try Data("garbage".utf8).write(to: notCheckpoint)
        XCTAssertTrue(errorMessage(["sample", "vae", "--checkpoint", notCheckpoint.path])?.contains(notCheckpoint.path) ?? false)
        XCTAssertTrue(errorMessage(["sample", "vae", "--checkpoint", notCheckpoint.path, "--count", "0"])?.contains("--count") ?? false)
    }

    func testHelpShowsDefaults() {
        let help = TrainVAE.helpMessage().split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        XCTAssertTrue(help.contains("default: 128"), help)
        XCTAssertTrue(help.contains("default: bernoulli"), help)
    }
}
