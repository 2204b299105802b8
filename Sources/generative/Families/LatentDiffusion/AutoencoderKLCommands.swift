import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The latent-diffusion family: `train autoencoder-kl`, the first stage.
let latentDiffusionFamily = FamilyCommands(name: "latent-diffusion", train: [TrainAutoencoderKL.self])

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
