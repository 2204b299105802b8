import Foundation
import GenTensor
import GenFormats

/// Tiles a batch of channels-last images (N, H, W, C) into one image (H', W', C), `columns` per
/// row (fewer when N is smaller), with `padding` pixels between the tiles and around the edge.
///
/// The padding and any empty cells of the last row are `padValue`, white (1) by default: the
/// samples of Fashion-MNIST are light garments on black, and white lines keep neighbouring tiles
/// apart where black padding would merge them (torchvision's `make_grid` pads with 0).
public func imageGrid(_ images: Tensor, columns: Int, padding: Int = 2, padValue: Float = 1) -> Tensor {
    precondition(images.rank == 4 && images.dtype == .float32 && images.shape[0] > 0,
                 "imageGrid: expected a non-empty float32 (N, H, W, C) tensor, got \(images.dtype) \(images.shape)")
    precondition(columns > 0 && padding >= 0, "imageGrid: columns \(columns), padding \(padding)")
    let (n, h, w, c) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    let cols = min(columns, n)
    let rows = (n + cols - 1) / cols
    let outH = rows * (h + padding) + padding, outW = cols * (w + padding) + padding
    var values = [Float](repeating: padValue, count: outH * outW * c)
    images.withUnsafeBufferPointer(as: Float.self) { source in
        values.withUnsafeMutableBufferPointer { target in
            let src = source.baseAddress!, dst = target.baseAddress!
            for i in 0..<n {
                let top = padding + (i / cols) * (h + padding), left = padding + (i % cols) * (w + padding)
                for y in 0..<h {
                    (dst + ((top + y) * outW + left) * c).update(from: src + ((i * h + y) * w) * c, count: w * c)
                }
            }
        }
    }
    return Tensor(values, shape: [outH, outW, c])
}

/// Writes each image of a batch to its own PNG, numbered on from batch to batch:
/// `DIR/000000.png`, `DIR/000001.png`, ... (so that file-name order is the order written, which is
/// the order `ImageDataset.load` reads them back in).
public struct ImageFolderWriter {
    /// The folder written to (created when missing).
    public let directory: URL
    /// The number of the next file.
    public private(set) var nextIndex: Int
    /// The digits in each file name (zero-padded).
    public let digits: Int

    /// Makes a writer that starts at `DIR/<startIndex>.png`; creates the folder when missing.
    public init(directory: URL, startIndex: Int = 0, digits: Int = 6) throws {
        precondition(startIndex >= 0 && digits > 0, "ImageFolderWriter: startIndex \(startIndex), digits \(digits)")
        try FileIO.createDirectory(directory)
        self.directory = directory
        self.nextIndex = startIndex
        self.digits = digits
    }

    /// The file that image number `index` goes to.
    public func url(forIndex index: Int) -> URL {
        let number = String(index)
        return directory.appendingPathComponent(String(repeating: "0", count: max(0, digits - number.count)) + number + ".png")
    }

    /// Writes each image of `images` to `DIR/000000.png`, `DIR/000001.png`, ... and returns the files.
    @discardableResult
    public static func write(_ images: Tensor, to directory: URL) throws -> [URL] {
        var writer = try ImageFolderWriter(directory: directory)
        return try writer.write(images)
    }

    /// Writes each image of `batch` (N, H, W, 1) grey or (N, H, W, 3) RGB, values in [0, 1], and
    /// returns the files written.
    @discardableResult
    public mutating func write(_ batch: Tensor) throws -> [URL] {
        guard batch.rank == 4, batch.dtype == .float32 else {
            throw DataError(path: directory.path, kind: .invalidArgument,
                            problem: "cannot write a \(batch.dtype) tensor of shape \(batch.shape) as images: expected float32 (N, H, W, 1 or 3)")
        }
        let (n, h, w, c) = (batch.shape[0], batch.shape[1], batch.shape[2], batch.shape[3])
        var written: [URL] = []
        for i in 0..<n {
            let image = batch.sliced(axis: 0, i..<(i + 1)).reshaped([h, w, c])
            let url = url(forIndex: nextIndex)
            try PNGWriter.write(image, to: url)
            written.append(url)
            nextIndex += 1
        }
        return written
    }
}
