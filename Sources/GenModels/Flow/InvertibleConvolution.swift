import Foundation
import GenTensor
import GenNN

/// An invertible 1x1 convolution with an LU-decomposed weight (Glow): W = P L (U + diag(sign_s
/// exp(log_s))), P a fixed permutation, L unit lower-triangular, U strictly upper-triangular, so
/// log |det W| = sum(log_s). Initialised from a random rotation.
///
/// - Input and output: (N, H, W, C), y[..., i] = sum_j W[i, j] x[..., j]; log-determinant
///   H W sum(log_s) per image.
/// - Parameters: `lower` (C, C), `upper` (C, C), `log_s` (C); buffers `permutation` (C, C) and
///   `sign_s` (C).
public final class InvertibleConvolution: FlowLayer {
    public let lower: Parameter, upper: Parameter, logS: Parameter
    public let permutation: Parameter, signS: Parameter
    public let channels: Int
    let lowerMask: Tensor, upperMask: Tensor, identity: Tensor

    public init(channels: Int, generator: RandomGenerator) {
        self.channels = channels
        let c = channels
        let rotation = HostMatrix.randomRotation(c, generator: generator)
        let (p, l, u) = HostMatrix.luDecomposition(rotation, size: c)
        let diagonal = (0..<c).map { u[$0 * c + $0] }
        lower = Parameter(Tensor(l.map(Float.init), shape: [c, c]))
        upper = Parameter(Tensor(u.map(Float.init), shape: [c, c]))
        logS = Parameter(Tensor(diagonal.map { Float(Foundation.log(Swift.abs($0))) }, shape: [c]))
        permutation = Parameter(Tensor(p.map(Float.init), shape: [c, c]), trainable: false)
        signS = Parameter(Tensor(diagonal.map { Float($0 < 0 ? -1 : 1) }, shape: [c]), trainable: false)
        lowerMask = Tensor((0..<(c * c)).map { Float($0 / c > $0 % c ? 1 : 0) }, shape: [c, c])
        upperMask = Tensor((0..<(c * c)).map { Float($0 / c < $0 % c ? 1 : 0) }, shape: [c, c])
        identity = Tensor((0..<(c * c)).map { Float($0 / c == $0 % c ? 1 : 0) }, shape: [c, c])
    }

    public var namedParameters: [(String, Parameter)] {
        [("lower", lower), ("upper", upper), ("log_s", logS), ("permutation", permutation), ("sign_s", signS)]
    }

    /// W (C, C), differentiable in `lower`, `upper` and `log_s`.
    public var weight: Tensor {
        let dtype = lower.value.dtype
        let eye = identity.cast(to: dtype)
        let l = lower.value * lowerMask.cast(to: dtype) + eye
        let u = upper.value * upperMask.cast(to: dtype) + eye * (signS.value.cast(to: dtype) * logS.value.exp())
        return Tensor.matmul(permutation.value.cast(to: dtype), Tensor.matmul(l, u))
    }

    public func forward(_ x: Tensor, training: Bool) -> (y: Tensor, logDeterminant: Tensor) {
        let y = Tensor.matmul(x.reshaped([x.elementCount / channels, channels]), weight, transposeB: true).reshaped(x.shape)
        let pixels = Double(x.shape[1] * x.shape[2])
        return (y, Tensor.ones([x.shape[0]], dtype: x.dtype) * (logS.value.sum() * pixels))
    }

    public func inverse(_ y: Tensor) -> Tensor {
        let w = withoutGradients { weight }.doubleScalars()
        let inverse = Tensor(HostMatrix.inverse(w, size: channels), shape: [channels, channels]).cast(to: y.dtype)
        return Tensor.matmul(y.reshaped([y.elementCount / channels, channels]), inverse, transposeB: true).reshaped(y.shape)
    }
}

/// Small dense matrices in Float64 on the host, row-major (the 1x1 convolution's C x C weight).
enum HostMatrix {
    /// A random rotation: Gram-Schmidt on a Gaussian matrix.
    static func randomRotation(_ n: Int, generator: RandomGenerator) -> [Double] {
        var rows: [[Double]] = []
        while rows.count < n {
            var v = (0..<n).map { _ in generator.nextNormal() }
            for r in rows {
                let dot = zip(v, r).map(*).reduce(0, +)
                v = zip(v, r).map { $0 - dot * $1 }
            }
            let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
            if norm > 1e-6 { rows.append(v.map { $0 / norm }) }
        }
        return rows.flatMap { $0 }
    }

    /// A = P L U with partial pivoting: P a permutation, L unit lower-triangular (its diagonal
    /// returned as zeros: the layer adds the identity), U upper-triangular.
    static func luDecomposition(_ a: [Double], size n: Int) -> (p: [Double], l: [Double], u: [Double]) {
        var u = a
        var l = [Double](repeating: 0, count: n * n)
        var order = Array(0..<n)
        for k in 0..<n {
            let pivot = (k..<n).max { Swift.abs(u[$0 * n + k]) < Swift.abs(u[$1 * n + k]) }!
            if pivot != k {
                for j in 0..<n { u.swapAt(k * n + j, pivot * n + j) }
                for j in 0..<k { l.swapAt(k * n + j, pivot * n + j) }
                order.swapAt(k, pivot)
            }
            for i in (k + 1)..<max(n, k + 1) {
                let factor = u[i * n + k] / u[k * n + k]
                l[i * n + k] = factor
                for j in k..<n { u[i * n + j] -= factor * u[k * n + j] }
            }
        }
        // P A = L U with row order `order`, so A = P^T L U.
        var p = [Double](repeating: 0, count: n * n)
        for (row, source) in order.enumerated() { p[source * n + row] = 1 }
        return (p, l, u)
    }

    /// The inverse by Gauss-Jordan elimination with partial pivoting.
    static func inverse(_ a: [Double], size n: Int) -> [Double] {
        var m = a
        var inv = (0..<(n * n)).map { Double($0 / n == $0 % n ? 1 : 0) }
        for k in 0..<n {
            let pivot = (k..<n).max { Swift.abs(m[$0 * n + k]) < Swift.abs(m[$1 * n + k]) }!
            if pivot != k {
                for j in 0..<n { m.swapAt(k * n + j, pivot * n + j); inv.swapAt(k * n + j, pivot * n + j) }
            }
            let d = m[k * n + k]
            for j in 0..<n { m[k * n + j] /= d; inv[k * n + j] /= d }
            for i in 0..<n where i != k {
                let f = m[i * n + k]
                if f == 0 { continue }
                for j in 0..<n { m[i * n + j] -= f * m[k * n + j]; inv[i * n + j] -= f * inv[k * n + j] }
            }
        }
        return inv
    }
}
