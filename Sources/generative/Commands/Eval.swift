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

/// `generative eval INPUT`: FID, FID∞, IS, KID, precision/recall and sampling speed. Under
/// `mpirun`, a checkpoint's samples (INPUT's, and a --reference checkpoint's) are split over the
/// ranks by image index and gathered to rank 0, which scores them and prints; the other ranks print
/// nothing.
struct Eval: DistributedCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score images or a checkpoint's samples: FID, FID∞, Inception Score, KID, precision/recall, classes and speed.",
        discussion: """
            INPUT is one of
              a .npy file: float32/float64 in [0, 1] or uint8 in 0-255, N x 28 x 28, N x 1 x 28 x 28 or N x 28 x 28 x 1;
              a folder of PNGs (or of class sub-folders of PNGs, named 0-9 or by Fashion-MNIST class, for class agreement); \
            PNGs of another size are resized to 28 x 28 and colour ones converted to grey (ITU-R BT.601 luma), with a warning;
              a checkpoint of `generative train` (vae, a GAN or ddpm): N images are sampled from it and timed \
            (EMA weights where there are; class-conditional models with balanced labels, for class agreement);
              fashion-mnist:train or fashion-mnist:test (the real images, for calibration);
              noise (uniform noise in [0, 1], for calibration).
            --reference B is train or test (the data's splits; their features are cached in $GENERATIVE_CACHE or \
            ~/.cache/generative, keyed by the feature network's SHA-256, and rebuilt when it changes), or a path: \
            a .npy of images, a folder of PNGs or a checkpoint, read as INPUT is (a checkpoint is sampled with the \
            same flags and seed; --count applies to it but not to files and folders, which are used whole), \
            or a .npz of statistics in pytorch-fid's format (mu (d,), sigma (d, d)), such as --save-stats writes. \
            Against a .npz only FID, FID∞ and FID at N are computed: KID and precision/recall need the reference's \
            features. Its d must be the feature network's (128 for the shipped one, not pytorch-fid's 2048), and \
            nothing in the file says which network made it: compare statistics of the same network only. \
            --labels and --blur apply to INPUT only.
            The feature network is the shipped classifier (see Sources/GenEval/Resources/classifier.md) unless \
            --network names another. Progress goes to stderr, results to stdout.
            """)

    @Argument(help: "A .npy file, a folder of PNGs, a checkpoint, fashion-mnist:train|test, or noise.")
    var input: String

    @Option(help: "What to compare with: train or test (the data's splits), or a .npy of images, a folder of PNGs, a checkpoint, or a .npz of statistics (mu, sigma).")
    var reference: String = "train"

    @Option(help: "Also write INPUT's feature statistics to this .npz (pytorch-fid's format: mu, sigma).")
    var saveStats: String?

    @Option(parsing: .unconditional, help: "How many images: the first N of a file or folder (default all); samples to draw from a checkpoint or noise (default 10000).")
    var count: Int?

    @Option(help: "Seed of the sampling noise and of the metrics' random subsets.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @Option(help: "Images per batch, for the feature network and for sampling.")
    var batchSize: Int = 500

    @OptionGroup var compute: ComputeFlags
    var threads: Int { compute.threads }

    @Option(help: "Another feature network: a plain state_dict or a classifier checkpoint.")
    var network: String?

    @Option(help: "A data folder for the reference images (default: Debian's Fashion-MNIST).")
    var data: String?

    @Option(help: "Class labels of the images (.npy of N integers), for class agreement.")
    var labels: String?

    @Option(help: "Also report FID of random subsets of these sizes, e.g. 1000,5000,10000.")
    var fidAt: String?

    @Option(help: "KID: the number of random subsets (of 1,000 samples each, or all when fewer).")
    var kidSubsets: Int = 100

    @Option(help: "The reference-statistics cache folder (default: $GENERATIVE_CACHE, else ~/.cache/generative).")
    var cache: String?

    @OptionGroup(title: "Diffusion checkpoints") var sampling: DiffusionSamplerFlags

    @Option(help: "Class-conditional diffusion checkpoints: classifier-free guidance scale (default: none).")
    var guidance: Double?

    @Flag(help: "GAN, diffusion and flow checkpoints: sample the raw weights instead of the EMA weights.")
    var noEma = false

    @Option(parsing: .unconditional, help: "Flow checkpoints: the sampling temperature (default: the model's).")
    var temperature: Double?

    @Option(help: "Blur the images with a Gaussian of this sigma (pixels) before scoring (calibration).")
    var blur: Double = 0

    @OptionGroup(title: "Likelihood") var likelihoodFlags: LikelihoodFlags

    func validate() throws {
        if let count { guard count >= 1 else { throw ValidationError("--count must be at least 1") } }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard kidSubsets >= 1 else { throw ValidationError("--kid-subsets must be at least 1") }
        guard blur >= 0, blur <= 10 else { throw ValidationError("--blur must be in [0, 10]") }
        _ = try fidAtSizes()
        if let saveStats {
            guard saveStats.lowercased().hasSuffix(".npz") else { throw ValidationError("--save-stats takes a .npz path, got \(saveStats)") }
        }
        // A reference path that cannot be used fails now, not after INPUT was sampled.
        if DatasetSplit(rawValue: reference) == nil {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: reference, isDirectory: &isDirectory) else {
                throw ValidationError("--reference \(reference): no such file or folder; \(Self.referenceForms)")
            }
            let known = ["npy", "npz", "safetensors"].contains(URL(fileURLWithPath: reference).pathExtension.lowercased())
            guard isDirectory.boolValue || known else {
                throw ValidationError("--reference \(reference): not a kind of file eval reads (by its extension); \(Self.referenceForms)")
            }
        }
        if likelihoodFlags.likelihood && (saveStats != nil || reference != "train") {
            throw ValidationError("--likelihood measures bits/dim on test images (or --images); --reference and --save-stats do not apply")
        }
    }

    /// The accepted forms of --reference, for its error messages.
    static let referenceForms = "use train, test, a .npy of images, a folder of PNGs, a checkpoint (.safetensors) or a .npz of statistics (mu, sigma)"

    /// The reference set `--reference` names, and warnings from loading it.
    func referenceSet(network: FeatureNetwork, sampling settings: CheckpointSampling,
                      log: @escaping (String) -> Void) throws -> (ReferenceSet, [String]) {
        if let split = DatasetSplit(rawValue: reference) {
            return (try Evaluator.reference(split, network: network, dataDirectory: data.map { URL(fileURLWithPath: $0) },
                                            cacheDirectory: cache.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? ReferenceCache.defaultDirectory,
                                            batchSize: batchSize, log: log), [])
        }
        let url = URL(fileURLWithPath: reference)
        do {
            if url.pathExtension.lowercased() == "npz" {
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw ValidationError("--reference \(reference): no such file; \(Self.referenceForms)")
                }
                return (try Evaluator.reference(statistics: try FeatureStatistics(npz: url), name: reference, network: network), [])
            }
            // A checkpoint is sampled --count times (or the default); files and folders are used whole.
            let isCheckpoint = url.pathExtension.lowercased() == "safetensors"
            let loaded = try EvalInput.load(reference, count: isCheckpoint ? count : nil, seed: seed, sampling: settings, pathsOnly: true, log: log)
            let (set, warnings) = try Evaluator.reference(images: loaded.images, name: reference, kind: loaded.kind, network: network,
                                                          batchSize: batchSize, log: log)
            return (set, (loaded.warnings + warnings).map { "reference: " + $0 })
        } catch let error as ValidationError where !error.message.hasPrefix("--reference") {
            throw ValidationError("--reference \(error.message); \(Self.referenceForms)")
        } catch let error as MetricError {
            throw ValidationError("--reference \(error.description)")
        } catch let error as EvaluationError {
            throw ValidationError("--reference \(error.description)")
        } catch let error as DataError {
            throw ValidationError("--reference \(error.description)")
        } catch let error as SafeTensorsError {
            throw ValidationError("--reference \(error.description)")
        }
    }

    func fidAtSizes() throws -> [Int] {
        guard let fidAt else { return [] }
        return try fidAt.split(separator: ",").map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 2 else {
                throw ValidationError("--fid-at takes sizes of at least 2 separated by commas, e.g. 1000,5000,10000")
            }
            return v
        }
    }

    func run() throws {
        let world = try Communicator.current
        if likelihoodFlags.likelihood {
            // Split over the ranks by image; rank 0 gathers the per-image bits and reports.
            guard let report = try measureLikelihood(world: world) else { return }
            print(json ? try report.json() : report.table())
            return
        }
        guard world.isRoot else { return try sampleShares() }
        let report = try evaluate()
        print(json ? try report.json() : report.table())
    }

    /// How checkpoints are sampled, from the flags.
    var checkpointSampling: CheckpointSampling {
        CheckpointSampling(batchSize: batchSize, threads: threads, ema: !noEma, sampling: sampling, guidance: guidance,
                           temperature: temperature)
    }

    /// A rank other than 0 of a distributed eval: its shares of INPUT's samples, then of a
    /// --reference checkpoint's, in the order in which rank 0's `evaluate` samples them. Files and
    /// the data's splits are read by rank 0 alone.
    func sampleShares(log: @escaping (String) -> Void = logLine) throws {
        if EvalInput.isCheckpoint(input) {
            _ = try EvalInput.sampleCheckpoint(URL(fileURLWithPath: input), count: count ?? EvalInput.defaultSampleCount, seed: seed,
                                               settings: checkpointSampling, log: log)
        }
        if DatasetSplit(rawValue: reference) == nil && EvalInput.isCheckpoint(reference) {
            _ = try EvalInput.sampleCheckpoint(URL(fileURLWithPath: reference), count: count ?? EvalInput.defaultSampleCount, seed: seed,
                                               settings: checkpointSampling, log: log)
        }
    }

    /// Loads or samples the images and scores them; `keepImages` receives the images scored.
    func evaluate(log: @escaping (String) -> Void = logLine, keepImages: ((Tensor) -> Void)? = nil) throws -> EvaluationReport {
        let settings = checkpointSampling
        let loaded = try EvalInput.load(input, count: count, seed: seed, sampling: settings, log: log)
        // Validate before anything slow (and before blurring, so NaN or out-of-range input is
        // reported as such).
        let checked = try ImageValidation.validate(loaded.images, source: input)
        var images = checked.images
        let warnings = loaded.warnings + checked.warnings
        var inputName = input
        if blur > 0 {
            images = GaussianBlur.apply(images, sigma: blur)
            inputName += String(format: " blurred (Gaussian, sigma %g)", blur)
        }
        keepImages?(images)
        var imageLabels = loaded.labels
        if let labels {
            let t = try NPY.read(URL(fileURLWithPath: labels))
            guard t.dtype == .int64, t.rank == 1 else {
                throw ValidationError("--labels \(labels): expected N integers (uint8 or int64), got \(t.dtype) of shape \(t.shape)")
            }
            guard t.shape[0] >= images.shape[0] else {
                throw ValidationError("--labels \(labels) holds \(t.shape[0]) labels for \(images.shape[0]) images")
            }
            imageLabels = t.shape[0] == images.shape[0] ? t : t.sliced(axis: 0, 0..<images.shape[0])
        }
        let featureNetwork = try network.map { try FeatureNetwork(contentsOf: URL(fileURLWithPath: $0)) } ?? FeatureNetwork.shared()
        let (referenceSet, referenceWarnings) = try referenceSet(network: featureNetwork, sampling: settings, log: log)
        var options = EvaluationOptions(reference: referenceSet.split ?? .train, seed: seed, batchSize: batchSize)
        options.fidAt = try fidAtSizes()
        options.kidSubsets = kidSubsets
        options.saveStatistics = saveStats.map { URL(fileURLWithPath: $0) }
        var report = try Evaluator.evaluate(images: images, labels: imageLabels, input: inputName, inputKind: loaded.kind,
                                            network: featureNetwork, reference: referenceSet, options: options,
                                            checkpointSHA256: loaded.checkpointSHA256, sampling: loaded.sampling,
                                            warnings: warnings + referenceWarnings, log: log)
        report.checkpointStep = loaded.checkpointStep
        return report
    }
}

