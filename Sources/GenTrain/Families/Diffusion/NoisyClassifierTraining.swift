import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Trains a `NoisyClassifier` on x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with uniform t (the
/// schedule of the diffusion model it will guide), cross-entropy on the labels, Adam.
public final class NoisyClassifierTraining: TrainableModel {
    public static let kind = "noisy-classifier"
    public let model: NoisyClassifier
    public let schedule: NoiseSchedule
    public let scheduleKind: NoiseScheduleKind
    public let optimizer: Adam
    /// Labels index the classifier's classes.
    public var labelClasses: Int? { model.classes }
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", optimizer)] }

    public init(classes: Int = 10, schedule kind: NoiseScheduleKind = .linear, steps: Int = 1000, learningRate: Double, seed: UInt64) {
        model = NoisyClassifier(classes: classes, generator: RandomGenerator(seed: seed))
        scheduleKind = kind
        schedule = kind.schedule(steps: steps)
        optimizer = Adam(model.trainableParameters, learningRate: learningRate)
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        guard let labels else { preconditionFailure("noisy-classifier: training needs labels") }
        let n = images.shape[0]
        let t = Tensor.randomIntegers([n], low: 0, high: schedule.steps, generator: rng)
        let xt = schedule.noised(x0: images * 2 - 1, t: t, eps: Tensor.normal(images.shape, generator: rng))
        let logits = model(xt, t: t)
        let loss = crossEntropy(logits, labels)
        optimizer.step(gradients(of: loss, wrt: optimizer.parameters.map { $0.value }))
        let accuracy = Double(withoutGradients { correctPredictions(logits.detached(), labels) }) / Double(n)
        return [("loss", loss.item), ("accuracy", accuracy)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
        checkpoint.metadata["classes"] = String(model.classes)
        checkpoint.metadata["schedule"] = scheduleKind.rawValue
        checkpoint.metadata["diffusion_steps"] = String(schedule.steps)
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
    }

    /// Rebuilds a classifier from its checkpoint.
    public static func load(_ checkpoint: Checkpoint) throws -> NoisyClassifierTraining {
        guard checkpoint.metadata["model"] == kind else {
            throw SafeTensorsError(path: checkpoint.path, kind: .invalidHeader,
                                   problem: "a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a noisy-classifier one")
        }
        let stored = checkpoint.metadata["schedule"] ?? "linear"
        guard let kind = NoiseScheduleKind(rawValue: stored) else {
            throw SafeTensorsError(path: checkpoint.path, kind: .invalidHeader, problem: "unknown noise schedule '\(stored)'")
        }
        let training = NoisyClassifierTraining(classes: try checkpoint.integer("classes"), schedule: kind,
                                               steps: try checkpoint.integer("diffusion_steps"), learningRate: 1e-3, seed: 0)
        try training.restore(from: checkpoint)
        return training
    }

    /// Classifier guidance with scale `s` from this classifier's log-probabilities.
    public func guidance(scale: Double) -> ClassifierGuidance {
        let network = model
        return ClassifierGuidance(scale: scale) { x, t in network(x, t: t) }
    }

    /// A classifier makes no images.
    public var makesImages: Bool { false }

    public func sampleGrid(seed: UInt64) -> Tensor {
        preconditionFailure("noisy-classifier: a classifier makes no sample grid")
    }
}
