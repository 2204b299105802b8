import ArgumentParser
import GenDistributed
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The latent-diffusion family: `train autoencoder-kl` (the first stage), `train ldm`, `sample ldm`,
/// and the verbs `ldm inpaint` and `ldm upscale`.
let latentDiffusionFamily = FamilyCommands(name: "latent-diffusion", train: [TrainAutoencoderKL.self, TrainLDM.self],
                                           sample: [SampleLDM.self], verbs: [LatentDiffusionVerbs.self],
                                           models: [LatentDiffusionTraining.self], benchmarks: [WorkloadBenchmark.ldm],
                                           reportFigures: [ReportFigureMaker(kind: LatentDiffusionTraining.kind) { checkpoint, context in
                                               try LatentDiffusionTraining.load(checkpoint).reportFigures(context: context)
                                           }])

/// `generative ldm VERB`: what an inpainting or super-resolution ldm does besides `sample ldm`.
struct LatentDiffusionVerbs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldm", abstract: "Inpaint or upscale images with a conditioned latent diffusion model, or score its condition.",
        subcommands: [Inpaint.self, Upscale.self, ScoreLDM.self])
}

extension PixelLoss: ExpressibleByArgument {}

/// The autoencoder's defaults for the shared training flags: 5 epochs of batch 64, Adam 5e-4.
enum AutoencoderKLTrainingDefaults: TrainingDefaults {
    static let epochs = 5, batchSize = 64, saveEvery = 0
    static let learningRate: Double? = 5e-4
    static let learningRateHelp = "5e-4"
}

/// `generative train autoencoder-kl`.
struct TrainAutoencoderKL: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoencoder-kl",
        abstract: "Train latent diffusion's first stage: a KL-regularised autoencoder from 28x28x1 images to 7x7xC latents.",
        discussion: "Loss: the reconstruction term (L1 or L2, summed over pixels) plus --kl-weight times KL(q(z|x) || N(0, I)), "
            + "both averaged over the batch. Each checkpoint stores the latent scale (1 / the standard deviation of the "
            + "posterior means of 10,000 training images). At the end the test split's reconstructions are scored: "
            + "PSNR, and FID against the test images.")

    @OptionGroup var flags: TrainingFlags<AutoencoderKLTrainingDefaults>

    @Option(help: "Latent channels C of the 7x7xC latent.")
    var latentChannels: Int = AutoencoderKLConfiguration().latentChannels

    @Option(help: "Base width: w channels at 28x28, 2w at 14x14 and 7x7 (a multiple of 8).")
    var width: Int = AutoencoderKLConfiguration().width

    @Option(help: "Weight of the KL term.")
    var klWeight: Double = AutoencoderKLObjective().klWeight

    @Option(help: "The reconstruction term: l1 or l2.")
    var reconstruction: PixelLoss = .l1

    @Option(parsing: .unconditional, help: "Test images whose reconstructions are scored at the end (0: none).")
    var evalCount: Int = 10_000

    func validate() throws {
        guard latentChannels >= 1 else { throw ValidationError("--latent-channels must be at least 1") }
        guard width >= 8, width % 8 == 0 else { throw ValidationError("--width must be a positive multiple of 8 (GroupNorm's 8 groups)") }
        guard klWeight >= 0, klWeight.isFinite else { throw ValidationError("--kl-weight must be a non-negative number") }
        guard evalCount >= 0 else { throw ValidationError("--eval-count must not be negative") }
    }

    func run() throws {
        let dataset = try flags.loadTraining()
        var config = AutoencoderKLConfiguration()
        config.latentChannels = latentChannels
        config.width = width
        config.imageShape = Array(dataset.images.shape.dropFirst())
        if let problem = config.problem { throw ValidationError("\(dataset.source): \(problem)") }
        var objective = AutoencoderKLObjective()
        objective.klWeight = klWeight
        objective.reconstruction = reconstruction
        let (run, lock) = try flags.start(AutoencoderKLTraining.kind)
        defer { lock.release() }
        let model = AutoencoderKLTraining(config: config, objective: objective, learningRate: flags.lr, seed: flags.seed)
        model.scaleImages = dataset.images
        let stored = ["model": AutoencoderKLTraining.kind, "latent_channels": String(latentChannels), "width": String(width),
                      "kl_weight": String(klWeight), "reconstruction": reconstruction.rawValue, "lr": String(flags.lr),
                      "batch_size": String(flags.batchSize), "seed": String(flags.seed)]
        let loop = TrainingLoop(model: model, options: flags.options(), run: run, config: stored)
        flags.configure(loop) { [config, objective, flags, images = dataset.images] in
            let replica = AutoencoderKLTraining(config: config, objective: objective, learningRate: flags.lr, seed: flags.seed)
            replica.scaleImages = images
            return replica
        }
        logLine("training autoencoder-kl (28x28x\(config.imageShape[2]) -> \(config.latentShape.map(String.init).joined(separator: "x")), "
                + "width \(width), \(reconstruction.rawValue) + \(klWeight) KL, \(model.model.parameterCount) parameters) on \(dataset.count) images (\(dataset.source))")
        try loop.train(images: dataset.images, labels: nil, resume: flags.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
        if let scale = model.latentScale { print(String(format: "latent scale: %.6g", scale)) }
        guard evalCount > 0, let test = try? flags.dataFlags.load(.test) else { return }
        let originals = test.images.sliced(axis: 0, 0..<min(evalCount, test.count))
        logLine("reconstructing \(originals.shape[0]) test images")
        let reconstructions = model.reconstruct(originals)
        let psnr = peakSignalToNoiseRatio(reconstructions, originals: originals)
        let network = try FeatureNetwork.shared()
        let reference = try Evaluator.reference(.test, network: network, dataDirectory: flags.dataFlags.data.map { URL(fileURLWithPath: $0) },
                                                log: { logLine($0) })
        let report = try Evaluator.evaluate(images: reconstructions, input: "reconstructions", inputKind: "memory",
                                            network: network, reference: reference, log: { logLine($0) })
        print(String(format: "test reconstructions (%d images): PSNR %.2f dB, FID against the test split %.2f",
                     originals.shape[0], psnr.reduce(0, +) / Double(psnr.count), report.fid))
    }
}

