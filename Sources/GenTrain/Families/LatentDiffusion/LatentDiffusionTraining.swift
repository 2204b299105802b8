import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// What a latent diffusion model is conditioned on.
public enum LatentCondition: String, Codable, CaseIterable, Sendable {
    /// Unconditional.
    case none
    /// A class label, with label dropout for classifier-free guidance.
    case `class`
}

/// The latent model's setup beside the DDPM's (metadata `ldm_config`, JSON).
public struct LatentDiffusionConfiguration: Codable, Equatable, Sendable {
    public var condition = LatentCondition.none
    /// SHA-256 of the autoencoder checkpoint file the model was trained on.
    public var autoencoderSHA256 = ""
    /// Where that file was (for messages only: the weights travel in the checkpoint).
    public var autoencoderPath = ""
    public init() {}
}

/// Latent diffusion (Rombach et al. 2022) as a `GenerativeModel`: a DDPM over the scaled latents
/// z * scale of a frozen KL autoencoder, trained with the pixel DDPM's loss, schedule and EMA, and
/// sampled by any sampler of the DDPM's discrete table (latents are never clipped), then decoded.
///
/// The training loop's "images" are the scaled posterior means of the training set (N, h, w, C),
/// encoded once (`encodeTrainingSet`). The autoencoder's weights and latent scale travel in the
/// checkpoint (`autoencoder.*`, `latent_scale`), with the SHA-256 of the file they came from, so
/// sampling needs no other file and a resume with another autoencoder is refused.
///
/// Checkpoint keys: the DDPM's (`model.*`, `ema.*`, `optim.model.*`), `autoencoder.*`,
/// `latent_scale`; metadata `ddpm_config`, `autoencoder_config`, `ldm_config`.
public final class LatentDiffusionTraining: GenerativeModel {
    public static let kind = "ldm"
    public static let defaultSampler = "ddim", defaultSteps = 20
    public let config: LatentDiffusionConfiguration
    public let diffusion: DDPMTraining
    public let autoencoder: AutoencoderKL
    public let latentScale: Double

    public init(config: LatentDiffusionConfiguration, diffusion: DDPMConfiguration, autoencoder: AutoencoderKL, latentScale: Double,
                learningRate: Double, seed: UInt64) {
        precondition(diffusion.resolvedImageShape == autoencoder.config.latentShape,
                     "LatentDiffusionTraining: the DDPM's data \(diffusion.resolvedImageShape) is not the latent \(autoencoder.config.latentShape)")
        self.config = config
        self.diffusion = DDPMTraining(config: diffusion, learningRate: learningRate, seed: seed)
        self.autoencoder = autoencoder
        self.latentScale = latentScale
    }

    /// The DDPM setup for an autoencoder's latents: U-Net width `width`, levels (1, 2) (7x7 and 4x4).
    public static func diffusionConfiguration(for autoencoder: AutoencoderKLConfiguration, width: Int, classes: Int) -> DDPMConfiguration {
        var c = DDPMConfiguration()
        c.width = width
        c.classes = classes
        c.imageShape = autoencoder.latentShape
        c.channelMultipliers = [1, 2]
        return c
    }

    /// Scaled posterior means of images (N, H, W, C) in [0, 1]: (N, h, w, C), in batches.
    public static func encode(_ images: Tensor, with autoencoder: AutoencoderKL, scale: Double, batchSize: Int = 500,
                              progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        withoutGradients {
            var parts: [Tensor] = []
            for start in stride(from: 0, to: images.shape[0], by: batchSize) {
                let end = min(images.shape[0], start + batchSize)
                parts.append(autoencoder.encode(images.sliced(axis: 0, start..<end) * 2 - 1).mean * scale)
                progress?(end, images.shape[0])
            }
            return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        }
    }

    public var imageShape: [Int] { autoencoder.config.imageShape }
    public var classCount: Int { diffusion.config.classes }

    /// One DDPM step on a batch of scaled latents (the loop's "images").
    public func trainStep(images latents: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        diffusion.trainStep(x0: latents, labels: config.condition == .class ? labels : nil, rng: rng)
    }

