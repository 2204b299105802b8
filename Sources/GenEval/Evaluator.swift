import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// Settings of an evaluation (the `generative eval` flags).
public struct EvaluationOptions: Sendable {
    /// The real images' split the samples are compared with (the training split by default).
    public var reference: DatasetSplit = .train
    /// Seed of every random choice: FID∞ and FID-at-N subsets, KID subsets, the precision/recall
    /// reference subset (and, in the CLI, the sampling noise).
    public var seed: UInt64 = 0
    /// Images per feature-network batch.
    public var batchSize: Int = 500
    /// Inception Score splits.
    public var inceptionScoreSplits = 10
    /// KID: subsets and their size (torch-fidelity's defaults).
    public var kidSubsets = 100, kidSubsetSize = 1000
    /// Precision/recall neighbourhood size.
    public var precisionRecallK = 3
    /// Precision/recall compares equally many real and generated samples: min(n, this) real ones,
    /// a seeded random subset of the reference (k-NN radii cost O(n²)).
    public var precisionRecallMaxCount = 10_000
    /// FID∞: the number of subset sizes (from n / 5 to n).
    public var fidInfinityPoints = 15
    /// Also report FID of seeded random subsets of these sizes (those not above n).
    public var fidAt: [Int] = []
    /// Where to write the evaluated images' feature statistics (all d dimensions) as pytorch-fid's
    /// .npz (`mu`, `sigma`); nil writes none.
    public var saveStatistics: URL?

    public init(reference: DatasetSplit = .train, seed: UInt64 = 0, batchSize: Int = 500) {
        self.reference = reference
        self.seed = seed
        self.batchSize = batchSize
    }
}

/// How fast the evaluated samples were made (checkpoint inputs only), measured in the same run.
public struct SamplingSpeed: Codable, Sendable, Equatable {
    /// The model kind ("vae", ...).
    public var model: String
    public var imagesPerSecond: Double
    public var seconds: Double
    public var batchSize: Int
    /// Network evaluations per image (1 for a VAE decoder or GAN generator; the step count for
    /// diffusion, or the mean the run used, rounded, for an adaptive sampler).
    public var networkEvaluationsPerImage: Int
    public var threads: Int

    public init(model: String, imagesPerSecond: Double, seconds: Double, batchSize: Int, networkEvaluationsPerImage: Int, threads: Int) {
        self.model = model
        self.imagesPerSecond = imagesPerSecond
        self.seconds = seconds
        self.batchSize = batchSize
        self.networkEvaluationsPerImage = networkEvaluationsPerImage
        self.threads = threads
    }
}

/// One (N, FID) measurement.
public struct FIDPoint: Codable, Sendable, Equatable {
    public var count: Int
    public var fid: Double
}

/// Everything one evaluation measured, and the settings that produced it.
public struct EvaluationReport: Codable, Sendable {
    // What was evaluated, and how.
    /// The input as given (path, or a description).
    public var input: String
    /// npy, png-folder, checkpoint, dataset, noise or memory.
    public var inputKind: String
    /// The number of images scored.
    public var sampleCount: Int
    /// The reference as given (a split's name or a path), its kind (split, npy, png-folder,
    /// checkpoint, npz, ...) and its size (0 for a .npz of statistics, which does not store it).
    public var reference: String
    public var referenceKind: String
    public var referenceCount: Int
    public var referenceSource: String
    public var seed: UInt64
    /// SHA-256 of the feature network's weights file, and where it came from.
    public var networkSHA256: String
    public var networkSource: String
    /// SHA-256 of the sampled checkpoint, for checkpoint inputs.
    public var checkpointSHA256: String?
    /// The training step of the sampled checkpoint (its `step`), for checkpoint inputs.
    public var checkpointStep: Int?

