import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Which autoencoder `train vae` builds.
public enum AutoencoderKind: String, Sendable, CaseIterable, Codable {
    /// The reference MLP VAE of scripts/torch_reference/models.py (784-400-20).
    case mlp
    /// A convolutional VAE (two strided convolutions each way).
    case conv
    /// A deterministic MLP autoencoder (no KL term; samples decode N(0, I) codes all the same).
    case ae

    public func make(latentDim: Int, generator: RandomGenerator) -> Autoencoder {
        switch self {
        case .mlp: return MLPVAE(latentDim: latentDim, generator: generator)
        case .conv: return ConvVAE(latentDim: latentDim, generator: generator)
        case .ae: return MLPAutoencoder(latentDim: latentDim, generator: generator)
        }
    }
}

/// An autoencoder as a `TrainableModel`: Adam on the negative ELBO (or the reconstruction loss of a
/// deterministic autoencoder) with a selectable reconstruction term; samples decode prior draws.
public final class VAETraining: GenerativeModel {
    public static let kind = "vae"
    public let architecture: AutoencoderKind
    public let model: Autoencoder
    public let optimizer: Adam
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", optimizer)] }
    /// An exponential moving average of the weights (decay 0.999 with warm-up), saved as `ema.*`.
    public let ema: ExponentialMovingAverage
    public let reconstruction: ReconstructionLoss

    public init(architecture: AutoencoderKind = .mlp, latentDim: Int = 20, learningRate: Double,
                reconstruction: ReconstructionLoss = .bernoulli, seed: UInt64) {
        self.architecture = architecture
        model = architecture.make(latentDim: latentDim, generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate)
        ema = ExponentialMovingAverage(model.namedParameters.map { $0.1 }, decay: 0.999)
        self.reconstruction = reconstruction
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let eps = Tensor.normal([images.shape[0], model.latentDim], generator: rng)
        let loss = autoencoderLoss(model, images, eps: eps, reconstruction: reconstruction)
        optimizer.step(gradients(of: loss, wrt: optimizer.parameters.map { $0.value }))
        ema.update()
        return [("loss", loss.item)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
        checkpoint.store(ema, of: model, as: "ema")
        checkpoint.metadata["architecture"] = architecture.rawValue
    }

    /// Rebuilds a VAE from its checkpoint: the architecture, latent size and reconstruction term
    /// stored in its configuration, then the weights.
    public static func load(_ checkpoint: Checkpoint) throws -> VAETraining {
        guard checkpoint.metadata["model"] == kind else {
            throw ModelError("\(checkpoint.path) is a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a vae one")
        }
        let stored = checkpoint.storedConfiguration
        guard let architecture = AutoencoderKind(rawValue: checkpoint.metadata["architecture"] ?? stored["architecture"] ?? "mlp") else {
            throw ModelError("\(checkpoint.path): unknown VAE architecture '\(checkpoint.metadata["architecture"] ?? "")'")
        }
        guard let latentDim = Int(stored["latent_dim"] ?? "20"), latentDim >= 1 else {
            throw ModelError("\(checkpoint.path): the stored latent_dim '\(stored["latent_dim"] ?? "")' is not a positive integer")
        }
        let reconstruction = ReconstructionLoss(rawValue: stored["reconstruction"] ?? "bernoulli") ?? .bernoulli
        let vae = VAETraining(architecture: architecture, latentDim: latentDim, learningRate: Double(stored["lr"] ?? "") ?? 1e-3,
                              reconstruction: reconstruction, seed: 0)
        try vae.restore(from: checkpoint)
        return vae
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
        try checkpoint.restore(ema, of: model, from: "ema")
    }

    /// Decoded prior samples, sigmoid of the logits: (count, H, W, C) in [0, 1].
    public func sample(count: Int, generator: RandomGenerator) -> Tensor {
        withoutGradients { decodeImages(Tensor.normal([count, model.latentDim], generator: generator)) }
    }

    /// The shape of one image [H, W, C]: the autoencoder's.
    public var imageShape: [Int] { model.imageShape }

    /// Decoded prior draws z ~ N(0, I) of the trained (not averaged) weights, in batches from one
    /// counter-based stream: image i's code is the stream's i-th (a normal takes two draws), whatever
    /// the batch size and the first index.
    public func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        let generator = RandomGenerator(seed: seed, counter: UInt64(2 * model.latentDim * startIndex))
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: options.batchSize) {
            parts.append(sample(count: min(options.batchSize, count - start), generator: generator))
            progress?(min(count, start + options.batchSize), count)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }

    public func samplingSummary(_ options: SamplingOptions) -> String { "vae (\(architecture.rawValue))" }

    /// The ELBO for a VAE; none for a deterministic autoencoder.
    public var likelihoodMethods: [LikelihoodMethod] { model.isVariational ? [.vlb] : [] }

    /// Bits per dimension from the negative ELBO (`evidenceLowerBound`, the trained weights, one z per
    /// image keyed by (seed, index)) of the pixels round(255 x) dequantised with uniform noise keyed
    /// the same way: -ELBO / (D ln 2) + 8, an upper bound on the model's bits/dim.
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64, progress: ((Double) -> Void)?) throws -> [Double] {
        guard model.isVariational else { throw ModelError("a deterministic autoencoder has no likelihood") }
        guard method == .vlb else { throw ModelError("a vae measures its variational bound, the ELBO (--likelihood-method vlb)") }
        let n = images.shape[0], dimensions = images.elementCount / max(n, 1), latent = model.latentDim
        let x = Dequantization.dequantize(images, startIndex: startIndex, seed: seed)
        let eps = SeededNoise(seed: seed ^ 0xE1B0).initialNoise(indices: Array(startIndex..<(startIndex + n)), imageShape: [latent])
        return evidenceLowerBound(model, x: x, eps: eps, reconstruction: reconstruction)
            .map { -$0 / (Double(dimensions) * log(2)) + 8 }
    }

    /// Images (N, H, W, C) in [0, 1] for codes z (N, latentDim).
    public func decodeImages(_ z: Tensor) -> Tensor {
        model.decodeProbabilities(z).reshaped([z.shape[0]] + imageShape)
    }

    /// Reconstructions of x through the posterior mean.
    public func reconstruct(_ x: Tensor) -> Tensor {
        withoutGradients { decodeImages(model.encode(x).mu) }
    }

    public func sampleGrid(seed: UInt64) -> Tensor {
        imageGrid(sample(count: 64, generator: RandomGenerator(seed: seed &+ 0x9A1D)), columns: 8)
    }
}
