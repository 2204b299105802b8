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

/// The diffusion family: DDPM and score-based models, trained and sampled with every registered
/// sampler.
let diffusionFamily = FamilyCommands(name: "diffusion", train: [TrainDDPM.self, TrainSGM.self],
                                     sample: [SampleDDPM.self, SampleSGM.self],
                                     models: [DDPMTraining.self, ScoreModelTraining.self],
                                     benchmarks: [WorkloadBenchmark.unet, WorkloadBenchmark.ddpm],
                                     trainingWorkloads: [TrainingWorkload(name: "ddpm", batchSize: 64) {
                                         DDPMTraining(config: DDPMConfiguration(), learningRate: 2e-4, seed: 0)
                                     }])

extension ScoreSDE: ExpressibleByArgument {}
extension PredictionType: ExpressibleByArgument {}
extension NoiseScheduleKind: ExpressibleByArgument {}
extension TimestepSpacing: ExpressibleByArgument {}

/// A registered sampler's name, checked against `SamplerRegistry` as it parses (so samplers that
/// tests or extensions register are valid values too).
struct SamplerName: ExpressibleByArgument, Equatable, CustomStringConvertible {
    let name: String

    init?(argument: String) {
        guard SamplerRegistry.definition(named: argument) != nil else { return nil }
        name = argument
    }

    static var allValueStrings: [String] { SamplerRegistry.names }
    var description: String { name }
}

/// The diffusion models' defaults for the shared training flags (the PyTorch reference run's):
/// batch 64, Adam 2e-4, a checkpoint every 500 steps; --minutes or --max-steps usually stop
/// training before the 1,000 epochs.
enum DiffusionTrainingDefaults: TrainingDefaults {
    static let epochs = 1000, batchSize = 64, saveEvery = 500
    static let learningRate: Double? = 2e-4
    static let learningRateHelp = "2e-4"
}

/// Flags shared by the diffusion `train` commands (ddpm, sgm): the shared training flags, the EMA,
/// and the U-Net's width and conditioning.
struct DiffusionTrainFlags: ParsableArguments {
    @OptionGroup var common: TrainingFlags<DiffusionTrainingDefaults>
    @OptionGroup var emaFlags: EMAFlags

    @Option(help: "U-Net base width.")
    var width: Int = 32

    @Flag(help: "Train class-conditional (labels from the data), for classifier-free guidance.")
    var classes = false

    @Option(help: "With --classes: probability of dropping a label to the null label.")
    var condDrop: Double = 0.1

    func validate() throws {
        guard width >= 8, width % 8 == 0 else { throw ValidationError("--width must be a positive multiple of 8 (GroupNorm with 8 groups)") }
        guard (0..<1).contains(condDrop) else { throw ValidationError("--cond-drop must be in [0, 1)") }
    }

    /// The EMA decay: --ema-decay, or 0.999.
    var emaDecay: Double { emaFlags.emaDecay ?? 0.999 }

    /// The class count for `--classes` (0 without it), from the data's labels.
    func classCount(_ dataset: ImageDataset) throws -> Int {
        guard classes else { return 0 }
        guard let labels = dataset.labels else { throw ValidationError("--classes needs labelled data; \(dataset.source) has none") }
        return Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
    }

    /// One image's shape [H, W, C] of the data, checked against the U-Net's two halvings.
    func imageShape(_ dataset: ImageDataset) throws -> [Int] {
        let shape = Array(dataset.images.shape.dropFirst())
        guard shape[0] % 4 == 0, shape[1] % 4 == 0 else {
            throw ValidationError("\(dataset.source): \(shape[0]) x \(shape[1]) images; the U-Net needs sides divisible by 4")
        }
        return shape
    }

    /// The settings a checkpoint stores for `--resume` to compare.
    func storedSettings(model: String, classes: Int) -> [String: String] {
        ["model": model, "width": String(width), "classes": String(classes), "cond_drop": String(condDrop),
         "ema_decay": String(emaDecay), "lr": String(common.lr), "batch_size": String(common.batchSize), "seed": String(common.seed)]
    }

