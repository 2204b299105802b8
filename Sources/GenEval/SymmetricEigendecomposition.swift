import Foundation
import GenTensor
import GenNN
import GenModels
import GenData

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
