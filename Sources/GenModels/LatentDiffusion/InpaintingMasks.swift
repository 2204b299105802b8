import Foundation
import GenTensor

/// Inpainting masks for training and evaluation: (N, H, W, 1) float32, 1 marks a pixel to fill,
/// 0 a pixel to keep (the LDM paper's convention).
public enum InpaintingMasks {
    /// Random training masks: half are boxes (sides uniform in [H/4, 3H/4], anywhere inside the
    /// image), half free-form strokes (1 to 3 random walks of 4 to 8 segments, each 2 to 7 pixels
    /// long, drawn with a brush of radius 1 or 2), as LaMa-style masks at this size.
    public static func random(count: Int, height: Int = 28, width: Int = 28, generator rng: RandomGenerator) -> Tensor {
        var values = [Float](repeating: 0, count: count * height * width)
        func uniform(_ low: Int, _ high: Int) -> Int { low + Int(rng.nextUnitDouble() * Double(high - low + 1)) % (high - low + 1) }
        for n in 0..<count {
            let base = n * height * width
            if rng.nextUnitDouble() < 0.5 {
                let h = uniform(height / 4, 3 * height / 4), w = uniform(width / 4, 3 * width / 4)
                let top = uniform(0, height - h), left = uniform(0, width - w)
                for i in top..<(top + h) { for j in left..<(left + w) { values[base + i * width + j] = 1 } }
            } else {
                for _ in 0..<uniform(1, 3) {
                    var y = Double(uniform(0, height - 1)), x = Double(uniform(0, width - 1))
                    let radius = uniform(1, 2)
                    for _ in 0..<uniform(4, 8) {
                        let angle = rng.nextUnitDouble() * 2 * Double.pi, length = Double(uniform(2, 7))
                        for s in 0...Int(length) {
                            let py = Int((y + sin(angle) * Double(s)).rounded()), px = Int((x + cos(angle) * Double(s)).rounded())
                            for dy in -radius...radius { for dx in -radius...radius where dy * dy + dx * dx <= radius * radius {
                                let (i, j) = (py + dy, px + dx)
                                if i >= 0 && i < height && j >= 0 && j < width { values[base + i * width + j] = 1 }
                            } }
                        }
                        y = min(max(y + sin(angle) * length, 0), Double(height - 1))
                        x = min(max(x + cos(angle) * length, 0), Double(width - 1))
                    }
                }
            }
        }
        return Tensor(values, shape: [count, height, width, 1])
    }

    /// The centre box of side `side` (the evaluation's 14x14 hole) for `count` images.
    public static func centre(count: Int, height: Int = 28, width: Int = 28, side: Int = 14) -> Tensor {
        var values = [Float](repeating: 0, count: count * height * width)
        let top = (height - side) / 2, left = (width - side) / 2
        for n in 0..<count { for i in top..<(top + side) { for j in left..<(left + side) { values[n * height * width + i * width + j] = 1 } } }
        return Tensor(values, shape: [count, height, width, 1])
    }
}
