import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// A normalising flow (RealNVP or Glow) as a `GenerativeModel`: maximum likelihood of uniformly
/// dequantised images with Adam (L2 weight decay added to the gradient, as chrischute/real-nvp) and
/// optional gradient-norm clipping. Sampling and the likelihood use the trained weights with their
/// batch-norm running statistics. There is no EMA of the weights: averaged weights would need
/// statistics of their own (docs/flows.md measures what the raw network's cost them).
public final class FlowTraining: GenerativeModel {
    public static let kind = "realnvp"
    /// The sampling temperature when the options give none (the latent's standard deviation).
    public static let defaultTemperature = 1.0
    public let config: FlowConfiguration
    public let model: NormalizingFlow
    public let optimizer: Adam
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", optimizer)] }
    /// The coupling networks' BatchNorm running statistics (data-parallel replicas average them).
    public var replicatedBuffers: [Parameter] { model.namedParameters.map(\.1).filter { !$0.isTrainable } }
    /// Glow's ActNorm layers before their first batch.
    public var dataDependentInitialisation: String? {
        model.layers.contains { ($0 as? ActNorm).map { !$0.isInitialized } ?? false } ? "glow's ActNorm" : nil
    }
    /// The largest global gradient norm (nil: no clipping): the optimiser's `maxGradientNorm`.
    public var clipGradientNorm: Double? { optimizer.maxGradientNorm }

    public init(config: FlowConfiguration, learningRate: Double, weightDecay: Double = 5e-5, clipGradientNorm: Double? = nil,
                seed: UInt64) {
        self.config = config
        model = NormalizingFlow(config, generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate, weightDecay: weightDecay)
        optimizer.maxGradientNorm = clipGradientNorm
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
            // Data-parallel replicas all step (their gradients are summed in the step): this one
            // adds nothing, and the loop stops every replica on the summed non-finite loss.
            if optimizer.gradientRecord.reducer != nil { optimizer.step(optimizer.parameters.map { Tensor.zeros($0.value.shape) }) }
            for (i, logDet) in logDets.enumerated() {
                let total = withoutGradients { logDet.sum().item }
                if !total.isFinite { return [("log-determinant of \(model.layerDescription(i))", total)] }
            }
            return [("bits_per_dim", value)]
        }
        let grads = gradients(of: loss, wrt: optimizer.parameters.map { $0.value })
        optimizer.step(grads)
        return [("bits_per_dim", value)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["flow_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
    }

    /// Rebuilds a flow from its checkpoint: the configuration in `flow_config`, then the weights.
    public static func load(_ checkpoint: Checkpoint) throws -> FlowTraining {
        try checkpoint.requireKind(kind)
        let config = try checkpoint.decodedMetadata("flow_config", as: FlowConfiguration.self)
        if let problem = config.problem { throw ModelError("\(checkpoint.path): flow_config: \(problem)") }
        let stored = checkpoint.storedConfiguration
        let flow = FlowTraining(config: config, learningRate: Double(stored["lr"] ?? "") ?? 1e-3,
                                weightDecay: Double(stored["weight_decay"] ?? "") ?? 5e-5,
                                clipGradientNorm: stored["clip_grad_norm"].flatMap(Double.init), seed: 0)
        try flow.restore(from: checkpoint)
        return flow
    }

    /// Latents z = temperature * N(0, I), image i's keyed by (seed, i), mapped through the inverse flow.
    public func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try validate(options)
        let temperature = options.temperature ?? Self.defaultTemperature
        let noise = SeededNoise(seed: seed)
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: options.batchSize) {
            let end = min(count, start + options.batchSize)
            let indices = Array((startIndex + start)..<(startIndex + end))
            let z = noise.initialNoise(indices: indices, imageShape: [model.dimensions]) * temperature
            parts.append(withoutGradients { model.images(fromLatents: z) })
            progress?(end, count)
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
        String(format: "%@ (%@, temperature %g, trained weights)", Self.kind, config.architecture.rawValue,
               options.temperature ?? Self.defaultTemperature)
    }

    public var likelihoodMethods: [LikelihoodMethod] { [.exact] }

    /// The exact bits/dim: the 8-bit pixels round(255 x) dequantised with uniform
    /// noise keyed by (seed, image index).
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64, progress: ((Double) -> Void)?) throws -> [Double] {
        guard method == .exact else { throw ModelError("flows measure their likelihood exactly (--likelihood-method exact)") }
        let y = Dequantization.dequantize(images, startIndex: startIndex, seed: seed)
        return withoutGradients { model.bitsPerDimension(dequantized: y, training: false).bits.cast(to: .float64).scalars(as: Double.self) }
    }

    /// 64 samples at the default temperature from fixed noise.
    public func sampleGrid(seed: UInt64) -> Tensor {
        imageGrid(try! sample(count: 64, seed: seed &+ 0xF10A, labels: nil,
                              options: SamplingOptions(batchSize: 64), progress: nil), columns: 8)
    }
}