extension DatasetSplit: ExpressibleByArgument {}

/// Images to evaluate, from any of `generative eval`'s input kinds.
struct EvalInput {
    var images: Tensor
    var labels: Tensor?
    var kind: String
    var warnings: [String] = []
    var checkpointSHA256: String?
    /// The checkpoint's training step, for checkpoint inputs.
    var checkpointStep: Int?
    var sampling: SamplingSpeed?

    /// The feature network's input [H, W, C]: the shape of the noise input and the size PNGs must have.
    static let featureImageShape = FeatureNetwork.imageShape

    /// Samples drawn from checkpoints and noise when --count is not given.
    static let defaultSampleCount = 10_000

    /// Loads `input`; with `pathsOnly`, `noise` and `fashion-mnist:...` are paths like any other
    /// (for --reference, where every form other than train and test is a path).
    static func load(_ input: String, count: Int?, seed: UInt64, sampling: CheckpointSampling, pathsOnly: Bool = false,
                     log: @escaping (String) -> Void) throws -> EvalInput {
        if input == "noise" && !pathsOnly {
            let n = count ?? defaultSampleCount
            return EvalInput(images: Tensor.uniform([n] + featureImageShape, generator: RandomGenerator(seed: seed)), kind: "noise")
        }
        if input.hasPrefix("fashion-mnist:") && !pathsOnly {
            guard let split = DatasetSplit(rawValue: String(input.dropFirst("fashion-mnist:".count))) else {
                throw ValidationError("\(input): use fashion-mnist:train or fashion-mnist:test")
            }
            let data = try ImageDataset.fashionMNIST(split: split)
            return truncated(EvalInput(images: data.images, labels: data.labels, kind: "dataset"), count: count, source: input)
        }
        let url = URL(fileURLWithPath: input)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ValidationError("\(input): no such file or folder")
        }
        if isDirectory.boolValue {
            return truncated(try loadPNGFolder(url, imageSize: featureImageShape[0]), count: count, source: input)
        }
        switch url.pathExtension.lowercased() {
        case "npy":
            let images: Tensor
            do { images = try NPY.readImages(url) } catch let error as DataError {
                throw ValidationError("\(input): \(error.problem)")
            }
            if images.shape[0] == 0 { throw ValidationError("\(input): holds no images") }
            return truncated(EvalInput(images: images, kind: "npy"), count: count, source: input)
        case "safetensors":
            guard let sampled = try sampleCheckpoint(url, count: count ?? defaultSampleCount, seed: seed, settings: sampling, log: log) else {
                throw ValidationError("\(input): the samples were gathered to rank 0; this rank has none to score")
            }
            return sampled
        default:
            if pathsOnly { throw ValidationError("\(input): not a file kind eval reads (by its extension)") }
            throw ValidationError("\(input): expected a .npy file, a folder of PNGs, a .safetensors checkpoint, fashion-mnist:train|test or noise"
                                  + (url.pathExtension.lowercased() == "npz" ? " (a .npz of statistics is read by --reference only)" : ""))
        }
    }

    /// Whether `path` names a checkpoint that `load` samples (an existing .safetensors file).
    static func isCheckpoint(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && URL(fileURLWithPath: path).pathExtension.lowercased() == "safetensors"
    }

    static func truncated(_ value: EvalInput, count: Int?, source: String) -> EvalInput {
        guard let count else { return value }
        var out = value
        let n = value.images.shape[0]
        if count < n {
            out.images = value.images.sliced(axis: 0, 0..<count)
            out.labels = value.labels?.sliced(axis: 0, 0..<count)
        } else if count > n {
            out.warnings.append("\(source) holds \(n) images, fewer than --count \(count); scored all \(n)")
        }
        return out
    }

    /// PNGs directly in the folder, or class sub-folders of PNGs (GenData's loader: images of another
    /// size than the feature network's are resized, colour ones converted to grey, each with a
    /// warning since either changes the score). Class folders give labels for the class agreement
    /// when all are named 0-9 or after the Fashion-MNIST classes.
    static func loadPNGFolder(_ url: URL, imageSize: Int) throws -> EvalInput {
        let data: ImageDataset
        do { data = try ImageDataset.load(directory: url, split: .train, imageSize: imageSize, resize: true) } catch let error as DataError {
            if error.kind == .emptyDirectory {
                throw ValidationError("\(url.path): the folder holds no PNG images (nor class sub-folders of PNGs)")
            }
            throw ValidationError("\(error.path): \(error.problem)")
        }
        let notes = data.conversionNotes
        guard let names = data.classNames, let folderLabels = data.labels else {
            return EvalInput(images: data.images, kind: "png-folder", warnings: notes)
        }
        let classes = names.map { name in
            Int64(name).flatMap { (0..<10).contains($0) ? $0 : nil }
                ?? ImageDataset.fashionMNISTClassNames.firstIndex(of: name).map { Int64($0) }
        }
        let unnamed = zip(names, classes).filter { $0.1 == nil }.map { url.appendingPathComponent($0.0).path }
        let warnings = notes + unnamed.map { "\($0): the folder name is not a class (0-9 or a Fashion-MNIST class name); no class agreement" }
        guard unnamed.isEmpty else { return EvalInput(images: data.images, kind: "png-folder", warnings: warnings) }
        let labels = folderLabels.scalars(as: Int64.self).map { classes[Int($0)]! }
        return EvalInput(images: data.images, labels: Tensor(labels, shape: [labels.count]), kind: "png-folder", warnings: notes)
    }

    /// Samples `count` images from a checkpoint through the model interface, timing the sampling
    /// (the whole of it: every batch, from loaded weights to images in [0, 1]). Class-conditional
    /// models are sampled with balanced labels (image i gets class i mod classes), which the
    /// report's class agreement checks. Under `mpirun` the images are split over the ranks
    /// (`shardedSampling`) and gathered to rank 0; the other ranks get nil.
    static func sampleCheckpoint(_ url: URL, count: Int, seed: UInt64, settings: CheckpointSampling,
                                 log: @escaping (String) -> Void) throws -> EvalInput? {
        let file = try SafeTensorsFile(contentsOf: url)
        guard file.metadata["format"] == Checkpoint.formatVersion else {
            throw ValidationError("\(url.path): not a generative checkpoint (to use a classifier's weights as the feature network, pass them with --network)")
        }
        let hash = try SHA256.hex(contentsOf: url)
        let model: any GenerativeModel
        do { model = try ModelRegistry.load(try Checkpoint.finite(contentsOf: url)) } catch let error as ModelError {
            throw ValidationError(error.description)
        }
        var options = SamplingOptions(ema: settings.ema, batchSize: settings.batchSize, guidance: settings.guidance,
                                      temperature: settings.temperature)
        if let diffusion = type(of: model) as? DiffusionSampling.Type {
            options.sampler = try settings.sampling.sampler(default: diffusion.defaultSampler, defaultSteps: diffusion.defaultSteps)
        }
        do { try model.validate(options) } catch let error as ModelError { throw ValidationError("\(url.path): \(error.description)") }
        let labels = model.classCount > 0 ? balancedClassLabels(count: count, classes: model.classCount) : nil
        let summary = model.samplingSummary(options)
        let world = try Communicator.current
        if world.isRoot {
            log("sampling \(count) images from \(url.path) (\(summary)), batch \(settings.batchSize)"
                + (world.size > 1 ? ", on \(world.size) ranks" : ""))
        }
        let start = Date()
        let sampled = try withoutGradients {
            try sampleShards(model, count: count, options: options, log: log) { range, progress in
                try model.sample(count: range.count, startIndex: range.lowerBound, seed: seed, labels: labels.map { Array($0[range]) },
                                 options: options, progress: progress)
            }
        }
        guard let images = sampled else { return nil }
        let seconds = Date().timeIntervalSince(start)
        let speed = SamplingSpeed(model: summary, imagesPerSecond: Double(count) / max(seconds, 1e-9), seconds: seconds,
                                  batchSize: model.effectiveBatchSize(options),
                                  networkEvaluationsPerImage: try model.evaluationsPerImage(options), threads: settings.threads)
        return EvalInput(images: images, labels: labels.map { Tensor($0.map { Int64($0) }, shape: [count]) }, kind: "checkpoint",
                         checkpointSHA256: hash, checkpointStep: file.metadata["step"].flatMap { Int($0) }, sampling: speed)
    }
}

/// How `generative eval` samples a checkpoint.
struct CheckpointSampling {
    var batchSize: Int
    var threads: Int
    /// GANs and diffusion: the EMA weights (default) or the raw ones.
    var ema: Bool
    /// Diffusion: the sampler flags (the model's default sampler where they name none).
    var sampling: DiffusionSamplerFlags
    /// Diffusion, class-conditional: classifier-free guidance scale.
    var guidance: Double?
    /// Flows: the sampling temperature.
    var temperature: Double? = nil
}
