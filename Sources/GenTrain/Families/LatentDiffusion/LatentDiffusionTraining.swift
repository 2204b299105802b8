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
    /// A mask (1: fill) and the masked image's latent, concatenated to the U-Net's input.
    case inpaint
    /// A text prompt (captions of the class and brightness), read by cross-attention, with prompt
    /// dropout for classifier-free guidance.
    case prompt
    /// A 14x14 image, upsampled to 28x28 and encoded, concatenated to the U-Net's input.
    case upscale

    /// Whether the condition is concatenated to the latent (and training needs the pixels).
    public var isConcatenated: Bool { self == .inpaint || self == .upscale }

    /// Channels concatenated to a C-channel latent.
    public func conditionChannels(latentChannels: Int) -> Int? {
        switch self {
        case .none, .class, .prompt: return nil
        case .inpaint: return latentChannels + 1
        case .upscale: return latentChannels
        }
    }
}

/// The latent model's setup beside the DDPM's (metadata `ldm_config`, JSON).
public struct LatentDiffusionConfiguration: Codable, Equatable, Sendable {
    public var condition = LatentCondition.none
    /// SHA-256 of the autoencoder checkpoint file the model was trained on.
    public var autoencoderSHA256 = ""
    /// Where that file was (for messages only: the weights travel in the checkpoint).
    public var autoencoderPath = ""
    /// The prompt model's tokenizer.
    public var vocabulary: PromptVocabulary?
    public init() {}
}

