import ArgumentParser
import Foundation
import GenTrain

/// Flags shared by every `train` command.
struct TrainFlags: ParsableArguments {
    @Option(help: "Total epochs (with --resume, training continues up to this total).")
    var epochs: Int = 10

    @Option(help: "Images per batch.")
    var batchSize: Int = 128

    @Option(help: "Learning rate.")
    var lr: Double = 1e-3

    @Option(help: "Seed for initialisation, shuffling and noise.")
    var seed: UInt64 = 0

    @Option(help: "A folder of IDX files (gzipped or not) or of PNG images; default: Debian's Fashion-MNIST.")
    var data: String?

    @Option(help: "The run folder: checkpoint, metrics log, loss plot, sample grids (default: runs/MODEL).")
    var out: String?

    @Flag(help: resumeHelp("--epochs, --max-steps, --save-every and --threads"))
    var resume = false

    @Flag(help: overwriteHelp)
    var overwrite = false

    @Option(help: "Also write a checkpoint every N steps (0: at each epoch's end only).")
    var saveEvery: Int = 0

    @Option(help: "Stop after N steps in total (0: no limit), leaving a complete checkpoint.")
    var maxSteps: Int = 0

    @Option(name: .customLong("init"), help: "Initialise the model from a PyTorch state_dict (.safetensors) before training.")
    var initWeights: String?

    @Option(help: "Threads for the kernels.")
    var threads: Int = 2

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number") }
        guard saveEvery >= 0, maxSteps >= 0 else { throw ValidationError("--save-every and --max-steps must not be negative") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        try validateRunFlags(resume: resume, overwrite: overwrite)
    }

    /// The run folder: `--out`, or `runs/MODEL`.
    func runPath(_ model: String) -> String { out ?? "runs/\(model)" }

    var options: TrainingOptions {
        TrainingOptions(epochs: epochs, batchSize: batchSize, learningRate: lr, seed: seed, saveEvery: saveEvery, maxSteps: maxSteps)
    }

    /// The training split of the selected data.
    func loadTraining() throws -> ImageDataset { try loadDataset(data, split: .train) }
}

/// Flags shared by the diffusion `train` commands (ddpm, sgm); their defaults are the PyTorch
/// reference run's: width 32, unconditional, Adam 2e-4, batch 64, EMA 0.999 with warm-up.
struct DiffusionTrainFlags: ParsableArguments {
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

    @Option(help: "The run folder (default: runs/MODEL).")
    var out: String?

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
        guard emaDecay > 0, emaDecay < 1 else { throw ValidationError("--ema-decay must be in (0, 1)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        try validateRunFlags(resume: resume, overwrite: overwrite)
    }

    /// The run folder: `--out`, or `runs/MODEL`.
    func runPath(_ model: String) -> String { out ?? "runs/\(model)" }

    /// The training length and optimisation settings.
    var options: TrainingOptions {
        var options = TrainingOptions(epochs: epochs, batchSize: batchSize, learningRate: lr, seed: seed,
                                      saveEvery: saveEvery, maxSteps: maxSteps)
        options.maxSeconds = minutes * 60
        return options
    }

    /// The class count for `--classes` (0 without it), from the data's labels.
    func classCount(_ dataset: ImageDataset) throws -> Int {
        guard classes else { return 0 }
        guard let labels = dataset.labels else { throw ValidationError("--classes needs labelled data; \(dataset.source) has none") }
        return Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
    }

    /// The settings a checkpoint stores for `--resume` to compare.
    func storedSettings(model: String, classes: Int) -> [String: String] {
        ["model": model, "width": String(width), "classes": String(classes), "cond_drop": String(condDrop),
         "ema_decay": String(emaDecay), "lr": String(lr), "batch_size": String(batchSize), "seed": String(seed)]
    }
}

/// The help of `--resume`, naming the settings that may change when a run resumes.
func resumeHelp(_ changeable: String) -> ArgumentHelp {
    ArgumentHelp("Continue from the run folder's checkpoint. Only \(changeable) may differ from the stored run; "
                 + "a change of model, architecture, loss, batch size, learning rate or seed is refused.")
}

let overwriteHelp = ArgumentHelp("Start afresh in a run folder that already holds a checkpoint, replacing it.")

/// Refuses `--resume` with `--overwrite`.
func validateRunFlags(resume: Bool, overwrite: Bool) throws {
    if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other: continue the run or replace it") }
}

/// Opens a run folder for training: takes its lock (refused while another process trains into
/// it), and refuses to replace a checkpoint there unless `resume` or `overwrite`. The caller keeps
/// the lock until training ends.
func openRun(_ path: String, resume: Bool, overwrite: Bool) throws -> (run: RunDirectory, lock: RunLock) {
    let run = RunDirectory(URL(fileURLWithPath: path))
    let lock = try RunLock(folder: run.url)
    if !resume && !overwrite && FileManager.default.fileExists(atPath: run.checkpoint.path) {
        lock.release()
        throw ValidationError("\(run.checkpoint.path) already exists: pass --resume to continue that run, or --overwrite to replace it")
    }
    return (run, lock)
}

/// Whether two paths name the same file: the same inode when both exist, else the same path once
/// links and `..` are resolved.
func sameFile(_ a: String, _ b: String) -> Bool {
    var first = stat(), second = stat()
    if stat(a, &first) == 0, stat(b, &second) == 0 { return first.st_dev == second.st_dev && first.st_ino == second.st_ino }
    func resolved(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
    return resolved(a) == resolved(b)
}

/// Loads a split of `--data`, or Fashion-MNIST from the Debian package.
func loadDataset(_ path: String?, split: DatasetSplit) throws -> ImageDataset {
    if let path { return try ImageDataset.load(directory: URL(fileURLWithPath: path), split: split) }
    return try ImageDataset.fashionMNIST(split: split)
}

/// Writes images (N, 28, 28, 1) in [0, 1] to PATH: a `.png` grid, a `.npy` array (N x 28 x 28
/// float32) or a folder with one PNG per image.
func writeImages(_ images: Tensor, to path: String) throws -> String {
    let url = URL(fileURLWithPath: path)
    switch url.pathExtension.lowercased() {
    case "png":
        let columns = Int(Double(images.shape[0]).squareRoot().rounded(.up))
        try PNGWriter.write(imageGrid(images, columns: max(columns, 1)), to: url)
        return "grid of \(images.shape[0]) images in \(url.path)"
    case "npy":
        try NPY.writeImages(images, to: url)
        return "\(images.shape[0]) images as \(url.path) (N x \(images.shape[1]) x \(images.shape[2]) float32 in [0, 1])"
    default:
        _ = try ImageFolderWriter.write(images, to: url)
        return "\(images.shape[0]) PNG files in \(url.path)/"
    }
}
