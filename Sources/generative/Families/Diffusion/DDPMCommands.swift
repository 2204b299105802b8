import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// `generative train ddpm`.
struct TrainDDPM: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Train a DDPM noise-prediction U-Net (Ho et al. 2020) with an EMA of its weights.",
        discussion: "Defaults are the PyTorch reference run: width 32, unconditional, Adam 2e-4, batch 64, EMA 0.999 with warm-up.")

    @OptionGroup var flags: DiffusionTrainFlags

    @Option(help: "What the network predicts: epsilon, x0, v or score.")
    var prediction: PredictionType = .epsilon

    @Option(help: "Noise schedule: linear or cosine.")
    var schedule: NoiseScheduleKind = .linear

    func run() throws {
        let (run, lock) = try flags.common.start("ddpm")
        defer { lock.release() }
        let dataset = try flags.common.loadTraining()
        var config = DDPMConfiguration()
        config.width = flags.width
        config.condDrop = flags.condDrop
        config.prediction = prediction
        config.schedule = schedule
        config.emaDecay = flags.emaDecay
        config.classes = try flags.classCount(dataset)
        config.imageShape = try flags.imageShape(dataset)
        let model = DDPMTraining(config: config, learningRate: flags.common.lr, seed: flags.common.seed)
        try flags.train(model,
                        config: flags.storedSettings(model: "ddpm", classes: config.classes)
                            .merging(["prediction": prediction.rawValue, "schedule": schedule.rawValue]) { $1 },
                        summary: "training ddpm (width \(flags.width), \(config.classes > 0 ? "\(config.classes) classes" : "unconditional"), "
                            + "\(model.model.parameterCount) parameters)",
                        run: run, dataset: dataset) { [config, flags] in
            DDPMTraining(config: config, learningRate: flags.common.lr, seed: flags.common.seed)
        }
    }
}

/// `generative sample ddpm`.
struct SampleDDPM: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddpm",
        abstract: "Sample a DDPM checkpoint with any registered sampler (default: DDIM, 20 steps; ddpm: ancestral, every step).")

    @OptionGroup var flags: SampleFlags

    @OptionGroup var sampling: DiffusionSamplerFlags

    @Option(help: "Sample this class (class-conditional checkpoints).")
    var `class`: Int?

    @Option(help: "Guidance scale (with --class): classifier-free, or classifier guidance with --classifier.")
    var guidance: Double?

    @Option(help: "A noisy-classifier checkpoint: guide with its gradient of log p(y | x_t) instead of classifier-free.")
    var classifier: String?

    @Flag(help: "Use the raw weights instead of the EMA weights.")
    var noEma = false

    func validate() throws {
        if guidance != nil && `class` == nil { throw ValidationError("--guidance needs --class") }
        if classifier != nil && (guidance == nil || `class` == nil) { throw ValidationError("--classifier needs --class and --guidance") }
    }

    func run() throws {
        let model = try loadModel(flags.checkpoint, as: DDPMTraining.self)
        var options = SamplingOptions(ema: !noEma, batchSize: flags.batchSize,
                                      sampler: try sampling.sampler(default: DDPMTraining.defaultSampler, defaultSteps: DDPMTraining.defaultSteps))
        if let path = classifier, let k = `class`, let s = guidance {
            let noisy = try NoisyClassifierTraining.load(try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path)))
            guard (0..<noisy.model.classes).contains(k) else { throw ValidationError("--class must be in 0..<\(noisy.model.classes)") }
            guard noisy.schedule == model.schedule else {
                throw ValidationError("\(path) was trained on another noise schedule than \(flags.checkpoint)")
            }
            // The labels name the class the classifier's gradient pushes toward (and condition a
            // class-conditional network on it too; an unconditional one ignores them).
            options.classifierGuidance = noisy.guidance(scale: s)
            try sampleDiffusion(model, flags: flags, labels: Array(repeating: k, count: flags.count), options: options)
            return
        }
        options.guidance = guidance
        try sampleDiffusion(model, flags: flags, labels: try classLabels(`class`, count: flags.count, model: model, path: flags.checkpoint),
                            options: options)
    }
}
