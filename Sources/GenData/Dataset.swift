import Foundation
import GenTensor
import GenFormats

/// Which half of a dataset to load.
public enum DatasetSplit: String, Sendable, CaseIterable {
    case train, test

    /// The prefix of the split's IDX file names (`train-...`, `t10k-...`).
    public var idxPrefix: String { self == .train ? "train" : "t10k" }
}

/// A set of grey images held as one float32 tensor (N, H, W, 1) with values in [0, 1], with
/// optional int64 class labels (N).
public struct ImageDataset: Sendable {
    /// Which half of a dataset to load.
    public typealias Split = DatasetSplit

    /// The images, float32 (N, H, W, 1), values in [0, 1].
    public let images: Tensor
    /// The labels, int64 (N), when the source has them.
    public let labels: Tensor?
    /// The class names, indexed by label, when known (Fashion-MNIST's, or a PNG folder's sub-folders).
    public let classNames: [String]?
    /// Where the images came from, in words (for logs), for example
    /// "IDX files /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz".
    public let source: String
    /// What loading changed, in words, for PNG folders: how many images were resized, how many were
    /// colour and converted to grey. Empty when nothing was converted.
    public internal(set) var conversionNotes: [String] = []

    /// The number of images.
    public var count: Int { images.shape[0] }
    /// The side of the (square) images, in pixels.
    public var imageSize: Int { images.shape[1] }

    /// Makes a dataset from images (N, H, W, 1) float32 and optional labels (N) int64.
    public init(images: Tensor, labels: Tensor? = nil, classNames: [String]? = nil, source: String = "memory") {
        precondition(images.dtype == .float32 && images.rank == 4 && images.shape[3] == 1,
                     "ImageDataset: images must be float32 (N, H, W, 1), got \(images.dtype) \(images.shape)")
        if let labels {
            precondition(labels.dtype == .int64 && labels.shape == [images.shape[0]],
                         "ImageDataset: labels must be int64 (\(images.shape[0])), got \(labels.dtype) \(labels.shape)")
        }
        self.images = images
        self.labels = labels
        self.classNames = classNames
        self.source = source
    }

    /// The ten Fashion-MNIST classes, indexed by label.
    /// One Fashion-MNIST image's shape [H, W, C].
    public static let fashionMNISTImageShape = [28, 28, 1]

