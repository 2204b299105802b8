import Foundation
@testable import GenTensor
import GenTestSupport
import XCTest

/// The fast paths (vectorised exp, fused GroupNorm + SiLU, one-pass activation backward passes,
/// in-place strided sums) against Double-precision references and the composite ops they replace,
/// on the shapes the benchmark workloads run.
final class FusedKernelTests: XCTestCase {
    /// Distance in units in the last place between two Floats of the same sign.
    private func ulps(_ a: Float, _ b: Float) -> Int {
        Int(Swift.abs(Int64(a.bitPattern) - Int64(b.bitPattern)))
    }

    func testVectorExpIsWithinTwoUlpOverTheWholeRange() {
        // Every 97th Float between -104 and 89, plus the edges and specials.
        var xs: [Float] = [-.infinity, -1000, -104, -103.97, -87.34, -87.33, -1e-30, 0, 1e-30, 88.72, 88.73, 1000, .infinity]
        var bits = (-104 as Float).bitPattern
        while Float(bitPattern: bits) < 0 { xs.append(Float(bitPattern: bits)); bits = bits &- 97 }
        bits = Float(1e-30).bitPattern
        while Float(bitPattern: bits) < 89 { xs.append(Float(bitPattern: bits)); bits = bits &+ 97 }
        let y = Tensor(xs).exp().scalars(as: Float.self)
        var worst = 0
        for (x, v) in zip(xs, y) {
            let exact = Float(Foundation.exp(Double(x)))
            if exact.isInfinite {
                XCTAssertEqual(v, exact, "exp(\(x))")
                continue
            }
            if exact < Float.leastNormalMagnitude {
                XCTAssertLessThanOrEqual(Swift.abs(v - exact), Float.leastNormalMagnitude, "exp(\(x)) = \(v), want \(exact)")
                continue
            }
            worst = Swift.max(worst, ulps(v, exact))
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error of the vectorised exp in ulp")
        XCTAssertTrue(Tensor([Float.nan]).exp().scalars(as: Float.self)[0].isNaN, "exp(NaN)")
    }

    func testVectorSigmoidAndSiLUMatchDouble() {
        let xs = (0..<20_001).map { Float($0 - 10_000) / 200 }  // -50 ... 50, tail lanes included
        let x = Tensor(xs)
        let sig = x.sigmoid().scalars(as: Float.self), silu = x.silu().scalars(as: Float.self)
        for (i, v) in xs.enumerated() {
            let s = 1 / (1 + Foundation.exp(-Double(v)))
            XCTAssertEqual(Double(sig[i]), s, accuracy: 4 * Double(Float(s).ulp), "sigmoid(\(v))")
            XCTAssertEqual(Double(silu[i]), Double(v) * s, accuracy: 4 * Double(Float(Double(v) * s).ulp) + 1e-30, "silu(\(v))")
        }
    }

    func testSiLUGradientBothPaths() {
        let x = GradientCheck.input([5, 7], seed: 31, low: -6, high: 6)
        GradientCheck.check([x], "silu") { $0[0].silu() }
        GradientCheck.checkSecondOrder([x], "silu") { $0[0].silu() }
        GradientCheck.checkSecondOrder([x], "sigmoid") { $0[0].sigmoid() }
        GradientCheck.checkSecondOrder([x], "tanh") { $0[0].tanh() }
        GradientCheck.checkSecondOrder([x], "relu") { $0[0].relu() * $0[0] }
    }

    func testGroupNormSiLUGradientsBothPaths() {
        let x = GradientCheck.input([2, 3, 2, 4], seed: 41), w = GradientCheck.input([4], seed: 42, low: 0.5, high: 1.5)
        let b = GradientCheck.input([4], seed: 43)
        for groups in [1, 2, 4] {
            GradientCheck.check([x, w, b], "groupNorm + silu, \(groups) groups") {
                Tensor.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2], silu: true)
            }
        }
        GradientCheck.checkSecondOrder([x, w, b], "groupNorm + silu") {
            Tensor.groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2], silu: true)
        }
        GradientCheck.check([x], "groupNorm + silu, no affine") { Tensor.groupNorm($0[0], groups: 2, weight: nil, bias: nil, silu: true) }
        GradientCheck.checkSecondOrder([x], "groupNorm, no affine") { Tensor.groupNorm($0[0], groups: 2, weight: nil, bias: nil) }
    }

    /// The composite GroupNorm (mean, variance, normalise, affine, SiLU) in Float64, as the reference.
    private func compositeGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, silu: Bool) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[x.rank - 1])
        let g = x.reshaped([n, -1, groups, c / groups])
        let centered = g - g.mean(axes: [1, 3], keepDims: true)
        let y = (centered / (centered.square().mean(axes: [1, 3], keepDims: true) + 1e-5).sqrt()).reshaped(x.shape) * weight + bias
        return silu ? y * y.sigmoid() : y
    }

    /// A fused Float32 normalisation `fused(x, w, b)` against its Float64 composite reference on
    /// `shape` (values from `seed`): output and gradients of x, weight and bias under a random seed
    /// gradient. Returns the Float32 inputs and the reference output, for further checks.
    @discardableResult
    private func assertFusedMatchesComposite(_ label: String, shape: [Int], seed randomSeed: UInt64,
                                             composite: (Tensor, Tensor, Tensor) -> Tensor,
                                             fused: (Tensor, Tensor, Tensor) -> Tensor)
        -> (x: Tensor, weight: Tensor, bias: Tensor, x64: Tensor, reference: Tensor) {
        let c = shape[shape.count - 1]
        let gen = RandomGenerator(seed: randomSeed)
        let x64 = (Tensor.normal(shape, dtype: .float64, generator: gen) * 2 + 0.5).requiringGrad()
        let w64 = Tensor.uniform([c], low: 0.5, high: 1.5, dtype: .float64, generator: gen).requiringGrad()
        let b64 = Tensor.uniform([c], low: -0.5, high: 0.5, dtype: .float64, generator: gen).requiringGrad()
        let seed = Tensor.normal(shape, dtype: .float64, generator: gen)
        let ref = composite(x64, w64, b64)
        let refGrads = gradients(of: ref, wrt: [x64, w64, b64], seed: seed)
        let (x, w, b) = (x64.cast(to: .float32).detached().requiringGrad(), w64.cast(to: .float32).detached().requiringGrad(),
                         b64.cast(to: .float32).detached().requiringGrad())
        let y = fused(x, w, b)
        let grads = gradients(of: y, wrt: [x, w, b], seed: seed.cast(to: .float32))
        assertClose(y.cast(to: .float64), ref, relative: 1e-5, floor: 1e-5, "\(label) \(shape) forward")
        for (k, name) in ["x", "weight", "bias"].enumerated() {
            let scale = refGrads[k].abs().max().item
            assertClose(grads[k].cast(to: .float64), refGrads[k], relative: 1e-4, floor: 1e-4 * scale,
                        "\(label) \(shape) gradient of \(name)")
        }
        return (x, w, b, x64.detached(), ref.detached())
    }

    func testFusedGroupNormMatchesCompositeOnUNetShapes() {
        // The U-Net's widest GroupNorm (64 x 28 x 28 x 32, 8 groups) and its attention level (7 x 7 x 64).
        for (shape, silu) in [([64, 28, 28, 32], true), ([16, 7, 7, 64], false)] {
            assertFusedMatchesComposite("fused groupNorm", shape: shape, seed: 5,
                                        composite: { compositeGroupNorm($0, groups: 8, weight: $1, bias: $2, silu: silu) },
                                        fused: { Tensor.groupNorm($0, groups: 8, weight: $1, bias: $2, silu: silu) })
        }
    }

    func testBatchNormActivationGradientsBothPaths() {
        let x = GradientCheck.input([3, 2, 2, 4], seed: 51), w = GradientCheck.input([4], seed: 52, low: 0.5, high: 1.5)
        let b = GradientCheck.input([4], seed: 53)
        for activation in [NormActivation.none, .relu, .leakyRelu(slope: 0.2)] {
            GradientCheck.check([x, w, b], "batchNorm + \(activation)") {
                Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2], activation: activation).output
            }
            GradientCheck.checkSecondOrder([x, w, b], "batchNorm + \(activation)") {
                Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2], activation: activation).output
            }
        }
        GradientCheck.check([x], "batchNorm + relu, no affine") {
            Tensor.batchNormTraining($0[0], weight: nil, bias: nil, activation: .relu).output
        }
        GradientCheck.checkSecondOrder([x], "batchNorm, no affine") { Tensor.batchNormTraining($0[0], weight: nil, bias: nil).output }
        let m = Tensor.uniform([4], low: -0.5, high: 0.5, dtype: .float64, generator: RandomGenerator(seed: 54))
        let v = Tensor.uniform([4], low: 0.5, high: 2, dtype: .float64, generator: RandomGenerator(seed: 55))
        GradientCheck.check([x, w, b], "batchNormInference + leakyRelu") {
            Tensor.batchNormInference($0[0], weight: $0[1], bias: $0[2], mean: m, variance: v, activation: .leakyRelu(slope: 0.2))
        }
    }

    /// The composite batch normalisation (mean, biased variance, normalise, affine, activation), as the reference.
    private func compositeBatchNorm(_ x: Tensor, weight: Tensor, bias: Tensor, activation: NormActivation) -> Tensor {
        let axes = Array(0..<(x.rank - 1))
        let centered = x - x.mean(axes: axes, keepDims: true)
        let y = centered / (centered.square().mean(axes: axes, keepDims: true) + 1e-5).sqrt() * weight + bias
        return y.activated(activation)
    }

    func testFusedBatchNormMatchesCompositeOnDCGANShapes() {
        // The DCGAN generator's two BatchNorm + ReLU layers and its discriminator's BatchNorm + LeakyReLU.
        let cases: [([Int], NormActivation)] = [([64, 7, 7, 256], .relu), ([64, 14, 14, 128], .relu),
                                                ([64, 7, 7, 128], .leakyRelu(slope: 0.2)), ([5, 3, 3, 7], .none)]
        for (shape, activation) in cases {
            let c = shape[3]
            let (x, w, b, x64, ref) = assertFusedMatchesComposite(
                "fused batchNorm", shape: shape, seed: 6,
                composite: { compositeBatchNorm($0, weight: $1, bias: $2, activation: activation) },
                fused: { Tensor.batchNormTraining($0, weight: $1, bias: $2, activation: activation).output })
            let (_, mean, unbiased) = withoutGradients { Tensor.batchNormTraining(x, weight: w, bias: b, activation: activation) }
            let axes = Array(0..<3)
            let refMean = x64.mean(axes: axes)
            let count = Double(x.elementCount / c)
            let refUnbiased = (x64 - refMean).square().sum(axes: axes) / (count - 1)
            assertClose(mean.cast(to: .float64), refMean, relative: 1e-6, floor: 1e-6, "fused batchNorm \(shape) mean")
            assertClose(unbiased.cast(to: .float64), refUnbiased, relative: 1e-5, floor: 0, "fused batchNorm \(shape) variance")
            // Evaluation mode with the batch's statistics as running statistics: the same values.
            let inference = withoutGradients {
                Tensor.batchNormInference(x, weight: w, bias: b, mean: mean, variance: unbiased * ((count - 1) / count),
                                          activation: activation)
            }
            assertClose(inference.cast(to: .float64), ref, relative: 1e-5, floor: 1e-5, "fused batchNormInference \(shape)")
        }
    }

    func testFusedBatchNormDoesNotDependOnTheThreadCount() {
        let x = Tensor.normal([64, 14, 14, 128], generator: RandomGenerator(seed: 7))
        let seed = Tensor.normal(x.shape, generator: RandomGenerator(seed: 8))
        var runs: [[Float]] = []
        for threads in [1, 2] {
            Backend.with(CPUBackend(threads: threads)) {
                let input = x.requiringGrad()
                let (y, mean, variance) = Tensor.batchNormTraining(input, weight: nil, bias: nil, activation: .relu)
                let dx = gradients(of: y, wrt: [input], seed: seed)[0]
                runs.append(y.scalars(as: Float.self) + mean.scalars(as: Float.self) + variance.scalars(as: Float.self)
                            + dx.scalars(as: Float.self))
            }
        }
        XCTAssertEqual(runs[0], runs[1], "batchNorm on 1 and 2 threads")
    }

    func testTiledTransposeMatchesIndexArithmetic() {
        // Permutations whose output's second-to-last axis is the input's contiguous one (the tiled
        // path), with sizes that are not multiples of the tile, and one that is not (the row path).
        let cases: [([Int], [Int])] = [([37, 19], [1, 0]), ([3, 37, 19], [0, 2, 1]), ([5, 33, 3, 7], [0, 2, 3, 1]),
                                       ([64, 256, 49], [0, 2, 1]), ([2, 3, 4, 5], [3, 0, 1, 2]), ([4, 6, 5], [1, 0, 2])]
        for (shape, axes) in cases {
            let x = Tensor.normal(shape, generator: RandomGenerator(seed: 11))
            let values = x.scalars(as: Float.self)
            let y = x.permuted(axes)
            let outShape = axes.map { shape[$0] }
            XCTAssertEqual(y.shape, outShape)
            let inStrides = Shapes.strides(shape), outStrides = Shapes.strides(outShape)
            var expected = [Float](repeating: 0, count: values.count)
            for i in 0..<values.count {
                var source = 0
                for (d, a) in axes.enumerated() { source += (i / outStrides[d]) % outShape[d] * inStrides[a] }
                expected[i] = values[source]
            }
            XCTAssertEqual(y.scalars(as: Float.self), expected, "permute \(shape) by \(axes)")
            let ints = Tensor((0..<Int64(values.count)).map { $0 }, shape: shape).permuted(axes).scalars(as: Int64.self)
            XCTAssertEqual(ints.map { values[Int($0)] }, expected, "int64 permute \(shape) by \(axes)")
        }
    }

    func testSumOverAnyAxesMatchesDoubleReference() {
        // Large enough to take the threaded paths: kept first axis, reduced first axis, interleaved.
        let x = Tensor.normal([6, 33, 17, 40], dtype: .float32, generator: RandomGenerator(seed: 9))
        let values = x.scalars(as: Float.self)
        let shape = x.shape
        for axes in [[0], [1], [3], [0, 1, 2], [1, 3], [0, 2], [0, 3], [1, 2], [0, 1, 2, 3], [2]] {
            let got = x.sum(axes: axes, keepDims: true)
            var expected = [Double](repeating: 0, count: got.elementCount)
            let outStrides = Shapes.strides(got.shape)
            for i in 0..<values.count {
                var rem = i, off = 0
                for d in stride(from: 3, through: 0, by: -1) {
                    let idx = rem % shape[d]
                    rem /= shape[d]
                    if !axes.contains(d) { off += idx * outStrides[d] }
                }
                expected[off] += Double(values[i])
            }
            assertClose(got.cast(to: .float64), Tensor(expected, shape: got.shape), relative: 1e-6, floor: 1e-4, "sum over \(axes)")
        }
    }

    func testBiasBroadcastFastPathBothOperandOrders() {
        let x = Tensor.normal([4, 9, 9, 48], dtype: .float32, generator: RandomGenerator(seed: 10))
        let bias = Tensor.normal([9, 48], dtype: .float32, generator: RandomGenerator(seed: 11))
        let xs = x.scalars(as: Float.self), bs = bias.scalars(as: Float.self)
        let sum = (x + bias).scalars(as: Float.self), diff = (bias - x).scalars(as: Float.self)
        for i in 0..<xs.count {
            XCTAssertEqual(sum[i], xs[i] + bs[i % bs.count])
            XCTAssertEqual(diff[i], bs[i % bs.count] - xs[i])
        }
    }

    func testParallelRandomFillsMatchSequentialDraws() {
        let n = 100_003
        let a = RandomGenerator(seed: 77), b = RandomGenerator(seed: 77)
        let normals = Tensor.normal([n], dtype: .float64, generator: a).scalars(as: Double.self)
        let uniforms = Tensor.uniform([n], low: -2, high: 3, dtype: .float32, generator: a).scalars(as: Float.self)
        for i in 0..<n { XCTAssertEqual(normals[i], b.nextNormal(), "normal \(i)"); if normals[i] != normals[i] { break } }
        for i in 0..<n {
            let expected = Swift.min(Float(-2 + 5 * b.nextUnitDouble()), Float(3).nextDown)
            if uniforms[i] != expected { XCTFail("uniform \(i): \(uniforms[i]) != \(expected)"); break }
        }
        XCTAssertEqual(a.counter, b.counter, "the tensor fills advance the stream as the sequential draws do")
    }
}
