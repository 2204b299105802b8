import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The reference side of every metric: its feature statistics (for FID and FID∞) and, unless it
/// was given as statistics only (a pytorch-fid .npz), its features themselves (for KID,
/// precision/recall, FID∞ and FID at N), under one feature network.
public struct ReferenceSet: Sendable {
    /// What the reference is, as the user named it: a split ("train", "test") or a path.
    public let name: String
    /// split, npy, png-folder, checkpoint, dataset, noise or npz (statistics only).
    public let kind: String
    /// Which split of the data, for the cached Fashion-MNIST (or --data) splits.
    public let split: DatasetSplit?
    /// Mean and covariance of the features.
    public let statistics: FeatureStatistics
    /// The (n, d) features, in the reference's order; nil when only statistics were given.
    public let features: Matrix64?
    /// SHA-256 of the feature network's weights file.
    public let networkHash: String
    /// The reference, in words.
    public let source: String
    /// The cache file (cached splits only).
    public let cacheURL: URL?
    /// True when read from the cache, false when computed in this call.
    public let fromCache: Bool

    /// The number of reference images (0 when only statistics were given: pytorch-fid's .npz does not store it).
    public var count: Int { features?.rows ?? statistics.count }

    public init(name: String, kind: String, split: DatasetSplit? = nil, statistics: FeatureStatistics, features: Matrix64?,
                networkHash: String, source: String, cacheURL: URL? = nil, fromCache: Bool = false) {
        self.name = name
        self.kind = kind
        self.split = split
        self.statistics = statistics
        self.features = features
        self.networkHash = networkHash
        self.source = source
        self.cacheURL = cacheURL
        self.fromCache = fromCache
    }
}

/// Reference statistics and features cached on disk, keyed by the feature network's hash.
///
/// One safetensors file per (dataset, split, network): `reference-DATA-SPLIT-HASH16.safetensors`
/// in `directory` (`$GENERATIVE_CACHE`, else `~/.cache/generative`), holding `mu` (F64 [128]),
/// `sigma` (F64 [128, 128]), `count` and `features` (F32 [n, 128]), with the full network hash, the
/// dataset and the split in its metadata. A file is used only when its metadata names the same
/// network hash, dataset and split, and its tensors have the expected shapes; otherwise (a new
/// network, a damaged or stale file) the features are recomputed and the file rewritten
/// atomically.
public enum ReferenceCache {
    /// The cache format (bumped when the contents change meaning).
    public static let formatVersion = "generative-reference-1"

    /// `$GENERATIVE_CACHE` when set, else `~/.cache/generative`.
    public static var defaultDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["GENERATIVE_CACHE"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache", isDirectory: true).appendingPathComponent("generative", isDirectory: true)
    }