    public static let fashionMNISTClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// Where Fashion-MNIST is installed: `$FASHION_MNIST_DIR` when set, else /usr/share/datasets/fashion-mnist.
    public static var defaultFashionMNISTDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["FASHION_MNIST_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        return URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist", isDirectory: true)
    }

    /// Loads Fashion-MNIST (60,000 training or 10,000 test images of 28 x 28, labels 0...9) from its
    /// gzipped IDX files.
    public static func fashionMNIST(split: Split, directory: URL = defaultFashionMNISTDirectory) throws -> ImageDataset {
        let data = try load(directory: directory, split: split)
        return ImageDataset(images: data.images, labels: data.labels,
                            classNames: data.labels == nil ? nil : fashionMNISTClassNames,
                            source: "Fashion-MNIST \(split.rawValue), \(data.source)")
    }

    /// Loads a split of the images in `directory`, resized to `imageSize` x `imageSize` when needed.
    ///
    /// The folder holds either
    /// - IDX files with the MNIST names, gzipped or not: `train-images-idx3-ubyte[.gz]` and
    ///   `train-labels-idx1-ubyte[.gz]` (`t10k-...` for the test split; the `train-images.idx3-ubyte`
    ///   spelling is accepted too). Labels are optional; when present their count must match; or
    /// - PNG images (any size, colour type and bit depth; see `PNGReader`), converted to grey, resized
    ///   and sorted by file name, without labels. When the folder has a sub-folder named after the
    ///   split (`train/`, `test/`), that sub-folder is read instead, so one folder can hold both
    ///   splits; otherwise the split does not matter. When the folder holds no PNGs but sub-folders of
    ///   PNGs, each sub-folder is a class (sorted by name; labels are class indices, `classNames` the
    ///   folder names), as torchvision's `ImageFolder` does.
    ///
    /// Errors (`DataError`, naming the file or folder): a missing folder, a folder with neither IDX
    /// files nor PNGs, IDX files for the other split only, and any error of `IDX.read` or `PNGReader`.
    ///
    /// With `resize` false, a PNG of another size than `imageSize` is refused (`DataError`
    /// `.unsupported`) instead of resampled: for scoring, where resampling would change the score.
    public static func load(directory: URL, split: Split, imageSize: Int = 28, resize: Bool = true) throws -> ImageDataset {
        precondition(imageSize > 0, "ImageDataset.load: imageSize \(imageSize)")
        let names = try listFolder(directory)

        func idxFile(_ kind: String, _ rank: String) -> URL? {
            for stem in ["\(split.idxPrefix)-\(kind)-\(rank)-ubyte", "\(split.idxPrefix)-\(kind).\(rank)-ubyte"] {
                for name in [stem, stem + ".gz"] where names.contains(name) {
                    return directory.appendingPathComponent(name)
                }
            }
            return nil
        }
        if let imagesURL = idxFile("images", "idx3") {
            return try loadIDX(images: imagesURL, labels: idxFile("labels", "idx1"), imageSize: imageSize)
        }
        if names.contains(where: { $0.contains("idx") && $0.contains("ubyte") }) {
            let p = split.idxPrefix
            throw DataError(path: directory.path, kind: .notFound,
                            problem: "the folder has IDX files but no \(split.rawValue) images: expected \(p)-images-idx3-ubyte[.gz] or \(p)-images.idx3-ubyte[.gz]")
        }

        var folder = directory
        var folderNames = names
        let splitFolder = directory.appendingPathComponent(split.rawValue, isDirectory: true)
        if names.contains(split.rawValue) && isFolder(splitFolder) {
            folder = splitFolder
            folderNames = try listFolder(splitFolder)
        }
        let pngs = folderNames.filter(isPNGName)
        if !pngs.isEmpty {
            return try loadPNGs(pngs.map { (folder.appendingPathComponent($0), nil) }, imageSize: imageSize, resize: resize,
                                classNames: nil, folder: folder)
        }
        var files: [(URL, Int64?)] = []
        var classNames: [String] = []
        for name in folderNames where !name.hasPrefix(".") {
            let sub = folder.appendingPathComponent(name, isDirectory: true)
            guard isFolder(sub) else { continue }
            let classPNGs = try listFolder(sub).filter(isPNGName)
            if classPNGs.isEmpty { continue }
            let label = Int64(classNames.count)
            classNames.append(name)
            files += classPNGs.map { (sub.appendingPathComponent($0), label) }
        }
        if files.isEmpty {
            throw DataError(path: folder.path, kind: .emptyDirectory,
                            problem: "the folder holds no IDX files for the \(split.rawValue) split and no PNG images")
        }
        return try loadPNGs(files, imageSize: imageSize, resize: resize, classNames: classNames, folder: folder)
    }

    /// The images (and labels) at `indices`, in that order.
    public func subset(_ indices: [Int]) -> ImageDataset {
        let (images, labels) = gather(indices)
        return ImageDataset(images: images, labels: labels, classNames: classNames, source: "\(source), subset of \(indices.count)")
    }

    /// Copies the images (and labels) at `indices` into new tensors.
    func gather(_ indices: [Int]) -> (Tensor, Tensor?) {
        for index in indices {
            precondition(index >= 0 && index < count, "ImageDataset: index \(index) out of range 0..<\(count)")
        }
        return (images.rows(indices), labels?.rows(indices))
    }

    // MARK: Loading helpers

    private static func isFolder(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    private static func isPNGName(_ name: String) -> Bool {
        !name.hasPrefix(".") && name.lowercased().hasSuffix(".png")
    }

    /// The names in a folder, sorted (byte order of their UTF-8, so the same on every system).
    private static func listFolder(_ url: URL) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw DataError(path: url.path, kind: .notFound, problem: "no such folder")
        }
        guard isDirectory.boolValue else {
            throw DataError(path: url.path, kind: .notFound, problem: "is a file, not a folder")
        }
        do {
            return try FileManager.default.contentsOfDirectory(atPath: url.path).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        } catch {
            throw DataError(path: url.path, kind: .io, problem: "cannot list the folder (\(error.localizedDescription))")
        }
    }

    private static func loadIDX(images imagesURL: URL, labels labelsURL: URL?, imageSize: Int) throws -> ImageDataset {
        let raw = try IDX.readImages(imagesURL)
        let (n, h, w) = (raw.dimensions[0], raw.dimensions[1], raw.dimensions[2])
        guard n > 0 else { throw DataError(path: imagesURL.path, kind: .invalidHeader, problem: "holds no images (its header counts 0)") }
        if n > 0 && (h == 0 || w == 0) {
            throw DataError(path: imagesURL.path, kind: .invalidHeader, problem: "IDX images of size \(h) x \(w)")
        }
        var labels: Tensor?
        if let labelsURL {
            let rawLabels = try IDX.readLabels(labelsURL)
            guard rawLabels.dimensions[0] == n else {
                throw DataError(path: labelsURL.path, kind: .countMismatch,
                                problem: "holds \(rawLabels.dimensions[0]) labels but \(imagesURL.path) holds \(n) images")
            }
            labels = Tensor(rawLabels.bytes.map { Int64($0) }, shape: [n])
        }
        let values = raw.bytes.withUnsafeBufferPointer { bytes in
            [Float](unsafeUninitializedCapacity: bytes.count) { buffer, initialized in
                let source = bytes.baseAddress!, target = buffer.baseAddress!
                parallelFor(bytes.count, costPerItem: 4) { range in
                    for i in range { target[i] = Float(source[i]) / 255 }
                }
                initialized = bytes.count
            }
        }
        var images = Tensor(values, shape: [n, h, w, 1])
        if h != imageSize || w != imageSize, n > 0 {
            images = resizeImages(images, height: imageSize, width: imageSize)
        } else if n == 0 {
            images = Tensor(uninitializedShape: [0, imageSize, imageSize, 1], dtype: .float32)
        }
        return ImageDataset(images: images, labels: labels, source: "IDX files \(imagesURL.path)" + (labelsURL.map { " and \($0.path)" } ?? ""))
    }

    private static func loadPNGs(_ files: [(url: URL, label: Int64?)], imageSize: Int, resize: Bool, classNames: [String]?,
                                 folder: URL) throws -> ImageDataset {
        let n = files.count
        var values = [Float](repeating: 0, count: n * imageSize * imageSize)
        var errors = [DataError?](repeating: nil, count: n)
        // Per image: bit 0 resized, bit 1 colour (RGB, RGBA or palette).
        var conversions = [UInt8](repeating: 0, count: n)
        values.withUnsafeMutableBufferPointer { pixels in
            errors.withUnsafeMutableBufferPointer { errorSlots in
                conversions.withUnsafeMutableBufferPointer { converted in
                    let target = pixels.baseAddress!
                    parallelFor(n, costPerItem: 50_000) { range in
                        var temp: [Float] = []
                        for i in range {
                            do {
                                let bytes = try FileIO.read(files[i].url)
                                let image = try PNGReader.decodeGrayPixels(bytes, path: files[i].url.path)
                                // The IHDR colour type, at byte 25 of a file the decoder accepted.
                                let colourType = bytes[bytes.startIndex + 25]
                                converted[i] = (image.height != imageSize || image.width != imageSize ? 1 : 0)
                                    | (colourType == 2 || colourType == 3 || colourType == 6 ? 2 : 0)
                                if !resize && (image.height != imageSize || image.width != imageSize) {
                                    throw DataError(path: files[i].url.path, kind: .unsupported,
                                                    problem: "the image is \(image.width) x \(image.height) pixels; \(imageSize) x \(imageSize) are needed (resize the images first)")
                                }
                                let dst = target + i * imageSize * imageSize
                                image.pixels.withUnsafeBufferPointer { src in
                                    resample(src.baseAddress!, height: image.height, width: image.width, channels: 1, into: dst,
                                             rows: resampleWeights(from: image.height, to: imageSize),
                                             columns: resampleWeights(from: image.width, to: imageSize), temp: &temp)
                                }
                            } catch let error as DataError {
                                errorSlots[i] = error
                            } catch {
                                errorSlots[i] = DataError(path: files[i].url.path, kind: .io, problem: "\(error)")
                            }
                        }
                    }
                }
            }
        }
        // The first failing file in name order, so that the error is the same on every run.
        if let error = errors.lazy.compactMap({ $0 }).first { throw error }
        var labels: Tensor?
        if classNames != nil {
            labels = Tensor(files.map { $0.label ?? 0 }, shape: [n])
        }
        var data = ImageDataset(images: Tensor(values, shape: [n, imageSize, imageSize, 1]), labels: labels, classNames: classNames,
                                source: "\(n) PNG images in \(folder.path)" + (classNames.map { " (\($0.count) classes)" } ?? ""))
        let resized = conversions.filter { $0 & 1 != 0 }.count, colour = conversions.filter { $0 & 2 != 0 }.count
        if resized > 0 {
            data.conversionNotes.append("\(resized) of the \(n) PNGs in \(folder.path) are not \(imageSize) x \(imageSize); resized to it (area averaging where an axis shrinks, bilinear where it grows)")
        }
        if colour > 0 {
            data.conversionNotes.append("\(colour) of the \(n) PNGs in \(folder.path) are colour (RGB, RGBA or palette); converted to grey with ITU-R BT.601 luma, (299 R + 587 G + 114 B) / 1000, alpha dropped")
        }
        return data
    }
}

