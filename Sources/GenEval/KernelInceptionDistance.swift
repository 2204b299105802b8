import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The Kernel Inception Distance over random subsets: mean and standard deviation of the unbiased
/// MMD² estimates, the subset size actually used, and a warning when it had to be reduced.
public struct KernelInceptionDistanceResult: Sendable, Equatable {
    /// Mean of the per-subset MMD² estimates.
    public let mean: Double
    /// Standard deviation of the per-subset estimates (ddof 0, as torch-fidelity's `np.std`).
    public let std: Double
    /// The MMD² estimate of each subset.
    public let subsetValues: [Double]
    /// Samples drawn from each set per subset.
    public let subsetSize: Int
    /// Set when a set had fewer samples than the requested subset size.
    public let warning: String?
}

/// The Kernel Inception Distance (Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD
/// GANs"), computed as torch-fidelity does: the unbiased estimator of the squared maximum mean
/// discrepancy (Gretton et al. 2012) with the polynomial kernel k(x, y) = (γ x·y + c₀)^degree,
/// γ = 1/d, c₀ = 1, degree 3, averaged over `subsets` random subsets of `subsetSize` samples
/// drawn without replacement from each set. Unlike FID it has an unbiased estimator, so it can
/// be (slightly) negative when the sets match.
///
/// MMD²ᵤ = (Σ_{i≠j} k(xᵢ,xⱼ) + Σ_{i≠j} k(yᵢ,yⱼ)) / (m(m-1)) - 2 Σ_{i,j} k(xᵢ,yⱼ) / m²
/// (torch-fidelity's `mmd_est='unbiased'`, which keeps the diagonal of the cross term).
public enum KernelInceptionDistance {
    /// KID between two (n, d) feature matrices. Subsets come from a `RandomGenerator(seed:)`:
    /// for each subset, `subsetSize` indices of `a`, then of `b`, by a partial Fisher-Yates shuffle.
    /// When a set has fewer than `subsetSize` samples, the smaller set's size is used and the result
    /// says so.
    public static func compute(_ a: Matrix64, _ b: Matrix64, subsets: Int = 100, subsetSize: Int = 1000,
                               degree: Int = 3, gamma: Double? = nil, coef0: Double = 1,
                               seed: UInt64 = 0) throws -> KernelInceptionDistanceResult {
        guard a.columns == b.columns else {
            throw MetricError("KID: feature dimensions differ (\(a.columns) and \(b.columns))")
        }
        guard subsets >= 1, subsetSize >= 2 else {
            throw MetricError("KID: need subsets >= 1 and subsetSize >= 2, got \(subsets) and \(subsetSize)")
        }
        guard a.rows >= 2, b.rows >= 2 else {
            throw MetricError("KID: each set needs at least 2 samples, got \(a.rows) and \(b.rows)")
        }
        guard a.isFinite, b.isFinite else { throw MetricError("KID: the features contain NaN or infinity") }
        let m = min(subsetSize, a.rows, b.rows)
        let warning: String? = m < subsetSize
            ? "KID: a set has fewer samples (\(a.rows), \(b.rows)) than the subset size \(subsetSize); used subsets of \(m)"
            : nil
        let generator = RandomGenerator(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(subsets)
        for _ in 0..<subsets {
            let x = a.selectingRows(sampleWithoutReplacement(a.rows, m, generator))
            let y = b.selectingRows(sampleWithoutReplacement(b.rows, m, generator))
            values.append(polynomialMMD2(x, y, degree: degree, gamma: gamma, coef0: coef0))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return KernelInceptionDistanceResult(mean: mean, std: variance.squareRoot(), subsetValues: values,
                                             subsetSize: m, warning: warning)
    }

    /// The unbiased MMD² between two equally sized (m, d) sets with the polynomial kernel
    /// (γ x·y + c₀)^degree, γ = 1/d by default.
    public static func polynomialMMD2(_ x: Matrix64, _ y: Matrix64, degree: Int = 3, gamma: Double? = nil,
                                      coef0: Double = 1) -> Double {
        precondition(x.rows == y.rows && x.columns == y.columns && x.rows >= 2,
                     "polynomialMMD2: needs two (m, d) sets with m >= 2, got \(x.rows)x\(x.columns) and \(y.rows)x\(y.columns)")
        let m = x.rows, d = x.columns
        let g = gamma ?? 1 / Double(d)
        let kernel = PolynomialKernel(gamma: g, coef0: coef0, degree: degree)
        let xx = kernelSum(x, x, symmetric: true, kernel)
        let yy = kernelSum(y, y, symmetric: true, kernel)
        let xy = kernelSum(x, y, symmetric: false, kernel)
        let md = Double(m)
        return (xx + yy) / (md * (md - 1)) - 2 * xy / (md * md)
    }

    /// Σ_{i,j} kernel(xᵢ·yⱼ); with `symmetric` (x and y the same set), Σ_{i≠j} from the upper
    /// triangle. Row blocks run in parallel; their partial sums are added in block order, so the
    /// result does not depend on the thread count.
    static func kernelSum(_ x: Matrix64, _ y: Matrix64, symmetric: Bool, _ kernel: PolynomialKernel) -> Double {
        let m = x.rows, n = y.rows, d = x.columns
        let rowsPerBlock = 16
        let blocks = (m + rowsPerBlock - 1) / rowsPerBlock
        var partial = [Double](repeating: 0, count: blocks)
        x.values.withUnsafeBufferPointer { xp in
            y.values.withUnsafeBufferPointer { yp in
                partial.withUnsafeMutableBufferPointer { pp in
                    let xBase = xp.baseAddress!, yBase = yp.baseAddress!, sums = pp.baseAddress!
                    parallelFor(blocks, costPerItem: rowsPerBlock * n * d) { range in
                        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: 4 * n)
                        defer { buffer.deallocate() }
                        for blk in range {
                            let r0 = blk * rowsPerBlock, r1 = min(r0 + rowsPerBlock, m)
                            var total = 0.0
                            var r = r0
                            while r < r1 {
                                let rows = min(4, r1 - r)
                                // Symmetric: only columns after the row (upper triangle), counted twice.
                                let c0 = symmetric ? r : 0
                                LinearAlgebra64.dotBlock(xBase + r * d, rows, yBase + c0 * d, n - c0, d, buffer, n - c0)
                                for i in 0..<rows {
                                    let row = buffer + i * (n - c0)
                                    var s = 0.0
                                    if symmetric {
                                        for j in (i + 1)..<max(n - c0, i + 1) { s += kernel(row[j]) }
                                        s *= 2
                                    } else {
                                        for j in 0..<n { s += kernel(row[j]) }
                                    }
                                    total += s
                                }
                                r += rows
                            }
                            sums[blk] = total
                        }
                    }
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// (γ t + c₀)^degree by repeated multiplication (degree 3 unrolled).
    struct PolynomialKernel {
        let gamma: Double, coef0: Double, degree: Int

        @inline(__always) func callAsFunction(_ dot: Double) -> Double {
            let t = gamma * dot + coef0
            if degree == 3 { return t * t * t }
            var r = 1.0
            for _ in 0..<max(degree, 0) { r *= t }
            return r
        }
    }

    /// `count` distinct indices of 0..<n in random order (a partial Fisher-Yates shuffle).
    public static func sampleWithoutReplacement(_ n: Int, _ count: Int, _ generator: RandomGenerator) -> [Int] {
        precondition(count <= n, "sampleWithoutReplacement: \(count) of \(n)")
        var p = Array(0..<n)
        for i in 0..<count { p.swapAt(i, generator.nextInt(i, n)) }
        return Array(p[0..<count])
    }
}
