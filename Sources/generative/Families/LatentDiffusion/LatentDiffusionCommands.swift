import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The latent-diffusion family: `train autoencoder-kl` (the first stage), `train ldm` and `sample ldm`.
let latentDiffusionFamily = FamilyCommands(name: "latent-diffusion", train: [TrainAutoencoderKL.self, TrainLDM.self],
                                           sample: [SampleLDM.self], models: [LatentDiffusionTraining.self])

extension PixelLoss: ExpressibleByArgument {}

/// The autoencoder's defaults for the shared training flags: 5 epochs of batch 64, Adam 5e-4.
enum AutoencoderKLTrainingDefaults: TrainingDefaults {
    static let epochs = 5, batchSize = 64, saveEvery = 0
    static let learningRate: Double? = 5e-4
    static let learningRateHelp = "5e-4"
}

/// `generative train autoencoder-kl`.
struct TrainAutoencoderKL: ParsableCommand {
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
struct TrainLDM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldm",
        abstract: "Train a latent diffusion model: a DDPM over the scaled 7x7xC latents of a frozen autoencoder-kl.",
        discussion: "The training images are encoded once (posterior means times the autoencoder's latent scale); the DDPM "
            + "loss, schedule and EMA are the pixel model's. The autoencoder's weights are copied into the checkpoint with the "
            + "SHA-256 of its file, so sampling needs no other file and --resume with another autoencoder is refused.")

    @OptionGroup var flags: DiffusionTrainFlags

    @Option(help: "The autoencoder-kl checkpoint (from generative train autoencoder-kl).")
    var autoencoder: String

    @Option(help: "Conditioning: none or class (labels from the data, dropped with --cond-drop for classifier-free guidance).")
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
        if condition == .class {
            guard let labels = dataset.labels else { throw ValidationError("--condition class needs labelled data; \(dataset.source) has none") }
            classes = Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
        }
        var ddpm = LatentDiffusionTraining.diffusionConfiguration(for: ae.config, width: flags.width, classes: classes)
        ddpm.condDrop = flags.condDrop
        ddpm.emaDecay = flags.emaDecay
        var config = LatentDiffusionConfiguration()
        config.condition = condition
        config.autoencoderSHA256 = hash
        config.autoencoderPath = autoencoder
        let model = LatentDiffusionTraining(config: config, diffusion: ddpm, autoencoder: ae.model, latentScale: scale,
                                            learningRate: flags.common.lr, seed: flags.common.seed)
        logLine("encoding \(dataset.count) training images with \(autoencoder) (latent scale \(String(format: "%.4g", scale)))")
        let latents = withProgress(count: dataset.count) { progress in
            LatentDiffusionTraining.encode(dataset.images, with: ae.model, scale: scale, progress: progress)
        }
        let stored = flags.storedSettings(model: LatentDiffusionTraining.kind, classes: classes)
            .merging(["condition": condition.rawValue, "autoencoder_sha256": hash]) { $1 }
        let loop = TrainingLoop(model: model, options: flags.common.options(), run: run, config: stored)
        logLine("training ldm (width \(flags.width), \(condition == .class ? "\(classes) classes" : "unconditional"), "
                + "\(model.diffusion.model.parameterCount) parameters) on \(dataset.count) latents \(ae.config.latentShape)")
        try loop.train(images: latents, labels: dataset.labels, resume: flags.common.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// `generative sample ldm`.
struct SampleLDM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldm",
        abstract: "Sample a latent diffusion checkpoint with any sampler of the DDPM's table (default: DDIM, 20 steps), then decode.")

    @OptionGroup var flags: SampleFlags

    @OptionGroup var sampling: DiffusionSamplerFlags

    @Option(help: "Sample this class (models trained with --condition class).")
    var `class`: Int?

    @Option(help: "Classifier-free guidance scale (with --class).")
    var guidance: Double?

    @Flag(help: "Use the raw weights instead of the EMA weights.")
    var noEma = false

    func validate() throws {
        if guidance != nil && `class` == nil { throw ValidationError("--guidance needs --class") }
    }

    func run() throws {
        let model = try loadModel(flags.checkpoint, as: LatentDiffusionTraining.self)
        var options = SamplingOptions(ema: !noEma, batchSize: flags.batchSize,
                                      sampler: try sampling.sampler(default: LatentDiffusionTraining.defaultSampler,
                                                                    defaultSteps: LatentDiffusionTraining.defaultSteps))
        options.guidance = guidance
        try sampleDiffusion(model, flags: flags, labels: try classLabels(`class`, count: flags.count, model: model, path: flags.checkpoint),
                            options: options)
    }
}