extension LatentCondition: ExpressibleByArgument {}

/// `generative train ldm`.
struct TrainLDM: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldm",
        abstract: "Train a latent diffusion model: a DDPM over the scaled 7x7xC latents of a frozen autoencoder-kl.",
        discussion: "The training images are encoded once (posterior means times the autoencoder's latent scale); the DDPM "
            + "loss, schedule and EMA are the pixel model's. The autoencoder's weights are copied into the checkpoint with the "
            + "SHA-256 of its file, so sampling needs no other file and --resume with another autoencoder is refused.")

    @OptionGroup var flags: DiffusionTrainFlags

    @Option(help: "The autoencoder-kl checkpoint (from generative train autoencoder-kl).")
    var autoencoder: String

    @Option(help: "Conditioning: none, class (labels from the data, dropped with --cond-drop for classifier-free guidance), prompt (captions of the class and brightness, read by cross-attention, dropped the same way), inpaint (random box and stroke masks) or upscale (14x14 inputs).")
    var condition: LatentCondition = .none

    func validate() throws {
        if flags.classes { throw ValidationError("train ldm takes --condition class instead of --classes") }
    }

    func run() throws {
        let url = URL(fileURLWithPath: autoencoder)
        let aeCheckpoint: Checkpoint
        do { aeCheckpoint = try Checkpoint.finite(contentsOf: url) } catch {
            throw ValidationError("--autoencoder \(autoencoder): \(Generative.message(for: error))")
        }
        let ae: AutoencoderKLTraining
        do { ae = try AutoencoderKLTraining.load(aeCheckpoint) } catch {
            throw ValidationError("--autoencoder \(autoencoder): \(Generative.message(for: error))")
        }
        guard let scale = ae.latentScale else { throw ValidationError("--autoencoder \(autoencoder): no latent_scale (train it with this version)") }
        let hash = try SHA256.hex(contentsOf: url)
        let (run, lock) = try flags.common.start(LatentDiffusionTraining.kind)
        defer { lock.release() }
        if flags.common.resume, let stored = try? Checkpoint(contentsOf: run.checkpoint),
           let text = stored.metadata["ldm_config"],
           let previous = try? JSONDecoder().decode(LatentDiffusionConfiguration.self, from: Data(text.utf8)),
           previous.autoencoderSHA256 != hash {
            throw ValidationError("--autoencoder \(autoencoder) (SHA-256 \(hash.prefix(12))) is not the autoencoder this run was trained on "
                                  + "(\(previous.autoencoderPath), SHA-256 \(previous.autoencoderSHA256.prefix(12)))")
        }
        let dataset = try flags.common.loadTraining()
        guard Array(dataset.images.shape.dropFirst()) == ae.config.imageShape else {
            throw ValidationError("\(dataset.source): images \(Array(dataset.images.shape.dropFirst())) but the autoencoder takes \(ae.config.imageShape)")
        }
        var classes = 0
        var loopLabels = dataset.labels
        if condition == .class || condition == .prompt {
            guard let labels = dataset.labels else {
                throw ValidationError("--condition \(condition.rawValue) needs labelled data; \(dataset.source) has none")
            }
            classes = Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
            if condition == .prompt {
                guard classes <= FashionCaptions.names.count else {
                    throw ValidationError("--condition prompt captions Fashion-MNIST's 10 classes; \(dataset.source) has \(classes)")
                }
                loopLabels = LatentDiffusionTraining.captionLabels(images: dataset.images, labels: labels)
                classes = 0
            }
        }
        var ddpm = LatentDiffusionTraining.diffusionConfiguration(for: ae.config, width: flags.width, classes: classes, condition: condition)
        ddpm.condDrop = flags.condDrop
        ddpm.emaDecay = flags.emaDecay
        var config = LatentDiffusionConfiguration()
        config.condition = condition
        config.autoencoderSHA256 = hash
        config.autoencoderPath = autoencoder
        if condition == .prompt { config.vocabulary = FashionCaptions.vocabulary }
        let model = LatentDiffusionTraining(config: config, diffusion: ddpm, autoencoder: ae.model, latentScale: scale,
                                            learningRate: flags.common.lr, seed: flags.common.seed)
        let latents: Tensor
        if model.trainsOnPixels {
            // The condition is built per batch from the pixels (random masks, or halved images).
            latents = dataset.images
            if let test = try? flags.common.dataFlags.load(.test) { model.previewImages = test.images.sliced(axis: 0, 0..<min(16, test.count)) }
        } else {
            logLine("encoding \(dataset.count) training images with \(autoencoder) (latent scale \(String(format: "%.4g", scale)))")
            latents = withProgress(count: dataset.count) { progress in
                ae.model.latentMeans(dataset.images, progress: progress) * scale
            }
        }
        let stored = flags.storedSettings(model: LatentDiffusionTraining.kind, classes: classes)
            .merging(["condition": condition.rawValue, "autoencoder_sha256": hash]) { $1 }
        let loop = TrainingLoop(model: model, options: flags.common.options(), run: run, config: stored)
        flags.common.configure(loop) { [config, ddpm, ae, scale, flags, preview = model.previewImages] in
            let replica = LatentDiffusionTraining(config: config, diffusion: ddpm, autoencoder: ae.model, latentScale: scale,
                                                  learningRate: flags.common.lr, seed: flags.common.seed)
            replica.previewImages = preview
            return replica
        }
        logLine("training ldm (width \(flags.width), \(condition == .class ? "\(classes) classes" : condition == .none ? "unconditional" : condition.rawValue), "
                + "\(model.diffusion.model.parameterCount) parameters) on \(dataset.count) "
                + (model.trainsOnPixels ? "images, encoded per batch" : "latents \(ae.config.latentShape)"))
        try loop.train(images: latents, labels: loopLabels, resume: flags.common.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// `generative sample ldm`.
struct SampleLDM: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldm",
        abstract: "Sample a latent diffusion checkpoint with any sampler of the DDPM's table (default: DDIM, 20 steps), then decode.")

    @OptionGroup var flags: SampleFlags

    @OptionGroup var sampling: DiffusionSamplerFlags

    @Option(help: "Sample this class (models trained with --condition class).")
    var `class`: Int?

    @Option(help: "A text prompt, such as \"a pair of trousers\" or \"a dark sneaker\" (models trained with --condition prompt).")
    var prompt: String?

    @Option(help: "Classifier-free guidance scale (with --class or --prompt).")
    var guidance: Double?

    @Flag(help: "Use the raw weights instead of the EMA weights.")
    var noEma = false

    func validate() throws {
        if guidance != nil && `class` == nil && prompt == nil { throw ValidationError("--guidance needs --class or --prompt") }
        if `class` != nil && prompt != nil { throw ValidationError("--class and --prompt are two conditions; give one") }
    }

    func run() throws {
        let model = try loadModel(flags.checkpoint, as: LatentDiffusionTraining.self)
        var options = SamplingOptions(ema: !noEma, batchSize: flags.batchSize,
                                      sampler: try sampling.sampler(default: LatentDiffusionTraining.defaultSampler,
                                                                    defaultSteps: LatentDiffusionTraining.defaultSteps))
        options.guidance = guidance
        if let prompt {
            guard model.config.condition == .prompt, let vocabulary = model.config.vocabulary else {
                throw ValidationError("--prompt: \(flags.checkpoint) was trained with --condition \(model.config.condition.rawValue), not prompt")
            }
            if let problem = FashionCaptions.problem(with: prompt, vocabulary: vocabulary) { throw ValidationError("--prompt: \(problem)") }
            let unknown = vocabulary.encode(prompt).unknown
            if !unknown.isEmpty { logLine("warning: --prompt: unknown words ignored: \(unknown.joined(separator: ", "))") }
            try model.validate(options)
            try runSampling(model, count: flags.count, out: flags.out, options: options,
                            note: " (\(model.samplingSummary(options)), prompt \"\(prompt)\")", world: try Communicator.current) { range, progress in
                try model.sample(prompts: Array(repeating: prompt, count: range.count), startIndex: range.lowerBound, seed: flags.seed,
                                 options: options, progress: progress)
            }
            return
        }
        try sampleDiffusion(model, flags: flags, labels: try classLabels(`class`, count: flags.count, model: model, path: flags.checkpoint),
                            options: options)
    }
}

