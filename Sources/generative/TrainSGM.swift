import ArgumentParser
import Foundation
import GenTrain

extension ScoreSDE: ExpressibleByArgument {}

/// `generative train sgm`.
struct TrainSGM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgm",
        abstract: "Train a score-based model through an SDE (Song et al. 2021): denoising score matching weighted by sigma(t)^2.",
        discussion: "The U-Net of train ddpm, conditioned on continuous time; VP and sub-VP predict eps, VE's output is "
            + "scaled by 1/sigma. VE's sigma_max defaults to 45, the largest distance between two Fashion-MNIST training "
            + "images in [-1, 1] (44.9).")

    @OptionGroup var flags: DiffusionTrainFlags

    @Option(help: "The SDE: ve, vp (beta 0.1 to 20) or subvp.")
    var sde: ScoreSDE = .vp

    @Option(help: "VE only: sigma_max (about the largest distance between two training images at the data's scale).")
    var sigmaMax: Double = 45

    func validate() throws {
        guard sigmaMax > 0.01 else { throw ValidationError("--sigma-max must exceed sigma_min, 0.01") }
    }

    func run() throws {
        Threads.set(flags.threads)
        let (run, lock) = try openRun(flags.runPath("sgm"), resume: flags.resume, overwrite: flags.overwrite)
        defer { lock.release() }
        let dataset = try loadDataset(flags.data, split: .train)
        var config = ScoreModelConfiguration()
        config.sde = sde
        config.sigmaMax = sigmaMax
        config.width = flags.width
        config.condDrop = flags.condDrop
        config.emaDecay = flags.emaDecay
        config.classes = try flags.classCount(dataset)
        let model = ScoreModelTraining(config: config, learningRate: flags.lr, seed: flags.seed)
        let loop = TrainingLoop(model: model, options: flags.options, run: run,
                                config: flags.storedSettings(model: ScoreModelTraining.kind, classes: config.classes)
                                    .merging(["sde": sde.rawValue, "sigma_max": String(sigmaMax)]) { $1 })
        print("training sgm (\(sde.rawValue) SDE, width \(flags.width), "
              + "\(config.classes > 0 ? "\(config.classes) classes" : "unconditional"), \(model.model.parameterCount) parameters) "
              + "on \(dataset.count) images (\(dataset.source))")
        try loop.train(images: dataset.images, labels: dataset.labels, resume: flags.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// The sampler flags of the diffusion `sample` commands.
struct DiffusionSamplerFlags: ParsableArguments {
    @Option(help: "The sampler: \(SamplerRegistry.names.joined(separator: ", ")).")
    var sampler: String?

    @Option(help: "Sampler steps: noise levels or solver steps (one step may cost several network evaluations).")
    var steps: Int?

    @Option(help: "DDIM eta (0: deterministic).")
    var eta: Double = 0

    @Option(help: "How a discrete table's timesteps are spaced: leading, linspace or trailing.")
    var spacing: TimestepSpacing = .leading

    @Option(help: "Langevin corrector signal-to-noise ratio (pc, langevin).")
    var snr: Double = 0.16

    @Option(help: "Langevin corrector steps per noise level (pc, langevin).")
    var correctorSteps: Int = 1

    @Flag(help: "Do not clip the predicted x0 to [-1, 1].")
    var noClip = false

    func validate() throws {
        if let sampler { try validateSamplerName(sampler) }
        guard steps.map({ $0 >= 1 }) ?? true else { throw ValidationError("--steps must be at least 1") }
        guard eta >= 0 else { throw ValidationError("--eta must not be negative") }
        guard snr > 0, correctorSteps >= 0 else { throw ValidationError("--snr must be positive and --corrector-steps not negative") }
    }

    /// The sampler these flags name, or `name` with `defaultSteps` when --sampler and --steps are absent.
    func sampler(default name: String, defaultSteps: Int) throws -> Sampler {
        try Sampler(named: sampler ?? name,
                    options: SamplerOptions(steps: steps ?? defaultSteps, eta: eta, spacing: spacing, clipX0: !noClip,
                                            correctorSteps: correctorSteps, snr: snr))
    }
}

/// `generative sample sgm`.
struct SampleSGM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgm",
        abstract: "Sample a score-based model with any registered sampler "
            + "(default: \(ScoreModelTraining.defaultSampler), \(ScoreModelTraining.defaultSteps) steps).")

    @OptionGroup var flags: SampleFlags
    @OptionGroup var sampling: DiffusionSamplerFlags

    @Option(help: "Sample this class (class-conditional checkpoints).")
    var `class`: Int?

    @Option(help: "Classifier-free guidance scale (with --class).")
    var guidance: Double?

    @Flag(help: "Use the raw weights instead of the EMA weights.")
    var noEma = false

    @Option(help: "Images per network batch.")
    var batchSize: Int = 256

    func validate() throws {
        if guidance != nil && `class` == nil { throw ValidationError("--guidance needs --class") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        let model = try ScoreModelTraining.load(try Checkpoint.finite(contentsOf: URL(fileURLWithPath: flags.checkpoint)))
        var labels: [Int]?
        if let k = `class` {
            guard model.config.classes > 0 else { throw ValidationError("\(flags.checkpoint) is unconditional: --class needs a model trained with --classes") }
            guard (0..<model.config.classes).contains(k) else { throw ValidationError("--class must be in 0..<\(model.config.classes)") }
            labels = Array(repeating: k, count: flags.count)
        } else if model.config.classes > 0 {
            labels = Array(repeating: model.config.classes, count: flags.count)
        }
        let sampler = try sampling.sampler(default: ScoreModelTraining.defaultSampler, defaultSteps: ScoreModelTraining.defaultSteps)
        let start = Date()
        try sampler.check(model.process)
        let images = try model.sample(count: flags.count, sampler: sampler, seed: flags.seed, batchSize: batchSize, labels: labels,
                                  guidance: guidance, ema: !noEma) { done, total in
            reportSamplingProgress(done: done, total: total, since: start)
        }
        reportSamplingSpeed(count: flags.count, seconds: Date().timeIntervalSince(start), sampler: sampler.name,
                            evaluations: sampler.evaluations(on: model.process) * (guidance == nil ? 1 : 2))
        print("wrote " + (try writeImages(images, to: flags.out)))
    }
}

/// One progress line on stderr after each batch: images done, elapsed time and the time left.
func reportSamplingProgress(done: Int, total: Int, since start: Date) {
    let elapsed = Date().timeIntervalSince(start)
    let left = elapsed / Double(max(done, 1)) * Double(total - done)
    FileHandle.standardError.write(Data(String(format: "sampled %d/%d images, %.0f s, about %.0f s left\n", done, total, elapsed, left).utf8))
}

/// The sampling speed on stderr: images/s and network evaluations per image.
func reportSamplingSpeed(count: Int, seconds: Double, sampler: String, evaluations: Int) {
    FileHandle.standardError.write(Data(String(format: "%.2f images/s (sampler %@, %d network evaluations per image)\n",
                                               Double(count) / max(seconds, 1e-9), sampler, evaluations).utf8))
}