    /// The cache file of a dataset split under a network.
    public static func url(directory: URL, datasetKey: String, split: DatasetSplit, networkHash: String) -> URL {
        let safeKey = String(datasetKey.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        return directory.appendingPathComponent("reference-\(safeKey)-\(split.rawValue)-\(networkHash.prefix(16)).safetensors")
    }

    /// The dataset key of a data folder: "fashion-mnist" for the default Fashion-MNIST folder,
    /// else "data-" and 12 hex digits of the SHA-256 of the folder's absolute path.
    public static func datasetKey(dataDirectory: URL?) -> String {
        guard let dataDirectory else { return "fashion-mnist" }
        return "data-" + SHA256.hex(Data(dataDirectory.standardizedFileURL.path.utf8)).prefix(12)
    }

    /// The reference set of `split` under `network`: read from the cache when it is there and
    /// matches, else computed from `loadDataset()` and cached. `log` hears what happens.
    public static func reference(split: DatasetSplit, network: FeatureNetwork, datasetKey: String = "fashion-mnist",
                                 directory: URL = defaultDirectory, batchSize: Int = 500,
                                 loadDataset: () throws -> ImageDataset,
                                 log: (String) -> Void = { _ in }) throws -> ReferenceSet {
        let file = url(directory: directory, datasetKey: datasetKey, split: split, networkHash: network.hash)
        if let cached = read(file, split: split, networkHash: network.hash, datasetKey: datasetKey,
                             dimension: network.featureDimension, log: log) {
            return cached
        }
        let data = try loadDataset()
        guard data.count >= 2 else {
            throw EvaluationError("the reference \(split.rawValue) split (\(data.source)) has \(data.count) images; need at least 2")
        }
        guard data.images.shape[1] == 28 && data.images.shape[2] == 28 else {
            throw EvaluationError("the reference images (\(data.source)) are \(data.images.shape[1]) x \(data.images.shape[2]); the feature network needs 28 x 28")
        }
        log("computing reference features of \(data.count) \(split.rawValue) images (\(data.source)); caching them in \(file.path)")
        let start = Date()
        let outputs = network.outputs(data.images, batchSize: batchSize,
                                      label: "reference features", log: log)
        let statistics = try FeatureStatistics(features: outputs.features)
        log(String(format: "  %.1f s", Date().timeIntervalSince(start)))
        let metadata = [
            "format": formatVersion, "network_sha256": network.hash, "network_source": network.source,
            "dataset": datasetKey, "dataset_source": data.source, "split": split.rawValue,
        ]
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let f = outputs.features
            let featureTensor = Tensor(f.values.map { Float($0) }, shape: [f.rows, f.columns])
            try SafeTensorsFile.write([
                FeatureStatistics.meanName: Tensor(statistics.mean, shape: [statistics.dimension]),
                FeatureStatistics.covarianceName: statistics.covariance.tensor(),
                FeatureStatistics.countName: Tensor([Int64(statistics.count)], shape: [1]),
                "features": featureTensor,
            ], metadata: metadata, to: file)
        } catch {
            log("warning: could not write the reference cache \(file.path): \(error)")
        }
        return ReferenceSet(name: split.rawValue, kind: "split", split: split, statistics: statistics, features: outputs.features,
                            networkHash: network.hash, source: data.source, cacheURL: file, fromCache: false)
    }

    /// The cached set at `file` when it exists and matches; nil (after saying why) otherwise.
    static func read(_ file: URL, split: DatasetSplit, networkHash: String, datasetKey: String, dimension: Int,
                     log: (String) -> Void) -> ReferenceSet? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do {
            let st = try SafeTensorsFile(contentsOf: file)
            let m = st.metadata
            guard m["format"] == formatVersion else {
                log("the reference cache \(file.path) has format \(m["format"] ?? "none"); rebuilding it")
                return nil
            }
            guard m["network_sha256"] == networkHash else {
                log("the reference cache \(file.path) was made with feature network \(m["network_sha256"] ?? "unknown"), not \(networkHash); rebuilding it")
                return nil
            }
            guard m["split"] == split.rawValue, m["dataset"] == datasetKey else {
                log("the reference cache \(file.path) holds \(m["dataset"] ?? "?") \(m["split"] ?? "?"), not \(datasetKey) \(split.rawValue); rebuilding it")
                return nil
            }
            let statistics = try FeatureStatistics(contentsOf: file)
            let features = try Matrix64(st.tensor("features"))
            guard statistics.dimension == dimension, features.columns == dimension, features.rows == statistics.count,
                  features.rows >= 2 else {
                log("the reference cache \(file.path) has inconsistent shapes; rebuilding it")
                return nil
            }
            return ReferenceSet(name: split.rawValue, kind: "split", split: split, statistics: statistics, features: features,
                                networkHash: networkHash, source: m["dataset_source"] ?? datasetKey, cacheURL: file, fromCache: true)
        } catch {
            log("the reference cache \(file.path) cannot be read (\(error)); rebuilding it")
            return nil
        }
    }
}
