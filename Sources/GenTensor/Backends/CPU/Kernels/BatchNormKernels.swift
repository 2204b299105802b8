/// Forward and backward loops of `Tensor.batchNormTraining` / `batchNormInference`, threaded over
/// blocks of rows. Each block sums in its own precision over at most `blockRows` rows; the blocks'
/// partial sums are added in Double, in block order.
enum BatchNormKernels {
    /// Per-channel sums of `accumulators` quantities over all rows: `body(rows, acc)` adds the terms
    /// of one block of rows into `acc` (accumulators x C values, zeroed first). The blocks' sums are
    /// added up in block order, in Double. The loops live in `body`, called once per block, so that
    /// they are compiled where the element type is known (not behind a call per element).
    @inline(__always)
    private static func blockSums<T: KernelFloat>(_ geo: BatchNormGeometry, accumulators: Int, cost: Int,
                                                  _ body: (Range<Int>, UnsafeMutablePointer<T>) -> Void) -> [Double] {
        let width = accumulators * geo.channels, blocks = geo.blocks
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: blocks * width)
        defer { partial.deallocate() }
        parallelChunks(blocks, costPerItem: BatchNormGeometry.blockRows * geo.channels * cost) { range in
            let acc = UnsafeMutablePointer<T>.allocate(capacity: width)
            defer { acc.deallocate() }
            for b in range {
                acc.initialize(repeating: 0, count: width)
                let end = Swift.min((b + 1) * BatchNormGeometry.blockRows, geo.rows)
                body((b * BatchNormGeometry.blockRows)..<end, acc)
                for k in 0..<width { partial[b * width + k] = Double(acc[k]) }
            }
        }
        var total = [Double](repeating: 0, count: width)
        for b in 0..<blocks {
            for k in 0..<width { total[k] += partial[b * width + k] }
        }
        return total
    }

    /// y = act(x a + b) per channel, over all rows (threaded).
    @inline(__always)
    private static func affine<T: KernelFloat>(_ geo: BatchNormGeometry, _ x: UnsafeMutablePointer<T>,
                                               _ a: UnsafeMutablePointer<T>, _ b: UnsafeMutablePointer<T>,
                                               _ y: UnsafeMutablePointer<T>) {
        let c = geo.channels
        let slope = T(geo.activation.negativeSlope)
        let activated = geo.activation != .none
        parallelChunks(geo.rows, costPerItem: c) { range in
            for r in range {
                let row = x + r * c, out = y + r * c
                if activated {
                    for k in 0..<c {
                        let z: T = row[k] * a[k] + b[k]
                        out[k] = Swift.max(z, 0) + slope * Swift.min(z, 0)
                    }
                } else {
                    for k in 0..<c { out[k] = row[k] * a[k] + b[k] }
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
        let scratch = UnsafeMutablePointer<T>.allocate(capacity: 3 * c)
        defer { scratch.deallocate() }
        let mean = scratch, scale = scratch + c, shift = scratch + 2 * c
        let sums: [Double] = blockSums(geo, accumulators: 1, cost: 1) { (rows: Range<Int>, acc: UnsafeMutablePointer<T>) in
            for r in rows {
                let row = x + r * c
                for k in 0..<c { acc[k] += row[k] }
            }
        }
        for k in 0..<c { mean[k] = T(sums[k] / count) }
        // Variance from the centred values (two passes: no cancellation).
        let squares: [Double] = blockSums(geo, accumulators: 1, cost: 2) { (rows: Range<Int>, acc: UnsafeMutablePointer<T>) in
            for r in rows {
                let row = x + r * c
                for k in 0..<c {
                    let d: T = row[k] - mean[k]
                    acc[k] += d * d
                }
            }
        }
        for k in 0..<c {
            let m = sums[k] / count
            let rstd = 1 / (squares[k] / count + geo.eps).squareRoot()
            stats[k] = m
            stats[c + k] = rstd
            stats[2 * c + k] = squares[k] / Swift.max(count - 1, 1)
            let w = weight.map { Double($0[k]) } ?? 1, b = bias.map { Double($0[k]) } ?? 0
            scale[k] = T(rstd * w)
            shift[k] = T(b - m * rstd * w)
        }
        affine(geo, x, scale, shift, y)
    }

    /// Evaluation-mode forward with given statistics: y = act((x - mean) / sqrt(variance + eps) w + b).
    static func inference<T: KernelFloat>(_ geo: BatchNormGeometry, _ x: UnsafeMutablePointer<T>,
                                          _ weight: UnsafeMutablePointer<T>?, _ bias: UnsafeMutablePointer<T>?,
                                          _ mean: UnsafeMutablePointer<T>, _ variance: UnsafeMutablePointer<T>,
                                          _ y: UnsafeMutablePointer<T>) {
        let c = geo.channels
        let scratch = UnsafeMutablePointer<T>.allocate(capacity: 2 * c)
        defer { scratch.deallocate() }
        let scale = scratch, shift = scratch + c
        for k in 0..<c {
            let rstd = 1 / (Double(variance[k]) + geo.eps).squareRoot()
            let w = weight.map { Double($0[k]) } ?? 1, b = bias.map { Double($0[k]) } ?? 0
            scale[k] = T(rstd * w)
            shift[k] = T(b - Double(mean[k]) * rstd * w)
        }
        affine(geo, x, scale, shift, y)
    }

    /// dy through the fused activation: its slope where the output (equivalently z) is not positive.
    @inline(__always)
    private static func activationGradient<T: KernelFloat>(_ dy: T, output: T, _ activated: Bool, _ slope: T) -> T {
        activated && !(output > 0) ? dy * slope : dy
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
        // Per channel: the mean, then the coefficients of dx = a1 dz + a2 (x - mean) + a3.
        let scratch = UnsafeMutablePointer<T>.allocate(capacity: 4 * c)
        defer { scratch.deallocate() }
        let mean = scratch, a1 = scratch + c, a2 = scratch + 2 * c, a3 = scratch + 3 * c
        for k in 0..<c { mean[k] = T(stats[k]) }
        // Sums of dz (dy through the activation: the output is positive exactly where z is) and of
        // dz (x - mean), per channel, in one pass.
        let sums: [Double] = blockSums(geo, accumulators: 2, cost: 3) { (rows: Range<Int>, acc: UnsafeMutablePointer<T>) in
            let accDz = acc, accDzCentered = acc + c
            for r in rows {
                let o = r * c
                for k in 0..<c {
                    let dz = activationGradient(dy[o + k], output: y[o + k], activated, slope)
                    let centered: T = x[o + k] - mean[k]
                    accDz[k] += dz
                    accDzCentered[k] += dz * centered
                }
            }
        }
        // dx = rstd w (dz - mean(dz) - xhat mean(dz xhat)).
        for k in 0..<c {
            let rstd = stats[c + k], w = weight.map { Double($0[k]) } ?? 1
            let sumDz = sums[k], sumDzCentered = sums[c + k]
            dw[k] = T(sumDzCentered * rstd)
            db[k] = T(sumDz)
            a1[k] = T(rstd * w)
            a2[k] = T(-w * rstd * rstd * rstd * sumDzCentered / count)
            a3[k] = T(-rstd * w * sumDz / count)
        }
        parallelChunks(geo.rows, costPerItem: c * 2) { range in
            for r in range {
                let o = r * c
                for k in 0..<c {
                    let dz = activationGradient(dy[o + k], output: y[o + k], activated, slope)
                    let centered: T = x[o + k] - mean[k]
                    dx[o + k] = a1[k] * dz + a2[k] * centered + a3[k]
                }
            }
        }
    }
}
