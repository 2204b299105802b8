import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The DDPM setup a checkpoint records (JSON in its metadata).
public struct DDPMConfiguration: Codable, Equatable, Sendable {
    /// U-Net base width (the reference workload uses 32).
    public var width = 32
    /// Class count for a class-conditional model (0: unconditional).
    public var classes = 0
    /// Probability of replacing a label with the null label in training (classifier-free guidance).
    public var condDrop = 0.1
    /// What the network predicts: epsilon, x0, v or score.
    public var prediction = PredictionType.epsilon
    /// linear (1e-4 to 0.02) or cosine.
    public var schedule = NoiseScheduleKind.linear
    /// Diffusion steps T.
    public var steps = 1000
    /// EMA decay, with the warm-up min(decay, (1 + n) / (10 + n)).
    public var emaDecay = 0.999
    /// The U-Net's channel multiplier per resolution level (nil: the reference (1, 2, 2)).
    public var channelMultipliers: [Int]?
    /// Conditioning channels concatenated to the U-Net's input (nil: none), as latent diffusion's
    /// inpainting and super-resolution models take a mask and a latent.
    public var conditionChannels: Int?
    /// Text conditioning of the U-Net (nil: none), as latent diffusion's prompt models.
    public var text: UNetTextConfig?

    /// One image's shape [H, W, C], from the training data (H and W divisible by 4: the U-Net halves
    /// twice). nil in checkpoints written before it was stored, which hold Fashion-MNIST's.
    public var imageShape: [Int]?

    public init() {}

    /// `imageShape`, or Fashion-MNIST's for older checkpoints.
    public var resolvedImageShape: [Int] { imageShape ?? ImageDataset.fashionMNISTImageShape }

    public var unetConfig: UNetConfig {
        UNetConfig(inChannels: resolvedImageShape[2] + (conditionChannels ?? 0), width: width, channelMultipliers: channelMultipliers ?? [1, 2, 2],
                   numClasses: classes, outChannels: conditionChannels == nil ? nil : resolvedImageShape[2], text: text)
    }
    public var noiseSchedule: NoiseSchedule { schedule.schedule(steps: steps) }
}

/// DDPM training (Ho et al. 2020, the chapter's Algorithm 6-1) as a `TrainableModel`: uniform t,
/// Gaussian noise, MSE between the network's output and its target (eps, x0 or
/// v = sqrt(abar) eps - sqrt(1 - abar) x0), Adam, an EMA of the weights; images scaled to [-1, 1].
public final class DDPMTraining: TrainableModel {
    public static let kind = "ddpm"
    public let config: DDPMConfiguration
    public let schedule: NoiseSchedule
    /// The U-Net, its optimizer and its EMA.
    public let state: DenoiserTrainingState
    public var model: UNet { state.model }
    public var optimizer: Adam { state.optimizer }
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", optimizer)] }
    public var ema: ExponentialMovingAverage { state.ema }

    public init(config: DDPMConfiguration, learningRate: Double, seed: UInt64) {
        self.config = config
        schedule = config.noiseSchedule
        state = DenoiserTrainingState(config.unetConfig, learningRate: learningRate, seed: seed, emaDecay: config.emaDecay)
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        trainStep(x0: images * 2 - 1, labels: labels, rng: rng)
    }

    /// One step on data x0 (N, H, W, C) already in the model's space ([-1, 1] images, or scaled
    /// latents), with `condition` (N, H, W, conditionChannels) concatenated to the noisy input.
    public func trainStep(x0: Tensor, labels: Tensor?, rng: RandomGenerator, condition: Tensor? = nil) -> [(String, Double)] {
        trainStep(x0: x0, rng: rng, condition: condition) { [config] rng in
            droppingLabels(labels, classes: config.classes, dropProbability: config.condDrop, rng: rng, model: Self.kind)
        }
    }

