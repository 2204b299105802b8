import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The reconstruction term of the KL autoencoder's loss (the VAE's is `ReconstructionLoss`).
public enum PixelLoss: String, Codable, CaseIterable, Sendable {
    /// |x - x̂|, summed over pixels (the LDM paper's pixel term).
    case l1
    /// (x - x̂)^2, summed over pixels.
    case l2
}

/// What the autoencoder optimises besides its shape; stored with it (metadata `autoencoder_training`).
public struct AutoencoderKLObjective: Codable, Equatable, Sendable {
    /// The weight of KL(q(z | x) || N(0, I)) (the LDM paper's 1e-6: a nearly free latent).
    public var klWeight = 1e-6
    public var reconstruction = PixelLoss.l1
    public init() {}
}

/// The KL autoencoder of latent diffusion as a `TrainableModel`: images scaled to [-1, 1], a
/// posterior sample decoded, loss = (reconstruction summed over pixels) + klWeight * KL, both
/// averaged over the batch, Adam.
///
/// The latent scale (1 / the standard deviation of the posterior means over the training images,
/// the LDM paper's `scale_factor`) is measured whenever a checkpoint is written, on up to
/// `scaleImageCount` of `scaleImages`, and stored under `latent_scale`; the diffusion model works on
/// latents multiplied by it.
///
/// Checkpoint keys: `model.*` (the autoencoder), `optim.model.*`, `latent_scale` (1); metadata
/// `autoencoder_config` and `autoencoder_training` (JSON).
public final class AutoencoderKLTraining: TrainableModel {
    public static let kind = "autoencoder-kl"
    /// Training images the latent scale is measured on.
    public static let scaleImageCount = 10_000
    public let config: AutoencoderKLConfiguration
    public let objective: AutoencoderKLObjective
    public let model: AutoencoderKL
    public let optimizer: Adam
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", optimizer)] }
    /// Images (N, H, W, C) in [0, 1] to measure the latent scale on and to show reconstructions of.
    public var scaleImages: Tensor?
    /// The measured latent scale (nil until measured or restored).
    public private(set) var latentScale: Double?

    public init(config: AutoencoderKLConfiguration, objective: AutoencoderKLObjective = AutoencoderKLObjective(),
                learningRate: Double, seed: UInt64) {
        self.config = config
        self.objective = objective
        model = AutoencoderKL(config, generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate)
    }

    /// The loss terms of images x (N, H, W, C) in [-1, 1] with posterior noise (N, h, w, C):
    /// (total, reconstruction per image, KL per image), each rank 0.
    public func losses(_ x: Tensor, noise: Tensor) -> (total: Tensor, reconstruction: Tensor, kl: Tensor) {
        let posterior = model.encode(x)
        let difference = model.decode(posterior.sample(noise: noise)) - x
        let perPixel = objective.reconstruction == .l1 ? difference.abs() : difference.square()
        let reconstruction = perPixel.sum() / Double(x.shape[0])
        let kl = posterior.kl.mean()
        return (reconstruction + kl * objective.klWeight, reconstruction, kl)
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let x = images * 2 - 1
        let noise = Tensor.normal([x.shape[0]] + config.latentShape, generator: rng)
        let (total, reconstruction, kl) = losses(x, noise: noise)
        optimizer.step(gradients(of: total, wrt: optimizer.parameters.map { $0.value }))
        let pixels = Double(images.elementCount / images.shape[0])
        return [("loss", total.item), ("\(objective.reconstruction.rawValue)_per_pixel", reconstruction.item / pixels), ("kl", kl.item)]
    }

    /// Posterior means of images (N, H, W, C) in [0, 1], unscaled, in batches: (N, h, w, C).
    public func latentMeans(_ images: Tensor, batchSize: Int = 500) -> Tensor { model.latentMeans(images, batchSize: batchSize) }

    /// 1 / the standard deviation of all elements of the posterior means of `images`.
    public func measureLatentScale(_ images: Tensor) -> Double {
        let values = latentMeans(images).doubleScalars()
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(values.count - 1, 1))
        return 1 / max(variance.squareRoot(), 1e-12)
    }

    /// Reconstructions in [0, 1] of images in [0, 1] (decoded posterior means), in batches.
    public func reconstruct(_ images: Tensor, batchSize: Int = 500) -> Tensor {
        model.images(fromLatents: model.latentMeans(images, batchSize: batchSize), batchSize: batchSize)
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
        if let scaleImages {
            let n = min(Self.scaleImageCount, scaleImages.shape[0])
            latentScale = measureLatentScale(n == scaleImages.shape[0] ? scaleImages : scaleImages.sliced(axis: 0, 0..<n))
        }
        if let latentScale { checkpoint.tensors["latent_scale"] = Tensor([Float(latentScale)], shape: [1]) }
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["autoencoder_config"] = String(decoding: data, as: UTF8.self) }
        if let data = try? JSONEncoder().encode(objective) { checkpoint.metadata["autoencoder_training"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
        latentScale = checkpoint.tensors["latent_scale"].map { $0.doubleScalars()[0] }
    }

    /// Rebuilds the autoencoder from its checkpoint.
    public static func load(_ checkpoint: Checkpoint) throws -> AutoencoderKLTraining {
        try checkpoint.requireKind(kind)
        let config = try checkpoint.decodedMetadata("autoencoder_config", as: AutoencoderKLConfiguration.self)
        if let problem = config.problem { throw ModelError("\(checkpoint.path): autoencoder_config: \(problem)") }
        let objective = (try? checkpoint.decodedMetadata("autoencoder_training", as: AutoencoderKLObjective.self)) ?? AutoencoderKLObjective()
        let stored = checkpoint.storedConfiguration
        let model = AutoencoderKLTraining(config: config, objective: objective, learningRate: Double(stored["lr"] ?? "") ?? 5e-4, seed: 0)
        try model.restore(from: checkpoint)
        return model
    }

    public var makesImages: Bool { scaleImages != nil }

    /// The first 32 of `scaleImages` (odd rows) above their reconstructions (even rows).
    public func sampleGrid(seed: UInt64) -> Tensor {
        guard let scaleImages else { return Tensor.zeros(config.imageShape) }
        let x = scaleImages.sliced(axis: 0, 0..<min(32, scaleImages.shape[0]))
        let r = reconstruct(x)
        var rows: [Tensor] = []
        for start in stride(from: 0, to: x.shape[0], by: 8) {
            let range = start..<min(x.shape[0], start + 8)
            rows.append(x.sliced(axis: 0, range))
            rows.append(r.sliced(axis: 0, range))
        }
        return imageGrid(Tensor.concatenate(rows, axis: 0), columns: 8)
    }
}

/// Peak signal-to-noise ratio of images in [0, 1] against their originals, in dB, one per image:
/// 10 log10(1 / mean squared error) (infinite for an exact copy).
public func peakSignalToNoiseRatio(_ images: Tensor, originals: Tensor) -> [Double] {
    precondition(images.shape == originals.shape, "PSNR: \(images.shape) against \(originals.shape)")
    let n = images.shape[0], d = images.elementCount / max(n, 1)
    let a = images.doubleScalars(), b = originals.doubleScalars()
    return (0..<n).map { i in
        var sum = 0.0
        for j in (i * d)..<((i + 1) * d) { sum += (a[j] - b[j]) * (a[j] - b[j]) }
        return 10 * log10(1 / (sum / Double(d)))
    }
}
