import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval
import GenDistributed

/// A family's defaults for the shared training flags.
protocol TrainingDefaults {
    static var epochs: Int { get }
    static var batchSize: Int { get }
    /// nil: the model (or GAN variant) chooses; `learningRateHelp` says what it picks.
    static var learningRate: Double? { get }
    static var learningRateHelp: String { get }
    static var saveEvery: Int { get }
}

/// The VAE's and the classifiers' defaults: 10 epochs of 128 images, Adam 1e-3.
enum StandardTrainingDefaults: TrainingDefaults {
    static let epochs = 10, batchSize = 128, saveEvery = 0
    static let learningRate: Double? = 1e-3
    static let learningRateHelp = "1e-3"
}

/// `--data`: where the training (and test) images come from.
struct DataFlags: ParsableArguments {
    @Option(help: "A folder of IDX files (gzipped or not) or of PNG images; default: Debian's Fashion-MNIST.")
    var data: String?

    /// A split of the data.
    func load(_ split: DatasetSplit) throws -> ImageDataset { try loadDataset(data, split: split) }
}

/// `--out`, `--resume`, `--overwrite`, `--save-every`: the run folder and its checkpoints.
struct RunFolderFlags<D: TrainingDefaults>: ParsableArguments {
    @Option(help: "The run folder: checkpoint, metrics log, loss plot, sample grids (default: runs/MODEL).")
    var out: String?

    @Flag(help: resumeHelp("--epochs, --minutes, --max-steps, --save-every, --keep-checkpoints, --log-every, --tensorboard and --threads"))
    var resume = false

    @Flag(help: overwriteHelp)
    var overwrite = false

    @Option(help: "Also write a checkpoint every N steps (0: at each epoch's end only).")
    var saveEvery: Int = D.saveEvery

    @Option(help: "Keep the last N of those periodic checkpoints as checkpoint-stepS.safetensors beside the latest (0: none).")
    var keepCheckpoints: Int = 0

    func validate() throws {
        guard saveEvery >= 0 else { throw ValidationError("--save-every must not be negative") }
        guard keepCheckpoints >= 0 else { throw ValidationError("--keep-checkpoints must not be negative") }
        if keepCheckpoints > 0 && saveEvery == 0 { throw ValidationError("--keep-checkpoints keeps periodic checkpoints: give --save-every too") }
        try validateRunFlags(resume: resume, overwrite: overwrite)
    }

    /// The run folder: `--out`, or `runs/MODEL`.
    func path(_ model: String) -> String { out ?? "runs/\(model)" }

    /// Opens the run folder (see `openRun`).
    func open(_ model: String) throws -> (run: RunDirectory, lock: RunLock) {
        try openRun(path(model), resume: resume, overwrite: overwrite)
    }
}

/// `--epochs`, `--max-steps`, `--minutes`: when training stops (whichever comes first).
struct TrainingLengthFlags<D: TrainingDefaults>: ParsableArguments {
    @Option(help: "Total epochs (with --resume, training continues up to this total).")
    var epochs: Int = D.epochs

    @Option(name: .customLong("max-steps"), help: "Stop after N steps in total, leaving a complete checkpoint (0: no limit).")
    var maxStepsOption: Int?

    @Option(name: .customLong("steps"), help: .hidden)
    var deprecatedSteps: Int?

    /// `--max-steps` (or its older spelling `--steps`), 0 for no limit.
    var maxSteps: Int { DeprecatedFlag.merge(maxStepsOption, deprecatedSteps) ?? 0 }

    @Option(help: "Stop after M minutes of this invocation's training, leaving a complete checkpoint (0: no limit).")
    var minutes: Double = 0

    func validate() throws {
        try DeprecatedFlag.check(maxStepsOption, "--max-steps", old: deprecatedSteps, "--steps")
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard maxSteps >= 0 else { throw ValidationError("--max-steps must not be negative") }
        guard minutes >= 0, minutes.isFinite else { throw ValidationError("--minutes must not be negative") }
    }
}

/// `--batch-size`, `--lr`, `--seed`: the optimisation.
struct OptimisationFlags<D: TrainingDefaults>: ParsableArguments {
    @Option(help: "Images per batch.")
    var batchSize: Int = D.batchSize

    @Option(help: ArgumentHelp("Learning rate (default: \(D.learningRateHelp))."))
    var lr: Double?

    @Option(help: "Seed for initialisation, shuffling and noise.")
    var seed: UInt64 = 0

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        if let lr { guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number") } }
    }

    /// `--lr`, or the family's default.
    var learningRate: Double { lr ?? D.learningRate ?? 1e-3 }
}

/// `--ema-decay`: the exponential moving average of the weights (with warm-up).
struct EMAFlags: ParsableArguments {
    @Option(help: "EMA decay, with the warm-up min(decay, (1 + n) / (10 + n)) (default: the model's).")
    var emaDecay: Double?

    func validate() throws {
        if let emaDecay, !(emaDecay > 0 && emaDecay < 1) { throw ValidationError("--ema-decay must be in (0, 1)") }
    }
}