    /// One step whose network labels `y` (class labels, or token ids of a text model) are drawn by
    /// `makeY` from `rng` after the timesteps and the noise.
    public func trainStep(x0: Tensor, rng: RandomGenerator, condition: Tensor?, makeY: (RandomGenerator) -> Tensor?) -> [(String, Double)] {
        let n = x0.shape[0]
        let t = Tensor.randomIntegers([n], low: 0, high: schedule.steps, generator: rng)
        let eps = Tensor.normal(x0.shape, generator: rng)
        let y = makeY(rng)
        let xt = schedule.noised(x0: x0, t: t, eps: eps)
        let target: Tensor
        switch config.prediction {
        case .epsilon: target = eps
        case .x0: target = x0
        case .v:
            let abar = Tensor(schedule.alphaBars(at: t), shape: [n, 1, 1, 1])
            target = abar.sqrt() * eps - (1 - abar).sqrt() * x0
        case .score:
            let abar = Tensor(schedule.alphaBars(at: t), shape: [n, 1, 1, 1])
            target = -eps / (1 - abar).sqrt()
        }
        let input = condition.map { Tensor.concatenate([xt, $0], axis: 3) } ?? xt
        let loss = (model(input, t: t, y: y) - target).square().mean()
        state.step(loss)
        return [("loss", loss.item)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        state.store(into: &checkpoint)
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["ddpm_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws { try state.restore(from: checkpoint) }

    /// Rebuilds a model from a checkpoint written by `store`.
    public static func load(_ checkpoint: Checkpoint) throws -> DDPMTraining {
        guard checkpoint.metadata["model"] == kind else {
            throw SafeTensorsError(path: checkpoint.path, kind: .invalidHeader,
                                   problem: "a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a ddpm one")
        }
        let config = try checkpoint.metadata["ddpm_config"].map { try JSONDecoder().decode(DDPMConfiguration.self, from: Data($0.utf8)) }
            ?? DDPMConfiguration()
        let training = DDPMTraining(config: config, learningRate: 2e-4, seed: 0)
        try training.restore(from: checkpoint)
        return training
    }

    /// The network to sample with: a copy holding the EMA weights, or the raw model.
    public func samplingNetwork(ema useEMA: Bool) -> UNet { state.samplingNetwork(ema: useEMA) }

    /// The diffusion's discrete table as a continuous-time process.
    public var process: DiscreteDDPMProcess { DiscreteDDPMProcess(schedule: schedule) }

    /// One image's shape [H, W, C], channels-last.
    public var imageShape: [Int] { config.resolvedImageShape }

    /// A continuous-time denoiser over the chosen weights (the U-Net sees its table's indices).
    public func denoiser(ema useEMA: Bool) -> DiscreteTimeDenoiser<FunctionDenoiser> {
        denoiser(network: samplingNetwork(ema: useEMA), condition: nil)
    }

    /// A denoiser over `network`, with `condition` (B, H, W, conditionChannels) concatenated to every
    /// input of a batch of B (one per batch, without copying the EMA again).
    public func denoiser(network: UNet, condition: Tensor?) -> DiscreteTimeDenoiser<FunctionDenoiser> {
        DiscreteTimeDenoiser(FunctionDenoiser(prediction: config.prediction) { x, t, y in
            network(condition.map { Tensor.concatenate([x, $0], axis: 3) } ?? x, t: t, y: y)
        }, steps: schedule.steps)
    }

    /// Samples `count` images (count, H, W, C) in [0, 1]. `labels` condition a class-conditional
    /// network and name the classes that classifier guidance pushes toward; `guidance` is the
    /// classifier-free scale (conditional networks only); `classifierGuidance` takes the table's
    /// indices (a noisy classifier's). The images are startIndex..<startIndex + count of the seed's.
    public func sample(count: Int, sampler: Sampler, seed: UInt64, batchSize: Int = 256, labels: [Int]? = nil,
                       guidance: Double? = nil, classifierGuidance: ClassifierGuidance? = nil, ema useEMA: Bool = true,
                       startIndex: Int = 0, progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        var sampler = sampler
        sampler.options.classifierGuidance = classifierGuidance?.indexed(steps: schedule.steps)
        return sampleImages(denoiser(ema: useEMA), guidance: guidance, nullLabel: config.unetConfig.nullLabel,
                            sampler: sampler, process: process, seed: seed, count: count, batchSize: batchSize,
                            labels: labels, imageShape: imageShape, startIndex: startIndex, progress: progress)
    }

    /// 64 EMA samples by DDIM-20 from fixed noise (one column per class when conditional).
    public func sampleGrid(seed: UInt64) -> Tensor {
        let labels = config.classes > 0 ? (0..<64).map { $0 % 8 % config.classes } : nil
        let images = sample(count: 64, sampler: .ddim(DDIMOptions(steps: 20)), seed: seed &+ 0xD1FF, batchSize: 64,
                            labels: labels)
        return imageGrid(images, columns: 8)
    }
}
