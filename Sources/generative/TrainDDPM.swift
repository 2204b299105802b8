import ArgumentParser
import Foundation
import GenTrain

/// `generative train ddpm`.
struct TrainDDPM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Train a DDPM noise-prediction U-Net (Ho et al. 2020) with an EMA of its weights.",
        discussion: "Defaults are the PyTorch reference run: width 32, unconditional, Adam 2e-4, batch 64, EMA 0.999 with warm-up.")

    @OptionGroup var flags: DiffusionTrainFlags

    @Option(help: "What the network predicts: epsilon, x0, v or score.")
    var prediction: String = "epsilon"

    @Option(help: "Noise schedule: linear or cosine.")
    var schedule: String = "linear"

    func validate() throws {
        guard PredictionType(rawValue: prediction) != nil else {
            throw ValidationError("--prediction must be one of \(PredictionType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard ["linear", "cosine"].contains(schedule) else { throw ValidationError("--schedule must be linear or cosine") }
    }

    func run() throws {
        Threads.set(flags.threads)
        let (run, lock) = try openRun(flags.runPath("ddpm"), resume: flags.resume, overwrite: flags.overwrite)
        defer { lock.release() }
        let dataset = try loadDataset(flags.data, split: .train)
        var config = DDPMConfiguration()
        config.width = flags.width
        config.condDrop = flags.condDrop
        config.prediction = prediction
        config.schedule = schedule
        config.emaDecay = flags.emaDecay
        config.classes = try flags.classCount(dataset)
        let model = DDPMTraining(config: config, learningRate: flags.lr, seed: flags.seed)
        let loop = TrainingLoop(model: model, options: flags.options, run: run,
                                config: flags.storedSettings(model: "ddpm", classes: config.classes)
                                    .merging(["prediction": prediction, "schedule": schedule]) { $1 })
        print("training ddpm (width \(flags.width), \(config.classes > 0 ? "\(config.classes) classes" : "unconditional"), "
              + "\(model.model.parameterCount) parameters) on \(dataset.count) images (\(dataset.source))")
        try loop.train(images: dataset.images, labels: dataset.labels, resume: flags.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// `generative train noisy-classifier`.
struct TrainNoisyClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noisy-classifier",
        abstract: "Train a noise-aware classifier p(y | x_t, t) for classifier guidance of a DDPM (Dhariwal & Nichol 2021).")

    @OptionGroup var flags: TrainFlags

    @Option(help: "The diffusion's noise schedule: linear or cosine (must match the DDPM it guides).")
    var schedule: String = "linear"

    func validate() throws {
        guard ["linear", "cosine"].contains(schedule) else { throw ValidationError("--schedule must be linear or cosine") }
    }

    func run() throws {
        Threads.set(flags.threads)
        let (run, lock) = try openRun(flags.runPath("noisy-classifier"), resume: flags.resume, overwrite: flags.overwrite)
        defer { lock.release() }
        let data = try flags.loadTraining()
        guard let labels = data.labels else { throw ValidationError("\(data.source) has no labels to classify") }
        let classes = Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
        let model = NoisyClassifierTraining(classes: classes, schedule: schedule, learningRate: flags.lr, seed: flags.seed)
        let loop = TrainingLoop(model: model, options: flags.options, run: run,
                                config: ["model": NoisyClassifierTraining.kind, "schedule": schedule, "classes": String(classes),
                                         "lr": String(flags.lr), "batch_size": String(flags.batchSize), "seed": String(flags.seed)])
        try loop.train(images: data.images, labels: labels, resume: flags.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// `generative sample ddpm`.
struct SampleDDPM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Sample a DDPM checkpoint with any registered sampler (default: DDIM, 20 steps; ddpm: ancestral, every step).")

    @Option(help: "The checkpoint.")
    var checkpoint: String

    @OptionGroup var sampling: DiffusionSamplerFlags

    @Option(help: "Sample this class (class-conditional checkpoints).")
    var `class`: Int?

    @Option(help: "Guidance scale (with --class): classifier-free, or classifier guidance with --classifier.")
    var guidance: Double?

    @Option(help: "A noisy-classifier checkpoint: guide with its gradient of log p(y | x_t) instead of classifier-free.")
    var classifier: String?

    @Flag(help: "Use the raw weights instead of the EMA weights.")
    var noEma = false

    @Option(help: "How many images.")
    var count: Int = 64

    @Option(help: "Seed of the sampling noise (image i's noise depends only on the seed and i).")
    var seed: UInt64 = 0

    @Option(help: "Images per network batch.")
    var batchSize: Int = 256

    @Option(help: "Where to write: a .png grid, a .npy array or a folder.")
    var out: String = "samples.png"

    func validate() throws {
        guard count >= 1, batchSize >= 1 else { throw ValidationError("--count and --batch-size must be at least 1") }
        if guidance != nil && `class` == nil { throw ValidationError("--guidance needs --class") }
        if classifier != nil && (guidance == nil || `class` == nil) { throw ValidationError("--classifier needs --class and --guidance") }
    }

    func run() throws {
        let model = try DDPMTraining.load(try Checkpoint.finite(contentsOf: URL(fileURLWithPath: checkpoint)))
        var labels: [Int]?
        if let path = classifier, let k = `class`, let s = guidance {
            let noisy = try NoisyClassifierTraining.load(try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path)))
            guard (0..<noisy.model.classes).contains(k) else { throw ValidationError("--class must be in 0..<\(noisy.model.classes)") }
            guard noisy.schedule == model.schedule else {
                throw ValidationError("\(path) was trained on another noise schedule than \(checkpoint)")
            }
            // The labels name the class the classifier's gradient pushes toward (and condition a
            // class-conditional network on it too; an unconditional one ignores them).
            try sampleAndWrite(model, labels: Array(repeating: k, count: count), guidance: nil,
                               classifierGuidance: noisy.guidance(scale: s))
            return
        }
        if let k = `class` {
            guard model.config.classes > 0 else { throw ValidationError("\(checkpoint) is unconditional: --class needs a model trained with --classes") }
            guard (0..<model.config.classes).contains(k) else { throw ValidationError("--class must be in 0..<\(model.config.classes)") }
            labels = Array(repeating: k, count: count)
        } else if model.config.classes > 0 {
            labels = Array(repeating: model.config.classes, count: count)  // the null label: unconditional samples
        }
        guard (sampling.steps ?? 0) <= model.schedule.steps else { throw ValidationError("--steps must be at most \(model.schedule.steps)") }
        try sampleAndWrite(model, labels: labels, guidance: guidance, classifierGuidance: nil)
    }

    func sampleAndWrite(_ model: DDPMTraining, labels: [Int]?, guidance: Double?, classifierGuidance: ClassifierGuidance?) throws {
        let chosen = try sampling.sampler(default: "ddim", defaultSteps: 20)
        let start = Date()
        let images = model.sample(count: count, sampler: chosen, seed: seed, batchSize: batchSize, labels: labels,
                                  guidance: guidance, classifierGuidance: classifierGuidance, ema: !noEma) { done, total in
            reportSamplingProgress(done: done, total: total, since: start)
        }
        let seconds = Date().timeIntervalSince(start)
        // Network evaluations per image: two with classifier-free guidance, plus the classifier's
        // forward and backward with classifier guidance (counted as one).
        let perStep = (guidance == nil ? 1 : 2) + (classifierGuidance == nil ? 0 : 1)
        reportSamplingSpeed(count: count, seconds: seconds, sampler: chosen.name,
                            evaluations: chosen.evaluations(on: model.process) * perStep)
        print("wrote " + (try writeImages(images, to: out)))
    }
}

extension TimestepSpacing: ExpressibleByArgument {}

/// Refuses a `--sampler` that no sampler is registered under, naming the registered ones.
func validateSamplerName(_ name: String) throws {
    guard SamplerRegistry.definition(named: name) != nil else {
        throw ValidationError("--sampler must be one of \(SamplerRegistry.names.joined(separator: ", ")); got '\(name)'")
    }
}
