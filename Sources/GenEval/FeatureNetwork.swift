import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// What the feature network makes of a batch of images: the 128-d penultimate features (for FID,
/// KID and precision/recall) and the class probabilities (for IS and the class histogram).
public struct FeatureOutputs: Sendable {
    /// (N, 128) features, Float64 copies of the network's float32 activations.
    public var features: Matrix64
    /// (N, 10) softmax probabilities, computed in Float64 from the float32 logits.
    public var probabilities: Matrix64

    /// The number of images.
    public var count: Int { features.rows }

    /// The predicted class of each image (the first largest probability).
    public var predictedClasses: [Int] {
        let c = probabilities.columns
        return (0..<probabilities.rows).map { i in
            var best = 0
            for j in 1..<max(c, 1) where probabilities[i, j] > probabilities[i, best] { best = j }
            return best
        }
    }
}

/// The evaluation's feature network: the `Classifier` of scripts/torch_reference/models.py with fixed weights, and the
/// SHA-256 of the file they came from, which keys the cached reference statistics and is recorded
/// in every report.
///
/// The toolkit ships weights it trained itself (`generative train classifier`; see
/// Resources/classifier.md) as a plain PyTorch state_dict, loaded from the GenEval resource bundle,
/// so evaluation needs no training step. Any other weights file can be used instead: a plain
/// state_dict with the PyTorch names (`conv1.weight`, ..., `fc2.bias`) or a `generative train
/// classifier` checkpoint.
public final class FeatureNetwork: @unchecked Sendable {
    /// The network, in eval mode (it has no dropout or batch norm, so there is no train/eval
    /// difference to get wrong).
    public let classifier: Classifier
    /// SHA-256 (lowercase hex) of the weights file's bytes.
    public let hash: String
    /// Where the weights came from (a path, or "bundled: PATH").
    public let source: String

    /// The feature dimension (128).
    public var featureDimension: Int { classifier.fc2.weight.value.shape[1] }

    /// The number of classes (10).
    public var classCount: Int { classifier.fc2.weight.value.shape[0] }

    /// The shipped weights file inside the GenEval resource bundle (beside the executable, else in
    /// the build folder), or nil when the bundle lacks it.
    public static var bundledWeightsURL: URL? {
        let fm = FileManager.default
        // Look beside the executable first: `Bundle.module` stops the process when it finds no bundle.
        let beside = Bundle.main.bundleURL.appendingPathComponent("generative_GenEval.resources", isDirectory: true)
        for candidate in [beside.appendingPathComponent("Resources/classifier.safetensors"),
                          beside.appendingPathComponent("classifier.safetensors")] where fm.fileExists(atPath: candidate.path) {
            return candidate
        }
        return Bundle.module.url(forResource: "classifier", withExtension: "safetensors", subdirectory: "Resources")
            ?? Bundle.module.url(forResource: "classifier", withExtension: "safetensors")
    }

    /// The shipped network, or the weights named by `$GENERATIVE_FEATURE_NETWORK` when set.
    public static func bundled() throws -> FeatureNetwork {
        if let path = ProcessInfo.processInfo.environment["GENERATIVE_FEATURE_NETWORK"], !path.isEmpty {
            return try FeatureNetwork(contentsOf: URL(fileURLWithPath: path))
        }
        guard let url = bundledWeightsURL else {
            throw EvaluationError("the shipped feature network (Resources/classifier.safetensors of GenEval) is missing from the resource bundle; pass weights with --network or $GENERATIVE_FEATURE_NETWORK")
        }
        return try FeatureNetwork(contentsOf: url, label: "bundled: \(url.lastPathComponent)")
    }

    /// The shipped network, loaded once per process (the weights never change while it runs).
    public static func shared() throws -> FeatureNetwork {
        try sharedLock.withLock {
            if let cached = sharedNetwork { return cached }
            let network = try bundled()
            sharedNetwork = network
            return network
        }
    }

    nonisolated(unsafe) private static var sharedNetwork: FeatureNetwork?
    private static let sharedLock = NSLock()

