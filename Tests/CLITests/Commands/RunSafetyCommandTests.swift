import Foundation
@testable import generative
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenData
import XCTest

/// Runs that survive being killed, refuse bad data before the first step, and are reproducible,
/// through the real `generative` binary where a separate process is the point.
final class RunSafetyCommandTests: CommandTestCase {
    /// The `generative` executable beside the test bundle (built by `swift test`).
    func binary() throws -> URL { try executable() }

    /// Starts `generative ARGS` with its output discarded.
    func start(_ arguments: [String], in folder: URL) throws -> Process {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    func floats(_ url: URL) throws -> [String: [Float]] {
        try Checkpoint(contentsOf: url).tensors.filter { $0.value.dtype == .float32 }.mapValues { $0.scalars(as: Float.self) }
    }

    /// `kill -9` at 20 moments (loading, training, saving, resuming): every resume ends with the
    /// weights of the uninterrupted run bit for bit, and the checkpoint on disk always loads.
    func testKilledRunsResumeBitForBit() throws {
        let dir = tempDir()
        let common = ["train", "vae", "--epochs", "4", "--max-steps", "3000", "--batch-size", "64", "--save-every", "100", "--threads", "2"]
        let reference = try start(common + ["--out", "reference"], in: dir)
        reference.waitUntilExit()
        XCTAssertEqual(reference.terminationStatus, 0)
        let expected = try floats(dir.appendingPathComponent("reference/checkpoint.safetensors"))

        let checkpoint = dir.appendingPathComponent("killed/checkpoint.safetensors")
        let rng = RandomGenerator(seed: 20261206)
        var kills = 0, finished = false
        while !finished {
            let resume = FileManager.default.fileExists(atPath: checkpoint.path) ? ["--resume"] : ["--overwrite"]
            let process = try start(common + ["--out", "killed"] + resume, in: dir)
            if kills < 20 {
                usleep(UInt32(200_000 + rng.nextUnitDouble() * 800_000))
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    kills += 1
                }
            }
            process.waitUntilExit()
            finished = process.terminationReason == .exit && process.terminationStatus == 0
            if process.terminationReason == .exit && process.terminationStatus != 0 { return XCTFail("a resumed run failed") }
            // Whatever the moment of the kill, the checkpoint on disk is complete.
            if FileManager.default.fileExists(atPath: checkpoint.path) { XCTAssertNoThrow(try Checkpoint(contentsOf: checkpoint)) }
            XCTAssertLessThan(kills + (finished ? 0 : 1), 60, "the run keeps making progress")
        }
        XCTAssertEqual(kills, 20)
        XCTAssertEqual(try floats(checkpoint), expected)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: checkpoint.deletingLastPathComponent().path)
            .filter(AtomicFile.isTemporaryName)
        XCTAssertEqual(leftovers, [], "the last start removed the killed saves' temporary files")
    }

    /// Two `train` processes into one folder: the second is refused with the first one's PID.
    func testASecondTrainerIsRefused() throws {
        let dir = tempDir()
        let first = try start(["train", "vae", "--epochs", "50", "--batch-size", "32", "--out", "run"], in: dir)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() } }
        let lock = dir.appendingPathComponent("run/.lock")
        for _ in 0..<100 where (try? String(contentsOf: lock, encoding: .utf8))?.isEmpty ?? true { usleep(50_000) }
        let second = Process()
        second.executableURL = try binary()
        second.arguments = ["train", "vae", "--epochs", "1", "--out", "run", "--overwrite"]
        second.currentDirectoryURL = dir
        let errors = Pipe()
        second.standardError = errors
        second.standardOutput = FileHandle.nullDevice
        try second.run()
        second.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(second.terminationStatus, 0)
        XCTAssertTrue(message.contains("is in use: process \(first.processIdentifier)"), message)
        XCTAssertTrue(first.isRunning, "the first trainer goes on")
    }

    /// Same seed, machine and threads: the same checkpoint, bit for bit.
    func testSameSeedSameCheckpoint() throws {
        let dir = tempDir()
        for out in ["a", "b"] {
            try run(["train", "vae", "--epochs", "1", "--max-steps", "5", "--batch-size", "32", "--seed", "3",
                     "--out", dir.appendingPathComponent(out).path])
        }
        XCTAssertEqual(try floats(dir.appendingPathComponent("a/checkpoint.safetensors")),
                       try floats(dir.appendingPathComponent("b/checkpoint.safetensors")))
    }

    /// Bad data is refused before the first step, naming the file: an IDX file of 0 images, and a
    /// missing test split for a command that needs one.
    func testBadDataIsRefusedBeforeTraining() throws {
        let dir = tempDir()
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        var header = Data([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28])
        try header.write(to: empty.appendingPathComponent("train-images-idx3-ubyte"))
        let emptyRun = dir.appendingPathComponent("run-empty")
        let message = errorMessage(["train", "vae", "--data", empty.path, "--out", emptyRun.path]) ?? ""
        XCTAssertTrue(message.contains("train-images-idx3-ubyte") && message.contains("holds no images"), message)

        // A train split only: the VAE's reconstructions need the test split, so it is asked for first.
        let trainOnly = dir.appendingPathComponent("train-only")
        try FileManager.default.createDirectory(at: trainOnly, withIntermediateDirectories: true)
        header = Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) + Data(count: 2 * 784)
        try header.write(to: trainOnly.appendingPathComponent("train-images-idx3-ubyte"))
        let run = dir.appendingPathComponent("run-train-only")
        let missing = errorMessage(["train", "vae", "--data", trainOnly.path, "--out", run.path]) ?? ""
        XCTAssertTrue(missing.contains("test"), missing)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.safetensors").path),
                       "refused before the first step")
    }

    /// A diverging run with --detect-anomaly names the op where the first non-finite value appeared.
    func testDetectAnomalyNamesTheFirstBadOp() {
        let run = tempDir().appendingPathComponent("run").path
        let message = errorMessage(["train", "vae", "--epochs", "1", "--batch-size", "32", "--lr", "1e9", "--max-steps", "30",
                                    "--detect-anomaly", "--out", run]) ?? ""
        XCTAssertTrue(message.contains("(the first non-finite value: forward of ") || message.contains("(the first non-finite value: backward of "),
                      message)
    }

    /// An allocation the machine refuses (128 GB of latent codes) is a one-line error and exit
    /// status 1, not a crash.
    func testAnImpossibleAllocationIsAClearError() throws {
        let dir = tempDir()
        let checkpoint = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Checkpoints/legacy-2026-12b/dcgan.safetensors")
        let process = Process()
        process.executableURL = try binary()
        process.arguments = ["sample", "dcgan", "--checkpoint", checkpoint.path, "--count", "2000000000", "--out", "x.npy"]
        process.currentDirectoryURL = dir
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, message)
        XCTAssertEqual(process.terminationStatus, 1, message)
        XCTAssertTrue(message.hasPrefix("Error: out of memory: cannot allocate 128.00 GB"), message)
    }

    /// `export` loads the model first: a tensor of the wrong shape is refused, naming it, and nothing is written.
    func testExportChecksShapesAgainstTheModel() throws {
        let dir = tempDir()
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Checkpoints/legacy-2026-12b/vae-conv.safetensors")
        var checkpoint = try Checkpoint(contentsOf: source)
        checkpoint.tensors["model.fc_mu.bias"] = Tensor.zeros([5])
        let bad = dir.appendingPathComponent("bad.safetensors")
        try checkpoint.write(to: bad)
        let out = dir.appendingPathComponent("w.safetensors")
        let message = errorMessage(["export", "--checkpoint", bad.path, "--out", out.path]) ?? ""
        XCTAssertTrue(message.contains("fc_mu.bias"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    /// A negative count is a value, refused by the flag's own check (not "missing value").
    func testNegativeCountNamesTheFlag() {
        XCTAssertEqual(errorMessage(["eval", "noise", "--count", "-5"]), "--count must be at least 1")
        XCTAssertEqual(errorMessage(["sample", "vae", "--checkpoint", "x.safetensors", "--count", "-5"]), "--count must be at least 1")
    }

    func testKeepCheckpointsNeedsSaveEvery() {
        XCTAssertTrue(errorMessage(["train", "vae", "--keep-checkpoints", "2"])?.contains("--save-every") ?? false)
    }
}
