import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// A normalising flow (RealNVP or Glow) as a `GenerativeModel`: maximum likelihood of uniformly
/// dequantised images with Adam (L2 weight decay added to the gradient, as chrischute/real-nvp),
/// optional gradient-norm clipping, and an EMA of the weights used for sampling and likelihood.
public final class FlowTraining: GenerativeModel {
    public static let kind = "realnvp"
    /// The sampling temperature when the options give none (the latent's standard deviation).
    public static let defaultTemperature = 1.0
    public let config: FlowConfiguration
    public let model: NormalizingFlow
    public let optimizer: Adam
    public let ema: ExponentialMovingAverage
    /// The largest global gradient norm (nil: no clipping).
    public let clipGradientNorm: Double?

    public init(config: FlowConfiguration, learningRate: Double, weightDecay: Double = 5e-5, clipGradientNorm: Double? = nil,
                emaDecay: Double = 0.999, seed: UInt64) {
        self.config = config
        model = NormalizingFlow(config, generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate, weightDecay: weightDecay)
        ema = ExponentialMovingAverage(model.namedParameters.map { $0.1 }, decay: emaDecay, warmup: true)
        self.clipGradientNorm = clipGradientNorm
    }

    public var imageShape: [Int] { config.imageShape }

    /// One Adam step on the mean bits/dim of the batch, dequantised with noise from `rng`. A
    /// non-finite loss skips the step and is reported under the first layer whose log-determinant is
    /// not finite (or as the loss itself).
    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let uniform = Tensor.uniform(images.shape, generator: rng)
        let (bits, logDets) = model.bitsPerDimension(images, uniform: uniform, training: true)
        let loss = bits.mean()
        let value = loss.item
        guard value.isFinite else {
            for (i, logDet) in logDets.enumerated() {
                let total = withoutGradients { logDet.sum().item }
                if !total.isFinite { return [("log-determinant of \(model.layerDescription(i))", total)] }
            }
            return [("bits_per_dim", value)]
        }
        let grads = gradients(of: loss, wrt: optimizer.parameters.map { $0.value })
        if let clipGradientNorm { GenNN.clipGradientNorm(grads, maxNorm: clipGradientNorm) }
        optimizer.step(grads)
        ema.update()
        return [("bits_per_dim", value)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
        checkpoint.store(ema, of: model, as: "ema")
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["flow_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
        try checkpoint.restore(ema, of: model, from: "ema")
    }

    /// Rebuilds a flow from its checkpoint: the configuration in `flow_config`, then the weights.
    public static func load(_ checkpoint: Checkpoint) throws -> FlowTraining {
        guard checkpoint.metadata["model"] == kind else {
            throw ModelError("\(checkpoint.path) is a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a \(kind) one")
        }
        guard let text = checkpoint.metadata["flow_config"],
              let config = try? JSONDecoder().decode(FlowConfiguration.self, from: Data(text.utf8)) else {
            throw ModelError("\(checkpoint.path): no readable flow_config in its metadata")
        }
        if let problem = config.problem { throw ModelError("\(checkpoint.path): flow_config: \(problem)") }
        let stored = checkpoint.storedConfiguration
        let flow = FlowTraining(config: config, learningRate: Double(stored["lr"] ?? "") ?? 1e-3,
                                weightDecay: Double(stored["weight_decay"] ?? "") ?? 5e-5,
                                clipGradientNorm: stored["clip_grad_norm"].flatMap(Double.init),
                                emaDecay: Double(stored["ema_decay"] ?? "") ?? 0.999, seed: 0)
        try flow.restore(from: checkpoint)
        return flow
    }

    /// The flow with the EMA weights (a copy), or the trained one.
    public func samplingNetwork(ema useEMA: Bool) -> NormalizingFlow {
        guard useEMA else { return model }
        let copy = NormalizingFlow(config, generator: RandomGenerator(seed: 0))
        for ((_, p), shadow) in zip(copy.namedParameters, ema.shadows) { p.assign(shadow.copied()) }
        return copy
    }

    /// Latents z = temperature * N(0, I), image i's keyed by (seed, i), mapped through the inverse flow.
    public func sample(count: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try validate(options)
        let temperature = options.temperature ?? Self.defaultTemperature
        let flow = samplingNetwork(ema: options.ema)
        let noise = SeededNoise(seed: seed)
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: options.batchSize) {
            let indices = Array(start..<min(count, start + options.batchSize))
            let z = noise.initialNoise(indices: indices, imageShape: [model.dimensions]) * temperature
            parts.append(withoutGradients { flow.images(fromLatents: z) })
            progress?(indices.last! + 1, count)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }

    public func validate(_ options: SamplingOptions) throws {
        if options.sampler != nil || options.guidance != nil || options.classifierGuidance != nil {
            throw ModelError("'\(Self.kind)' models take no sampler and no guidance")
        }
        if let t = options.temperature, !(t >= 0 && t.isFinite) { throw ModelError("--temperature must be a non-negative number") }
    }

    public func samplingSummary(_ options: SamplingOptions) -> String {
        String(format: "%@ (%@, temperature %g, %@)", Self.kind, config.architecture.rawValue,
               options.temperature ?? Self.defaultTemperature, Self.weightsWord(options))
    }

    public var likelihoodMethods: [LikelihoodMethod] { [.exact] }

    /// The exact bits/dim of the EMA flow: the 8-bit pixels round(255 x) dequantised with uniform
    /// noise keyed by (seed, image index).
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64) throws -> [Double] {
        guard method == .exact else { throw ModelError("flows measure their likelihood exactly (--likelihood-method exact)") }
        let n = images.shape[0], dimensions = model.dimensions
        var noise = [Float](repeating: 0, count: n * dimensions)
        for i in 0..<n {
            let uniform = RandomGenerator(seed: seed ^ 0xDE0A_7715, counter: UInt64((startIndex + i) * dimensions))
            for d in 0..<dimensions { noise[i * dimensions + d] = Float(uniform.nextUnitDouble()) }
        }
        let flow = samplingNetwork(ema: true)
        return withoutGradients {
            flow.bitsPerDimension(images.clamped(min: 0, max: 1), uniform: Tensor(noise, shape: images.shape), training: false)
                .bits.cast(to: .float64).scalars(as: Double.self)
        }
    }

    /// 64 EMA samples at temperature 0.7 from fixed noise.
    public func sampleGrid(seed: UInt64) -> Tensor {
        imageGrid(try! sample(count: 64, seed: seed &+ 0xF10A, labels: nil,
                              options: SamplingOptions(ema: true, batchSize: 64, temperature: 0.7), progress: nil), columns: 8)
    }
}