    // The metrics.
    public var fid: Double
    /// The feature dimensions FID used: those active (non-zero) for some reference image or sample.
    public var fidDimensions: Int
    /// The .npz the evaluated images' statistics were written to (--save-stats).
    public var savedStatistics: String?
    /// FID∞ (Chong & Forsyth 2020): intercept and slope of FID = a + b / N, and the measured points.
    public var fidInfinity: Double?
    public var fidInfinitySlope: Double?
    public var fidInfinityPoints: [FIDPoint]
    /// FID of random subsets of the requested sizes.
    public var fidAt: [FIDPoint]
    public var inceptionScore: Double
    public var inceptionScoreStd: Double
    public var inceptionScoreSplits: Int
    /// nil when the reference is statistics only (a .npz); so are precision and recall.
    public var kid: Double?
    public var kidStd: Double?
    public var kidSubsets: Int
    public var kidSubsetSize: Int
    public var precision: Double?
    public var recall: Double?
    public var precisionRecallK: Int
    public var precisionRecallReferenceCount: Int
    /// Images per predicted class (argmax of the feature network), by class index.
    public var classHistogram: [Int]
    public var classNames: [String]
    /// For conditional samples: the fraction whose predicted class is the class they were made for.
    public var classAgreement: Double?

    // Speed and settings.
    public var sampling: SamplingSpeed?
    public var featureImagesPerSecond: Double
    public var batchSize: Int
    public var threads: Int
    public var seconds: Double
    public var warnings: [String]

    /// The JSON object (snake_case keys, sorted, one line unless `pretty`).
    public func json(pretty: Bool = false) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads what `json` writes (its snake_case keys, "nan" and "inf" as strings).
    public static func decode(json: Data) throws -> EvaluationReport {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        let decoder = JSONDecoder()
        // convertFromSnakeCase would read checkpoint_sha256 as checkpointSha256: undo the encoder's
        // snake_case word by word, keeping SHA256 as written.
        decoder.keyDecodingStrategy = .custom { path in
            let words = path.last!.stringValue.split(separator: "_")
            let camel = words.enumerated().map { i, w in i == 0 ? String(w) : w.prefix(1).uppercased() + w.dropFirst() }.joined()
            return Key(stringValue: camel.replacingOccurrences(of: "Sha256", with: "SHA256"))
        }
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(EvaluationReport.self, from: json)
    }

    /// Whether the reference was statistics only (a .npz), so that KID and precision/recall could not be computed.
    var statisticsOnly: Bool { referenceKind == "npz" }

    static let unavailable = "unavailable (the reference is a .npz of statistics, without features)"

