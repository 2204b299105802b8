import Foundation
@testable import GenTensor
import GenTestSupport
import XCTest

/// The two backends agree on every kernel of the seam, op by op, in Float32 and Float64: each checks
/// the other (the reference backend's loops are written apart from the CPU backend's). Random draws
/// agree bit for bit; sums may differ in their last bits (the CPU backend adds per-thread partials).
/// And the scopes that replaced process-wide switches stay inside their task.
final class ReferenceBackendTests: XCTestCase {
    let cpu = CPUBackend(threads: 2), reference = ReferenceBackend()

    /// `body` on each backend, its tensors compared within `relative` of the largest CPU magnitude.
    private func agree(_ label: String, relative: Double = 1e-6, file: StaticString = #filePath, line: UInt = #line,
                       _ body: () -> [Tensor]) {
        let onCPU = Backend.with(cpu, body), onReference = Backend.with(reference, body)
        XCTAssertEqual(onCPU.count, onReference.count, label, file: file, line: line)
        for (i, (a, b)) in zip(onCPU, onReference).enumerated() {
            assertClose(b, a, relative: relative, floor: 1e-12, "\(label) [\(i)]", file: file, line: line)
        }
    }

    private func input(_ shape: [Int], seed: UInt64, dtype: DType = .float32, low: Double = -3, high: Double = 3) -> Tensor {
        Backend.with(cpu) { Tensor.uniform(shape, low: low, high: high, dtype: dtype, generator: RandomGenerator(seed: seed)) }
    }

    func testElementwiseOpsAgree() {
        for dtype in [DType.float32, .float64] {
            // 40,000 elements: past the CPU backend's threading threshold.
            let x = input([50, 800], seed: 1, dtype: dtype), y = input([800], seed: 2, dtype: dtype)
            let positive = input([50, 800], seed: 3, dtype: dtype, low: 0.1, high: 4)
            agree("unary \(dtype)") {
                [-x, x.exp(), positive.log(), x.abs().log1p(), positive.sqrt(), x.tanh(), x.sin(), x.cos(),
                 x.abs(), x.relu(), x.sigmoid(), x.silu(), x.softplus(), x.leakyRelu(0.2), x.clamped(min: -1, max: 0.5)]
            }
            agree("binary with broadcasting \(dtype)") {
                [x + y, x - y, x * y, x / positive, positive.pow(1.7), x.pow(3), x.greater(y), x.equalMask(x),
                 Tensor.select(x.greater(y), x, y)]
            }
            agree("copies \(dtype)") {
                let grid = x.reshaped([50, 20, 40])
                return [grid.permuted([2, 0, 1]), grid.sliced(axis: 1, 3..<11), grid.padded(axis: 2, before: 2, after: 5),
                        Tensor.concatenate([grid, grid.sliced(axis: 1, 0..<4)], axis: 1), y.expanded(to: [3, 800]),
                        x.cast(to: dtype == .float32 ? .float64 : .float32), Tensor.zeros([7], dtype: dtype) + 2.5]
            }
        }
    }

    func testGradientsAgree() {
        // Backward passes: the fused relu, sigmoid, tanh, silu and leaky relu gradients.
        let x = input([64, 700], seed: 4)
        agree("first-order gradients") {
            let v = x.requiringGrad()
            let loss = (v.relu() + v.sigmoid() * 2 + v.tanh() + v.silu() + v.leakyRelu(0.1)).square().mean()
            return gradients(of: loss, wrt: [v])
        }
    }

    func testReductionsAgree() {
        for dtype in [DType.float32, .float64] {
            let x = input([8, 30, 20, 12], seed: 5, dtype: dtype)
            agree("sums and maxima \(dtype)", relative: dtype == .float32 ? 1e-6 : 1e-12) {
                [x.sum(), x.sum(axes: [0, 2]), x.sum(axes: [3]), x.mean(axes: [1, 2]), x.max(axes: [1]), x.max(), x.logSumExp(axis: 2)]
            }
        }
    }

    func testNormalisationAgrees() {
        for dtype in [DType.float32, .float64] {
            let x = input([6, 5, 7, 16], seed: 6, dtype: dtype)
            let w = input([16], seed: 7, dtype: dtype, low: 0.5, high: 1.5), b = input([16], seed: 8, dtype: dtype)
            let seed = input(x.shape, seed: 9, dtype: dtype)
            for activation in [NormActivation.none, .relu, .leakyRelu(slope: 0.2)] {
                agree("batch norm \(activation) \(dtype)", relative: 1e-5) {
                    let v = x.requiringGrad(), wv = w.requiringGrad(), bv = b.requiringGrad()
                    let (y, mean, variance) = Tensor.batchNormTraining(v, weight: wv, bias: bv, activation: activation)
                    let inference = withoutGradients {
                        Tensor.batchNormInference(x, weight: w, bias: b, mean: mean, variance: variance, activation: activation)
                    }
                    return [y, mean, variance, inference] + gradients(of: y, wrt: [v, wv, bv], seed: seed)
                }
            }
            for silu in [false, true] {
                agree("group norm silu \(silu) \(dtype)", relative: 1e-5) {
                    let v = x.requiringGrad(), wv = w.requiringGrad(), bv = b.requiringGrad()
                    let y = Tensor.groupNorm(v, groups: 4, weight: wv, bias: bv, silu: silu)
                    return [y] + gradients(of: y, wrt: [v, wv, bv], seed: seed)
                }
            }
        }
    }

