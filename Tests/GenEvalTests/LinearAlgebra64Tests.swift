import Foundation
import GenEval
import GenTestSupport
import XCTest
import GenTensor
import GenModels
import GenData

/// A random (rows, columns) matrix of standard normals.
func randomMatrix(_ rows: Int, _ columns: Int, seed: UInt64, scale: Double = 1, shift: Double = 0) -> Matrix64 {
    let g = RandomGenerator(seed: seed)
    return Matrix64(rows: rows, columns: columns, values: (0..<(rows * columns)).map { _ in shift + scale * g.nextNormal() })
}

/// max |a - b| over the elements.
func maxAbsDifference(_ a: Matrix64, _ b: Matrix64) -> Double {
    zip(a.values, b.values).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Straightforward triple loop, the oracle for the blocked product.
func naiveProduct(_ a: Matrix64, _ b: Matrix64) -> Matrix64 {
    var c = Matrix64(rows: a.rows, columns: b.columns)
    for i in 0..<a.rows { for j in 0..<b.columns { var s = 0.0; for k in 0..<a.columns { s += a[i, k] * b[k, j] }; c[i, j] = s } }
    return c
}

final class LinearAlgebra64Tests: XCTestCase {
    /// Checks A V = V Λ and VᵀV = I to 1e-10 (relative to ‖A‖), and ascending eigenvalues.
    func assertValidDecomposition(_ a: Matrix64, _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try SymmetricEigendecomposition(a)
        let n = a.rows
        let scale = max(1, a.values.reduce(0) { max($0, abs($1)) } * Double(n))
        let av = naiveProduct(a, e.eigenvectors)
        var vl = e.eigenvectors
        for i in 0..<n { for j in 0..<n { vl[i, j] *= e.eigenvalues[j] } }
        let residual = maxAbsDifference(av, vl) / scale
        let orth = maxAbsDifference(naiveProduct(e.eigenvectors.transposed(), e.eigenvectors), .identity(n))
        XCTAssertLessThan(residual, 1e-10, "\(label): ‖AV - VΛ‖/‖A‖", file: file, line: line)
        XCTAssertLessThan(orth, 1e-10, "\(label): ‖VᵀV - I‖", file: file, line: line)
        XCTAssertEqual(e.eigenvalues, e.eigenvalues.sorted(), "\(label): ascending", file: file, line: line)
        // The reconstruction V Λ Vᵀ gives A back.
        XCTAssertLessThan(maxAbsDifference(e.reconstruct(), a) / scale, 1e-12, "\(label): VΛVᵀ", file: file, line: line)
    }

    func testEigendecompositionOfRandomSymmetricMatrices() throws {
        for (i, n) in [1, 2, 3, 4, 5, 17, 64, 128].enumerated() {
            let r = randomMatrix(n, n, seed: UInt64(100 + i))
            try assertValidDecomposition((r + r.transposed()).symmetrized(), "random n=\(n)")
        }
    }

    func testEigendecompositionOfDegenerateMatrices() throws {
        try assertValidDecomposition(.identity(7), "identity")
        try assertValidDecomposition(Matrix64(rows: 6, columns: 6), "zero")
        try assertValidDecomposition(.diagonal([3, 1, 3, 0, -2, 1, 3]), "diagonal with repeats")
        // Rank one: v vᵀ has eigenvalues ‖v‖², 0, ..., 0.
        let v = randomMatrix(9, 1, seed: 7)
        let rankOne = naiveProduct(v, v.transposed())
        try assertValidDecomposition(rankOne, "rank one")
        let e = try SymmetricEigendecomposition(rankOne)
        let norm2 = v.values.reduce(0) { $0 + $1 * $1 }
        XCTAssertEqual(e.eigenvalues.last!, norm2, accuracy: 1e-12 * norm2)
        for lambda in e.eigenvalues.dropLast() { XCTAssertEqual(lambda, 0, accuracy: 1e-13 * norm2) }
        // A wide covariance (rank 9 of 30): many zero eigenvalues, none meaningfully negative.
        let cov = LinearAlgebra64.covariance(randomMatrix(10, 30, seed: 8))
        try assertValidDecomposition(cov, "singular covariance")
    }

    func testEigenvaluesOfAKnownSpectrum() throws {
        // Q diag(λ) Qᵀ with Q orthogonal (from a decomposition) and spread-out known λ.
        let r = randomMatrix(40, 40, seed: 9)
        let q = try SymmetricEigendecomposition((r + r.transposed()).symmetrized()).eigenvectors
        let lambdas = (0..<40).map { pow(10, Double($0 % 8) - 3) * ($0 % 3 == 0 ? -1 : 1) }
        var ql = q
        for i in 0..<40 { for j in 0..<40 { ql[i, j] *= lambdas[j] } }
        let a = naiveProduct(ql, q.transposed()).symmetrized()
        let e = try SymmetricEigendecomposition(a)
        let largest = lambdas.map(abs).max()!
        for (got, want) in zip(e.eigenvalues, lambdas.sorted()) {
            XCTAssertEqual(got, want, accuracy: 1e-12 * largest)
        }
    }

    func testEigendecompositionOf128IsFast() throws {
        let r = randomMatrix(128, 128, seed: 11)
        let a = (r + r.transposed()).symmetrized()
        _ = try SymmetricEigendecomposition(a)
        let start = Date()
        for _ in 0..<5 { _ = try SymmetricEigendecomposition(a) }
        let seconds = Date().timeIntervalSince(start) / 5
        print("eigendecomposition 128x128: \(String(format: "%.2f", seconds * 1000)) ms")
        XCTAssertLessThan(seconds, 0.5)
    }

    func testProductsMatchNaive() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (4, 4, 4), (7, 9, 5), (33, 130, 17)] {
            let a = randomMatrix(m, k, seed: UInt64(m * 100 + k)), b = randomMatrix(k, n, seed: UInt64(n * 7 + 1))
            let want = naiveProduct(a, b)
            XCTAssertLessThan(maxAbsDifference(a * b, want), 1e-12 * Double(k), "\(m)x\(k)x\(n)")
            XCTAssertLessThan(maxAbsDifference(LinearAlgebra64.multiplyTransposed(a, b.transposed()), want), 1e-12 * Double(k))
        }
    }

    func testMeanAndUnbiasedCovariance() {
        let x = randomMatrix(50, 7, seed: 12, scale: 2, shift: 3)
        let mean = LinearAlgebra64.columnMeans(x)
        let cov = LinearAlgebra64.covariance(x)
        for j in 0..<7 {
            let m = (0..<50).reduce(0) { $0 + x[$1, j] } / 50
            XCTAssertEqual(mean[j], m, accuracy: 1e-13)
            for l in 0..<7 {
                let c = (0..<50).reduce(0) { $0 + (x[$1, j] - m) * (x[$1, l] - mean[l]) } / 49
                XCTAssertEqual(cov[j, l], c, accuracy: 1e-12)
                XCTAssertEqual(cov[j, l], cov[l, j])
            }
        }
    }

    func testSymmetricSquareRoot() throws {
        let x = randomMatrix(40, 12, seed: 13)
        let s = LinearAlgebra64.covariance(x)
        let root = try LinearAlgebra64.symmetricSquareRoot(s)
        XCTAssertLessThan(maxAbsDifference(root * root, s), 1e-12)
    }
}