/// Batches of a dataset with a seeded shuffle per epoch, reproducible and resumable.
///
/// Epoch `e` visits the images in the order `order(epoch: e)`: a Fisher-Yates permutation drawn from
/// `RandomGenerator(seed: BatchLoader.epochSeed(seed, e))` (or the identity without shuffling), so
/// the same (seed, epoch) gives the same batches on every run and machine, and any (epoch, batch)
/// can be produced directly, without replaying earlier batches, to resume training exactly.
public struct BatchLoader: Sendable {
    /// A place in the stream of batches.
    public struct Position: Hashable, Sendable, CustomStringConvertible {
        /// The epoch, from 0.
        public var epoch: Int
        /// The batch within the epoch, from 0.
        public var batch: Int
        public init(epoch: Int, batch: Int) {
            self.epoch = epoch
            self.batch = batch
        }
        public var description: String { "epoch \(epoch), batch \(batch)" }
    }

    /// One batch: images (B, H, W, 1) float32, labels (B) int64 when the dataset has them, the
    /// dataset indices it holds and where it sits in the stream.
    public struct Batch: Sendable {
        public let images: Tensor
        public let labels: Tensor?
        public let indices: [Int]
        public let position: Position
    }

    /// The dataset batched.
    public let dataset: ImageDataset
    /// Images per batch (the last batch of an epoch may be smaller unless `dropLast`).
    public let batchSize: Int
    /// Whether each epoch visits the images in a fresh seeded order.
    public let shuffle: Bool
    /// Whether an epoch's last, incomplete batch is skipped.
    public let dropLast: Bool
    /// The seed of the shuffles.
    public let seed: UInt64