    /// A readable table.
    public func table() -> String {
        var lines: [String] = []
        func row(_ name: String, _ value: String) { lines.append(name.padding(toLength: 26, withPad: " ", startingAt: 0) + value) }
        func f(_ v: Double, _ digits: Int = 4) -> String { String(format: "%.\(digits)f", v) }
        row("input", "\(input) (\(inputKind))")
        row("samples", "\(sampleCount)")
        switch referenceKind {
        case "split": row("reference", "\(reference) split, \(referenceCount) images (\(referenceSource))")
        case "npz": row("reference", "\(reference) (npz statistics: mu and sigma only)")
        default: row("reference", "\(reference) (\(referenceKind)), \(referenceCount) images")
        }
        row("seed", "\(seed)")
        row("feature network", "sha256 \(networkSHA256) (\(networkSource))")
        if let checkpointSHA256 { row("checkpoint", "sha256 \(checkpointSHA256)" + (checkpointStep.map { ", step \($0)" } ?? "")) }
        if let savedStatistics { row("statistics saved to", savedStatistics) }
        lines.append("")
        row("FID", f(fid) + (fidDimensions < 128 ? " (\(fidDimensions) feature dimensions: \(128 - fidDimensions) are zero on every image)" : ""))
        if let fidInfinity {
            let sizes = fidInfinityPoints.map(\.count)
            row("FID∞", "\(f(fidInfinity)) (fit FID = a + b/N, b = \(f(fidInfinitySlope ?? .nan, 1)), \(fidInfinityPoints.count) subsets of \(sizes.first ?? 0) to \(sizes.last ?? 0))")
        } else {
            row("FID∞", "not computed (too few samples)")
        }
        for p in fidAt { row("FID at \(p.count)", f(p.fid)) }
        row("Inception Score", "\(f(inceptionScore, 3)) ± \(f(inceptionScoreStd, 3)) (\(inceptionScoreSplits) splits)")
        if let kid, let kidStd {
            row("KID", "\(f(kid, 5)) ± \(f(kidStd, 5)) (\(kidSubsets) subsets of \(kidSubsetSize))")
        } else {
            row("KID", Self.unavailable)
        }
        if let precision, let recall {
            row("precision / recall", "\(f(precision, 3)) / \(f(recall, 3)) (k = \(precisionRecallK), \(precisionRecallReferenceCount) real images)")
        } else {
            row("precision / recall", statisticsOnly ? Self.unavailable : "not computed (too few samples)")
        }
        let total = max(classHistogram.reduce(0, +), 1)
        let hist = classHistogram.enumerated().map { i, c in
            let name = i < classNames.count ? classNames[i] : "\(i)"
            return "\(name) \(String(format: "%.1f%%", 100 * Double(c) / Double(total)))"
        }
        row("predicted classes", hist.joined(separator: ", "))
        if let classAgreement { row("class agreement", String(format: "%.2f%%", 100 * classAgreement)) }
        lines.append("")
        if let s = sampling {
            row("sampling", String(format: "%.1f images/s (%@, batch %d, %d network evaluations per image, %d threads, %.1f s)",
                                   s.imagesPerSecond, s.model, s.batchSize, s.networkEvaluationsPerImage, s.threads, s.seconds))
        }
        row("feature extraction", String(format: "%.0f images/s (batch %d, %d threads)", featureImagesPerSecond, batchSize, threads))
        row("time", String(format: "%.1f s", seconds))
        for w in warnings { lines.append("warning: " + w) }
        return lines.joined(separator: "\n")
    }
}

