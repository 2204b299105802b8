import ArgumentParser
import Foundation
import GenTrain

/// `generative train ddpm`.
struct TrainDDPM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Train a DDPM noise-prediction U-Net (Ho et al. 2020) with an EMA of its weights.",
        discussion: "Defaults are the PyTorch reference run: width 32, unconditional, Adam 2e-4, batch 64, EMA 0.999 with warm-up.")

    @Option(help: "Total epochs (--minutes or --max-steps usually stop training first).")
    var epochs: Int = 1000

    @Option(help: "Images per batch.")
    var batchSize: Int = 64

    @Option(help: "Learning rate.")
    var lr: Double = 2e-4

    @Option(help: "Seed for initialisation, shuffling and noise.")
    var seed: UInt64 = 0

    @Option(help: "A folder of IDX files or PNG images; default: Debian's Fashion-MNIST.")
    var data: String?

    @Option(help: "The run folder.")
    var out: String = "runs/ddpm"

    @Flag(help: resumeHelp("--epochs, --minutes, --max-steps, --save-every and --threads"))
    var resume = false

    @Flag(help: overwriteHelp)
    var overwrite = false

    @Option(help: "Stop after M minutes of training, leaving a complete checkpoint (0: no limit).")
    var minutes: Double = 0

    @Option(name: [.customLong("max-steps"), .customLong("steps")],
            help: "Stop after N steps in total, leaving a complete checkpoint (0: no limit); --steps is the older spelling.")
    var maxSteps: Int = 0

    @Option(help: "Also write a checkpoint every N steps.")
    var saveEvery: Int = 500

    @Option(help: "U-Net base width.")
    var width: Int = 32

    @Flag(help: "Train class-conditional (labels from the data), for classifier-free guidance.")
    var classes = false

    @Option(help: "With --classes: probability of dropping a label to the null label.")
    var condDrop: Double = 0.1

    @Option(help: "What the network predicts: epsilon, x0, v or score.")
    var prediction: String = "epsilon"

    @Option(help: "Noise schedule: linear or cosine.")
    var schedule: String = "linear"

    @Option(help: "EMA decay (with warm-up).")
    var emaDecay: Double = 0.999

    @Option(help: "Threads for the kernels.")
    var threads: Int = 2

    func validate() throws {
        guard epochs >= 1, batchSize >= 1 else { throw ValidationError("--epochs and --batch-size must be at least 1") }
        guard lr > 0 else { throw ValidationError("--lr must be positive") }
        guard minutes >= 0, maxSteps >= 0, saveEvery >= 0 else {
            throw ValidationError("--minutes, --max-steps and --save-every must not be negative")
        }
        guard width >= 8, width % 8 == 0 else { throw ValidationError("--width must be a positive multiple of 8 (GroupNorm with 8 groups)") }
        guard (0..<1).contains(condDrop) else { throw ValidationError("--cond-drop must be in [0, 1)") }
        guard PredictionType(rawValue: prediction) != nil else {
            throw ValidationError("--prediction must be one of \(PredictionType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard ["linear", "cosine"].contains(schedule) else { throw ValidationError("--schedule must be linear or cosine") }
        guard emaDecay > 0, emaDecay < 1 else { throw ValidationError("--ema-decay must be in (0, 1)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        try validateRunFlags(resume: resume, overwrite: overwrite)
    }

    func run() throws {
        Threads.set(threads)
        let (run, lock) = try openRun(out, resume: resume, overwrite: overwrite)
        defer { lock.release() }
        let dataset = try loadDataset(data, split: .train)
        var config = DDPMConfiguration()
        config.width = width
        config.condDrop = condDrop
        config.prediction = prediction
        config.schedule = schedule
        config.emaDecay = emaDecay
        if classes {
            guard let labels = dataset.labels else { throw ValidationError("--classes needs labelled data; \(dataset.source) has none") }
            config.classes = Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
        }
        let model = DDPMTraining(config: config, learningRate: lr, seed: seed)
        var options = TrainingOptions(epochs: epochs, batchSize: batchSize, learningRate: lr, seed: seed,
                                      saveEvery: saveEvery, maxSteps: maxSteps)
        options.maxSeconds = minutes * 60
        let loop = TrainingLoop(model: model, options: options, run: run,
                                config: ["model": "ddpm", "width": String(width), "classes": String(config.classes),
                                         "prediction": prediction, "schedule": schedule, "cond_drop": String(condDrop),
                                         "ema_decay": String(emaDecay), "lr": String(lr), "batch_size": String(batchSize),
                                         "seed": String(seed)])
        print("training ddpm (width \(width), \(config.classes > 0 ? "\(config.classes) classes" : "unconditional"), "
              + "\(model.model.parameterCount) parameters) on \(dataset.count) images (\(dataset.source))")
        try loop.train(images: dataset.images, labels: dataset.labels, resume: resume)
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
        commandName: "ddpm", abstract: "Sample a DDPM checkpoint with the ancestral DDPM sampler or few-step DDIM.")

    @Option(help: "The checkpoint.")
    var checkpoint: String

    @Option(help: "The sampler: \(SamplerRegistry.names.joined(separator: ", ")) (ddpm: ancestral, every step of the table).")
    var sampler: String = "ddim"

    @Option(help: "Sampler steps (DDIM's S; the ancestral sampler takes every step of the table).")
    var steps: Int = 20

    @Option(help: "DDIM eta (0: deterministic).")
    var eta: Double = 0

    @Option(help: "DDIM timestep spacing: leading, linspace or trailing.")
    var spacing: TimestepSpacing = .leading

    @Flag(help: "Do not clip the predicted x0 to [-1, 1].")
    var noClip = false

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
        try validateSamplerName(sampler)
        guard steps >= 1, count >= 1, batchSize >= 1 else { throw ValidationError("--steps, --count and --batch-size must be at least 1") }
        guard eta >= 0 else { throw ValidationError("--eta must not be negative") }
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
        guard steps <= model.schedule.steps else { throw ValidationError("--steps must be at most \(model.schedule.steps)") }
        try sampleAndWrite(model, labels: labels, guidance: guidance, classifierGuidance: nil)
    }

    func sampleAndWrite(_ model: DDPMTraining, labels: [Int]?, guidance: Double?, classifierGuidance: ClassifierGuidance?) throws {
        let chosen = try Sampler(named: sampler, options: SamplerOptions(steps: steps, eta: eta, spacing: spacing, clipX0: !noClip))
        let start = Date()
        let images = model.sample(count: count, sampler: chosen, seed: seed, batchSize: batchSize, labels: labels,
                                  guidance: guidance, classifierGuidance: classifierGuidance, ema: !noEma) { done, total in
            print("\(done)/\(total) images")
        }
        let seconds = Date().timeIntervalSince(start)
        // Network evaluations per image: one per step, two with classifier-free guidance, plus the
        // classifier's forward and backward with classifier guidance (counted as one).
        let perStep = (guidance == nil ? 1 : 2) + (classifierGuidance == nil ? 0 : 1)
        print(String(format: "%.2f images/s (%d network evaluations per image)", Double(count) / seconds,
                     chosen.timesteps(trainingSteps: model.schedule.steps).count * perStep))
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
