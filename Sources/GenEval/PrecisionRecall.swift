import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// Improved precision and recall of a generated feature set against a real one.
public struct PrecisionRecallResult: Sendable, Equatable {
    /// Fraction of generated samples inside the real manifold (fidelity).
    public let precision: Double
    /// Fraction of real samples inside the generated manifold (coverage / diversity).
    public let recall: Double
    /// The neighbourhood size used for the radii.
    public let k: Int
}

/// Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved
/// precision and recall metric for assessing generative models"). Each set's manifold is the union
/// of balls around its samples, each ball's radius the distance to the sample's k-th nearest
/// neighbour within the set (itself excluded); precision is the fraction of generated samples in at
/// least one real ball (distance <= radius, as the authors' code), recall the fraction of real
/// samples in at least one generated ball.
///
/// Distances come from ‖a‖² + ‖b‖² - 2a·b in Float64 (clamped at 0), in blocks computed in parallel,
/// compared squared (timing: docs/architecture.md, Measurements and history).
public enum PrecisionRecall {
    /// Precision and recall of `generated` against `real` ((n, d) feature matrices).
    public static func compute(real: Matrix64, generated: Matrix64, k: Int = 3) throws -> PrecisionRecallResult {
        guard real.columns == generated.columns else {
            throw MetricError("precision/recall: feature dimensions differ (\(real.columns) and \(generated.columns))")
        }
        guard k >= 1, real.rows > k, generated.rows > k else {
            throw MetricError("precision/recall: each set needs more than k = \(k) samples, got \(real.rows) and \(generated.rows)")
        }
        guard real.isFinite, generated.isFinite else {
            throw MetricError("precision/recall: the features contain NaN or infinity")
        }
        let realRadii = squaredNeighbourRadii(real, k: k)
        let fakeRadii = squaredNeighbourRadii(generated, k: k)
        let precision = fractionInside(generated, manifold: real, squaredRadii: realRadii)
        let recall = fractionInside(real, manifold: generated, squaredRadii: fakeRadii)
        return PrecisionRecallResult(precision: precision, recall: recall, k: k)
    }

    /// The distance from each row of `x` to its k-th nearest other row.
    public static func neighbourRadii(_ x: Matrix64, k: Int = 3) -> [Double] {
        squaredNeighbourRadii(x, k: k).map { $0.squareRoot() }
    }

    static let rowBlock = 32, columnBlock = 1024

    /// Squared k-th nearest-neighbour distances (index i itself excluded).
    static func squaredNeighbourRadii(_ x: Matrix64, k: Int) -> [Double] {
        let n = x.rows, d = x.columns
        precondition(n > k && k >= 1, "neighbourRadii: \(n) samples for k = \(k)")
        let norms = LinearAlgebra64.rowSquaredNorms(x)
        var radii = [Double](repeating: 0, count: n)
        x.values.withUnsafeBufferPointer { xp in
            norms.withUnsafeBufferPointer { np in
                radii.withUnsafeMutableBufferPointer { rp in
                    let xBase = xp.baseAddress!, nb = np.baseAddress!, out = rp.baseAddress!
                    let blocks = (n + rowBlock - 1) / rowBlock
                    parallelFor(blocks, costPerItem: rowBlock * n * d) { range in
                        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: 4 * columnBlock)
                        let best = UnsafeMutablePointer<Double>.allocate(capacity: k)
                        defer { buffer.deallocate(); best.deallocate() }
                        for blk in range {
                            let r0 = blk * rowBlock, r1 = min(r0 + rowBlock, n)
                            var r = r0
                            while r < r1 {
                                let rows = min(4, r1 - r)
                                // The k smallest squared distances of each of these rows, ascending.
                                var smallest = [[Double]](repeating: [Double](repeating: .infinity, count: k), count: rows)
                                for c0 in stride(from: 0, to: n, by: columnBlock) {
                                    let cols = min(columnBlock, n - c0)
                                    LinearAlgebra64.dotBlock(xBase + r * d, rows, xBase + c0 * d, cols, d, buffer, cols)
                                    for i in 0..<rows {
                                        let row = r + i, ni = nb[row]
                                        for t in 0..<k { best[t] = smallest[i][t] }
                                        var worst = best[k - 1]
                                        for j in 0..<cols where c0 + j != row {
                                            let dist = max(ni + nb[c0 + j] - 2 * buffer[i * cols + j], 0)
                                            if dist < worst {
                                                // Insert into the sorted list of k.
                                                var p = k - 1
                                                while p > 0 && best[p - 1] > dist {
                                                    best[p] = best[p - 1]
                                                    p -= 1
                                                }
                                                best[p] = dist
                                                worst = best[k - 1]
                                            }
                                        }
                                        for t in 0..<k { smallest[i][t] = best[t] }
                                    }
                                }
                                for i in 0..<rows { out[r + i] = smallest[i][k - 1] }
                                r += rows
                            }
                        }
                    }
                }
            }
        }
        return radii
    }

    /// The fraction of rows of `points` within the ball (squared radius `squaredRadii[j]`) of some
    /// row j of `manifold`. Each block of points stops scanning once all of its points are inside.
    static func fractionInside(_ points: Matrix64, manifold: Matrix64, squaredRadii: [Double]) -> Double {
        let n = points.rows, m = manifold.rows, d = points.columns
        guard n > 0 else { return 0 }
        let pNorms = LinearAlgebra64.rowSquaredNorms(points)
        let mNorms = LinearAlgebra64.rowSquaredNorms(manifold)
        var inside = [Bool](repeating: false, count: n)
        points.values.withUnsafeBufferPointer { pp in
            manifold.values.withUnsafeBufferPointer { mp in
                inside.withUnsafeMutableBufferPointer { ip in
                    let pBase = pp.baseAddress!, mBase = mp.baseAddress!, flags = ip.baseAddress!
                    let blocks = (n + rowBlock - 1) / rowBlock
                    parallelFor(blocks, costPerItem: rowBlock * m * d) { range in
                        let buffer = UnsafeMutablePointer<Double>.allocate(capacity: 4 * columnBlock)
                        defer { buffer.deallocate() }
                        for blk in range {
                            let r0 = blk * rowBlock, r1 = min(r0 + rowBlock, n)
                            var r = r0
                            while r < r1 {
                                let rows = min(4, r1 - r)
                                var remaining = rows
                                var c0 = 0
                                while c0 < m && remaining > 0 {
                                    let cols = min(columnBlock, m - c0)
                                    LinearAlgebra64.dotBlock(pBase + r * d, rows, mBase + c0 * d, cols, d, buffer, cols)
                                    for i in 0..<rows where !flags[r + i] {
                                        let ni = pNorms[r + i]
                                        for j in 0..<cols {
                                            let dist = max(ni + mNorms[c0 + j] - 2 * buffer[i * cols + j], 0)
                                            if dist <= squaredRadii[c0 + j] {
                                                flags[r + i] = true
                                                remaining -= 1
                                                break
                                            }
                                        }
                                    }
                                    c0 += cols
                                }
                                r += rows
                            }
                        }
                    }
                }
            }
        }
        return Double(inside.lazy.filter { $0 }.count) / Double(n)
    }
}
