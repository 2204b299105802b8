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

/// Run folders that protect themselves, through the real commands: a diverging run stops and
/// keeps its last finite checkpoint; a checkpoint is never replaced by accident; resuming keeps the
/// run's configuration; a folder has one trainer at a time.
final class ReliabilityTests: CommandTestCase {
    let tinyVAE = ["train", "vae", "--epochs", "1", "--batch-size", "32"]

    /// The error a failing command line throws (nil when it succeeds).
    func failure(_ arguments: [String]) -> Error? {
        do {
            try run(arguments)
            return nil
        } catch {
            return error
        }
    }

    func floats(_ path: String) throws -> [String: [Float]] {
        try Checkpoint(contentsOf: URL(fileURLWithPath: path)).tensors.filter { $0.value.dtype == .float32 }
            .mapValues { $0.scalars(as: Float.self) }
    }

    // MARK: non-finite values

    func testDivergingRunStopsAndKeepsTheLastFiniteCheckpoint() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("diverged").path
        let error = try XCTUnwrap(failure(tinyVAE + ["--lr", "1e9", "--save-every", "1", "--max-steps", "20", "--out", run]))
        XCTAssertNotEqual(Generative.exitCode(for: error), .success)
        let message = Generative.message(for: error)
        let pattern = #"^step (\d+): loss is (nan|inf|-inf); stopped, the last checkpoint \(step (\d+)\) is kept$"#
        let match = try XCTUnwrap(message.firstMatch(of: try Regex(pattern)), message)
        let badStep = try XCTUnwrap(Int(match.output[1].substring ?? "")), kept = try XCTUnwrap(Int(match.output[3].substring ?? ""))
        XCTAssertEqual(kept, badStep - 1, message)
        XCTAssertGreaterThanOrEqual(kept, 1, message)
        // The checkpoint on disk is the one a run stopped at that step writes, and it is finite.
        let stopped = dir.appendingPathComponent("stopped").path
        try self.run(tinyVAE + ["--lr", "1e9", "--max-steps", String(kept), "--out", stopped])
        let onDisk = try floats(run + "/checkpoint.safetensors")
        XCTAssertEqual(onDisk, try floats(stopped + "/checkpoint.safetensors"))
        XCTAssertTrue(onDisk.values.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors")).integer("step"), kept)
    }