/// Scores a set of images against cached reference statistics with the shipped feature network:
/// FID, FID∞, IS, KID, precision/recall, the class histogram and (with labels) class agreement.
public enum Evaluator {
    /// Evaluates images (N, 28, 28, 1) in [0, 1] (validated first: see `ImageValidation`) against
    /// `reference`. `labels` (N, int64), when the images were made for given classes, give the
    /// class agreement. `warnings` are carried into the report (e.g. from loading).
    public static func evaluate(images: Tensor, labels: Tensor? = nil, input: String, inputKind: String,
                                network: FeatureNetwork, reference: ReferenceSet, options: EvaluationOptions = EvaluationOptions(),
                                checkpointSHA256: String? = nil, sampling: SamplingSpeed? = nil, warnings: [String] = [],
                                log: (String) -> Void = { _ in }) throws -> EvaluationReport {
        let start = Date()
        let (x, validationWarnings) = try ImageValidation.validate(images, source: input)
        var allWarnings = warnings + validationWarnings
        let n = x.shape[0]
        if let labels {
            guard labels.dtype == .int64, labels.shape == [n] else {
                throw EvaluationError("\(input): \(labels.dtype) labels of shape \(labels.shape) for \(n) images; expected int64 (\(n))")
            }
        }
        guard n >= 2 else { throw EvaluationError("\(input): \(n) image; the statistics need at least 2") }
        guard reference.networkHash == network.hash else {
            throw EvaluationError("the reference statistics were computed with feature network \(reference.networkHash), not \(network.hash)")
        }
        guard reference.statistics.dimension == network.featureDimension else {
            throw EvaluationError("the reference \(reference.name) has statistics of dimension \(reference.statistics.dimension), but the feature network's features have \(network.featureDimension)")
        }
        log("extracting features of \(n) images")
        let featureStart = Date()
        let outputs = network.outputs(x, batchSize: options.batchSize,
                                      label: "features", log: log)
        let featureSeconds = Date().timeIntervalSince(featureStart)
        // Units that never fire on the reference nor on the samples are left out of FID: they add
        // exactly 0 to each of its terms but would make both covariances singular.
        let live = reference.features.map { liveDimensions($0, outputs.features) }
            ?? liveDimensions(reference.statistics, outputs.features)
        let d = live.count
        let fidFeatures = d == outputs.features.columns ? outputs.features : selectingColumns(outputs.features, live)
        let fidReference = d == outputs.features.columns ? reference.statistics : try restricted(reference.statistics, to: live)
        let generator = RandomGenerator(seed: options.seed)
        if let url = options.saveStatistics {
            let all = try FeatureStatistics(features: outputs.features)
            try all.writeNPZ(to: url)
            log("wrote the feature statistics of the \(n) images (mu, sigma; d = \(all.dimension)) to \(url.path)")
        }
        // A reference of statistics only (a .npz) allows FID, FID∞ and FID at N (they subsample the
        // evaluated images only, against the reference's mean and covariance); KID and
        // precision/recall need the reference's features.
        let referenceFeatures = reference.features
        if referenceFeatures == nil {
            log("note: the reference \(reference.name) is statistics only (mu, sigma): KID and precision/recall are unavailable (they need its features); FID, FID∞ and FID at N are computed")
        }

        // FID and its dependence on the sample count.
        log("FID")
        let generatedStatistics = try FeatureStatistics(features: fidFeatures)
        // With n <= d samples (fewer than the live feature dimensions) the covariance is singular:
        // FrechetDistance warns and adds ε·I, as pytorch-fid does, and the value is still reported.
        let fid = try FrechetDistance.compute(generatedStatistics, fidReference)
        if let w = fid.warning {
            if n > d {
                // Enough samples, but a feature is (numerically) constant on one side: a unit that
                // fires on a few reference images and never on the samples, or the reverse.
                allWarnings.append("FID: a feature is constant over the samples or the reference (a unit that never fires on one of them), so a covariance is singular; \(fid.epsilonAdded)·I was added to both, as pytorch-fid does, which moves FID by about d·ε. (\(w))")
            } else {
                allWarnings.append(w)
            }
        }
        var infinity: FIDInfinityResult?
        if n >= 10 {
            infinity = try FIDExtrapolation.compute(generated: fidFeatures, reference: fidReference,
                                                    pointCount: options.fidInfinityPoints, seed: options.seed ^ 0xF1D)
        } else {
            allWarnings.append("FID∞ needs at least 10 samples; not computed")
        }
        var fidAt: [FIDPoint] = []
        for size in options.fidAt where size >= 2 {
            guard size <= n else {
                allWarnings.append("FID at \(size): only \(n) samples; skipped")
                continue
            }
            let subset = fidFeatures.selectingRows(Array(generator.permutation(n)[0..<size]))
            let value = try FrechetDistance.compute(FeatureStatistics(features: subset), fidReference)
            fidAt.append(FIDPoint(count: size, fid: value.value))
        }

        // Inception Score.
        let splits = min(options.inceptionScoreSplits, n)
        if splits < options.inceptionScoreSplits {
            allWarnings.append("Inception Score over \(splits) splits instead of \(options.inceptionScoreSplits): only \(n) samples")
        }
        let inception = try InceptionScore.compute(probabilities: outputs.probabilities, splits: splits)

        // KID.
        var kid: KernelInceptionDistanceResult?
        if let referenceFeatures {
            log("KID")
            kid = try KernelInceptionDistance.compute(outputs.features, referenceFeatures, subsets: options.kidSubsets,
                                                      subsetSize: options.kidSubsetSize, seed: options.seed ^ 0x41D)
            if let w = kid?.warning { allWarnings.append(w) }
        }

        // Precision and recall against an equally large random subset of the reference.
        var precisionRecall: PrecisionRecallResult?
        let realCount = min(n, options.precisionRecallMaxCount, reference.count)
        var generated = outputs.features
        if let referenceFeatures {
            log("precision and recall")
            if n > options.precisionRecallMaxCount {
                generated = generated.selectingRows(Array(generator.permutation(n)[0..<options.precisionRecallMaxCount]))
                allWarnings.append("precision/recall on a random \(options.precisionRecallMaxCount) of the \(n) samples")
            }
            if realCount > options.precisionRecallK && generated.rows > options.precisionRecallK {
                let real = referenceFeatures.selectingRows(Array(generator.permutation(reference.count)[0..<realCount]))
                precisionRecall = try PrecisionRecall.compute(real: real, generated: generated, k: options.precisionRecallK)
            } else {
                allWarnings.append("precision/recall need more than k = \(options.precisionRecallK) samples; not computed")
            }
        }

        // Classes.
        let predicted = outputs.predictedClasses
        var histogram = [Int](repeating: 0, count: outputs.probabilities.columns)
        for c in predicted { histogram[c] += 1 }
        var agreement: Double?
        if let labels {
            let y = labels.scalars(as: Int64.self)
            agreement = Double(zip(predicted, y).filter { Int64($0.0) == $0.1 }.count) / Double(n)
        }

        var seen = Set<String>()
        let uniqueWarnings = allWarnings.filter { seen.insert($0).inserted }
        return EvaluationReport(
            input: input, inputKind: inputKind, sampleCount: n, reference: reference.name, referenceKind: reference.kind,
            referenceCount: reference.count, referenceSource: reference.source, seed: options.seed,
            networkSHA256: network.hash, networkSource: network.source, checkpointSHA256: checkpointSHA256,
            fid: fid.value, fidDimensions: d, savedStatistics: options.saveStatistics?.path, fidInfinity: infinity?.fidInfinity, fidInfinitySlope: infinity?.slope,
            fidInfinityPoints: infinity?.points.map { FIDPoint(count: $0.size, fid: $0.fid) } ?? [], fidAt: fidAt,
            inceptionScore: inception.mean, inceptionScoreStd: inception.std, inceptionScoreSplits: splits,
            kid: kid?.mean, kidStd: kid?.std, kidSubsets: options.kidSubsets, kidSubsetSize: kid?.subsetSize ?? options.kidSubsetSize,
            precision: precisionRecall?.precision, recall: precisionRecall?.recall,
            precisionRecallK: options.precisionRecallK, precisionRecallReferenceCount: precisionRecall == nil ? 0 : realCount,
            classHistogram: histogram, classNames: ImageDataset.fashionMNISTClassNames, classAgreement: agreement,
            sampling: sampling, featureImagesPerSecond: Double(n) / max(featureSeconds, 1e-9), batchSize: options.batchSize,
            threads: Threads.count, seconds: Date().timeIntervalSince(start), warnings: uniqueWarnings)
    }

