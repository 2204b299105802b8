import Foundation
import GenTensor
import GenFormats

/// How an axis that grows is interpolated.
public enum UpsamplingFilter: String, Sendable, CaseIterable {
    /// Linear between the two nearest pixels (PyTorch's `bilinear`).
    case bilinear
    /// Keys' cubic convolution with a = -0.75 over the four nearest pixels (PyTorch's `bicubic`);
    /// it can overshoot the input's range slightly near edges.
    case bicubic
}

/// Resamples a batch of channels-last images (N, H, W, C) to (N, height, width, C), float32.
///
/// Each axis is resampled on its own: when it grows, with `filter` and pixel centres aligned (like
/// PyTorch's `interpolate(mode: "bilinear" or "bicubic", align_corners: false)`, edge pixels
/// repeated); when it shrinks, by area averaging (each output pixel is the mean of the input area it
/// covers, like OpenCV's `INTER_AREA`), so that shrinking never aliases. An axis that keeps its size
/// is copied exactly.
public func resizeImages(_ images: Tensor, height: Int, width: Int, filter: UpsamplingFilter = .bilinear) -> Tensor {
    precondition(images.rank == 4 && images.dtype == .float32, "resizeImages: expected a float32 (N, H, W, C) tensor, got \(images.dtype) \(images.shape)")
    precondition(height > 0 && width > 0, "resizeImages: output size \(height) x \(width)")
    let (n, inHeight, inWidth, channels) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    if inHeight == height && inWidth == width { return images.copied() }
    let rows = resampleWeights(from: inHeight, to: height, filter: filter)
    let columns = resampleWeights(from: inWidth, to: width, filter: filter)
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
func resampleWeights(from input: Int, to output: Int, filter: UpsamplingFilter = .bilinear) -> [[(Int, Float)]] {
    if input == output { return (0..<output).map { [($0, Float(1))] } }
    let scale = Double(input) / Double(output)
    return (0..<output).map { o in
        if output > input && filter == .bicubic {
            // Keys' cubic on the taps i0 - 1 ... i0 + 2 around the unclamped source centre (as
            // PyTorch computes it), indices clamped to the image; taps on one pixel are merged.
            let centre = (Double(o) + 0.5) * scale - 0.5
            let i0 = Int(centre.rounded(.down)), t = centre - Double(i0)
            var taps: [Int: Double] = [:]
            for k in -1...2 { taps[min(max(i0 + k, 0), input - 1), default: 0] += cubicConvolution(Double(k) - t) }
            return taps.keys.sorted().map { ($0, Float(taps[$0]!)) }
        }
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

/// Keys' cubic convolution kernel with a = -0.75 (PyTorch's and OpenCV's), at distance x.
func cubicConvolution(_ x: Double, a: Double = -0.75) -> Double {
    let d = abs(x)
    if d <= 1 { return ((a + 2) * d - (a + 3)) * d * d + 1 }
    if d < 2 { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a }
    return 0
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