/// The sampler flags and weights of a conditioned latent model's verbs (`inpaint`, `upscale`, `score`).
struct LatentSamplingFlags: ParsableArguments {
    @Option(help: "Seed of the sampling noise (image i's noise is keyed by (seed, i)).")
    var seed: UInt64 = 0

    @Option(help: "Images per network batch.")
    var batchSize: Int = 256

    @Flag(help: "Use the raw weights instead of the EMA weights.")
    var noEma = false

    @OptionGroup var sampling: DiffusionSamplerFlags
    @OptionGroup var compute: ComputeFlags

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func options() throws -> SamplingOptions {
        SamplingOptions(ema: !noEma, batchSize: batchSize,
                        sampler: try sampling.sampler(default: LatentDiffusionTraining.defaultSampler, defaultSteps: LatentDiffusionTraining.defaultSteps))
    }
}

/// `inpaint` and `upscale`'s flags: the checkpoint, the output and the sampler flags.
struct ConditionedSamplingFlags: ParsableArguments {
    @Option(help: "The ldm checkpoint (trained with --condition inpaint or upscale).")
    var checkpoint: String?

    @Option(help: "Output: .png grid, .npy or folder of PNGs.")
    var out: String

    @OptionGroup var latent: LatentSamplingFlags

    var seed: UInt64 { latent.seed }