    /// Loads weights from a plain state_dict (PyTorch names, strict) or a `generative train
    /// classifier` checkpoint (its `model.` weights).
    public convenience init(contentsOf url: URL, label: String? = nil) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvaluationError("cannot read the feature network \(url.path): \(error.localizedDescription)")
        }
        let file = try SafeTensorsFile(data: data, path: url.path)
        let classifier = Classifier(generator: RandomGenerator(seed: 0))
        if file.metadata["format"] == Checkpoint.formatVersion {
            let kind = file.metadata["model"] ?? "unknown"
            guard kind == ClassifierTrainingKind.name else {
                throw EvaluationError("\(url.path) is a '\(kind)' checkpoint, not a classifier one: the feature network must be a classifier")
            }
            try classifier.load(from: file, prefix: "model.", strict: false)
        } else {
            try classifier.load(from: file, prefix: "", strict: true)
        }
        self.init(classifier: classifier, hash: SHA256.hex(data), source: label ?? url.path)
    }

    /// A network already in memory; `hash` should identify its weights.
    public init(classifier: Classifier, hash: String, source: String) {
        self.classifier = classifier
        self.hash = hash
        self.source = source
    }

    /// Features and probabilities of images (N, 28, 28, 1) in [0, 1], in batches of `batchSize`,
    /// without gradients; the images are mapped to [-1, 1] by x * 2 - 1 first. `progress` gets the
    /// number of images done after each batch.
    public func outputs(_ images: Tensor, batchSize: Int = 500, progress: ((Int) -> Void)? = nil) -> FeatureOutputs {
        precondition(images.rank == 4 && images.shape[1] == 28 && images.shape[2] == 28 && images.shape[3] == 1,
                     "FeatureNetwork: images must be (N, 28, 28, 1), got \(images.shape)")
        precondition(batchSize >= 1, "FeatureNetwork: batch size \(batchSize)")
        let n = images.shape[0]
        let d = featureDimension, classes = classCount
        var features = [Double](repeating: 0, count: n * d)
        var probabilities = [Double](repeating: 0, count: n * classes)
        let x = images.dtype == .float32 ? images : images.cast(to: .float32)
        withoutGradients {
            var start = 0
            while start < n {
                let end = min(n, start + batchSize)
                let batch = x.sliced(axis: 0, start..<end) * 2 - 1
                let f = Self.inferenceFeatures(classifier, batch)
                let logits = classifier.fc2(f)
                f.withUnsafeBufferPointer(as: Float.self) { fp in
                    for i in 0..<((end - start) * d) { features[start * d + i] = Double(fp[i]) }
                }
                logits.withUnsafeBufferPointer(as: Float.self) { lp in
                    for i in 0..<(end - start) {
                        // Softmax in Float64 with the maximum subtracted.
                        var m = -Double.infinity
                        for j in 0..<classes { m = max(m, Double(lp[i * classes + j])) }
                        var total = 0.0
                        for j in 0..<classes {
                            let e = Foundation.exp(Double(lp[i * classes + j]) - m)
                            probabilities[(start + i) * classes + j] = e
                            total += e
                        }
                        for j in 0..<classes { probabilities[(start + i) * classes + j] /= total }
                    }
                }
                start = end
                progress?(end)
            }
        }
        return FeatureOutputs(features: Matrix64(rows: n, columns: d, values: features),
                              probabilities: Matrix64(rows: n, columns: classes, values: probabilities))
    }
}

extension FeatureNetwork {
    /// `classifier.features(x)` for inference, with each ReLU and 2 x 2 max pooling fused into one
    /// parallel float32 pass (the engine's differentiable max pooling keeps argmax indices for the
    /// backward pass, which inference does not need). The result is bitwise the same: max and
    /// ReLU commute exactly. Not differentiable.
    public static func inferenceFeatures(_ classifier: Classifier, _ x: Tensor) -> Tensor {
        var h = reluMaxPool2(classifier.conv1(x))  // 14x14
        h = reluMaxPool2(classifier.conv2(h))  // 7x7
        h = reluMaxPool2(classifier.conv3(h))  // 3x3 (floor)
        return classifier.fc1(h.flattened(from: 1), activation: .relu)
    }

    /// max(0, 2 x 2 max pooling) of (N, H, W, C) float32, stride 2, floor output size.
    public static func reluMaxPool2(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.dtype == .float32, "reluMaxPool2: float32 (N, H, W, C), got \(x.dtype) \(x.shape)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = h / 2, ow = w / 2
        let count = n * oh * ow * c
        let values = x.withUnsafeBufferPointer(as: Float.self) { source in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                let src = source.baseAddress!, dst = buffer.baseAddress!
                parallelFor(n * oh, costPerItem: ow * c * 4) { range in
                    for row in range {
                        let b = row / oh, i = row % oh
                        let top = src + ((b * h + 2 * i) * w) * c, bottom = top + w * c
                        let o = dst + row * ow * c
                        for j in 0..<ow {
                            let t0 = top + 2 * j * c, t1 = t0 + c, b0 = bottom + 2 * j * c, b1 = b0 + c
                            let oj = o + j * c
                            for ch in 0..<c {
                                oj[ch] = Swift.max(Swift.max(Swift.max(t0[ch], t1[ch]), Swift.max(b0[ch], b1[ch])), 0)
                            }
                        }
                    }
                }
                initialized = count
            }
        }
        return Tensor(values, shape: [n, oh, ow, c])
    }
}

/// The model kind that `generative train classifier` writes into its checkpoints.
public enum ClassifierTrainingKind {
    public static let name = "classifier"
}
