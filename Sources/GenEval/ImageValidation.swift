import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// Checks of images before they are scored: the shape the feature network needs, finite values,
/// and the [0, 1] range every input format is converted to.
public enum ImageValidation {
    /// How far outside [0, 1] values may stray and still be accepted (clamped, with a warning):
    /// half a grey level of 8-bit images, the rounding error of a sampler's last step.
    public static let rangeTolerance = 0.5 / 255

    /// Validates images (N, H, W, 1) or (N, H, W) of `source` (a name for messages). Returns the
    /// images as float32 (N, H, W, 1) of the feature network's size, clamped to [0, 1] when they were slightly outside it, and
    /// the warnings. Errors: no images, a size other than 28 x 28, more than one channel, NaN or
    /// infinity, and values further than `rangeTolerance` outside [0, 1] (with a hint when they
    /// look like [-1, 1] or 0-255 data).
    public static func validate(_ images: Tensor, source: String) throws -> (images: Tensor, warnings: [String]) {
        let size = (h: FeatureNetwork.imageShape[0], w: FeatureNetwork.imageShape[1])
        var x = images
        if x.rank == 3 { x = x.reshaped(x.shape + [1]) }
        guard x.rank == 4 else {
            throw EvaluationError("\(source): expected a batch of grey images (N, \(size.h), \(size.w)), got shape \(images.shape)")
        }
        guard x.shape[0] > 0 else { throw EvaluationError("\(source): holds no images") }
        guard x.shape[3] == 1 else {
            throw EvaluationError("\(source): images have \(x.shape[3]) channels; the feature network takes grey images (1 channel)")
        }
        guard x.shape[1] == size.h && x.shape[2] == size.w else {
            throw EvaluationError("\(source): images are \(x.shape[1]) x \(x.shape[2]) pixels; the feature network needs \(size.h) x \(size.w) (resize them first)")
        }
        if x.dtype != .float32 { x = x.cast(to: .float32) }
        var nanCount = 0, infCount = 0, firstBad = -1
        var lo = Float.infinity, hi = -Float.infinity
        x.withUnsafeBufferPointer(as: Float.self) { p in
            for (i, v) in p.enumerated() {
                if v.isNaN { nanCount += 1; if firstBad < 0 { firstBad = i } ; continue }
                if v.isInfinite { infCount += 1; if firstBad < 0 { firstBad = i } ; continue }
                lo = min(lo, v)
                hi = max(hi, v)
            }
        }
        if nanCount > 0 || infCount > 0 {
            let perImage = 28 * 28
            throw EvaluationError("\(source): \(nanCount) NaN and \(infCount) infinite values (the first in image \(firstBad / perImage)); the metrics need finite pixels")
        }
        var warnings: [String] = []
        let tolerance = Float(rangeTolerance)
        if lo < -tolerance || hi > 1 + tolerance {
            var hint = ""
            if lo >= -1 - tolerance && hi <= 1 + tolerance && lo < -tolerance { hint = " They look like images in [-1, 1]: map them with (x + 1) / 2." }
            else if lo >= -tolerance && hi <= 255 + tolerance && hi > 1.5 { hint = " They look like 0-255 values: divide by 255 (or store uint8)." }
            throw EvaluationError(String(format: "%@: values range from %g to %g, outside [0, 1].%@", source, Double(lo), Double(hi), hint))
        }
        if lo < 0 || hi > 1 {
            warnings.append(String(format: "%@: values range from %g to %g, slightly outside [0, 1]; clamped to [0, 1]", source, Double(lo), Double(hi)))
            x = x.detached().clamped(min: 0, max: 1)
        }
        if hi - lo == 0 {
            warnings.append("\(source): every pixel has the value \(lo)")
        }
        return (x, warnings)
    }
}

/// A separable Gaussian blur of grey images, as `scipy.ndimage.gaussian_filter(x, sigma)` on each
/// image: a kernel truncated at 4 sigma (radius round(4 sigma)), normalised to sum 1, with the
/// boundary mode 'reflect' (the edge pixel repeated: d c b a | a b c d | d c b a). Used for the
/// calibration of the metrics (the blurred test set).
public enum GaussianBlur {
    /// The normalised 1-d kernel of radius round(4 sigma).
    public static func kernel(sigma: Double) -> [Double] {
        let radius = Int(4 * sigma + 0.5)
        var k = (-radius...radius).map { Foundation.exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
        let total = k.reduce(0, +)
        k = k.map { $0 / total }
        return k
    }

    /// Blurs images (N, H, W, 1) float32; sigma 0 returns them unchanged.
    public static func apply(_ images: Tensor, sigma: Double) -> Tensor {
        precondition(images.rank == 4 && images.shape[3] == 1 && images.dtype == .float32,
                     "GaussianBlur: images must be float32 (N, H, W, 1), got \(images.dtype) \(images.shape)")
        precondition(sigma >= 0, "GaussianBlur: sigma \(sigma)")
        guard sigma > 0 else { return images }
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        let k = kernel(sigma: sigma), r = k.count / 2
        var values = [Float](repeating: 0, count: images.elementCount)
        func reflect(_ i: Int, _ size: Int) -> Int {
            // scipy 'reflect' (half-sample symmetric), periodic with period 2 * size.
            var m = i % (2 * size)
            if m < 0 { m += 2 * size }
            return m < size ? m : 2 * size - 1 - m
        }
        images.withUnsafeBufferPointer(as: Float.self) { src in
            values.withUnsafeMutableBufferPointer { dst in
                parallelFor(n, costPerItem: h * w * k.count * 2) { range in
                    var tmp = [Double](repeating: 0, count: h * w)
                    for b in range {
                        let base = b * h * w
                        for i in 0..<h {
                            for j in 0..<w {
                                var s = 0.0
                                for t in -r...r { s += k[t + r] * Double(src[base + i * w + reflect(j + t, w)]) }
                                tmp[i * w + j] = s
                            }
                        }
                        for i in 0..<h {
                            for j in 0..<w {
                                var s = 0.0
                                for t in -r...r { s += k[t + r] * tmp[reflect(i + t, h) * w + j] }
                                dst[base + i * w + j] = Float(s)
                            }
                        }
                    }
                }
            }
        }
        return Tensor(values, shape: images.shape)
    }
}
