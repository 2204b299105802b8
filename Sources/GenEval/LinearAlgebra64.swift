import Foundation
import GenTensor

/// Why a metric could not be computed: wrong shapes, too few samples, non-finite input, or an
/// eigenvalue iteration that did not converge.
public struct MetricError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, in words.
    public let description: String

    public init(_ description: String) { self.description = description }
}

/// A dense, row-major Float64 matrix: the value type of the evaluation metrics (features are rows).
///
/// The metrics run in Float64 throughout, as pytorch-fid and torch-fidelity do on float64 copies;
/// the Tensor engine's float32 features convert exactly through `init(_ tensor:)`.
public struct Matrix64: Sendable, Equatable {
    /// Number of rows (samples, for a feature matrix).
    public let rows: Int
    /// Number of columns (feature dimension, for a feature matrix).
    public let columns: Int
    /// The elements, row-major: element (i, j) is `values[i * columns + j]`.
    public var values: [Double]

    /// A matrix with the given row-major elements.
    public init(rows: Int, columns: Int, values: [Double]) {
        precondition(rows >= 0 && columns >= 0 && values.count == rows * columns,
                     "Matrix64: \(values.count) values for a \(rows) x \(columns) matrix")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    /// A matrix filled with `value`.
    public init(rows: Int, columns: Int, repeating value: Double = 0) {
        self.init(rows: rows, columns: columns, values: [Double](repeating: value, count: rows * columns))
    }

    /// A matrix whose rows are `rows` (all of the same length).
    public init(rowArrays: [[Double]]) {
        let c = rowArrays.first?.count ?? 0
        precondition(rowArrays.allSatisfy { $0.count == c }, "Matrix64: rows of different lengths")
        self.init(rows: rowArrays.count, columns: c, values: rowArrays.flatMap { $0 })
    }

    /// The rank-2 float32 or float64 tensor `tensor` as Float64 (float32 converts exactly).
    public init(_ tensor: Tensor) throws {
        guard tensor.rank == 2 else {
            throw MetricError("Matrix64: expected a rank-2 (n, d) tensor, got shape \(tensor.shape)")
        }
        guard tensor.dtype.isFloatingPoint else {
            throw MetricError("Matrix64: expected a float32 or float64 tensor, got \(tensor.dtype)")
        }
        self.init(rows: tensor.shape[0], columns: tensor.shape[1], values: tensor.doubleScalars())
    }

    /// The n x n identity.
    public static func identity(_ n: Int) -> Matrix64 {
        var m = Matrix64(rows: n, columns: n)
        for i in 0..<n { m.values[i * n + i] = 1 }
        return m
    }

    /// A diagonal matrix with `diagonal` on its diagonal.
    public static func diagonal(_ diagonal: [Double]) -> Matrix64 {
        let n = diagonal.count
        var m = Matrix64(rows: n, columns: n)
        for i in 0..<n { m.values[i * n + i] = diagonal[i] }
        return m
    }

    /// Element (i, j).
    @inlinable public subscript(i: Int, j: Int) -> Double {
        get { values[i * columns + j] }
        set { values[i * columns + j] = newValue }
    }

    /// Row i as an array.
    public func row(_ i: Int) -> [Double] { Array(values[(i * columns)..<((i + 1) * columns)]) }

    /// The rows listed in `indices`, in that order.
    public func selectingRows(_ indices: [Int]) -> Matrix64 {
        var out = [Double](repeating: 0, count: indices.count * columns)
        let c = columns
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    precondition(i >= 0 && i < rows, "Matrix64.selectingRows: row \(i) out of 0..<\(rows)")
                    for j in 0..<c { dst[r * c + j] = src[i * c + j] }
                }
            }
        }
        return Matrix64(rows: indices.count, columns: columns, values: out)
    }

    /// The transpose.
    public func transposed() -> Matrix64 {
        var out = [Double](repeating: 0, count: values.count)
        let r = rows, c = columns
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                // Tiled so that both sides stay in cache for large matrices.
                let tile = 32
                for i0 in stride(from: 0, to: r, by: tile) {
                    for j0 in stride(from: 0, to: c, by: tile) {
                        for i in i0..<min(i0 + tile, r) {
                            for j in j0..<min(j0 + tile, c) { dst[j * r + i] = src[i * c + j] }
                        }
                    }
                }
            }
        }
        return Matrix64(rows: columns, columns: rows, values: out)
    }

    /// The sum of the diagonal (square matrices).
    public var trace: Double {
        precondition(rows == columns, "Matrix64.trace: \(rows) x \(columns) is not square")
        var t = 0.0
        for i in 0..<rows { t += values[i * columns + i] }
        return t
    }

    /// (A + Aᵀ) / 2 of a square matrix.
    public func symmetrized() -> Matrix64 {
        precondition(rows == columns, "Matrix64.symmetrized: \(rows) x \(columns) is not square")
        var out = self
        let n = rows
        for i in 0..<n {
            for j in (i + 1)..<n {
                let v = 0.5 * (values[i * n + j] + values[j * n + i])
                out.values[i * n + j] = v
                out.values[j * n + i] = v
            }
        }
        return out
    }

    /// Whether every element is finite.
    public var isFinite: Bool { values.allSatisfy { $0.isFinite } }

    /// The matrix as a float64 tensor of shape (rows, columns).
    public func tensor() -> Tensor { Tensor(values, shape: [rows, columns]) }

    /// The matrix product.
    public static func * (lhs: Matrix64, rhs: Matrix64) -> Matrix64 { LinearAlgebra64.multiply(lhs, rhs) }

    /// Element-wise sum.
    public static func + (lhs: Matrix64, rhs: Matrix64) -> Matrix64 {
        precondition(lhs.rows == rhs.rows && lhs.columns == rhs.columns, "Matrix64 +: shapes differ")
        return Matrix64(rows: lhs.rows, columns: lhs.columns, values: zip(lhs.values, rhs.values).map { $0 + $1 })
    }

    /// Element-wise difference.
    public static func - (lhs: Matrix64, rhs: Matrix64) -> Matrix64 {
        precondition(lhs.rows == rhs.rows && lhs.columns == rhs.columns, "Matrix64 -: shapes differ")
        return Matrix64(rows: lhs.rows, columns: lhs.columns, values: zip(lhs.values, rhs.values).map { $0 - $1 })
    }
}