    func validate() throws {
        try validateImageOutput(out)
    }

    func options() throws -> SamplingOptions { try latent.options() }

    /// The model, refused with a message naming --checkpoint unless it was trained with `condition`.
    func model(for condition: LatentCondition) throws -> LatentDiffusionTraining {
        guard let checkpoint else { throw ValidationError("--checkpoint: give the ldm checkpoint (trained with --condition \(condition.rawValue))") }
        let model = try loadModel(checkpoint, as: LatentDiffusionTraining.self)
        guard model.config.condition == condition else {
            throw ValidationError("--checkpoint \(checkpoint) was trained with --condition \(model.config.condition.rawValue), not \(condition.rawValue)")
        }
        return model
    }

    /// Runs `body` on this rank's range of the images (all of them in one process, split by index
    /// over the ranks of `mpirun` as sampling is), with progress on stderr; rank 0 reports the speed
    /// and writes the images.
    func write(count: Int, model: LatentDiffusionTraining,
               _ body: (Range<Int>, SamplingOptions, ((Int, Int) -> Void)?) throws -> Tensor) throws {
        let options = try options()
        try runSampling(model, count: count, out: out, options: options, note: " (\(model.samplingSummary(options)))",
                        world: try Communicator.current) { range, progress in
            try body(range, options, progress)
        }
    }
}