    func testDivergingGANWritesNoCheckpoint() throws {
        let run = tempDir().appendingPathComponent("gan").path
        let message = errorMessage(["train", "gan", "--epochs", "1", "--batch-size", "16", "--lr", "1e9", "--save-every", "1",
                                    "--max-steps", "10", "--out", run]) ?? ""
        XCTAssertTrue(message.hasPrefix("step ") && message.contains("stopped"), message)
        XCTAssertTrue(message.contains("loss_d") || message.contains("loss_g") || message.contains("tensor "), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/checkpoint.safetensors"))
    }

    func testSamplingOrExportingNonFiniteWeightsIsRefused() throws {
        let dir = tempDir()
        let vaeRun = dir.appendingPathComponent("vae").path, ganRun = dir.appendingPathComponent("dcgan").path
        let ddpmRun = dir.appendingPathComponent("ddpm").path
        try run(tinyVAE + ["--max-steps", "1", "--out", vaeRun])
        try run(["train", "dcgan", "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--channels", "8", "--out", ganRun])
        try run(["train", "ddpm", "--max-steps", "1", "--width", "8", "--batch-size", "4", "--out", ddpmRun])
        for (run, key) in [(vaeRun, "model.fc3.weight"), (ganRun, "ema.generator.net.0.weight"), (ddpmRun, "ema.conv_in.weight")] {
            let url = URL(fileURLWithPath: run + "/checkpoint.safetensors")
            var c = try Checkpoint(contentsOf: url)
            let t = try XCTUnwrap(c.tensors[key], key)
            var values = t.scalars(as: Float.self)
            values[values.count / 2] = .nan
            c.tensors[key] = Tensor(values, shape: t.shape)
            try c.write(to: url)
        }
        let out = dir.appendingPathComponent("x.png").path
        for arguments in [["sample", "vae", "--checkpoint", vaeRun + "/checkpoint.safetensors", "--out", out],
                          ["vae", "reconstruct", "--checkpoint", vaeRun + "/checkpoint.safetensors", "--out", out],
                          ["sample", "dcgan", "--checkpoint", ganRun + "/checkpoint.safetensors", "--out", out],
                          ["sample", "ddpm", "--checkpoint", ddpmRun + "/checkpoint.safetensors", "--steps", "2", "--out", out],
                          ["eval", ddpmRun + "/checkpoint.safetensors", "--count", "10", "--steps", "2"],
                          ["export", "--checkpoint", vaeRun + "/checkpoint.safetensors", "--out", dir.appendingPathComponent("w.safetensors").path]] {
            let message = errorMessage(arguments) ?? "(succeeded)"
            let path = arguments.firstIndex(of: "--checkpoint").map { arguments[$0 + 1] } ?? arguments[1]
            XCTAssertTrue(message.contains(path) && message.contains("non-finite")
                          && ["model.fc3.weight", "ema.generator.net.0.weight", "ema.conv_in.weight"].contains(where: message.contains), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("w.safetensors").path))
    }

    // MARK: overwrites

    func testTrainingIntoAFolderWithACheckpointNeedsResumeOrOverwrite() throws {
        let run = tempDir().appendingPathComponent("run").path
        let checkpoint = run + "/checkpoint.safetensors"
        try self.run(tinyVAE + ["--max-steps", "2", "--out", run])
        let before = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        let message = errorMessage(tinyVAE + ["--max-steps", "1", "--out", run]) ?? ""
        XCTAssertTrue(message.contains(checkpoint) && message.contains("--resume") && message.contains("--overwrite"), message)
        XCTAssertFalse(message.contains("\n"), message)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: checkpoint)), before)
        XCTAssertTrue(errorMessage(tinyVAE + ["--resume", "--overwrite", "--out", run])?.contains("exclude each other") ?? false)
        try self.run(tinyVAE + ["--max-steps", "1", "--overwrite", "--out", run])
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)).integer("step"), 1)
    }

    func testResumeRefusesAnotherModelOrConfigurationWithADiff() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        let checkpoint = run + "/checkpoint.safetensors"
        try self.run(tinyVAE + ["--max-steps", "1", "--out", run])
        let before = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        let cases: [([String], String)] = [
            (tinyVAE + ["--model", "ae"], "architecture was mlp, now ae"),
            (tinyVAE + ["--reconstruction", "gaussian"], "reconstruction was bernoulli, now gaussian"),
            (["train", "vae", "--epochs", "1", "--batch-size", "16"], "batch_size was 32, now 16"),
            (["train", "dcgan", "--epochs", "1", "--batch-size", "32", "--channels", "8"], "model was vae, now gan"),
        ]
        for (arguments, expected) in cases {
            let message = errorMessage(arguments + ["--max-steps", "2", "--resume", "--out", run]) ?? "(resumed)"
            XCTAssertTrue(message.hasPrefix("--resume: ") && message.contains(expected), message)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: checkpoint)), before)
        // Several differences at once are all listed.
        let both = errorMessage(["train", "vae", "--epochs", "1", "--batch-size", "16", "--model", "conv", "--max-steps", "2",
                                 "--resume", "--out", run]) ?? ""
        XCTAssertTrue(both.contains("architecture was mlp, now conv; batch_size was 32, now 16"), both)
        // The settings that may change on resume do.
        try self.run(["train", "vae", "--epochs", "2", "--batch-size", "32", "--max-steps", "3", "--save-every", "1",
                      "--threads", "1", "--resume", "--out", run])
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)).integer("step"), 3)
        // A GAN variant is part of its configuration.
        let gan = dir.appendingPathComponent("gan").path
        try self.run(["train", "dcgan", "--epochs", "1", "--max-steps", "1", "--batch-size", "8", "--channels", "8", "--out", gan])
        let variant = errorMessage(["train", "lsgan", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--channels", "8",
                                    "--resume", "--out", gan]) ?? ""
        XCTAssertTrue(variant.contains("model was dcgan, now lsgan"), variant)
        let loss = errorMessage(["train", "dcgan", "--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--channels", "8",
                                 "--loss", "minimax", "--resume", "--out", gan]) ?? ""
        XCTAssertTrue(loss.contains("gan_config.generatorLoss was non-saturating, now minimax"), loss)
    }

    func testOlderCheckpointWithoutAStoredSettingResumes() throws {
        let run = tempDir().appendingPathComponent("run").path
        let url = URL(fileURLWithPath: run + "/checkpoint.safetensors")
        try self.run(tinyVAE + ["--max-steps", "1", "--out", run])
        var c = try Checkpoint(contentsOf: url)
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(c.metadata["config"]).utf8)) as? [String: String])
        config["batch_size"] = nil
        c.metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        try c.write(to: url)
        try self.run(["train", "vae", "--epochs", "1", "--batch-size", "16", "--max-steps", "2", "--resume", "--out", run])
        XCTAssertEqual(try Checkpoint(contentsOf: url).integer("step"), 2)
    }

    func testExportRefusesToWriteOverItsCheckpoint() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        let checkpoint = run + "/checkpoint.safetensors"
        try self.run(tinyVAE + ["--max-steps", "1", "--out", run])
        let link = dir.appendingPathComponent("link.safetensors").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: checkpoint)
        for out in [checkpoint, run + "/../run/./checkpoint.safetensors", link] {
            let message = errorMessage(["export", "--checkpoint", checkpoint, "--out", out]) ?? "(exported)"
            XCTAssertTrue(message.contains("--out") && message.contains("is the checkpoint"), message)
        }
        XCTAssertNoThrow(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)))
    }

    func testEachTrainCommandHasItsOwnDefaultFolder() throws {
        let dir = tempDir()
        let previous = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(dir.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try run(["train", "vae", "--epochs", "1", "--max-steps", "1", "--batch-size", "8"])
        try run(["train", "classifier", "--epochs", "1", "--max-steps", "1", "--batch-size", "8"])
        try run(["train", "noisy-classifier", "--epochs", "1", "--max-steps", "1", "--batch-size", "8"])
        for kind in ["vae", "classifier", "noisy-classifier"] {
            let c = try Checkpoint(contentsOf: dir.appendingPathComponent("runs/\(kind)/checkpoint.safetensors"))
            XCTAssertEqual(c.metadata["model"], kind)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/default").path))
        XCTAssertEqual(try TrainDCGAN.parse([]).flags.common.runFolder.path("dcgan"), "runs/dcgan")
        XCTAssertEqual(try TrainDDPM.parse([]).flags.common.runFolder.path("ddpm"), "runs/ddpm")
    }

    func testHelpSaysWhatMayChangeOnResume() {
        func help(_ text: String) -> String { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }
        XCTAssertTrue(help(TrainVAE.helpMessage()).contains("Only --epochs, --minutes, --max-steps, --save-every, --keep-checkpoints, --log-every, --tensorboard and --threads may differ"))
        XCTAssertTrue(help(TrainDCGAN.helpMessage()).contains("Only --epochs, --minutes, --max-steps, --save-every, --keep-checkpoints, --log-every, --tensorboard and --threads may differ"))
        XCTAssertTrue(help(TrainDDPM.helpMessage()).contains("Only --epochs, --minutes, --max-steps, --save-every, --keep-checkpoints, --log-every, --tensorboard and --threads may differ"))
        XCTAssertTrue(help(TrainClassifier.helpMessage()).contains("--overwrite"))
    }

    // MARK: one trainer per folder

    func testASecondTrainerIntoTheSameFolderIsRefused() throws {
        let run = tempDir().appendingPathComponent("run")
        // A lock held by another open file (as another process would hold it) refuses the command.
        let held = try RunLock(folder: run)
        let message = errorMessage(tinyVAE + ["--max-steps", "1", "--out", run.path]) ?? "(trained)"
        XCTAssertTrue(message.contains("process \(getpid())") && message.contains(run.path), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.safetensors").path))
        held.release()
        try self.run(tinyVAE + ["--max-steps", "1", "--out", run.path])
    }

    func testTwoConcurrentTrainingProcesses() throws {
        let run = tempDir().appendingPathComponent("run")
        let process = Process()
        process.executableURL = try executable()
        process.arguments = ["train", "ddpm", "--minutes", "0.1", "--width", "8", "--batch-size", "4", "--out", run.path]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        // Wait until the first process holds the folder (its PID in the lock file).
        let lockFile = run.appendingPathComponent(".lock")
        let deadline = Date().addingTimeInterval(30)
        while (try? String(contentsOf: lockFile, encoding: .utf8)) != "\(process.processIdentifier)\n" && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let message = errorMessage(tinyVAE + ["--max-steps", "1", "--out", run.path]) ?? "(trained)"
        process.waitUntilExit()
        XCTAssertTrue(message.contains("process \(process.processIdentifier)"), message)
        XCTAssertEqual(process.terminationStatus, 0, String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        XCTAssertEqual(try Checkpoint(contentsOf: run.appendingPathComponent("checkpoint.safetensors")).metadata["model"], "ddpm")
        // And the other way round: while this process holds the folder, a second process is refused.
        let held = try RunLock(folder: run)
        defer { held.release() }
        let second = Process()
        second.executableURL = try executable()
        second.arguments = ["train", "ddpm", "--resume", "--max-steps", "1", "--width", "8", "--batch-size", "4", "--out", run.path]
        second.standardOutput = FileHandle.nullDevice
        let secondErrors = Pipe()
        second.standardError = secondErrors
        try second.run()
        second.waitUntilExit()
        let refusal = String(decoding: secondErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(second.terminationStatus, 0)
        XCTAssertTrue(refusal.contains("process \(getpid())"), refusal)
    }
}
