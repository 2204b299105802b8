import Foundation

/// The VAE as a `TrainableModel`: the reference MLP VAE, Adam, the negative ELBO with a selectable
/// reconstruction term; samples decode prior draws.
public final class VAETraining: TrainableModel {
    public static let kind = "vae"
    public let model: MLPVAE
    public let optimizer: Adam
    public let reconstruction: ReconstructionLoss

    public init(latentDim: Int = 20, learningRate: Double, reconstruction: ReconstructionLoss = .bernoulli, seed: UInt64) {
        model = MLPVAE(latentDim: latentDim, generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate)
        self.reconstruction = reconstruction
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let eps = Tensor.normal([images.shape[0], model.latentDim], generator: rng)
        let loss = model.loss(images, eps: eps, reconstruction: reconstruction).loss
        optimizer.step(gradients(of: loss, wrt: optimizer.parameters.map { $0.value }))
        return [("loss", loss.item)]
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
    }

    /// Decoded prior samples, sigmoid of the logits: (count, 28, 28, 1) in [0, 1].
    public func sample(count: Int, generator: RandomGenerator) -> Tensor {
        withoutGradients {
            model.decode(Tensor.normal([count, model.latentDim], generator: generator)).sigmoid().reshaped([count, 28, 28, 1])
        }
    }

    public func sampleGrid(seed: UInt64) -> Tensor {
        imageGrid(sample(count: 64, generator: RandomGenerator(seed: seed &+ 0x9A1D)), columns: 8)
    }
}
