import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// What the diffusion trainers (DDPM, score models) share: one U-Net, its Adam optimizer and the EMA
/// of its weights, checkpointed under `model.*`, `ema.*` and `optim.model.*`.
public struct DenoiserTrainingState {
    public let model: UNet
    public let optimizer: Adam
    public let ema: ExponentialMovingAverage

    public init(_ config: UNetConfig, learningRate: Double, seed: UInt64, emaDecay: Double) {
        model = UNet(config, generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate)
        ema = ExponentialMovingAverage(model.namedParameters.map { $0.1 }, decay: emaDecay, warmup: true)
    }

    /// One Adam step on `loss` and an EMA update.
    public func step(_ loss: Tensor) {
        optimizer.step(gradients(of: loss, wrt: optimizer.parameters.map { $0.value }))
        ema.update()
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(ema, of: model, as: "ema")
        checkpoint.store(optimizer, of: model, as: "model")
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(ema, of: model, from: "ema")
        try checkpoint.restore(optimizer, of: model, from: "model")
    }

    /// The network to sample with: a copy holding the EMA weights, or the raw model.
    public func samplingNetwork(ema useEMA: Bool) -> UNet {
        guard useEMA else { return model }
        let copy = UNet(model.config, generator: RandomGenerator(seed: 0))
        for ((_, p), shadow) in zip(copy.namedParameters, ema.shadows) { p.assign(shadow.copied()) }
        return copy
    }
}

/// The labels of a class-conditional batch with each replaced by the null label `classes` with
/// probability `dropProbability` (classifier-free guidance training); nil for an unconditional model.
func droppingLabels(_ labels: Tensor?, classes: Int, dropProbability: Double, rng: RandomGenerator, model: String) -> Tensor? {
    guard classes > 0 else { return nil }
    guard let labels else { preconditionFailure("\(model): a class-conditional model needs labels") }
    // One uniform per label, drawn as a tensor (the values of one `nextUnitDouble` per label) so that
    // a data-parallel shard draws its rows of the batch's draw.
    let uniforms = Tensor.uniform([labels.shape[0]], dtype: .float64, generator: rng).scalars(as: Double.self)
    let dropped = zip(labels.scalars(as: Int64.self), uniforms).map { label, u in
        u < dropProbability ? Int64(classes) : label
    }
    return Tensor(dropped, shape: [dropped.count])
}

/// Samples `count` images in [0, 1] from a model of data in [-1, 1], with classifier-free guidance
/// at `guidance` against `nullLabel` when both are given (a conditional network), by `sampler` on
/// `process` with noise keyed by (seed, image index).
func sampleImages<Model: Denoiser>(_ base: Model, guidance: Double?, nullLabel: Int?, sampler: Sampler,
                                   process: any NoiseProcess, seed: UInt64, count: Int, batchSize: Int, labels: [Int]?,
                                   imageShape: [Int], startIndex: Int = 0, progress: ((Int, Int) -> Void)?) -> Tensor {
    let model: any Denoiser = guidance.flatMap { scale in
        nullLabel.map { ClassifierFreeGuidance(base, scale: scale, nullLabel: $0) }
    } ?? base
    let x = sampler.sample(model, process: process, noise: SeededNoise(seed: seed), count: count, batchSize: batchSize,
                           labels: labels, imageShape: imageShape, startIndex: startIndex, progress: progress)
    return withoutGradients { ((x + 1) * 0.5).clamped(min: 0, max: 1) }
}