    /// Trains `model` on the data as the flags say, and prints where the results went.
    /// `replica` builds another copy of the model for `--grad-shards`.
    func train(_ model: TrainableModel & AnyObject, config: [String: String], summary: String,
               run: RunDirectory, dataset: ImageDataset, replica: @escaping () throws -> TrainableModel) throws {
        let loop = TrainingLoop(model: model, options: common.options(), run: run, config: config)
        common.configure(loop, replica: replica)
        logLine(summary + " on \(dataset.count) images (\(dataset.source))")
        try loop.train(images: dataset.images, labels: dataset.labels, resume: common.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// The sampler flags of the diffusion `sample` commands and of `eval`.
struct DiffusionSamplerFlags: ParsableArguments {
    @Option(help: ArgumentHelp("The sampler: \(SamplerRegistry.names.joined(separator: ", ")) (default: the model's)."))
    var sampler: SamplerName?

    @Option(help: "Sampler steps: noise levels or solver steps (one step may cost several network evaluations; default: the model's).")
    var steps: Int?

    @Option(help: "DDIM eta (0: deterministic).")
    var eta: Double = 0

    @Option(help: "How a discrete table's timesteps are spaced: leading, linspace or trailing.")
    var spacing: TimestepSpacing = .leading

    @Option(help: "Langevin corrector signal-to-noise ratio (pc, langevin).")
    var snr: Double = 0.16

    @Option(help: "Langevin corrector steps per noise level (pc, langevin).")
    var correctorSteps: Int = 1

    @Option(help: "Relative tolerance of the adaptive ODE solver (ode-rk45).")
    var rtol: Double = 1e-5

    @Option(help: "Absolute tolerance of the adaptive ODE solver (ode-rk45).")
    var atol: Double = 1e-5

    @Flag(help: "Do not clip the predicted x0 to [-1, 1].")
    var noClip = false

    func validate() throws {
        guard steps.map({ $0 >= 1 }) ?? true else { throw ValidationError("--steps must be at least 1") }
        guard eta >= 0 else { throw ValidationError("--eta must not be negative") }
        guard snr > 0, correctorSteps >= 0 else { throw ValidationError("--snr must be positive and --corrector-steps not negative") }
        guard rtol > 0, rtol.isFinite else { throw ValidationError("--rtol must be positive") }
        guard atol > 0, atol.isFinite else { throw ValidationError("--atol must be positive") }
    }

    /// The sampler these flags name, or `name` with `defaultSteps` when --sampler and --steps are absent.
    func sampler(default name: String, defaultSteps: Int) throws -> Sampler {
        try Sampler(named: sampler?.name ?? name,
                    options: SamplerOptions(steps: steps ?? defaultSteps, eta: eta, spacing: spacing, clipX0: !noClip,
                                            correctorSteps: correctorSteps, snr: snr, relativeTolerance: rtol,
                                            absoluteTolerance: atol))
    }
}

/// Samples a diffusion model as the flags say, reporting progress and speed on stderr, and writes the
/// images; under `mpirun`, split over the ranks (rank 0 reports and writes).
func sampleDiffusion(_ model: any GenerativeModel, flags: SampleFlags, labels: [Int]?, options: SamplingOptions) throws {
    try model.validate(options)
    try runSampling(model, count: flags.count, out: flags.out, options: options, world: try Communicator.current) { range, progress in
        try model.sample(count: range.count, startIndex: range.lowerBound, seed: flags.seed, labels: labels.map { Array($0[range]) },
                         options: options, progress: progress)
    }
}

/// Runs `body` (which makes the images of a range of indices, calling its progress closure) over
/// `world`'s ranks (`shardedSampling`; one process by default, whose range is 0..<count), with
/// progress on stderr, reports the speed, and writes the images to `out` (rank 0; the other ranks
/// write and print nothing); `note` follows the written path.
func runSampling(_ model: any GenerativeModel, count: Int, out: String, options: SamplingOptions, note: String = "",
                 world: Communicator = .single, _ body: (Range<Int>, ((Int, Int) -> Void)?) throws -> Tensor) throws {
    let start = Date()
    guard let images = try shardedSampling(count: count, batchSize: model.effectiveBatchSize(options), imageShape: model.imageShape,
                                           world: world, body) else { return }
    reportSamplingSpeed(count: count, seconds: Date().timeIntervalSince(start), sampler: options.sampler?.name ?? "default",
                        evaluations: try model.evaluationsPerImage(options))
    print("wrote " + (try writeImages(images, to: out)) + note)
}
