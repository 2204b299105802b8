import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// Float64 dense linear algebra for the metrics: products, feature means and covariances, and the
/// square root of a symmetric positive semi-definite matrix. Products run a register-blocked
/// SIMD kernel over row blocks in parallel (the engine's thread pool); every element is summed in
/// the same order whatever the thread count, so results are deterministic.
public enum LinearAlgebra64 {
    /// A · B.
    public static func multiply(_ a: Matrix64, _ b: Matrix64) -> Matrix64 {
        precondition(a.columns == b.rows, "LinearAlgebra64.multiply: \(a.rows)x\(a.columns) times \(b.rows)x\(b.columns)")
        return multiplyTransposed(a, b.transposed())
    }

    /// A · Bᵀ: entry (i, j) is the dot product of row i of A with row j of B.
    public static func multiplyTransposed(_ a: Matrix64, _ b: Matrix64) -> Matrix64 {
        precondition(a.columns == b.columns, "LinearAlgebra64.multiplyTransposed: inner dimensions \(a.columns) and \(b.columns)")
        var out = [Double](repeating: 0, count: a.rows * b.rows)
        let m = a.rows, n = b.rows, d = a.columns
        a.values.withUnsafeBufferPointer { ap in
            b.values.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { cp in
                    guard let aBase = ap.baseAddress, let bBase = bp.baseAddress, let cBase = cp.baseAddress else { return }
                    let blocks = (m + 3) / 4
                    parallelFor(blocks, costPerItem: 4 * n * max(d, 1)) { range in
                        for blk in range {
                            let r0 = blk * 4, r1 = min(r0 + 4, m)
                            dotBlock(aBase + r0 * d, r1 - r0, bBase, n, d, cBase + r0 * n, n)
                        }
                    }
                }
            }
        }
        return Matrix64(rows: m, columns: n, values: out)
    }

    /// The mean of each column of the (n, d) feature matrix.
    public static func columnMeans(_ x: Matrix64) -> [Double] {
        var mean = [Double](repeating: 0, count: x.columns)
        guard x.rows > 0 else { return mean }
        let d = x.columns
        x.values.withUnsafeBufferPointer { xp in
            for i in 0..<x.rows {
                for j in 0..<d { mean[j] += xp[i * d + j] }
            }
        }
        let inv = 1 / Double(x.rows)
        return mean.map { $0 * inv }
    }

    /// The unbiased (n - 1) covariance of the (n, d) feature matrix, as numpy's `np.cov(x,
    /// rowvar=False)`: the features are centred on `mean` (their column means when nil) first.
    public static func covariance(_ x: Matrix64, mean: [Double]? = nil) -> Matrix64 {
        precondition(x.rows >= 2, "LinearAlgebra64.covariance: needs at least 2 rows, got \(x.rows)")
        let mu = mean ?? columnMeans(x)
        precondition(mu.count == x.columns, "LinearAlgebra64.covariance: mean has \(mu.count) entries for \(x.columns) columns")
        let n = x.rows, d = x.columns
        // Centred features, transposed to (d, n) so that each covariance entry is a dot product of
        // two contiguous rows.
        var ct = [Double](repeating: 0, count: n * d)
        x.values.withUnsafeBufferPointer { xp in
            ct.withUnsafeMutableBufferPointer { cp in
                for i in 0..<n {
                    for j in 0..<d { cp[j * n + i] = xp[i * d + j] - mu[j] }
                }
            }
        }
        let centredT = Matrix64(rows: d, columns: n, values: ct)
        var cov = multiplyTransposed(centredT, centredT)
        let inv = 1 / Double(n - 1)
        for i in 0..<cov.values.count { cov.values[i] *= inv }
        return cov.symmetrized()
    }

    /// The principal square root √A of a symmetric positive semi-definite matrix, V √max(Λ, 0) Vᵀ:
    /// tiny negative eigenvalues (rounding in a singular covariance) are clamped to 0.
    public static func symmetricSquareRoot(_ a: Matrix64) throws -> Matrix64 {
        try SymmetricEigendecomposition(a).reconstruct { max($0, 0).squareRoot() }
    }

    /// Squared Euclidean norm of each row.
    public static func rowSquaredNorms(_ x: Matrix64) -> [Double] {
        let d = x.columns
        return x.values.withUnsafeBufferPointer { xp -> [Double] in
            (0..<x.rows).map { i in
                var s = 0.0
                dotBlock(xp.baseAddress! + i * d, 1, xp.baseAddress! + i * d, 1, d, &s, 1)
                return s
            }
        }
    }

    /// C[i, j] = dot(A row i, B row j) for i < m (at most 4), j < n; A and B have row length d, C
    /// has row stride ldc. Columns go four at a time and the length-d sums run in SIMD4 lanes, so
    /// each element's summation order depends only on d, not on where it sits in the matrix.
    @inline(__always)
    static func dotBlock(_ a: UnsafePointer<Double>, _ m: Int, _ b: UnsafePointer<Double>, _ n: Int, _ d: Int,
                         _ c: UnsafeMutablePointer<Double>, _ ldc: Int) {
        let d4 = d & ~3
        let raw = { (p: UnsafePointer<Double>, k: Int) -> SIMD4<Double> in
            UnsafeRawPointer(p + k).loadUnaligned(as: SIMD4<Double>.self)
        }
        if m == 4 {
            let a0 = a, a1 = a + d, a2 = a + 2 * d, a3 = a + 3 * d
            var j = 0
            while j + 2 <= n {
                let b0 = b + j * d, b1 = b + (j + 1) * d
                var s00 = SIMD4<Double>(), s01 = SIMD4<Double>(), s10 = SIMD4<Double>(), s11 = SIMD4<Double>()
                var s20 = SIMD4<Double>(), s21 = SIMD4<Double>(), s30 = SIMD4<Double>(), s31 = SIMD4<Double>()
                var k = 0
                while k < d4 {
                    let x0 = raw(b0, k), x1 = raw(b1, k)
                    let y0 = raw(a0, k), y1 = raw(a1, k), y2 = raw(a2, k), y3 = raw(a3, k)
                    s00.addProduct(y0, x0); s01.addProduct(y0, x1)
                    s10.addProduct(y1, x0); s11.addProduct(y1, x1)
                    s20.addProduct(y2, x0); s21.addProduct(y2, x1)
                    s30.addProduct(y3, x0); s31.addProduct(y3, x1)
                    k += 4
                }
                var t00 = s00.sum(), t01 = s01.sum(), t10 = s10.sum(), t11 = s11.sum()
                var t20 = s20.sum(), t21 = s21.sum(), t30 = s30.sum(), t31 = s31.sum()
                while k < d {
                    let x0 = b0[k], x1 = b1[k]
                    t00.addProduct(a0[k], x0); t01.addProduct(a0[k], x1)
                    t10.addProduct(a1[k], x0); t11.addProduct(a1[k], x1)
                    t20.addProduct(a2[k], x0); t21.addProduct(a2[k], x1)
                    t30.addProduct(a3[k], x0); t31.addProduct(a3[k], x1)
                    k += 1
                }
                c[j] = t00; c[j + 1] = t01
                c[ldc + j] = t10; c[ldc + j + 1] = t11
                c[2 * ldc + j] = t20; c[2 * ldc + j + 1] = t21
                c[3 * ldc + j] = t30; c[3 * ldc + j + 1] = t31
                j += 2
            }
            if j < n {
                for r in 0..<4 { dotBlock(a + r * d, 1, b + j * d, 1, d, c + r * ldc + j, 1) }
            }
            return
        }
        for r in 0..<m {
            let ar = a + r * d
            for j in 0..<n {
                let bj = b + j * d
                var s = SIMD4<Double>()
                var k = 0
                while k < d4 {
                    s.addProduct(raw(ar, k), raw(bj, k))
                    k += 4
                }
                var t = s.sum()
                while k < d {
                    t.addProduct(ar[k], bj[k])
                    k += 1
                }
                c[r * ldc + j] = t
            }
        }
    }
}