    public func store(into checkpoint: inout Checkpoint) {
        diffusion.store(into: &checkpoint)
        checkpoint.store(autoencoder, as: "autoencoder")
        checkpoint.tensors["latent_scale"] = Tensor([Float(latentScale)], shape: [1])
        if let data = try? JSONEncoder().encode(autoencoder.config) { checkpoint.metadata["autoencoder_config"] = String(decoding: data, as: UTF8.self) }
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["ldm_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try diffusion.restore(from: checkpoint)
        try checkpoint.restore(autoencoder, from: "autoencoder")
    }

    public static func load(_ checkpoint: Checkpoint) throws -> LatentDiffusionTraining {
        guard checkpoint.metadata["model"] == kind else {
            throw ModelError("\(checkpoint.path) is a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not an \(kind) one")
        }
        func decode<T: Decodable>(_ key: String, as type: T.Type) throws -> T {
            guard let text = checkpoint.metadata[key], let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)) else {
                throw ModelError("\(checkpoint.path): no readable \(key) in its metadata")
            }
            return value
        }
        let aeConfig = try decode("autoencoder_config", as: AutoencoderKLConfiguration.self)
        if let problem = aeConfig.problem { throw ModelError("\(checkpoint.path): autoencoder_config: \(problem)") }
        let ddpm = try decode("ddpm_config", as: DDPMConfiguration.self)
        guard ddpm.resolvedImageShape == aeConfig.latentShape else {
            throw ModelError("\(checkpoint.path): the diffusion model's data \(ddpm.resolvedImageShape) is not the autoencoder's latent \(aeConfig.latentShape)")
        }
        guard let scale = checkpoint.tensors["latent_scale"]?.doubleScalars().first, scale > 0, scale.isFinite else {
            throw ModelError("\(checkpoint.path): no positive latent_scale")
        }
        let model = LatentDiffusionTraining(config: try decode("ldm_config", as: LatentDiffusionConfiguration.self), diffusion: ddpm,
                                            autoencoder: AutoencoderKL(aeConfig, generator: RandomGenerator(seed: 0)),
                                            latentScale: scale, learningRate: 2e-4, seed: 0)
        try model.restore(from: checkpoint)
        return model
    }

    /// The sampler's options with x0 clipping off: latents are not confined to [-1, 1].
    func latentSampler(_ options: SamplingOptions) -> Sampler {
        var sampler = options.sampler ?? (try! Sampler(named: Self.defaultSampler, options: SamplerOptions(steps: Self.defaultSteps)))
        sampler.options.clipX0 = false
        return sampler
    }

    public func validate(_ options: SamplingOptions) throws {
        try refuseTemperature(options)
        let sampler = latentSampler(options)
        try sampler.check(diffusion.process)
        guard (sampler.options.steps ?? 0) <= diffusion.schedule.steps else { throw ModelError("--steps must be at most \(diffusion.schedule.steps)") }
        if options.guidance != nil && classCount == 0 {
            throw ModelError("the ldm is unconditional: --guidance needs one trained with --condition class")
        }
        if options.classifierGuidance != nil { throw ModelError("classifier guidance is for pixel ddpm models; the ldm takes --guidance") }
    }

    /// Latents by the sampler (classifier-free guidance at `options.guidance`), divided by the
    /// latent scale and decoded; (count, H, W, C) in [0, 1]. Unlabelled samples of a conditional
    /// model are unconditional (the null label).
    public func sample(count: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try validate(options)
        let labels = labels ?? (classCount > 0 ? Array(repeating: classCount, count: count) : nil)
        let base = diffusion.denoiser(ema: options.ema)
        let model: any Denoiser = options.guidance.flatMap { scale in
            diffusion.config.unetConfig.nullLabel.map { ClassifierFreeGuidance(base, scale: scale, nullLabel: $0) }
        } ?? base
        let latents = latentSampler(options).sample(model, process: diffusion.process, noise: SeededNoise(seed: seed), count: count,
                                                    batchSize: options.batchSize, labels: labels, imageShape: diffusion.imageShape,
                                                    progress: progress)
        return withoutGradients {
            var parts: [Tensor] = []
            for start in stride(from: 0, to: count, by: options.batchSize) {
                let z = latents.sliced(axis: 0, start..<min(count, start + options.batchSize)) / latentScale
                parts.append(((autoencoder.decode(z) + 1) * 0.5).clamped(min: 0, max: 1))
            }
            return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        }
    }

    /// Network evaluations per image: the sampler's (twice with guidance), plus one decoder pass.
    public func evaluationsPerImage(_ options: SamplingOptions) throws -> Int {
        latentSampler(options).evaluations(on: diffusion.process) * (options.guidance == nil ? 1 : 2) + 1
    }

    public func samplingSummary(_ options: SamplingOptions) -> String {
        let sampler = latentSampler(options)
        let name = "\(sampler.name.uppercased())-\(sampler.grid(on: diffusion.process).steps)" + (sampler.options.eta > 0 ? " eta \(sampler.options.eta)" : "")
        return "ldm (\(name) on \(autoencoder.config.latentShape.map(String.init).joined(separator: "x")) latents"
            + "\(options.guidance.map { ", guidance \($0)" } ?? ""), \(Self.weightsWord(options)), decoded)"
    }

    public var exportableNetworks: [String] { ["model", "autoencoder"] }

    /// 64 EMA samples by DDIM-20 from fixed noise (one column per class when conditional).
    public func sampleGrid(seed: UInt64) -> Tensor {
        let labels = classCount > 0 ? (0..<64).map { $0 % 8 % classCount } : nil
        let images = (try? sample(count: 64, seed: seed &+ 0x1D11, labels: labels, options: SamplingOptions(batchSize: 64), progress: nil))
            ?? Tensor.zeros([64] + imageShape)
        return imageGrid(images, columns: 8)
    }
}
