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

/// The training loop's guards: a non-finite loss or weight stops the run and keeps the last finite
/// checkpoint; resuming compares configurations; a run folder's lock excludes a second holder.
final class TrainingGuardTests: XCTestCase {
    /// A model of one weight that goes bad at a chosen step: its loss or its weight becomes `bad`.
    final class Diverging: TrainableModel {
        static let kind = "diverging"
        var weight: Float = 0
        let badStep: Int, badLoss: Bool, bad: Double
        init(badStep: Int, badLoss: Bool, bad: Double) {
            self.badStep = badStep; self.badLoss = badLoss; self.bad = bad
        }
        var makesImages: Bool { false }
        func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
            weight = step + 1 == badStep && !badLoss ? Float(bad) : Float(step + 1)
            return [("loss", 1.0), ("loss_term", step + 1 == badStep && badLoss ? bad : 0.5)]
        }
        func store(into checkpoint: inout Checkpoint) { checkpoint.tensors["model.w"] = Tensor([weight], shape: [1]) }
        func restore(from checkpoint: Checkpoint) throws { weight = checkpoint.tensors["model.w"]?.scalars(as: Float.self)[0] ?? 0 }
        func sampleGrid(seed: UInt64) -> Tensor { Tensor.zeros([28, 28, 1]) }
    }

    func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-guard-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Trains `model` on 20 one-pixel images in batches of 2, saving every 2 steps.
    func train(_ model: TrainableModel, _ dir: URL, config: [String: String] = ["model": "diverging"], resume: Bool = false) throws {
        let loop = TrainingLoop(model: model, options: TrainingOptions(epochs: 1, batchSize: 2, seed: 1, saveEvery: 2),
                                run: RunDirectory(dir), config: config)
        loop.log = { _ in }
        try loop.train(images: Tensor.zeros([20, 1, 1, 1]), labels: nil, resume: resume)
    }

    func storedWeight(_ dir: URL) throws -> (step: Int, weight: Float) {
        let c = try Checkpoint(contentsOf: RunDirectory(dir).checkpoint)
        return (try c.integer("step"), try XCTUnwrap(c.tensors["model.w"]).scalars(as: Float.self)[0])
    }

    /// Labels outside a model's classes are refused before the first step (they would index past a
    /// logit row or an embedding): the classifier's 10 outputs, a conditional GAN's classes; a model
    /// that reads no labels ignores them.
    func testOutOfRangeLabelsAreRefusedBeforeTraining() throws {
        let images = Tensor.uniform([6, 28, 28, 1], generator: RandomGenerator(seed: 1))
        let labels = Tensor([Int64(0), 3, 9, 12, 1, 2], shape: [6])
        func run(_ model: TrainableModel) throws {
            let dir = tempDir()
            let loop = TrainingLoop(model: model, options: TrainingOptions(epochs: 1, batchSize: 2, seed: 1), run: RunDirectory(dir),
                                    config: ["model": type(of: model).kind])
            loop.log = { _ in }
            try loop.train(images: images, labels: labels, resume: false)
            XCTAssertTrue(FileManager.default.fileExists(atPath: RunDirectory(dir).checkpoint.path))
        }
        for model in [ClassifierTraining(learningRate: 1e-3, seed: 0, flip: false, maxShift: 0, previewImages: images) as TrainableModel,
                      GANTraining(variant: .cgan, seed: 0)] {
            XCTAssertThrowsError(try run(model)) { error in
                XCTAssertEqual(error as? TrainingError, .labelOutOfRange(index: 3, label: 12, classes: 10))
                XCTAssertEqual("\(error)", "training label 12 (image 3) is outside 0..<10: the model has 10 classes; check the labels file of --data")
            }
        }
        XCTAssertNoThrow(try run(GANTraining(variant: .dcgan, seed: 0)), "an unconditional GAN reads no labels")
    }

    /// `clipGradientNorm` reaches every optimiser a model names (both of a GAN's), and the step log's
    /// gradient norms are the norms before clipping.
    func testGradientClippingReachesEveryOptimiser() throws {
        let model = GANTraining(variant: .dcgan, seed: 0)
        var options = TrainingOptions(epochs: 1, batchSize: 4, seed: 1, maxSteps: 2)
        options.clipGradientNorm = 1e-3
        options.logEvery = 1
        let dir = tempDir()
        let loop = TrainingLoop(model: model, options: options, run: RunDirectory(dir), config: ["model": "dcgan"])
        loop.log = { _ in }
        try loop.train(images: Tensor.uniform([8, 28, 28, 1], generator: RandomGenerator(seed: 2)), labels: nil, resume: false)
        XCTAssertEqual(model.generatorOptimizer.maxGradientNorm, 1e-3)
        XCTAssertEqual(model.discriminatorOptimizer.maxGradientNorm, 1e-3)
        let steps = try TrainingLoop.readStepMetrics(RunDirectory(dir).metrics)
        XCTAssertEqual(steps.count, 2)
        XCTAssertGreaterThan(steps[0]["grad_norm_g"] ?? 0, 1e-3, "the norm before clipping")
    }

    func testNonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        let dir = tempDir()
        XCTAssertThrowsError(try train(Diverging(badStep: 5, badLoss: true, bad: .nan), dir)) { error in
            XCTAssertEqual(error as? TrainingError, .nonFinite(step: 5, what: "loss_term is nan", lastCheckpointStep: 4))
            XCTAssertEqual("\(error)", "step 5: loss_term is nan; stopped, the last checkpoint (step 4) is kept")
        }
        let stored = try storedWeight(dir)
        XCTAssertEqual(stored.step, 4)
        XCTAssertEqual(stored.weight, 4)
    }

    /// A model of one weight trained by SGD on the gradient of sqrt(|w - 3|): finite losses
    /// throughout, and at w = 3 (step 3, from w = 0 with steps of 1) an infinite gradient.
    final class InfiniteGradient: TrainableModel {
        static let kind = "infinite-gradient"
        let weight = Parameter(Tensor([Float(0)], shape: [1]))
        lazy var optimizer = SGD([weight], learningRate: 1)
        var makesImages: Bool { false }
        var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("g", optimizer)] }
        func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
            let loss = GradMode.with(enabled: true) { (weight.value - 3).abs().sqrt().sum() }
            let gradient = gradients(of: loss, wrt: [weight.value])[0]
            // Steps of exactly -1 while the gradient is finite, so that w walks 0, 1, 2, 3.
            optimizer.step([gradient.isAllFinite ? Tensor([Float(-1)], shape: [1]) : gradient])
            return [("loss", loss.item)]
        }
        func store(into checkpoint: inout Checkpoint) { checkpoint.tensors["model.w"] = weight.value.detached() }
        func restore(from checkpoint: Checkpoint) throws {}
        func sampleGrid(seed: UInt64) -> Tensor { Tensor.zeros([28, 28, 1]) }
    }

    /// A gradient that goes non-finite under a finite loss stops the run at that step, naming the
    /// optimiser, before the weights it spoiled can be saved (here they would be saved at step 4).
    func testNonFiniteGradientStopsTheRunAtItsStep() throws {
        let dir = tempDir()
        XCTAssertThrowsError(try train(InfiniteGradient(), dir)) { error in
            XCTAssertEqual("\(error)", "step 4: the gradient of optimiser g is not finite; stopped, the last checkpoint (step 2) is kept")
        }
        let stored = try storedWeight(dir)
        XCTAssertEqual(stored.step, 2)
        XCTAssertEqual(stored.weight, 2)
    }

    func testTensorFinitenessCheck() {
        XCTAssertTrue(Tensor([Float(1), -2, .greatestFiniteMagnitude, 0], shape: [4]).isAllFinite)
        for bad in [Float.nan, .infinity, -.infinity, -.nan] {
            XCTAssertFalse(Tensor((0..<37).map { $0 == 29 ? bad : Float($0) }, shape: [37]).isAllFinite, "\(bad)")
        }
        XCTAssertTrue(Tensor([1.0, -.greatestFiniteMagnitude], shape: [2]).isAllFinite)
        XCTAssertFalse(Tensor([1.0, .nan], shape: [2]).isAllFinite)
        XCTAssertTrue(Tensor([Int64.max], shape: [1]).isAllFinite)
    }

    func testNonFiniteWeightIsNeverSaved() throws {
        let dir = tempDir()
        XCTAssertThrowsError(try train(Diverging(badStep: 6, badLoss: false, bad: -.infinity), dir)) { error in
            XCTAssertEqual("\(error)", "step 6: tensor model.w holds -inf; stopped, the last checkpoint (step 4) is kept")
        }
        XCTAssertEqual(try storedWeight(dir).weight, 4)
        // Before any checkpoint, the message says that none was written.
        let fresh = tempDir()
        XCTAssertThrowsError(try train(Diverging(badStep: 1, badLoss: true, bad: .infinity), fresh)) { error in
            XCTAssertEqual("\(error)", "step 1: loss_term is inf; stopped, no checkpoint of this run was written")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: RunDirectory(fresh).checkpoint.path))
    }

    func testFiniteCheckpointLoadRefusesNaNWeights() throws {
        let dir = tempDir()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var c = Checkpoint()
        c.tensors["model.a"] = Tensor([Float(1), 2], shape: [2])
        c.tensors["model.b"] = Tensor([Float(1), .nan], shape: [2])
        c.tensors["step"] = Tensor([Int64(3)], shape: [1])
        let url = dir.appendingPathComponent("c.safetensors")
        try c.write(to: url)
        XCTAssertThrowsError(try Checkpoint.finite(contentsOf: url)) { error in
            let refusal = error as? NonFiniteCheckpointError
            XCTAssertEqual(refusal?.path, url.path)
            XCTAssertEqual(refusal?.tensor, "model.b")
            XCTAssertTrue(refusal?.value.isNaN ?? false)
            XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains("model.b"), "\(error)")
        }
        c.tensors["model.b"] = Tensor([Float(1), 2], shape: [2])
        try c.write(to: url)
        XCTAssertNoThrow(try Checkpoint.finite(contentsOf: url))
    }

    func testConfigurationDifferences() {
        let stored: [String: Any] = ["model": "vae", "batch_size": "64", "gan_config": #"{"beta1":0.5,"zDim":100,"loss":"minimax"}"#,
                                     "old_only": "x"]
        let current: [String: Any] = ["model": "vae", "batch_size": "32", "gan_config": #"{"beta1":0,"zDim":100,"loss":"hinge"}"#,
                                      "new_only": "y"]
        XCTAssertEqual(TrainingLoop.configurationDifferences(stored: stored, current: current),
                       ["batch_size was 64, now 32", "gan_config.beta1 was 0.5, now 0", "gan_config.loss was minimax, now hinge"])
        XCTAssertEqual(TrainingLoop.configurationDifferences(stored: stored, current: stored), [])
    }

    func testResumeRefusesAnotherConfigurationAndAcceptsAnOlderCheckpoint() throws {
        let dir = tempDir()
        try train(Diverging(badStep: 0, badLoss: true, bad: 0), dir, config: ["model": "diverging", "batch_size": "2"])
        XCTAssertThrowsError(try train(Diverging(badStep: 0, badLoss: true, bad: 0), dir,
                                       config: ["model": "diverging", "batch_size": "4"], resume: true)) { error in
            XCTAssertTrue("\(error)".hasPrefix("--resume: batch_size was 2, now 4 (stored in "), "\(error)")
        }
        // A checkpoint without a stored configuration (an older run) resumes.
        var c = try Checkpoint(contentsOf: RunDirectory(dir).checkpoint)
        c.metadata["config"] = nil
        try c.write(to: RunDirectory(dir).checkpoint)
        XCTAssertNoThrow(try train(Diverging(badStep: 0, badLoss: true, bad: 0), dir,
                                   config: ["model": "diverging", "batch_size": "4"], resume: true))
    }

    func testRunLockExcludesASecondHolder() throws {
        let dir = tempDir()
        let first = try RunLock(folder: dir)
        XCTAssertEqual(try String(contentsOf: first.url, encoding: .utf8), "\(getpid())\n")
        // flock locks belong to open files, so a second open in this process is refused too.
        XCTAssertThrowsError(try RunLock(folder: dir)) { error in
            XCTAssertEqual(error as? RunLockError, .held(folder: dir.path, pid: getpid()))
            XCTAssertTrue("\(error)".contains("process \(getpid())"), "\(error)")
        }
        first.release()
        XCTAssertNoThrow(try RunLock(folder: dir).release())
    }
}