/// The eigendecomposition A = V diag(λ) Vᵀ of a real symmetric matrix: Householder reduction to
/// tridiagonal form followed by the implicit QL algorithm with Wilkinson-style shifts (the EISPACK
/// routines tred2 and tql2: Bowdler, Martin, Reinsch & Wilkinson 1968, "The QR and QL algorithms for
/// symmetric matrices", Numer. Math. 11; as in JAMA's EigenvalueDecomposition). O(n³), cheap at
/// the metrics' feature dimension (timing: docs/architecture.md, Measurements and history).
/// Residuals ‖AV - VΛ‖ and ‖VᵀV - I‖ are a small multiple of machine epsilon times ‖A‖.
public struct SymmetricEigendecomposition: Sendable {
    /// The eigenvalues in ascending order.
    public let eigenvalues: [Double]
    /// The orthonormal eigenvectors as columns: column i belongs to `eigenvalues[i]`.
    public let eigenvectors: Matrix64

    /// Decomposes `matrix`, which must be square and finite. Only the symmetric part (A + Aᵀ) / 2
    /// is used, so a nearly symmetric product like √S₁ S₂ √S₁ is decomposed as the symmetric matrix
    /// it approximates.
    public init(_ matrix: Matrix64) throws {
        guard matrix.rows == matrix.columns else {
            throw MetricError("eigendecomposition: \(matrix.rows) x \(matrix.columns) matrix is not square")
        }
        guard matrix.isFinite else { throw MetricError("eigendecomposition: the matrix has non-finite elements") }
        let n = matrix.rows
        if n == 0 {
            eigenvalues = []
            eigenvectors = Matrix64(rows: 0, columns: 0)
            return
        }
        // z holds V transposed: z[c * n + r] = V[r][c], so every loop of tred2/tql2 that walks down a
        // column of V walks contiguous memory. The input is symmetric, so z starts as A itself.
        var z = matrix.symmetrized().values
        var d = [Double](repeating: 0, count: n)
        var e = [Double](repeating: 0, count: n)
        try z.withUnsafeMutableBufferPointer { zb in
            try d.withUnsafeMutableBufferPointer { db in
                try e.withUnsafeMutableBufferPointer { eb in
                    let zp = zb.baseAddress!, dp = db.baseAddress!, ep = eb.baseAddress!
                    Self.tridiagonalize(n, zp, dp, ep)
                    try Self.implicitQL(n, zp, dp, ep)
                }
            }
        }
        // Sort ascending, carrying the eigenvectors (rows of z).
        let order = (0..<n).sorted { d[$0] < d[$1] || (d[$0] == d[$1] && $0 < $1) }
        eigenvalues = order.map { d[$0] }
        var v = [Double](repeating: 0, count: n * n)
        for (c, src) in order.enumerated() {
            for r in 0..<n { v[r * n + c] = z[src * n + r] }
        }
        eigenvectors = Matrix64(rows: n, columns: n, values: v)
    }

