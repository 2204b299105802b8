import Foundation
import GenTensor
import GenFormats

/// Resamples a batch of channels-last images (N, H, W, C) to (N, height, width, C), float32.
///
/// Each axis is resampled on its own: when it grows, bilinearly with pixel centres aligned (like
/// PyTorch's `interpolate(mode: "bilinear", align_corners: false)`, edges clamped); when it shrinks,
/// by area averaging (each output pixel is the mean of the input area it covers, like OpenCV's
/// `INTER_AREA`), so that shrinking never aliases. An axis that keeps its size is copied exactly.
public func resizeImages(_ images: Tensor, height: Int, width: Int) -> Tensor {
    precondition(images.rank == 4 && images.dtype == .float32, "resizeImages: expected a float32 (N, H, W, C) tensor, got \(images.dtype) \(images.shape)")
    precondition(height > 0 && width > 0, "resizeImages: output size \(height) x \(width)")
    let (n, inHeight, inWidth, channels) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    if inHeight == height && inWidth == width { return images.copied() }
    let rows = resampleWeights(from: inHeight, to: height)
    let columns = resampleWeights(from: inWidth, to: width)
    let count = n * height * width * channels
    let values = images.withUnsafeBufferPointer(as: Float.self) { src in
        [Float](unsafeUninitializedCapacity: count) { dst, initialized in
            let source = src.baseAddress!, target = dst.baseAddress!
            parallelFor(n, costPerItem: height * width * channels * 4) { range in
                var temp = [Float](repeating: 0, count: inHeight * width * channels)
                for image in range {
                    resample(source + image * inHeight * inWidth * channels, height: inHeight, width: inWidth, channels: channels,
                             into: target + image * height * width * channels, rows: rows, columns: columns, temp: &temp)
                }
            }
            initialized = count
        }
    }
    return Tensor(values, shape: [n, height, width, channels])
}

/// The input taps (index, weight) of each output position along one axis.
func resampleWeights(from input: Int, to output: Int) -> [[(Int, Float)]] {
    if input == output { return (0..<output).map { [($0, Float(1))] } }
    let scale = Double(input) / Double(output)
    return (0..<output).map { o in
        if output > input {
            // Bilinear: the output centre mapped back to input coordinates, clamped at the edges.
            let centre = min(max((Double(o) + 0.5) * scale - 0.5, 0), Double(input - 1))
            let i0 = Int(centre.rounded(.down)), i1 = min(i0 + 1, input - 1)
            let t = centre - Double(i0)
            return t == 0 || i0 == i1 ? [(i0, Float(1))] : [(i0, Float(1 - t)), (i1, Float(t))]
        }
        // Area: the input interval [o * scale, (o + 1) * scale), each pixel weighted by its overlap.
        let start = Double(o) * scale, end = Double(o + 1) * scale
        var taps: [(Int, Float)] = []
        var i = Int(start.rounded(.down))
        while Double(i) < end && i < input {
            let overlap = min(end, Double(i + 1)) - max(start, Double(i))
            if overlap > 1e-12 { taps.append((i, Float(overlap / scale))) }
            i += 1
        }
        return taps
    }
}

/// Resamples one (H, W, C) image with precomputed taps (`rows`: output height, `columns`: output
/// width); `temp` is scratch space, grown as needed.
func resample(_ src: UnsafePointer<Float>, height inHeight: Int, width inWidth: Int, channels: Int,
              into dst: UnsafeMutablePointer<Float>, rows: [[(Int, Float)]], columns: [[(Int, Float)]], temp: inout [Float]) {
    let width = columns.count
    if temp.count < inHeight * width * channels { temp = [Float](repeating: 0, count: inHeight * width * channels) }
    temp.withUnsafeMutableBufferPointer { scratch in
        let t = scratch.baseAddress!
        // Horizontal pass into (inHeight, width, C), then vertical pass into dst.
        for y in 0..<inHeight {
            for (x, taps) in columns.enumerated() {
                for c in 0..<channels {
                    var sum: Float = 0
                    for (index, weight) in taps { sum += weight * src[(y * inWidth + index) * channels + c] }
                    t[(y * width + x) * channels + c] = sum
                }
            }
        }
        for (y, taps) in rows.enumerated() {
            for x in 0..<width {
                for c in 0..<channels {
                    var sum: Float = 0
                    for (index, weight) in taps { sum += weight * t[(index * width + x) * channels + c] }
                    dst[(y * width + x) * channels + c] = sum
                }
            }
        }
    }
}
