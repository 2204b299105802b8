import Foundation
@testable import GenTensor
import GenTestSupport
import XCTest

/// The fused linear layer (`Tensor.linear(_:_:bias:activation:)`, a cached oneDNN matmul primitive
/// with a bias and an eltwise post-op) against the unfused composite (bias fill, sgemm, activation
/// pass) and a Float64 reference, on the VAE sampling shapes and on odd ones; its gradients under
/// recording against the composite's.
///
/// Tolerance: 1e-5 of the largest reference magnitude. A Float32 sum of K products is off by about
/// 1e-7 * sqrt(K) relative, and the post-op activations are within a few ulp, so 1e-5 leaves a wide
/// margin while a missing bias, a wrong activation or a transposed weight is off by O(1).
final class MatmulPrimitiveTests: XCTestCase {
    let backend = CPUBackend()

    /// These tests are of the CPU backend's matmul, whichever backend the process defaults to.
    override func invokeTest() { Backend.with(backend) { super.invokeTest() } }

    /// Float32 tensors shaped like a PyTorch Linear's input, weight and bias (the weight and bias
    /// drawn as PyTorch initialises them, the input roughly unit-sized).
    private func operands(m: [Int], k: Int, n: Int, seed: UInt64) -> (x: Tensor, w: Tensor, b: Tensor) {
        let g = RandomGenerator(seed: seed)
        let bound = 1 / Double(Swift.max(k, 1)).squareRoot()
        return (Tensor.uniform(m + [k], low: -2, high: 2, generator: g),
                Tensor.uniform([n, k], low: -bound, high: bound, generator: g),
                Tensor.uniform([n], low: -bound, high: bound, generator: g))
    }

