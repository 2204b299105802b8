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

    func train(_ dir: URL, epochs: Int, maxSteps: Int = 0, saveEvery: Int = 0, logEvery: Int = 50, tensorboard: Bool = false,
               resume: Bool) throws -> VAETraining {
        let model = VAETraining(learningRate: 1e-3, seed: 7)
        var options = TrainingOptions(epochs: epochs, batchSize: 64, learningRate: 1e-3, seed: 7, saveEvery: saveEvery,
                                      maxSteps: maxSteps)
        options.logEvery = logEvery
        options.tensorboard = tensorboard
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

    /// Step lines every `logEvery` steps with the loss, lr, gradient norm and speed; a resume drops
    /// what was written after the checkpoint and writes it again, identically.
    func testStepLinesSurviveResumeWithoutDuplicates() throws {
        // 300 images in batches of 64: 5 steps per epoch, 10 in all; a line every 2 steps.
        let straightDir = tempDir("s1")
        _ = try train(straightDir, epochs: 2, logEvery: 2, resume: false)
        let straight = try TrainingLoop.readStepMetrics(RunDirectory(straightDir).metrics)
        XCTAssertEqual(straight.map { $0["step"] }, [2, 4, 6, 8, 10])
        XCTAssertEqual(straight.map { $0["epoch"] }, [1, 1, 2, 2, 2])
        for row in straight {
            for key in ["loss", "lr", "grad_norm", "images_per_s", "wall_time"] { XCTAssertNotNil(row[key], key) }
            XCTAssertEqual(row["lr"], 1e-3)
            XCTAssertGreaterThan(row["grad_norm"] ?? 0, 0)
        }
        XCTAssertEqual(try TrainingLoop.readMetrics(RunDirectory(straightDir).metrics).map(\.epoch), [1, 2])

        // Stopped after step 7, then a crash after more lines were written: they are dropped on resume.
        let dir = tempDir("s2")
        _ = try train(dir, epochs: 2, maxSteps: 7, logEvery: 2, resume: false)
        let metrics = RunDirectory(dir).metrics
        try TrainingLoop.appendLine(Data(#"{"kind":"step","step":8,"epoch":2,"loss":1}"#.utf8) + Data([0x0A]), to: metrics)
        try TrainingLoop.appendLine(Data(#"{"kind":"epoch","epoch":2,"step":10,"losses":{"loss":1},"imagesPerSecond":1,"seconds":1}"#.utf8)
                                    + Data([0x0A]), to: metrics)
        _ = try train(dir, epochs: 2, logEvery: 2, resume: true)
        let resumed = try TrainingLoop.readStepMetrics(metrics)
        XCTAssertEqual(resumed.map { $0["step"] }, [2, 4, 6, 8, 10])
        XCTAssertEqual(resumed.map { $0["loss"] }, straight.map { $0["loss"] })
        XCTAssertEqual(resumed.map { $0["grad_norm"] }, straight.map { $0["grad_norm"] })
        XCTAssertEqual(try TrainingLoop.readMetrics(metrics).map(\.epoch), [1, 2])
    }

    /// Epoch lines are flat objects, one key per quantity, as the step lines are; the nested form of
    /// older logs reads the same.
    func testEpochLinesAreFlatAndOlderOnesStillRead() throws {
        let record = EpochRecord(epoch: 3, step: 30, losses: ["loss_d": 0.5, "loss_g": 2], imagesPerSecond: 100, seconds: 4)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        XCTAssertEqual(String(decoding: try encoder.encode(record), as: UTF8.self),
                       #"{"epoch":3,"images_per_s":100,"kind":"epoch","loss_d":0.5,"loss_g":2,"seconds":4,"step":30}"#)
        XCTAssertEqual(try JSONDecoder().decode(EpochRecord.self, from: try encoder.encode(record)), record)
        let older = #"{"epoch":3,"imagesPerSecond":100,"kind":"epoch","losses":{"loss_d":0.5,"loss_g":2},"seconds":4,"step":30}"#
        XCTAssertEqual(try JSONDecoder().decode(EpochRecord.self, from: Data(older.utf8)), record)
        var oldest = try JSONDecoder().decode(EpochRecord.self, from: Data(older.replacingOccurrences(of: #""kind":"epoch","#, with: "").utf8))
        XCTAssertNil(oldest.kind)
        oldest.kind = "epoch"
        XCTAssertEqual(oldest, record)
    }

    /// `tensorboard`: the step scalars and the epoch means in an event file under RUN/tensorboard,
    /// equal (to float32) to the metrics log's.
    func testTensorBoardEventsHoldTheLoggedScalars() throws {
        let dir = tempDir("tb")
        _ = try train(dir, epochs: 1, logEvery: 2, tensorboard: true, resume: false)
        let files = try FileManager.default.contentsOfDirectory(at: RunDirectory(dir).tensorboard, includingPropertiesForKeys: nil)
        XCTAssertEqual(files.count, 1)
        let events = try TFEventFile.read(try XCTUnwrap(files.first))
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        let steps = try TrainingLoop.readStepMetrics(RunDirectory(dir).metrics)
        let trainEvents = events.filter { $0.scalars.first?.tag.hasPrefix("train/") ?? false }
        XCTAssertEqual(trainEvents.map(\.step), steps.map { Int64($0["step"]!) })
        for (event, row) in zip(trainEvents, steps) {
            for (tag, value) in event.scalars {
                XCTAssertEqual(value, Float(row[String(tag.dropFirst("train/".count))] ?? .nan), tag)
            }
            XCTAssertEqual(Set(event.scalars.map(\.tag)), Set(["train/loss", "train/lr", "train/grad_norm", "train/images_per_s"]))
        }
        let epoch = try XCTUnwrap(events.last)
        XCTAssertEqual(epoch.step, 5)
        let record = try XCTUnwrap(try TrainingLoop.readMetrics(RunDirectory(dir).metrics).first)
        XCTAssertEqual(epoch.scalars.first { $0.tag == "epoch/loss" }?.value, Float(record.losses["loss"]!))
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
        // The toolkit that wrote it: the `--version` line.
        XCTAssertEqual(file.metadata["generative_version"], ToolkitVersion.line)
        XCTAssertTrue(file.metadata["generative_version"]?.hasPrefix("generative \(ToolkitVersion.number) (commit ") ?? false)
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