/// `--log-every`, `--tensorboard`: the per-step log.
struct StepLogFlags: ParsableArguments {
    @Option(help: "Write a line to RUN/metrics.jsonl every N steps: step, epoch, each loss term, lr, grad_norm, images_per_s (0: the epoch lines only).")
    var logEvery: Int = 50

    @Flag(help: "Also write those scalars and the epoch means to a TensorBoard event file in RUN/tensorboard/ (tensorboard --logdir RUN).")
    var tensorboard = false

    func validate() throws {
        guard logEvery >= 0 else { throw ValidationError("--log-every must not be negative (0: epoch lines only)") }
    }
}

/// The flags every `train` command shares, declared once: data, run folder, training length,
/// optimisation and threads, with the family's defaults `D`.
struct TrainingFlags<D: TrainingDefaults>: ParsableArguments {
    @OptionGroup var dataFlags: DataFlags
    @OptionGroup var runFolder: RunFolderFlags<D>
    @OptionGroup var length: TrainingLengthFlags<D>
    @OptionGroup var optimisation: OptimisationFlags<D>
    @OptionGroup var stepLog: StepLogFlags
    @OptionGroup var compute: ComputeFlags

    @Option(name: .customLong("init-from"), help: ArgumentHelp(
        "Start a network from a PyTorch state_dict (.safetensors, PyTorch's names), checked strictly by name and shape: FILE for the model's first network, or NETWORK=FILE (e.g. generator=G.safetensors); repeatable.",
        valueName: "[network=]file"))
    var initFrom: [String] = []

    @Flag(help: "Check every op for NaN or infinity and name the first op (forward or backward) that made one when a loss goes non-finite; slow, for diagnosis.")
    var detectAnomaly = false

    var data: String? { dataFlags.data }
    var resume: Bool { runFolder.resume }
    var epochs: Int { length.epochs }
    var maxSteps: Int { length.maxSteps }
    var batchSize: Int { optimisation.batchSize }
    var lr: Double { optimisation.learningRate }
    var seed: UInt64 { optimisation.seed }
    var threads: Int { compute.threads }
    /// `--init-from`, parsed.
    var initialWeights: [InitialWeights] { initFrom.map(InitialWeights.init(argument:)) }

    @Option(help: "Clip every optimiser's gradients at this global L2 norm (PyTorch's clip_grad_norm_; default: no clipping).")
    var clipGradNorm: Double?

    @Option(help: "Compute each batch as K data-parallel shards in this process, as K ranks of mpirun would (same bits for K = 2); for checking a distributed run on one machine.")
    var gradShards: Int = 1

    func validate() throws {
        guard gradShards >= 1 else { throw ValidationError("--grad-shards must be at least 1") }
        if gradShards > 1, launchedRanks > 1 {
            throw ValidationError("--grad-shards emulates ranks in one process; under mpirun the ranks are the shards: leave it out")
        }
        if let clipGradNorm, !(clipGradNorm > 0 && clipGradNorm.isFinite) { throw ValidationError("--clip-grad-norm must be a positive number") }
        if !initFrom.isEmpty && runFolder.resume {
            throw ValidationError("--init-from starts a run from weights and --resume continues one from its checkpoint: give one of them")
        }
    }

    /// The loop's options; `learningRate` and `batchSize` override the flags' (a GAN's variant
    /// default, a GAN's loop batch of d-steps discriminator batches).
    func options(learningRate: Double? = nil, batchSize: Int? = nil) -> TrainingOptions {
        var options = TrainingOptions(epochs: length.epochs, batchSize: batchSize ?? optimisation.batchSize,
                                      learningRate: learningRate ?? lr, seed: seed,
                                      saveEvery: runFolder.saveEvery, maxSteps: length.maxSteps)
        options.maxSeconds = length.minutes * 60
        options.keepCheckpoints = runFolder.keepCheckpoints
        options.detectAnomaly = detectAnomaly
        options.logEvery = stepLog.logEvery
        options.tensorboard = stepLog.tensorboard
        options.initFrom = initialWeights
        options.clipGradientNorm = clipGradNorm
        return options
    }

    /// Opens the run folder `runs/MODEL` (or --out), holding its lock.
    /// Writes the run's header (backend and threads) to stderr.
    func start(_ model: String) throws -> (run: RunDirectory, lock: RunLock) {
        for item in initialWeights where !FileManager.default.fileExists(atPath: item.path) {
            throw ValidationError("--init-from \(item.path): no such file")
        }
        // Data-parallel ranks other than 0 write nothing: rank 0 holds the folder.
        if let world = try Communicator.world, !world.isRoot {
            let run = RunDirectory(URL(fileURLWithPath: runFolder.path(model)))
            return (run, RunLock(replicaOf: run.url))
        }
        let opened = try runFolder.open(model)
        logLine("train \(model) in \(opened.run.url.path): \(backendDescription())")
        return opened
    }

    /// Makes `loop` data-parallel as asked: `--grad-shards` with `replica` building each extra
    /// shard's model (under `mpirun`, every loop is already a rank's replica).
    func configure(_ loop: TrainingLoop, replica: @escaping () throws -> TrainableModel) {
        loop.gradientShards = gradShards
        loop.makeReplica = replica
    }

    /// The training split of the selected data.
    func loadTraining() throws -> ImageDataset { try dataFlags.load(.train) }
}