    /// The unfused composite on the backend: bias fill, sgemm (beta = 1), activation pass.
    private func composite(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ activation: LinearActivation) -> Tensor {
        let (n, k) = (w.shape[0], w.shape[1])
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [n], dtype: .float32)
        backend.linearUnfused(m: x.elementCount / Swift.max(k, 1), n: n, k: k, input: x.floatPointer,
                              weight: w.floatPointer, bias: b?.floatPointer, activation: activation,
                              output: out.floatPointer)
        return out
    }

    /// Fused, composite and Float64 results of one case, compared.
    private func checkCase(m: [Int], k: Int, n: Int, bias: Bool, _ activation: LinearActivation, seed: UInt64,
                           file: StaticString = #filePath, line: UInt = #line) {
        let (x, w, b) = operands(m: m, k: k, n: n, seed: seed)
        let label = "\(m) x \(k) -> \(n), bias \(bias), \(activation)"
        let fused = withoutGradients { Tensor.linear(x, w, bias: bias ? b : nil, activation: activation) }
        XCTAssertEqual(fused.shape, m + [n], label, file: file, line: line)
        let reference = Tensor.linear(x.cast(to: .float64), w.cast(to: .float64),
                                      bias: bias ? b.cast(to: .float64) : nil, activation: activation)
        assertClose(fused, reference, relative: 1e-5, floor: 1e-7, "\(label): fused against Float64",
                    file: file, line: line)
        if k > 0 {
            assertClose(fused, composite(x, w, bias ? b : nil, activation), relative: 1e-5, floor: 1e-7,
                        "\(label): fused against composite", file: file, line: line)
        }
    }

    func testBenchmarkShapesMatchCompositeAndDouble() {
        checkCase(m: [1024], k: 20, n: 400, bias: true, .relu, seed: 1)  // VAE decoder fc3
        checkCase(m: [1024], k: 400, n: 784, bias: true, .sigmoid, seed: 2)  // fc4 + sigmoid
        for activation in LinearActivation.allCases {
            checkCase(m: [1024], k: 20, n: 400, bias: true, activation, seed: 3)
            checkCase(m: [1024], k: 400, n: 784, bias: true, activation, seed: 4)
        }
    }

    func testOddShapesEveryActivation() {
        // M = 1, N = 1, K = 1, sizes that are not multiples of 16, both sides of the row count where
        // the gemm-based implementation gives way to brgemm, and a rank-3 input.
        let shapes: [([Int], Int, Int)] = [
            ([1], 1, 1), ([1], 400, 784), ([1], 20, 400), ([7], 13, 17), ([33], 5, 1), ([1], 3, 100),
            ([50], 1, 31), ([17], 31, 47), ([31], 19, 23), ([32], 19, 23), ([100], 129, 65), ([2, 3], 7, 9),
        ]
        var seed: UInt64 = 100
        for (m, k, n) in shapes {
            for activation in LinearActivation.allCases {
                for bias in [true, false] {
                    seed += 1
                    checkCase(m: m, k: k, n: n, bias: bias, activation, seed: seed)
                }
            }
        }
    }

    func testEmptyProducts() {
        // K = 0: the bias (or zero) through the activation; M = 0 or N = 0: an empty result.
        for activation in LinearActivation.allCases {
            checkCase(m: [3], k: 0, n: 4, bias: true, activation, seed: 200)
            checkCase(m: [3], k: 0, n: 4, bias: false, activation, seed: 201)
            checkCase(m: [0], k: 5, n: 4, bias: true, activation, seed: 202)
            checkCase(m: [3], k: 5, n: 0, bias: true, activation, seed: 203)
        }
    }

    func testLargeMagnitudesSaturate() {
        // Pre-activations of +-50..500: sigmoid and tanh must reach their limits without NaN.
        let x = Tensor([Float](repeating: 10, count: 64 * 4), shape: [64, 4])
        let weights: [Float] = (0..<8 * 4).map { (i: Int) -> Float in
            let magnitude = Float(i + 5) / 4
            return i % 2 == 0 ? magnitude : -magnitude
        }
        let w = Tensor(weights, shape: [8, 4])
        let b = Tensor([Float](repeating: 0, count: 8))
        for activation in LinearActivation.allCases {
            let fused = withoutGradients { Tensor.linear(x, w, bias: b, activation: activation) }
            let reference = Tensor.linear(x.cast(to: .float64), w.cast(to: .float64), bias: b.cast(to: .float64),
                                          activation: activation)
            XCTAssertFalse(fused.scalars(as: Float.self).contains { $0.isNaN }, "\(activation)")
            assertClose(fused, reference, relative: 1e-5, floor: 1e-7, "large magnitudes, \(activation)")
        }
    }

    func testImplementationIsJitNotReference() {
        let cases: [(Int, Int, Int, LinearActivation)] = [
            (1024, 20, 400, .relu), (1024, 400, 784, .sigmoid), (1024, 400, 784, .none), (128, 784, 400, .tanh),
            (64, 128, 128, .silu), (1, 400, 784, .sigmoid), (7, 13, 17, .relu),
        ]
        for (m, k, n, activation) in cases {
            let name = backend.linearImplementationName(m: m, n: n, k: k, activation: activation)
            XCTAssertFalse(name.hasPrefix("ref") || name == "unknown", "\(m)x\(k) -> \(n) \(activation): \(name)")
            if m >= MatmulPrimitive.brgemmMinimumRows {
                XCTAssertTrue(name.hasPrefix("brg"), "\(m)x\(k) -> \(n) \(activation): \(name), expected brgemm")
            } else {
                XCTAssertTrue(name.hasPrefix("gemm"), "\(m)x\(k) -> \(n) \(activation): \(name), expected gemm:jit")
            }
        }
    }

    func testOneThreadThenAllThreads() {
        for threads in [1, Swift.max(CPUBackend.defaultThreads, 2)] {
            Backend.with(CPUBackend(threads: threads)) {
                checkCase(m: [256], k: 400, n: 784, bias: true, .sigmoid, seed: 300)
            }
        }
    }

    func testCachedPrimitiveSeesNewOperands() {
        // The same shape twice with different buffers: the primitive must read the new ones.
        for seed: UInt64 in [400, 401] { checkCase(m: [64], k: 30, n: 50, bias: true, .relu, seed: seed) }
    }

    func testConcurrentCallers() {
        let (x, w, b) = operands(m: [96], k: 40, n: 70, seed: 500)
        let expected = composite(x, w, b, .tanh).scalars(as: Float.self).map(Double.init)
        let results = (0..<6).map { _ in Tensor(uninitializedShape: [96, 70], dtype: .float32) }
        let backend = self.backend
        DispatchQueue.concurrentPerform(iterations: 6) { job in
            backend.linear(m: 96, n: 70, k: 40, input: x.floatPointer, weight: w.floatPointer, bias: b.floatPointer,
                           activation: .tanh, output: results[job].floatPointer)
        }
        for (job, r) in results.enumerated() {
            assertClose(r.scalars(as: Float.self).map(Double.init), expected, relative: 1e-5, floor: 1e-7,
                        "concurrent caller \(job)")
        }
    }

    // MARK: - Under gradient recording

    func testRecordedLinearIsTheCompositeBitForBit() {
        // Float32 operands that require gradients: forward values and every gradient equal those of
        // linear followed by the activation op exactly (the same ops run).
        for (k, activation) in LinearActivation.allCases.enumerated() {
            let (x0, w0, b0) = operands(m: [37], k: 21, n: 45, seed: 600 + UInt64(k))
            let (x, w, b) = (x0.requiringGrad(), w0.requiringGrad(), b0.requiringGrad())
            let seed = Tensor.uniform([37, 45], low: 0.5, high: 1.5, generator: RandomGenerator(seed: 9))
            let y = Tensor.linear(x, w, bias: b, activation: activation)
            let yc = Tensor.linear(x, w, bias: b).applying(activation)
            XCTAssertEqual(y.scalars(as: Float.self), yc.scalars(as: Float.self), "\(activation) forward")
            let g = gradients(of: (y * seed).sum(), wrt: [x, w, b])
            let gc = gradients(of: (yc * seed).sum(), wrt: [x, w, b])
            for i in 0..<3 {
                XCTAssertEqual(g[i].scalars(as: Float.self), gc[i].scalars(as: Float.self), "\(activation) gradient \(i)")
            }
            // And the fused inference result agrees with the recorded one.
            let fused = withoutGradients { Tensor.linear(x, w, bias: b, activation: activation) }
            assertClose(fused, yc, relative: 1e-5, floor: 1e-7, "\(activation) fused against recorded")
        }
    }

    func testGradientsFirstAndSecondOrder() {
        // Float64 finite differences; relu's pre-activations are continuous random values, none
        // within a step of its kink.
        for (j, activation) in LinearActivation.allCases.enumerated() {
            let s = 700 + 10 * UInt64(j)
            let x = GradientCheck.input([3, 5], seed: s), w = GradientCheck.input([4, 5], seed: s + 1)
            let b = GradientCheck.input([4], seed: s + 2)
            GradientCheck.check([x, w, b], "linear + \(activation)") {
                Tensor.linear($0[0], $0[1], bias: $0[2], activation: activation)
            }
            GradientCheck.check([x, w], "linear + \(activation), no bias") {
                Tensor.linear($0[0], $0[1], bias: nil, activation: activation)
            }
            GradientCheck.checkSecondOrder([x, w, b], "linear + \(activation)") {
                Tensor.linear($0[0], $0[1], bias: $0[2], activation: activation)
            }
            let x3 = GradientCheck.input([2, 3, 5], seed: s + 3)
            GradientCheck.check([x3, w, b], "linear + \(activation) on rank 3") {
                Tensor.linear($0[0], $0[1], bias: $0[2], activation: activation)
            }
        }
    }

    func testFloat64WithoutRecordingIsTheReferencePath() {
        let x = GradientCheck.input([6, 9], seed: 800).detached(), w = GradientCheck.input([5, 9], seed: 801).detached()
        let b = GradientCheck.input([5], seed: 802).detached()
        for activation in LinearActivation.allCases {
            let y = withoutGradients { Tensor.linear(x, w, bias: b, activation: activation) }
            XCTAssertEqual(y.dtype, .float64)
            XCTAssertEqual(y.scalars(as: Double.self), Tensor.linear(x, w, bias: b).applying(activation).scalars(as: Double.self),
                           "\(activation)")
        }
    }
}
