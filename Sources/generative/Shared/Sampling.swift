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

/// Flags shared by the sampling commands.
struct SampleFlags: ParsableArguments {
    @Option(help: "The checkpoint to sample from.")
    var checkpoint: String

    @Option(parsing: .unconditional, help: "How many images.")
    var count: Int = 64

    @Option(help: "Seed of the sampling noise (image i's noise depends only on the seed and i).")
    var seed: UInt64 = 0

    @Option(help: "Images per network batch (the images do not depend on it).")
    var batchSize: Int = 256

    @Option(help: "Where to write: a .png grid, a .npy array (N x H x W float32 in [0, 1]) or a folder.")
    var out: String = "samples.png"

    @OptionGroup var compute: ComputeFlags

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        try validateImageOutput(out)
    }
}

/// Loads a checkpoint of model `M`; the error names the file and what it holds instead.
func loadModel<M: GenerativeModel>(_ path: String, as model: M.Type) throws -> M {
    let checkpoint = try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path))
    guard checkpoint.metadata["model"] == M.kind else {
        throw ValidationError("\(path) is a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a \(M.kind) one")
    }
    return try M.load(checkpoint)
}

/// Loads whatever model a checkpoint holds, through the registry.
func loadAnyModel(_ path: String) throws -> any GenerativeModel {
    try ModelRegistry.load(try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path)))
}

/// What a `SampleCommand` samples: its name and help, and which loaded models it accepts.
protocol SampleCommandSpec {
    static var commandName: String { get }
    static var abstract: String { get }
    /// Refuses a model this command does not sample, naming the command that does.
    static func accept(_ model: any GenerativeModel, path: String) throws
}

/// `generative sample NAME`: images from any model of the interface, with the shared flags; under
/// `mpirun`, split over the ranks by image index (`sampleShards`).
struct SampleCommand<Spec: SampleCommandSpec>: DistributedCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Spec.commandName, abstract: Spec.abstract)
    }

    @OptionGroup var flags: SampleFlags

    @Flag(name: .customLong("no-ema"), help: "Use the raw weights instead of their EMA.")
    var noEMA = false

    @Option(name: .customLong("class"), help: "Draw every image from this class (class-conditional models; default: the model's own choice).")
    var label: Int?

    @Option(help: "Also write the class of each image as a .npy of int64 (class-conditional models; for `eval --labels`).")
    var labelsOut: String?

    func run() throws {
        let model = try loadAnyModel(flags.checkpoint)
        try Spec.accept(model, path: flags.checkpoint)
        let labels = try classLabels(label, count: flags.count, model: model, path: flags.checkpoint)
        let options = SamplingOptions(ema: !noEMA, batchSize: flags.batchSize)
        try model.validate(options)
        guard let images = try sampleShards(model, flags: flags, labels: labels, options: options) else { return }
        print("wrote " + (try writeImages(images, to: flags.out)) + " (\(model.samplingSummary(options)))")
        if let labelsOut {
            guard let used = labels ?? model.unconditionalLabels(count: flags.count) else {
                throw ValidationError("--labels-out: \(flags.checkpoint) samples without classes")
            }
            try NPY.write(Tensor(used.map { Int64($0) }, shape: [used.count]), to: URL(fileURLWithPath: labelsOut))
            print("wrote the \(used.count) class labels to \(labelsOut)")
        }
    }
}

/// Images 0..<flags.count of `model` (with `labels`, one per image, or none) split over the ranks
/// of `Communicator.current` (`shardedSampling`): all of them on rank 0, nil on the others.
func sampleShards(_ model: any GenerativeModel, flags: SampleFlags, labels: [Int]?, options: SamplingOptions,
                  showProgress: Bool = true) throws -> Tensor? {
    try sampleShards(model, count: flags.count, options: options, showProgress: showProgress) { range, progress in
        try model.sample(count: range.count, startIndex: range.lowerBound, seed: flags.seed, labels: labels.map { Array($0[range]) },
                         options: options, progress: progress)
    }
}

/// `shardedSampling` over `Communicator.current` at `model`'s batch size and image shape.
func sampleShards(_ model: any GenerativeModel, count: Int, options: SamplingOptions, showProgress: Bool = true,
                  log: @escaping (String) -> Void = logLine,
                  _ body: (Range<Int>, ((Int, Int) -> Void)?) throws -> Tensor) throws -> Tensor? {
    try shardedSampling(count: count, batchSize: model.effectiveBatchSize(options), imageShape: model.imageShape,
                        world: try Communicator.current, showProgress: showProgress, log: log, body)
}

/// `--class K` as one label per image, checked against the model's classes.
func classLabels(_ label: Int?, count: Int, model: any GenerativeModel, path: String) throws -> [Int]? {
    guard let label else { return nil }
    guard model.classCount > 0 else { throw ValidationError("\(path) is unconditional: --class needs a class-conditional model") }
    guard (0..<model.classCount).contains(label) else { throw ValidationError("--class must be in 0..<\(model.classCount)") }
    return Array(repeating: label, count: count)
}

/// Runs `body` with a progress callback (images done, total) that shows the progress and the time
/// left on stderr: a bar on a terminal, else a line every 10 s (`CountProgress`).
func withProgress<T>(count: Int, label: String = "sampling", log: @escaping (String) -> Void = logLine,
                     _ body: (@escaping (Int, Int) -> Void) throws -> T) rethrows -> T {
    let progress = CountProgress(label, total: count, log: log)
    return try body { done, _ in progress.update(done) }
}

/// The sampling speed on stderr: images/s and network evaluations per image.
func reportSamplingSpeed(count: Int, seconds: Double, sampler: String, evaluations: Int) {
    logLine(String(format: "%.2f images/s (sampler %@, %d network evaluations per image; %@)",
                   Double(count) / max(seconds, 1e-9), sampler, evaluations, backendDescription()))
}