    /// The columns that are non-zero in some row of `a` or `b`.
    static func liveDimensions(_ a: Matrix64, _ b: Matrix64) -> [Int] {
        let d = a.columns
        var live = [Bool](repeating: false, count: d)
        for m in [a, b] {
            m.values.withUnsafeBufferPointer { v in
                for i in 0..<m.rows {
                    for j in 0..<d where v[i * d + j] != 0 { live[j] = true }
                }
            }
        }
        return (0..<d).filter { live[$0] }
    }

    /// The columns that are non-zero in some row of `features` or live in `statistics` (a non-zero
    /// mean or variance: exactly the columns non-zero in some row of the features they summarise).
    static func liveDimensions(_ statistics: FeatureStatistics, _ features: Matrix64) -> [Int] {
        let fromFeatures = Set(liveDimensions(features, Matrix64(rows: 0, columns: features.columns)))
        return (0..<features.columns).filter {
            fromFeatures.contains($0) || statistics.mean[$0] != 0 || statistics.covariance[$0, $0] != 0
        }
    }

    static func selectingColumns(_ m: Matrix64, _ columns: [Int]) -> Matrix64 {
        var out = [Double](repeating: 0, count: m.rows * columns.count)
        for i in 0..<m.rows {
            for (k, j) in columns.enumerated() { out[i * columns.count + k] = m.values[i * m.columns + j] }
        }
        return Matrix64(rows: m.rows, columns: columns.count, values: out)
    }