    /// V f(Λ) Vᵀ: the matrix function `f` applied through the eigenvalues.
    public func reconstruct(applying f: (Double) -> Double = { $0 }) -> Matrix64 {
        let n = eigenvalues.count
        // (V f(Λ)) Vᵀ = gram of the rows of V scaled by f(λ) with the rows of V.
        var scaled = eigenvectors
        for c in 0..<n {
            let s = f(eigenvalues[c])
            for r in 0..<n { scaled.values[r * n + c] *= s }
        }
        return LinearAlgebra64.multiplyTransposed(scaled, eigenvectors)
    }

    /// Householder reduction of the symmetric matrix in z to tridiagonal form (EISPACK tred2):
    /// afterwards d holds the diagonal, e[1...] the subdiagonal and z the accumulated orthogonal
    /// transformation (transposed storage, see init).
    private static func tridiagonalize(_ n: Int, _ z: UnsafeMutablePointer<Double>,
                                       _ d: UnsafeMutablePointer<Double>, _ e: UnsafeMutablePointer<Double>) {
        @inline(__always) func at(_ r: Int, _ c: Int) -> Int { c * n + r }
        for j in 0..<n { d[j] = z[at(n - 1, j)] }
        var i = n - 1
        while i > 0 {
            var scale = 0.0, h = 0.0
            for k in 0..<i { scale += abs(d[k]) }
            if scale == 0 {
                e[i] = d[i - 1]
                for j in 0..<i {
                    d[j] = z[at(i - 1, j)]
                    z[at(i, j)] = 0
                    z[at(j, i)] = 0
                }
            } else {
                // The Householder vector.
                for k in 0..<i {
                    d[k] /= scale
                    h += d[k] * d[k]
                }
                var f = d[i - 1]
                var g = h.squareRoot()
                if f > 0 { g = -g }
                e[i] = scale * g
                h -= f * g
                d[i - 1] = f - g
                for j in 0..<i { e[j] = 0 }
                // The similarity transformation of the remaining columns.
                for j in 0..<i {
                    f = d[j]
                    z[at(j, i)] = f
                    g = e[j] + z[at(j, j)] * f
                    var k = j + 1
                    while k <= i - 1 {
                        let zkj = z[at(k, j)]
                        g += zkj * d[k]
                        e[k] += zkj * f
                        k += 1
                    }
                    e[j] = g
                }
                f = 0
                for j in 0..<i {
                    e[j] /= h
                    f += e[j] * d[j]
                }
                let hh = f / (h + h)
                for j in 0..<i { e[j] -= hh * d[j] }
                for j in 0..<i {
                    f = d[j]
                    g = e[j]
                    let col = z + at(0, j)
                    for k in j..<i { col[k] -= f * e[k] + g * d[k] }
                    d[j] = z[at(i - 1, j)]
                    z[at(i, j)] = 0
                }
            }
            d[i] = h
            i -= 1
        }
        // Accumulate the transformations.
        for i in 0..<(n - 1) {
            z[at(n - 1, i)] = z[at(i, i)]
            z[at(i, i)] = 1
            let h = d[i + 1]
            let next = z + at(0, i + 1)
            if h != 0 {
                for k in 0...i { d[k] = next[k] / h }
                for j in 0...i {
                    let col = z + at(0, j)
                    var g = 0.0
                    for k in 0...i { g += next[k] * col[k] }
                    for k in 0...i { col[k] -= g * d[k] }
                }
            }
            for k in 0...i { next[k] = 0 }
        }
        for j in 0..<n {
            d[j] = z[at(n - 1, j)]
            z[at(n - 1, j)] = 0
        }
        z[at(n - 1, n - 1)] = 1
        e[0] = 0
    }

