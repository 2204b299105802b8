import Foundation
import GenTestSupport
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Checkpoints round-trip exactly; resume is bit-exact (after whole epochs and mid-epoch); bad
/// checkpoints give clear errors.
final class TrainingLoopTests: XCTestCase {
    /// 300 Fashion-MNIST training images (a small, real batch source).
    static let images: Tensor = {
        let data = try! ImageDataset.fashionMNIST(split: .train)
        return data.images.rows(Array(0..<300))
    }()

    func tempDir(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(name)-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func train(_ dir: URL, epochs: Int, maxSteps: Int = 0, saveEvery: Int = 0, resume: Bool) throws -> VAETraining {
        let model = VAETraining(learningRate: 1e-3, seed: 7)
        let options = TrainingOptions(epochs: epochs, batchSize: 64, learningRate: 1e-3, seed: 7, saveEvery: saveEvery,
                                      maxSteps: maxSteps)
        let loop = TrainingLoop(model: model, options: options, run: RunDirectory(dir), config: ["model": "vae"])
        loop.log = { _ in }
        try loop.train(images: Self.images, labels: nil, resume: resume)
        return model
    }

    func weights(_ m: VAETraining) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: m.model.namedParameters.map { ($0.0, $0.1.value.scalars(as: Float.self)) })
    }

    func testResumeAfterWholeEpochsIsBitExact() throws {
        let straight = try train(tempDir("a"), epochs: 2, resume: false)
        let dir = tempDir("b")
        _ = try train(dir, epochs: 1, resume: false)
        let resumed = try train(dir, epochs: 2, resume: true)
        XCTAssertEqual(weights(straight), weights(resumed))
        XCTAssertEqual(straight.optimizer.stepCount, resumed.optimizer.stepCount)
        let log = try TrainingLoop.readMetrics(RunDirectory(dir).metrics)
        XCTAssertEqual(log.map { $0.epoch }, [1, 2])
    }

    func testResumeMidEpochIsBitExact() throws {
        let straight = try train(tempDir("c"), epochs: 2, resume: false)
        let dir = tempDir("d")
        // 5 batches per epoch: stop after 7 steps (mid-epoch 2), then resume.
        _ = try train(dir, epochs: 2, maxSteps: 7, saveEvery: 3, resume: false)
        let checkpoint = try Checkpoint(contentsOf: RunDirectory(dir).checkpoint)
        XCTAssertEqual(try checkpoint.integer("step"), 7)
        XCTAssertEqual(try checkpoint.integer("batch"), 2)
        let resumed = try train(dir, epochs: 2, resume: true)
        XCTAssertEqual(weights(straight), weights(resumed))
        let straightLog = try TrainingLoop.readMetrics(RunDirectory(dir).metrics)
        XCTAssertEqual(straightLog.count, 2)
    }

    func testCheckpointRoundTripsExactly() throws {
        let dir = tempDir("e")
        let model = try train(dir, epochs: 1, resume: false)
        let copy = VAETraining(learningRate: 1e-3, seed: 99)
        try copy.restore(from: try Checkpoint(contentsOf: RunDirectory(dir).checkpoint))
        XCTAssertEqual(weights(model), weights(copy))
        XCTAssertEqual(copy.optimizer.stepCount, model.optimizer.stepCount)
        for ((_, a), (_, b)) in zip(model.optimizer.namedState, copy.optimizer.namedState) {
            XCTAssertEqual(a.doubleScalars(), b.doubleScalars())
        }
        // The model's weights sit under PyTorch's names with the `model.` prefix.
        let file = try SafeTensorsFile(contentsOf: RunDirectory(dir).checkpoint)
        XCTAssertTrue(file.names.contains("model.fc1.weight"))
        XCTAssertTrue(file.names.contains("optim.model.fc1.weight.exp_avg"))
        XCTAssertNotNil(file.metadata["config"])
    }

    func testTruncatedAndCorruptCheckpointsGiveClearErrors() throws {
        let dir = tempDir("f")
        _ = try train(dir, epochs: 1, maxSteps: 1, resume: false)
        let url = RunDirectory(dir).checkpoint
        let bytes = try Data(contentsOf: url)
        let truncated = dir.appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        XCTAssertThrowsError(try Checkpoint(contentsOf: truncated)) { error in
            XCTAssertTrue("\(error)".contains("truncated.safetensors"), "\(error)")
        }
        var corrupt = bytes
        corrupt[10] = 0x7B  // breaks the JSON header
        corrupt[11] = 0x7B
        let corruptURL = dir.appendingPathComponent("corrupt.safetensors")
        try corrupt.write(to: corruptURL)
        XCTAssertThrowsError(try Checkpoint(contentsOf: corruptURL)) { error in
            XCTAssertTrue("\(error)".contains("corrupt.safetensors"), "\(error)")
        }
        // A plain state_dict is not a checkpoint.
        let plain = dir.appendingPathComponent("plain.safetensors")
        try SafeTensorsFile.write(["w": Tensor([1] as [Float])], to: plain)
        XCTAssertThrowsError(try Checkpoint(contentsOf: plain)) { error in
            XCTAssertTrue("\(error)".contains("not a generative checkpoint"), "\(error)")
        }
    }
}