/// `generative ldm inpaint`.
struct Inpaint: DistributedCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fill the masked pixels of images with an inpainting ldm; the kept pixels are the input's exactly.")

    @OptionGroup var flags: ConditionedSamplingFlags

    @Option(help: "The images: a PNG, a folder of PNGs or a .npy (N x 28 x 28 in [0, 1] or 0-255).")
    var input: String

    @Option(help: "The masks, in the same form: 1 (white) marks a pixel to fill, 0 a pixel to keep; one mask for all images, or one each.")
    var mask: String

    func run() throws {
        let model = try flags.model(for: .inpaint)
        let images = try readImageInput(input, flag: "--input")
        var masks = try readImageInput(mask, flag: "--mask")
        guard Array(images.shape.dropFirst()) == model.imageShape else {
            throw ValidationError("--input \(input): images \(Array(images.shape.dropFirst())), the model takes \(model.imageShape)")
        }
        guard Array(masks.shape.dropFirst()) == [model.imageShape[0], model.imageShape[1], 1] else {
            throw ValidationError("--mask \(mask): masks \(Array(masks.shape.dropFirst())), expected \([model.imageShape[0], model.imageShape[1], 1])")
        }
        if masks.shape[0] == 1 && images.shape[0] > 1 { masks = Tensor.concatenate(Array(repeating: masks, count: images.shape[0]), axis: 0) }
        guard masks.shape[0] == images.shape[0] else {
            throw ValidationError("--mask \(mask) holds \(masks.shape[0]) masks for \(images.shape[0]) images (give one, or one each)")
        }
        masks = Tensor(masks.scalars(as: Float.self).map { $0 > 0.5 ? Float(1) : 0 }, shape: masks.shape)  // 1 above one half
        try flags.write(count: images.shape[0], model: model) { range, options, progress in
            try model.inpaint(images: images.sliced(axis: 0, range), masks: masks.sliced(axis: 0, range), seed: flags.seed,
                              startIndex: range.lowerBound, options: options, progress: progress)
        }
    }
}

/// `generative ldm upscale`.
struct Upscale: DistributedCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upscale 14x14 images to 28x28 with a super-resolution ldm.")

    @OptionGroup var flags: ConditionedSamplingFlags

    @Option(help: "The 14x14 images: a PNG, a folder of PNGs or a .npy (N x 14 x 14 in [0, 1] or 0-255).")
    var input: String

    @Option(help: "Instead of a model: interpolate with bicubic (or bilinear), the baseline to compare a super-resolution ldm with (no --checkpoint).")
    var baseline: UpsamplingFilter?

    func validate() throws {
        if baseline != nil && flags.checkpoint != nil { throw ValidationError("--baseline interpolates without a model: give it or --checkpoint, not both") }
    }

    func run() throws {
        if let baseline {
            let low = try readImageInput(input, flag: "--input", imageSize: 14)
            guard low.shape[1] == 14 && low.shape[2] == 14 else {
                throw ValidationError("--input \(input): images \(Array(low.shape.dropFirst())), the baseline upscales 14 x 14 images")
            }
            let up = resizeImages(low, height: 28, width: 28, filter: baseline)
            print("wrote " + (try writeImages(Tensor(up.scalars(as: Float.self).map { min(max($0, 0), 1) }, shape: up.shape), to: flags.out))
                  + " (\(baseline.rawValue) interpolation, clamped to [0, 1])")
            return
        }
        let model = try flags.model(for: .upscale)
        let low = try readImageInput(input, flag: "--input", imageSize: model.lowResolutionShape[0])
        guard Array(low.shape.dropFirst()) == model.lowResolutionShape else {
            throw ValidationError("--input \(input): images \(Array(low.shape.dropFirst())), the model upscales \(model.lowResolutionShape)")
        }
        try flags.write(count: low.shape[0], model: model) { range, options, progress in
            try model.upscale(low.sliced(axis: 0, range), seed: flags.seed, startIndex: range.lowerBound, options: options, progress: progress)
        }
    }
}

extension UpsamplingFilter: ExpressibleByArgument {}
