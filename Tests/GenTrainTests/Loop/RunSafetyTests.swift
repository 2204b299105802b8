import Foundation
@testable import GenTrain
import GenTensor
import GenFormats
import GenNN
import XCTest

/// A run stopped by a signal saves and says how to continue; a run folder too small for a
/// checkpoint is refused before the first step; periodic checkpoints can be kept; a killed save's
/// temporary files are recognised.
final class RunSafetyTests: XCTestCase {
    /// One weight that counts its steps; it raises `signal` during step `signalStep` (1-based).
    final class Counting: TrainableModel {
        static let kind = "counting"
        var weight: Float = 0
        let signalStep: Int, signal: Int32
        init(signalStep: Int = 0, signal: Int32 = SIGINT) { self.signalStep = signalStep; self.signal = signal }
        var makesImages: Bool { false }
        func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
            weight = Float(step + 1)
            if step + 1 == signalStep { raise(signal) }
            return [("loss", 1.0)]
        }
        func store(into checkpoint: inout Checkpoint) { checkpoint.tensors["model.w"] = Tensor([weight], shape: [1]) }
        func restore(from checkpoint: Checkpoint) throws { weight = checkpoint.tensors["model.w"]?.scalars(as: Float.self)[0] ?? 0 }
        func sampleGrid(seed: UInt64) -> Tensor { Tensor.zeros([1, 1, 1]) }
    }

    func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-safety-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func loop(_ model: TrainableModel, _ dir: URL, saveEvery: Int = 0, keep: Int = 0) -> TrainingLoop {
        var options = TrainingOptions(epochs: 1, batchSize: 2, seed: 1, saveEvery: saveEvery)
        options.keepCheckpoints = keep
        let loop = TrainingLoop(model: model, options: options, run: RunDirectory(dir), config: ["model": "counting"])
        loop.log = { _ in }
        return loop
    }

    func testSignalsFinishTheStepSaveAndStop() throws {
        for signal in [SIGINT, SIGTERM] {
            let dir = tempDir()
            XCTAssertThrowsError(try loop(Counting(signalStep: 3, signal: signal), dir)
                .train(images: Tensor.zeros([20, 1, 1, 1]), labels: nil, resume: false)) { error in
                XCTAssertEqual(error as? TrainingError, .interrupted(signal: signal, step: 3, checkpoint: RunDirectory(dir).checkpoint.path))
                XCTAssertEqual((error as? TrainingError)?.exitStatus, 128 + signal)
                XCTAssertTrue("\(error)".contains("continue with --resume"), "\(error)")
            }
            let c = try Checkpoint(contentsOf: RunDirectory(dir).checkpoint)
            XCTAssertEqual(try c.integer("step"), 3)
            XCTAssertEqual(c.tensors["model.w"]?.scalars(as: Float.self), [3])
            // The handlers are the process's own again: the resumed run goes to its end.
            XCTAssertEqual(StopSignal.received, 0)
            try loop(Counting(), dir).train(images: Tensor.zeros([20, 1, 1, 1]), labels: nil, resume: true)
            XCTAssertEqual(try Checkpoint(contentsOf: RunDirectory(dir).checkpoint).integer("step"), 10)
        }
    }

    func testTooLittleDiskSpaceIsRefusedBeforeTheFirstStep() throws {
        let dir = tempDir()
        let model = Counting()
        let training = loop(model, dir)
        training.freeSpace = { _ in 1000 }
        XCTAssertThrowsError(try training.train(images: Tensor.zeros([20, 1, 1, 1]), labels: nil, resume: false)) { error in
            guard case let .diskSpace(folder, free, needed)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(folder, dir.path)
            XCTAssertEqual(free, 1000)
            XCTAssertGreaterThan(needed, 1000)
            XCTAssertTrue("\(error)".contains("MB free"), "\(error)")
        }
        XCTAssertEqual(model.weight, 0, "no step ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: RunDirectory(dir).checkpoint.path))
    }

    func testKeepCheckpointsKeepsTheLastPeriodicOnes() throws {
        let dir = tempDir()
        try loop(Counting(), dir, saveEvery: 2, keep: 2).train(images: Tensor.zeros([20, 1, 1, 1]), labels: nil, resume: false)
        let kept = RunDirectory(dir).keptCheckpoints()
        XCTAssertEqual(kept.map(\.step), [8, 10])
        for (step, url) in kept {
            let c = try Checkpoint(contentsOf: url)
            XCTAssertEqual(try c.integer("step"), step)
            XCTAssertEqual(c.tensors["model.w"]?.scalars(as: Float.self), [Float(step)])
        }
    }

    func testOrphanTemporaryFilesAreRecognisedAndRemoved() throws {
        let dir = tempDir()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let orphan = ".checkpoint.safetensors.\(UUID().uuidString).tmp"
        for name in [orphan, "checkpoint.safetensors", ".lock", "notes.tmp"] {
            _ = FileManager.default.createFile(atPath: dir.appendingPathComponent(name).path, contents: Data([1]))
        }
        XCTAssertEqual(AtomicFile.removeOrphans(in: dir), [orphan])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), [".lock", "checkpoint.safetensors", "notes.tmp"])
    }
}