/// Latent diffusion (Rombach et al. 2022) as a `GenerativeModel`: a DDPM over the scaled latents
/// z * scale of a frozen KL autoencoder, trained with the pixel DDPM's loss, schedule and EMA, and
/// sampled by any sampler of the DDPM's discrete table (latents are never clipped), then decoded.
///
/// The training loop's "images" are the scaled posterior means of the training set (N, h, w, C),
/// encoded once (`AutoencoderKL.latentMeans` times the scale). The autoencoder's weights and latent scale travel in the
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
    /// The step log's optimiser: the latent U-Net's (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { diffusion.namedOptimizers }
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

    /// The DDPM setup for an autoencoder's latents: U-Net width `width`, levels (1, 2) (7x7 and 4x4),
    /// the condition's channels concatenated to its input.
    public static func diffusionConfiguration(for autoencoder: AutoencoderKLConfiguration, width: Int, classes: Int,
                                              condition: LatentCondition = .none) -> DDPMConfiguration {
        var c = DDPMConfiguration()
        c.width = width
        c.classes = classes
        c.imageShape = autoencoder.latentShape
        c.channelMultipliers = [1, 2]
        c.conditionChannels = condition.conditionChannels(latentChannels: autoencoder.latentChannels)
        if condition == .prompt {
            let vocabulary = FashionCaptions.vocabulary
            c.text = UNetTextConfig(vocabulary: vocabulary.size, length: vocabulary.length, dimension: 64)
        }
        return c
    }

    /// The loop's labels for a prompt model: class + 10 * the image's attribute code (0 none, 1 dark,
    /// 2 light), so that captions can name both.
    public static func captionLabels(images: Tensor, labels: Tensor) -> Tensor {
        let d = images.elementCount / max(images.shape[0], 1)
        let values = images.scalars(as: Float.self), classes = labels.scalars(as: Int64.self)
        let coded = classes.enumerated().map { i, label -> Int64 in
            var sum = 0.0
            for j in (i * d)..<((i + 1) * d) { sum += Double(values[j]) }
            return label + 10 * Int64(FashionCaptions.attributeCode(meanGrey: sum / Double(d)))
        }
        return Tensor(coded, shape: [coded.count])
    }

    /// The side of the low-resolution images `upscale` takes (half the image's).
    public var lowResolutionShape: [Int] { [imageShape[0] / 2, imageShape[1] / 2, imageShape[2]] }

    /// The concatenated condition of an inpainting model: the mask averaged over each latent cell
    /// (N, h, w, 1) and the scaled latent of the image with the masked pixels set to 0 in [-1, 1]
    /// (mid-grey). Images and masks (N, H, W, C) and (N, H, W, 1) in [0, 1].
    public func inpaintingCondition(images: Tensor, masks: Tensor) -> Tensor {
        withoutGradients {
            let factor = imageShape[0] / autoencoder.config.latentShape[0]
            let kept = (images * 2 - 1) * (1 - masks)
            return Tensor.concatenate([masks.avgPool2d(kernel: factor), autoencoder.encode(kept).mean * latentScale], axis: 3)
        }
    }

    /// The concatenated condition of a super-resolution model: the scaled latent of the low-resolution
    /// images (N, H/2, W/2, C) in [0, 1] upsampled bilinearly to (H, W).
    public func upscalingCondition(lowResolution: Tensor) -> Tensor {
        withoutGradients {
            let up = resizeImages(lowResolution, height: imageShape[0], width: imageShape[1])
            return autoencoder.encode(up * 2 - 1).mean * latentScale
        }
    }

    public var imageShape: [Int] { autoencoder.config.imageShape }
    /// The class model's classes; a prompt model's are Fashion-MNIST's 10, each asked for by the
    /// prompt naming it (`FashionCaptions.prompt(naming:)`).
    public var classCount: Int { config.condition == .prompt ? FashionCaptions.names.count : diffusion.config.classes }
    /// A prompt model's training labels are caption codes, class + 10 * attribute code (0-2).
    public var labelClasses: Int? { config.condition == .prompt ? 3 * FashionCaptions.names.count : nil }

    /// One DDPM step. The loop's "images" are scaled latents for the unconditional and class models,
    /// and pixels in [0, 1] for the concatenated conditions, which are built per batch: random masks
    /// (`InpaintingMasks.random`) for inpainting, an area-averaged half-size copy for super-resolution.
    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        if config.condition == .prompt, let vocabulary = config.vocabulary {
            // Captions of (class, attribute) labels; dropped to the empty prompt with --cond-drop.
            return diffusion.trainStep(x0: images, rng: rng, condition: nil) { [drop = diffusion.config.condDrop] rng in
                let codes = labels!.scalars(as: Int64.self)
                return vocabulary.tokens(codes.map { code in
                    rng.nextUnitDouble() < drop ? ""
                        : FashionCaptions.caption(label: Int(code % 10), attributeCode: Int(code / 10), generator: rng)
                })
            }
        }
        guard config.condition.isConcatenated else {
            return diffusion.trainStep(x0: images, labels: config.condition == .class ? labels : nil, rng: rng)
        }
        let x0 = withoutGradients { autoencoder.encode(images * 2 - 1).mean * latentScale }
        let condition: Tensor
        if config.condition == .inpaint {
            condition = inpaintingCondition(images: images, masks: InpaintingMasks.random(count: images.shape[0], height: imageShape[0],
                                                                                           width: imageShape[1], generator: rng))
        } else {
            condition = upscalingCondition(lowResolution: resizeImages(images, height: lowResolutionShape[0], width: lowResolutionShape[1]))
        }
        return diffusion.trainStep(x0: x0, labels: nil, rng: rng, condition: condition)
    }

    /// Whether the training loop feeds this model pixels (else scaled latents).
    public var trainsOnPixels: Bool { config.condition.isConcatenated }

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
        try checkpoint.requireKind(kind)
        let aeConfig = try checkpoint.decodedMetadata("autoencoder_config", as: AutoencoderKLConfiguration.self)
        if let problem = aeConfig.problem { throw ModelError("\(checkpoint.path): autoencoder_config: \(problem)") }
        let ddpm = try checkpoint.decodedMetadata("ddpm_config", as: DDPMConfiguration.self)
        guard ddpm.resolvedImageShape == aeConfig.latentShape else {
            throw ModelError("\(checkpoint.path): the diffusion model's data \(ddpm.resolvedImageShape) is not the autoencoder's latent \(aeConfig.latentShape)")
        }
        guard let scale = checkpoint.tensors["latent_scale"]?.doubleScalars().first, scale > 0, scale.isFinite else {
            throw ModelError("\(checkpoint.path): no positive latent_scale")
        }
        let model = LatentDiffusionTraining(config: try checkpoint.decodedMetadata("ldm_config", as: LatentDiffusionConfiguration.self), diffusion: ddpm,
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
        if config.condition.isConcatenated && options.guidance != nil {
            throw ModelError("an \(config.condition.rawValue) ldm takes no --guidance")
        }
        let sampler = latentSampler(options)
        try sampler.check(diffusion.process)
        guard (sampler.options.steps ?? 0) <= diffusion.schedule.steps else { throw ModelError("--steps must be at most \(diffusion.schedule.steps)") }
        if options.guidance != nil && classCount == 0 && config.condition != .prompt {
            throw ModelError("the ldm is unconditional: --guidance needs one trained with --condition class or prompt")
        }
        if options.classifierGuidance != nil { throw ModelError("classifier guidance is for pixel ddpm models; the ldm takes --guidance") }
    }

    /// Latents by the sampler (classifier-free guidance at `options.guidance`), divided by the
    /// latent scale and decoded; (count, H, W, C) in [0, 1]. Unlabelled samples of a conditional
    /// model are unconditional (the null label).
    public func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        if config.condition == .prompt {
            // Class k is asked for by the prompt naming it; the null label is the empty prompt.
            let prompts = labels?.map { $0 < classCount ? FashionCaptions.prompt(naming: $0) : "" } ?? Array(repeating: "", count: count)
            return try sample(prompts: prompts, startIndex: startIndex, seed: seed, options: options, progress: progress)
        }
        try validate(options)
        if config.condition.isConcatenated {
            let verb = config.condition == .inpaint ? "generative ldm inpaint" : "generative ldm upscale"
            throw ModelError("an \(config.condition.rawValue) ldm samples from an input image: use \(verb)")
        }
        let labels = labels ?? (classCount > 0 ? Array(repeating: classCount, count: count) : nil)
        let base = diffusion.denoiser(ema: options.ema)
        let model: any Denoiser = options.guidance.flatMap { scale in
            diffusion.config.unetConfig.nullLabel.map { ClassifierFreeGuidance(base, scale: scale, nullLabel: $0) }
        } ?? base
        let latents = latentSampler(options).sample(model, process: diffusion.process, noise: SeededNoise(seed: seed), count: count,
                                                    batchSize: options.batchSize, labels: labels, imageShape: diffusion.imageShape,
                                                    startIndex: startIndex, progress: progress)
        return decode(latents, batchSize: options.batchSize)
    }

    /// Images of prompts (one per image; "" is the empty, unconditional prompt), with classifier-free
    /// guidance at `options.guidance` against the empty prompt. A prompt that names no known item or
    /// attribute is refused. The images are startIndex..<startIndex + prompts.count of the seed's.
    public func sample(prompts: [String], startIndex: Int = 0, seed: UInt64, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        guard config.condition == .prompt, let vocabulary = config.vocabulary else {
            throw ModelError("this ldm was trained with --condition \(config.condition.rawValue); --prompt needs --condition prompt")
        }
        try validate(options)
        for prompt in Set(prompts) where !prompt.isEmpty {
            if let problem = FashionCaptions.problem(with: prompt, vocabulary: vocabulary) { throw ModelError(problem) }
        }
        // Labels index a table of the distinct prompts; the last row is the empty prompt (the null label).
        var distinct = Array(Set(prompts.filter { !$0.isEmpty })).sorted()
        let labels = prompts.map { $0.isEmpty ? distinct.count : distinct.firstIndex(of: $0)! }
        distinct.append("")
        let table = vocabulary.tokens(distinct)
        let network = diffusion.samplingNetwork(ema: options.ema)
        let base = DiscreteTimeDenoiser(FunctionDenoiser(prediction: diffusion.config.prediction) { x, t, y in
            network(x, t: t, y: table.rows(y!.scalars(as: Int64.self).map { Int($0) }))
        }, steps: diffusion.schedule.steps)
        let model: any Denoiser = options.guidance.map { ClassifierFreeGuidance(base, scale: $0, nullLabel: distinct.count - 1) } ?? base
        let latents = latentSampler(options).sample(model, process: diffusion.process, noise: SeededNoise(seed: seed), count: prompts.count,
                                                    batchSize: options.batchSize, labels: labels, imageShape: diffusion.imageShape,
                                                    startIndex: startIndex, progress: progress)
        return decode(latents, batchSize: options.batchSize)
    }

    /// Images in [0, 1] of scaled latents (N, h, w, C), decoded in batches.
    func decode(_ latents: Tensor, batchSize: Int) -> Tensor {
        autoencoder.images(fromLatents: withoutGradients { latents / latentScale }, batchSize: batchSize)
    }

    /// Images in [0, 1] from the concatenated `condition` (N, h, w, channels): image i's latent is
    /// sampled from noise keyed by (seed, i), then decoded.
    public func sample(condition: Tensor, seed: UInt64, startIndex: Int = 0, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try validate(options)
        let sampler = latentSampler(options)
        let network = diffusion.samplingNetwork(ema: options.ema)
        let count = condition.shape[0]
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: options.batchSize) {
            let range = start..<min(count, start + options.batchSize)
            let model = diffusion.denoiser(network: network, condition: condition.sliced(axis: 0, range))
            let z = sampler.sample(model, process: diffusion.process, noise: SeededNoise(seed: seed),
                                   batch: SampleBatch(indices: range.map { startIndex + $0 }, imageShape: diffusion.imageShape)).sample
            parts.append(decode(z, batchSize: z.shape[0]))
            progress?(range.upperBound, count)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }

    /// Fills the masked pixels of images (N, H, W, C) in [0, 1]; masks (N, H, W, 1), 1 to fill. The
    /// decoded sample is composited with the input, so the kept pixels are the input's exactly.
    public func inpaint(images: Tensor, masks: Tensor, seed: UInt64, startIndex: Int = 0, options: SamplingOptions,
                        progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        guard config.condition == .inpaint else { throw ModelError("this ldm was trained with --condition \(config.condition.rawValue), not inpaint") }
        let filled = try sample(condition: inpaintingCondition(images: images, masks: masks), seed: seed, startIndex: startIndex,
                                options: options, progress: progress)
        return withoutGradients { filled * masks + images * (1 - masks) }
    }

    /// Upscales images (N, H/2, W/2, C) in [0, 1] to (N, H, W, C).
    public func upscale(_ lowResolution: Tensor, seed: UInt64, startIndex: Int = 0, options: SamplingOptions,
                        progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        guard config.condition == .upscale else { throw ModelError("this ldm was trained with --condition \(config.condition.rawValue), not upscale") }
        return try sample(condition: upscalingCondition(lowResolution: lowResolution), seed: seed, startIndex: startIndex,
                          options: options, progress: progress)
    }

    /// Inpainting and upscaling models: their output for mid-grey inputs (the centre half masked);
    /// other models: samples from noise.
    public func fixedInputSamples(count: Int, seed: UInt64, options: SamplingOptions) throws -> Tensor {
        let grey = Tensor.ones([count] + imageShape) * 0.5
        switch config.condition {
        case .inpaint:
            let masks = InpaintingMasks.centre(count: count, height: imageShape[0], width: imageShape[1], side: imageShape[0] / 2)
            return try inpaint(images: grey, masks: masks, seed: seed, options: options)
        case .upscale:
            return try upscale(resizeImages(grey, height: lowResolutionShape[0], width: lowResolutionShape[1]), seed: seed, options: options)
        case .none, .class, .prompt:
            return try sample(count: count, seed: seed, labels: nil, options: options, progress: nil)
        }
    }

    /// Images whose inpainting or upscaling the per-epoch grid shows (set by the command).
    public var previewImages: Tensor?

    /// Network evaluations per image: the sampler's (twice with guidance), plus one decoder pass.
    public func evaluationsPerImage(_ options: SamplingOptions) throws -> Int {
        try latentSampler(options).requiredEvaluationsPerImage(on: diffusion.process) * (options.guidance == nil ? 1 : 2) + 1
    }

    public func samplingSummary(_ options: SamplingOptions) -> String {
        let sampler = latentSampler(options)
        let name = sampler.reportName(on: diffusion.process)
        return "ldm (\(name) on \(autoencoder.config.latentShape.map(String.init).joined(separator: "x")) latents"
            + "\(options.guidance.map { ", guidance \($0)" } ?? ""), \(Self.weightsWord(options)), decoded)"
    }

    public var exportableNetworks: [String] { ["model", "autoencoder"] }

    /// 64 EMA samples by DDIM-20 from fixed noise (one column per class when conditional, by class
    /// label or by a prompt naming it at guidance 3); for the
    /// concatenated conditions, rows of preview images (with the centre masked, or halved) above
    /// their inpainted or upscaled versions.
    public func sampleGrid(seed: UInt64) -> Tensor {
        if config.condition.isConcatenated {
            guard let preview = previewImages else { return imageGrid(Tensor.zeros([1] + imageShape), columns: 1) }
            let x = preview.sliced(axis: 0, 0..<min(16, preview.shape[0]))
            let options = SamplingOptions(batchSize: 64)
            let masks = InpaintingMasks.centre(count: x.shape[0], height: imageShape[0], width: imageShape[1], side: imageShape[0] / 2)
            let shown = config.condition == .inpaint ? x * (1 - masks) + masks * 0.5
                : resizeImages(resizeImages(x, height: lowResolutionShape[0], width: lowResolutionShape[1]), height: imageShape[0], width: imageShape[1])
            let made = (config.condition == .inpaint ? try? inpaint(images: x, masks: masks, seed: seed, options: options)
                : try? upscale(resizeImages(x, height: lowResolutionShape[0], width: lowResolutionShape[1]), seed: seed, options: options))
                ?? Tensor.zeros(x.shape)
            var rows: [Tensor] = []
            for start in stride(from: 0, to: x.shape[0], by: 8) {
                let range = start..<min(x.shape[0], start + 8)
                rows += [shown.sliced(axis: 0, range), made.sliced(axis: 0, range)]
            }
            return imageGrid(Tensor.concatenate(rows, axis: 0), columns: 8)
        }
        let labels = classCount > 0 ? (0..<64).map { $0 % 8 % classCount } : nil
        let images: Tensor?
        if config.condition == .prompt {
            let prompts = (0..<64).map { FashionCaptions.prompt(naming: $0 % 8) }
            images = try? sample(prompts: prompts, seed: seed &+ 0x1D11, options: SamplingOptions(batchSize: 64, guidance: 3), progress: nil)
        } else {
            images = try? sample(count: 64, seed: seed &+ 0x1D11, labels: labels, options: SamplingOptions(batchSize: 64), progress: nil)
        }
        return imageGrid(images ?? Tensor.zeros([64] + imageShape), columns: 8)
    }
}
