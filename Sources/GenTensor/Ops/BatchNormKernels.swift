/// The activation a batch normalisation may apply in the same pass (BatchNorm + ReLU in the DCGAN
/// generator, BatchNorm + LeakyReLU in its discriminator).
public enum NormActivation: Equatable, Sendable {
    /// The normalised, affine-transformed value itself.
    case none
    /// max(z, 0).
    case relu
    /// z for z > 0, slope z otherwise (slope in [0, 1)).
    case leakyRelu(slope: Double)

    /// The slope applied to negative values (1 for none: the identity).
    var negativeSlope: Double {
        switch self {
        case .none: return 1
        case .relu: return 0
        case .leakyRelu(let slope): return slope
        }
    }
}

/// The shape of one batch normalisation: `rows` positions (N·H·W) of `channels` channels-last
/// values, each channel normalised over all rows.
struct BatchNormGeometry {
    let rows: Int, channels: Int
    let eps: Double
    let activation: NormActivation

    /// Rows per block of the threaded sums. Fixed, so that results do not depend on the thread count.
    static let blockRows = 128
    var blocks: Int { (rows + Self.blockRows - 1) / Self.blockRows }
}

/// Forward and backward loops of `Tensor.batchNormTraining` / `batchNormInference`, threaded over
/// blocks of rows. Each block sums in its own precision over at most `blockRows` rows; the blocks'
/// partial sums are added in Double, in block order.
enum BatchNormKernels {
    /// Per-channel sums over each block of rows of `term(row pointer, channel)`, added up in block
    /// order: the total per channel.
    @inline(__always)
    private static func channelSums<T: KernelFloat>(_ geo: BatchNormGeometry, cost: Int,
                                                    _ term: (Int, Int) -> T) -> [Double] {
        let c = geo.channels, blocks = geo.blocks
        var partial = [Double](repeating: 0, count: blocks * c)
        partial.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            parallelChunks(blocks, costPerItem: BatchNormGeometry.blockRows * c * cost) { range in
                var acc = [T](repeating: 0, count: c)
                acc.withUnsafeMutableBufferPointer { a in
                    for b in range {
                        for k in 0..<c { a[k] = 0 }
                        let end = Swift.min((b + 1) * BatchNormGeometry.blockRows, geo.rows)
                        for r in (b * BatchNormGeometry.blockRows)..<end {
                            for k in 0..<c { a[k] += term(r, k) }
                        }
                        for k in 0..<c { base[b * c + k] = Double(a[k]) }
                    }
                }
            }
        }
        var total = [Double](repeating: 0, count: c)
        for b in 0..<blocks {
            for k in 0..<c { total[k] += partial[b * c + k] }
        }
        return total
    }

    /// y = act(x a + b) per channel, over all rows (threaded).
    @inline(__always)
    private static func affine<T: KernelFloat>(_ geo: BatchNormGeometry, _ x: UnsafeMutablePointer<T>,
                                               _ scale: [T], _ shift: [T], _ y: UnsafeMutablePointer<T>) {
        let c = geo.channels
        let slope = T(geo.activation.negativeSlope)
        scale.withUnsafeBufferPointer { a in
            shift.withUnsafeBufferPointer { b in
                parallelChunks(geo.rows, costPerItem: c) { range in
                    for r in range {
                        let row = x + r * c, out = y + r * c
                        if geo.activation == .none {
                            for k in 0..<c { out[k] = row[k] * a[k] + b[k] }
                        } else {
                            for k in 0..<c {
                                let z = row[k] * a[k] + b[k]
                                out[k] = Swift.max(z, 0) + slope * Swift.min(z, 0)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Training-mode forward: normalises with the batch statistics. Writes y, and per channel the
    /// mean, 1 / sqrt(biased variance + eps) and the unbiased variance into `stats` (3 C Doubles).
    static func forward<T: KernelFloat>(_ geo: BatchNormGeometry, _ x: UnsafeMutablePointer<T>,
                                        _ weight: UnsafeMutablePointer<T>?, _ bias: UnsafeMutablePointer<T>?,
                                        _ y: UnsafeMutablePointer<T>, _ stats: UnsafeMutablePointer<Double>) {
        let c = geo.channels, count = Double(geo.rows)
        let sums: [Double] = channelSums(geo, cost: 1) { (r: Int, k: Int) -> T in x[r * c + k] }
        let meanT = sums.map { T($0 / count) }
        // Variance from the centred values (two passes: no cancellation).
        let squares: [Double] = meanT.withUnsafeBufferPointer { mean in
            channelSums(geo, cost: 2) { (r: Int, k: Int) -> T in
                let d = x[r * c + k] - mean[k]
                return d * d
            }
        }
        var scale = [T](repeating: 0, count: c), shift = [T](repeating: 0, count: c)
        for k in 0..<c {
            let mean = sums[k] / count
            let rstd = 1 / (squares[k] / count + geo.eps).squareRoot()
            stats[k] = mean
            stats[c + k] = rstd
            stats[2 * c + k] = squares[k] / Swift.max(count - 1, 1)
            let w = weight.map { Double($0[k]) } ?? 1, b = bias.map { Double($0[k]) } ?? 0
            scale[k] = T(rstd * w)
            shift[k] = T(b - mean * rstd * w)
        }
        affine(geo, x, scale, shift, y)
    }

    /// Evaluation-mode forward with given statistics: y = act((x - mean) / sqrt(variance + eps) w + b).
    static func inference<T: KernelFloat>(_ geo: BatchNormGeometry, _ x: UnsafeMutablePointer<T>,
                                          _ weight: UnsafeMutablePointer<T>?, _ bias: UnsafeMutablePointer<T>?,
                                          _ mean: UnsafeMutablePointer<T>, _ variance: UnsafeMutablePointer<T>,
                                          _ y: UnsafeMutablePointer<T>) {
        let c = geo.channels
        var scale = [T](repeating: 0, count: c), shift = [T](repeating: 0, count: c)
        for k in 0..<c {
            let rstd = 1 / (Double(variance[k]) + geo.eps).squareRoot()
            let w = weight.map { Double($0[k]) } ?? 1, b = bias.map { Double($0[k]) } ?? 0
            scale[k] = T(rstd * w)
            shift[k] = T(b - Double(mean[k]) * rstd * w)
        }
        affine(geo, x, scale, shift, y)
    }

    /// Training-mode backward (first order): dx, dweight and dbias from dy, the input, the output
    /// (whose sign gives the activation's slope) and the forward's `stats`.
    static func backward<T: KernelFloat>(_ geo: BatchNormGeometry, _ dy: UnsafeMutablePointer<T>, _ x: UnsafeMutablePointer<T>,
                                         _ y: UnsafeMutablePointer<T>, _ weight: UnsafeMutablePointer<T>?,
                                         _ stats: UnsafeMutablePointer<Double>, _ dx: UnsafeMutablePointer<T>,
                                         _ dw: UnsafeMutablePointer<T>, _ db: UnsafeMutablePointer<T>) {
        let c = geo.channels, count = Double(geo.rows)
        let slope = T(geo.activation.negativeSlope)
        let activated = geo.activation != .none
        let meanT = (0..<c).map { T(stats[$0]) }
        // dz: dy through the activation (the output is positive exactly where z is).
        @inline(__always) func dz(_ i: Int) -> T { activated && !(y[i] > 0) ? dy[i] * slope : dy[i] }
        let sumDz: [Double] = channelSums(geo, cost: 1) { (r: Int, k: Int) -> T in dz(r * c + k) }
        let sumDzCentered: [Double] = meanT.withUnsafeBufferPointer { mean in
            channelSums(geo, cost: 2) { (r: Int, k: Int) -> T in dz(r * c + k) * (x[r * c + k] - mean[k]) }
        }
        // dx = rstd w (dz - mean(dz) - xhat mean(dz xhat)) = a1 dz + a2 (x - mean) + a3 per channel.
        var a1 = [T](repeating: 0, count: c), a2 = a1, a3 = a1
        for k in 0..<c {
            let rstd = stats[c + k], w = weight.map { Double($0[k]) } ?? 1
            dw[k] = T(sumDzCentered[k] * rstd)
            db[k] = T(sumDz[k])
            a1[k] = T(rstd * w)
            a2[k] = T(-w * rstd * rstd * rstd * sumDzCentered[k] / count)
            a3[k] = T(-rstd * w * sumDz[k] / count)
        }
        a1.withUnsafeBufferPointer { p1 in
            a2.withUnsafeBufferPointer { p2 in
                a3.withUnsafeBufferPointer { p3 in
                    meanT.withUnsafeBufferPointer { mean in
                        parallelChunks(geo.rows, costPerItem: c * 2) { range in
                            for r in range {
                                let o = r * c
                                for k in 0..<c {
                                    dx[o + k] = p1[k] * dz(o + k) + p2[k] * (x[o + k] - mean[k]) + p3[k]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