    /// Makes a loader; `batchSize` must be positive.
    public init(dataset: ImageDataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64 = 0) {
        precondition(batchSize > 0, "BatchLoader: batch size \(batchSize)")
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
    }

    /// Batches in one epoch.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The seed of epoch `epoch`'s shuffle: SplitMix64's finaliser over the seed and the epoch, so
    /// that the epochs' generators are unrelated streams (not shifted copies of one stream).
    public static func epochSeed(_ seed: UInt64, _ epoch: Int) -> UInt64 {
        func mix(_ value: UInt64) -> UInt64 {
            var z = value &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return mix(seed ^ mix(UInt64(bitPattern: Int64(epoch)) &* 0xD1B5_4A32_D192_ED03))
    }

    /// The order in which epoch `epoch` visits the dataset.
    public func order(epoch: Int) -> [Int] {
        shuffle ? RandomGenerator(seed: BatchLoader.epochSeed(seed, epoch)).permutation(dataset.count) : Array(0..<dataset.count)
    }

    /// Batch `index` of epoch `epoch` (this draws the epoch's order; iterate with `epoch(_:)` or
    /// `batches(from:)` to draw it once per epoch).
    public func batch(epoch: Int, index: Int) -> Batch {
        makeBatch(order: order(epoch: epoch), position: Position(epoch: epoch, batch: index))
    }

    /// The batches of epoch `epoch`, starting at batch `start`.
    public func epoch(_ epoch: Int, startingAt start: Int = 0) -> EpochBatches {
        EpochBatches(loader: self, epoch: epoch, start: start)
    }

    /// An endless stream of batches across epochs, starting at `position` (for step-based training
    /// loops; its `position` is where the next batch comes from, which is what a checkpoint stores).
    public func batches(from position: Position = Position(epoch: 0, batch: 0)) -> BatchStream {
        BatchStream(loader: self, position: position)
    }

    func makeBatch(order: [Int], position: Position) -> Batch {
        precondition(position.batch >= 0 && position.batch < batchesPerEpoch,
                     "BatchLoader: batch \(position.batch) out of range 0..<\(batchesPerEpoch)")
        let start = position.batch * batchSize
        let indices = Array(order[start..<min(start + batchSize, order.count)])
        let (images, labels) = dataset.gather(indices)
        return Batch(images: images, labels: labels, indices: indices, position: position)
    }

    /// The batches of one epoch, from a starting batch.
    public struct EpochBatches: Sequence, Sendable {
        let loader: BatchLoader
        let epoch: Int
        let start: Int

        public func makeIterator() -> Iterator {
            Iterator(loader: loader, epoch: epoch, nextBatch: Swift.max(start, 0), order: start < loader.batchesPerEpoch ? loader.order(epoch: epoch) : [])
        }

        public struct Iterator: IteratorProtocol {
            let loader: BatchLoader
            let epoch: Int
            var nextBatch: Int
            let order: [Int]

            public mutating func next() -> Batch? {
                guard nextBatch < loader.batchesPerEpoch else { return nil }
                defer { nextBatch += 1 }
                return loader.makeBatch(order: order, position: Position(epoch: epoch, batch: nextBatch))
            }
        }
    }

    /// An endless stream of batches across epochs (empty when an epoch has no batches).
    public struct BatchStream: Sequence, IteratorProtocol, Sendable {
        let loader: BatchLoader
        /// Where the next batch comes from.
        public private(set) var position: Position
        private var order: [Int] = []
        private var orderEpoch: Int?

        init(loader: BatchLoader, position: Position) {
            self.loader = loader
            self.position = position
        }

        public mutating func next() -> Batch? {
            let perEpoch = loader.batchesPerEpoch
            guard perEpoch > 0 else { return nil }
            if position.batch < 0 { position.batch = 0 }
            if position.batch >= perEpoch { position = Position(epoch: position.epoch + 1, batch: 0) }
            if orderEpoch != position.epoch {
                order = loader.order(epoch: position.epoch)
                orderEpoch = position.epoch
            }
            let batch = loader.makeBatch(order: order, position: position)
            position.batch += 1
            if position.batch == perEpoch { position = Position(epoch: position.epoch + 1, batch: 0) }
            return batch
        }
    }
}
