import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The score-based model setup a checkpoint records (JSON in its metadata, `score_config`).
public struct ScoreModelConfiguration: Codable, Equatable, Sendable {
    /// The SDE: ve, vp or subvp.
    public var sde = ScoreSDE.vp
    /// VE's sigma_max: about the largest distance between two training images at the data's scale
    /// (Song & Ermon 2020): 44.9 for Fashion-MNIST's training split in [-1, 1].
    public var sigmaMax = 45.0
    /// U-Net base width.
    public var width = 32
    /// Class count for a class-conditional model (0: unconditional).
    public var classes = 0
    /// Probability of replacing a label with the null label in training (classifier-free guidance).
    public var condDrop = 0.1
    /// EMA decay, with the warm-up min(decay, (1 + n) / (10 + n)).
    public var emaDecay = 0.999
    /// The smallest training time (score_sde's eps).
    public var minimumTime = 1e-5

    /// One image's shape [H, W, C], from the training data (H and W divisible by 4: the U-Net halves
    /// twice). nil in checkpoints written before it was stored, which hold Fashion-MNIST's.
    public var imageShape: [Int]?

    public init() {}

    /// `imageShape`, or Fashion-MNIST's for older checkpoints.
    public var resolvedImageShape: [Int] { imageShape ?? ImageDataset.fashionMNISTImageShape }

    public var unetConfig: UNetConfig { UNetConfig(inChannels: resolvedImageShape[2], width: width, numClasses: classes) }
    public var process: any NoiseProcess { sde.process(sigmaMax: sigmaMax) }
}

/// Score-based generative modelling through SDEs (Song et al. 2021) as a `TrainableModel`: t uniform
/// in [eps, 1], denoising score matching weighted by sigma(t)^2, Adam, an EMA of the weights; images
/// scaled to [-1, 1].
public final class ScoreModelTraining: TrainableModel {
    public static let kind = "sgm"
    /// The sampler of the epoch grids and of `sample sgm` by default, and its steps.
    public static let defaultSampler = "ode-heun", defaultSteps = 20
    public let config: ScoreModelConfiguration
    /// The U-Net, its optimizer and its EMA.
    public let state: DenoiserTrainingState
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", state.optimizer)] }
    public var model: UNet { state.model }

    public init(config: ScoreModelConfiguration, learningRate: Double, seed: UInt64) {
        self.config = config
        state = DenoiserTrainingState(config.unetConfig, learningRate: learningRate, seed: seed, emaDecay: config.emaDecay)
    }

    /// The noise process.
    public var process: any NoiseProcess { config.process }

    /// One image's shape [H, W, C], channels-last.
    public var imageShape: [Int] { config.resolvedImageShape }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let n = images.shape[0]
        let x0 = images * 2 - 1
        let top = process.maximumTime, bottom = config.minimumTime
        let times = Tensor.uniform([n], dtype: .float64, generator: rng).scalars(as: Double.self).map { bottom + (top - bottom) * $0 }
        let eps = Tensor.normal(x0.shape, generator: rng)
        let y = droppingLabels(labels, classes: config.classes, dropProbability: config.condDrop, rng: rng, model: Self.kind)
        let loss = denoisingScoreMatchingLoss(ScoreNetwork(model, sde: config.sde, process: process), process: process,
                                              x0: x0, times: times, eps: eps, y: y)
        state.step(loss)
        return [("loss", loss.item)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        state.store(into: &checkpoint)
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["score_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws { try state.restore(from: checkpoint) }

    /// Rebuilds a model from a checkpoint written by `store`.
    public static func load(_ checkpoint: Checkpoint) throws -> ScoreModelTraining {
        guard checkpoint.metadata["model"] == kind else {
            throw SafeTensorsError(path: checkpoint.path, kind: .invalidHeader,
                                   problem: "a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not an sgm one")
        }
        guard let text = checkpoint.metadata["score_config"] else {
            throw SafeTensorsError(path: checkpoint.path, kind: .invalidHeader, problem: "no score_config in its metadata")
        }
        let config = try JSONDecoder().decode(ScoreModelConfiguration.self, from: Data(text.utf8))
        let training = ScoreModelTraining(config: config, learningRate: 2e-4, seed: 0)
        try training.restore(from: checkpoint)
        return training
    }

    /// The score model over the EMA weights (a copy) or the raw ones.
    public func scoreNetwork(ema useEMA: Bool) -> ScoreNetwork {
        ScoreNetwork(state.samplingNetwork(ema: useEMA), sde: config.sde, process: process)
    }

    /// Samples `count` images (count, H, W, C) in [0, 1]; `guidance` is the classifier-free scale
    /// (conditional networks only); the images are startIndex..<startIndex + count of the seed's.
    /// Throws when the sampler cannot run on this model's process.
    public func sample(count: Int, sampler: Sampler, seed: UInt64, batchSize: Int = 256, labels: [Int]? = nil,
                       guidance: Double? = nil, ema useEMA: Bool = true, startIndex: Int = 0,
                       progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        try sampler.check(process)
        return sampleImages(scoreNetwork(ema: useEMA), guidance: guidance, nullLabel: config.unetConfig.nullLabel,
                            sampler: sampler, process: process, seed: seed, count: count, batchSize: batchSize,
                            labels: labels, imageShape: imageShape, startIndex: startIndex, progress: progress)
    }

    /// 64 EMA samples by the default sampler from fixed noise (one column per class when conditional).
    public func sampleGrid(seed: UInt64) -> Tensor {
        let labels = config.classes > 0 ? (0..<64).map { $0 % 8 % config.classes } : nil
        let sampler = try! Sampler(named: Self.defaultSampler, options: SamplerOptions(steps: Self.defaultSteps))
        return imageGrid(try! sample(count: 64, sampler: sampler, seed: seed &+ 0x5C0E, batchSize: 64, labels: labels), columns: 8)
    }
}
