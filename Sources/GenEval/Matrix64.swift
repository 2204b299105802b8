import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

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
