import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// `generative train sgm`.
struct TrainSGM: DistributedCommand {
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
        let (run, lock) = try flags.common.start("sgm")
        defer { lock.release() }
        let dataset = try flags.common.loadTraining()
        var config = ScoreModelConfiguration()
        config.sde = sde
        config.sigmaMax = sigmaMax
        config.width = flags.width
        config.condDrop = flags.condDrop
        config.emaDecay = flags.emaDecay
        config.classes = try flags.classCount(dataset)
        config.imageShape = try flags.imageShape(dataset)
        let model = ScoreModelTraining(config: config, learningRate: flags.common.lr, seed: flags.common.seed)
        try flags.train(model,
                        config: flags.storedSettings(model: ScoreModelTraining.kind, classes: config.classes)
                            .merging(["sde": sde.rawValue, "sigma_max": String(sigmaMax)]) { $1 },
                        summary: "training sgm (\(sde.rawValue) SDE, width \(flags.width), "
                            + "\(config.classes > 0 ? "\(config.classes) classes" : "unconditional"), \(model.model.parameterCount) parameters)",
                        run: run, dataset: dataset) { [config, flags] in
            ScoreModelTraining(config: config, learningRate: flags.common.lr, seed: flags.common.seed)
        }
    }
}

/// `generative sample sgm`.
struct SampleSGM: DistributedCommand {
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

    func validate() throws {
        if guidance != nil && `class` == nil { throw ValidationError("--guidance needs --class") }
    }

    func run() throws {
        let model = try loadModel(flags.checkpoint, as: ScoreModelTraining.self)
        let options = SamplingOptions(ema: !noEma, batchSize: flags.batchSize,
                                      sampler: try sampling.sampler(default: ScoreModelTraining.defaultSampler,
                                                                    defaultSteps: ScoreModelTraining.defaultSteps),
                                      guidance: guidance)
        try sampleDiffusion(model, flags: flags, labels: try classLabels(`class`, count: flags.count, model: model, path: flags.checkpoint),
                            options: options)
    }
}