    static func restricted(_ s: FeatureStatistics, to dims: [Int]) throws -> FeatureStatistics {
        var cov = Matrix64(rows: dims.count, columns: dims.count)
        for (a, i) in dims.enumerated() { for (b, j) in dims.enumerated() { cov[a, b] = s.covariance[i, j] } }
        return try FeatureStatistics(mean: dims.map { s.mean[$0] }, covariance: cov, count: s.count)
    }

    /// The reference set of `options.reference` for `network`, from the default Fashion-MNIST
    /// folder or `dataDirectory`, cached in `cacheDirectory`.
    public static func reference(_ split: DatasetSplit, network: FeatureNetwork, dataDirectory: URL? = nil,
                                 cacheDirectory: URL = ReferenceCache.defaultDirectory, batchSize: Int = 500,
                                 log: (String) -> Void = { _ in }) throws -> ReferenceSet {
        try ReferenceCache.reference(split: split, network: network, datasetKey: ReferenceCache.datasetKey(dataDirectory: dataDirectory),
                                     directory: cacheDirectory, batchSize: batchSize, loadDataset: {
                                         if let dataDirectory { return try ImageDataset.load(directory: dataDirectory, split: split) }
                                         return try ImageDataset.fashionMNIST(split: split)
                                     }, log: log)
    }

    /// A reference set from images (N, H, W, 1) in [0, 1] (validated first, as the evaluated ones
    /// are): their features under `network`, not cached. `name` is the reference as the user gave
    /// it, `kind` its input kind (npy, png-folder, checkpoint, ...).
    public static func reference(images: Tensor, name: String, kind: String, network: FeatureNetwork, batchSize: Int = 500,
                                 log: (String) -> Void = { _ in }) throws -> (reference: ReferenceSet, warnings: [String]) {
        let (x, warnings) = try ImageValidation.validate(images, source: name)
        guard x.shape[0] >= 2 else { throw EvaluationError("the reference \(name) has \(x.shape[0]) image; the statistics need at least 2") }
        log("extracting features of the \(x.shape[0]) reference images of \(name)")
        let features = network.outputs(x, batchSize: batchSize,
                                       label: "reference features", log: log).features
        let set = ReferenceSet(name: name, kind: kind, statistics: try FeatureStatistics(features: features), features: features,
                               networkHash: network.hash, source: "\(x.shape[0]) images of \(name)")
        return (set, warnings)
    }

    /// A reference set of statistics only (pytorch-fid's .npz): FID, FID∞ and FID at N can be
    /// computed against it, KID and precision/recall cannot. Throws when its dimension is not the
    /// feature network's (pytorch-fid's Inception statistics have 2048).
    public static func reference(statistics: FeatureStatistics, name: String, network: FeatureNetwork) throws -> ReferenceSet {
        guard statistics.dimension == network.featureDimension else {
            throw EvaluationError("\(name) holds statistics of dimension \(statistics.dimension), but the feature network's features have dimension \(network.featureDimension)\(statistics.dimension == 2048 ? " (2048 is pytorch-fid's Inception features; statistics must come from this toolkit's feature network, e.g. eval --save-stats)" : "")")
        }
        return ReferenceSet(name: name, kind: "npz", statistics: statistics, features: nil, networkHash: network.hash,
                            source: "statistics in \(name)")
    }
}
