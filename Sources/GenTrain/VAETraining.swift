import Foundation

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
public final class VAETraining: TrainableModel {
    public static let kind = "vae"
    public let architecture: AutoencoderKind
    public let model: Autoencoder
    public let optimizer: Adam
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

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
        try checkpoint.restore(ema, of: model, from: "ema")
    }

    /// Decoded prior samples, sigmoid of the logits: (count, 28, 28, 1) in [0, 1].
    public func sample(count: Int, generator: RandomGenerator) -> Tensor {
        withoutGradients { decodeImages(Tensor.normal([count, model.latentDim], generator: generator)) }
    }

    /// Images (N, 28, 28, 1) in [0, 1] for codes z (N, latentDim).
    public func decodeImages(_ z: Tensor) -> Tensor {
        model.decodeProbabilities(z).reshaped([z.shape[0], 28, 28, 1])
    }

    /// Reconstructions of x through the posterior mean.
    public func reconstruct(_ x: Tensor) -> Tensor {
        withoutGradients { decodeImages(model.encode(x).mu) }
    }

    public func sampleGrid(seed: UInt64) -> Tensor {
        imageGrid(sample(count: 64, generator: RandomGenerator(seed: seed &+ 0x9A1D)), columns: 8)
    }
}
