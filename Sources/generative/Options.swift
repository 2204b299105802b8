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

    @Option(help: "The run folder: checkpoint, metrics log, loss plot, sample grids.")
    var out: String = "runs/default"

    @Flag(help: "Continue from the run folder's checkpoint.")
    var resume = false

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
    }

    var options: TrainingOptions {
        TrainingOptions(epochs: epochs, batchSize: batchSize, learningRate: lr, seed: seed, saveEvery: saveEvery, maxSteps: maxSteps)
    }

    /// The training split of the selected data.
    func loadTraining() throws -> ImageDataset { try loadDataset(data, split: .train) }
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