    /// The implicit QL iteration on the tridiagonal matrix (d, e) (EISPACK tql2). Converged when a
    /// subdiagonal element falls below machine epsilon times the largest |d| + |e| seen so far.
    private static func implicitQL(_ n: Int, _ z: UnsafeMutablePointer<Double>,
                                   _ d: UnsafeMutablePointer<Double>, _ e: UnsafeMutablePointer<Double>) throws {
        for i in 1..<max(n, 1) { e[i - 1] = e[i] }
        e[n - 1] = 0
        var f = 0.0, tst1 = 0.0
        let eps = Double.ulpOfOne
        for l in 0..<n {
            tst1 = max(tst1, abs(d[l]) + abs(e[l]))
            var m = l
            while m < n - 1 && abs(e[m]) > eps * tst1 { m += 1 }
            if m > l {
                var iterations = 0
                repeat {
                    iterations += 1
                    if iterations > 100 {
                        throw MetricError("eigendecomposition: QL iteration did not converge for eigenvalue \(l)")
                    }
                    // The implicit shift.
                    var g = d[l]
                    var p = (d[l + 1] - g) / (2 * e[l])
                    var r = hypot(p, 1)
                    if p < 0 { r = -r }
                    d[l] = e[l] / (p + r)
                    d[l + 1] = e[l] * (p + r)
                    let dl1 = d[l + 1]
                    var h = g - d[l]
                    var t = l + 2
                    while t < n { d[t] -= h; t += 1 }
                    f += h
                    // The implicit QL transformation.
                    p = d[m]
                    var c = 1.0, c2 = 1.0, c3 = 1.0
                    let el1 = e[l + 1]
                    var s = 0.0, s2 = 0.0
                    var i = m - 1
                    while i >= l {
                        c3 = c2
                        c2 = c
                        s2 = s
                        g = c * e[i]
                        h = c * p
                        r = hypot(p, e[i])
                        e[i + 1] = s * r
                        s = e[i] / r
                        c = p / r
                        p = c * d[i] - s * g
                        d[i + 1] = h + s * (c * g + s * d[i])
                        // Rotate eigenvector columns i and i + 1 (contiguous rows of z).
                        let vi = z + i * n, vi1 = z + (i + 1) * n
                        for k in 0..<n {
                            let a = vi[k], b = vi1[k]
                            vi1[k] = s * a + c * b
                            vi[k] = c * a - s * b
                        }
                        i -= 1
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1
                    e[l] = s * p
                    d[l] = c * p
                } while abs(e[l]) > eps * tst1
            }
            d[l] += f
            e[l] = 0
        }
    }
}

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