    func testIndexingAgrees() {
        let x = input([4, 9, 9, 6], seed: 10)
        agree("gather, scatter and pooling") {
            let v = x.requiringGrad()
            let pooled = v.maxPool2d(kernel: 3, stride: 2)
            let picked = Tensor.gatherFlat(v, indices: [5, 5, 17, 0, 300], shape: [5])
            let table = Tensor.embedding(x.reshaped([-1, 6]), indices: Tensor([Int64(3), 0, 3], shape: [3]))
            return [pooled, picked, table] + gradients(of: pooled.sum() + picked.sum(), wrt: [v])
        }
    }

    func testRandomDrawsAreIdentical() {
        for dtype in [DType.float32, .float64] {
            let draw = {
                [Tensor.normal([50_001], mean: 0.5, std: 2, dtype: dtype, generator: RandomGenerator(seed: 11)),
                 Tensor.uniform([50_001], low: -1, high: 3, dtype: dtype, generator: RandomGenerator(seed: 12))]
            }
            let a = Backend.with(cpu, draw), b = Backend.with(reference, draw)
            XCTAssertEqual(a[0].doubleScalars(), b[0].doubleScalars(), "normal \(dtype)")
            XCTAssertEqual(a[1].doubleScalars(), b[1].doubleScalars(), "uniform \(dtype)")
        }
    }

    func testOptimizerUpdatesAgree() {
        let rules: [(String, ParameterUpdate, Int)] = [
            ("sgd", .sgd(learningRate: 0.1, momentum: 0, weightDecay: 0.01, firstStep: false), 0),
            ("sgd momentum", .sgd(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, firstStep: false), 1),
            ("adam", .adam(stepSize: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, bc2Sqrt: 0.05, decay: 0.999, l2: 0.01), 2),
            ("rmsprop", .rmsprop(learningRate: 0.01, alpha: 0.99, eps: 1e-8, weightDecay: 0), 1),
            ("moving average", .movingAverage(decay: 0.99), 0),
        ]
        for (name, rule, stateCount) in rules {
            agree(name, relative: 1e-6) {
                let p = input([1000], seed: 13).copied(), g = input([1000], seed: 14)
                let state = (0..<stateCount).map { input([1000], seed: 15 + UInt64($0), low: 0, high: 1).copied() }
                for _ in 0..<3 { Backend.current.update(rule, parameter: p, gradient: g, state: state) }
                return [p] + state
            }
        }
    }

    func testMatrixKernelsAgree() {
        let x = input([3, 10, 10, 8], seed: 20), w = input([16, 8, 3, 3], seed: 21), b = input([16], seed: 22)
        let m = input([33, 40], seed: 23), weight = input([24, 40], seed: 24), bias = input([24], seed: 25)
        agree("conv, linear and matmul", relative: 1e-5) {
            let xv = x.requiringGrad(), wv = w.requiringGrad()
            let y = Tensor.conv2d(xv, wv, bias: b, stride: (2, 2), padding: (1, 1))
            let z = Tensor.linear(m, weight, bias: bias, activation: .silu)
            return [y, z, Tensor.matmul(m, weight, transposeB: true)] + gradients(of: y.square().sum(), wrt: [xv, wv])
        }
    }

    /// The backend and gradient mode are scoped: a task's choice never reaches another task.
    func testScopesStayInTheirTask() async {
        let seen = await withTaskGroup(of: (String, Bool).self) { group in
            for i in 0..<8 {
                group.addTask {
                    let backend: any ComputeBackend = i.isMultiple(of: 2) ? ReferenceBackend() : CPUBackend(threads: 1)
                    return Backend.with(backend) {
                        GradMode.with(enabled: i.isMultiple(of: 3)) {
                            (0..<50).forEach { _ in _ = Tensor.normal([64], generator: RandomGenerator(seed: 1)).exp() }
                            return (Backend.current.name, GradMode.isEnabled)
                        }
                    }
                }
            }
            var results: [(String, Bool)] = []
            for await result in group { results.append(result) }
            return results
        }
        XCTAssertEqual(seen.filter { $0.0 == "reference" }.count, 4)
        XCTAssertEqual(seen.filter { $0.1 }.count, 3)  // i = 0, 3, 6
        XCTAssertEqual(Backend.current.name, Backend.processDefault.name, "no scope leaks out")
        XCTAssertTrue(GradMode.isEnabled)
    }
}
