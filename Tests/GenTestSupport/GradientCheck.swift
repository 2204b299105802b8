@testable import GenTensor
import XCTest
import GenFormats
import GenNN
import GenModels

/// Finite-difference gradient checking in Float64 (PyTorch's gradcheck, simplified).
///
/// The function's output is projected onto a fixed random tensor, so every output element's
/// gradient is exercised with a different weight (a plain sum would hide errors that cancel).
/// Central differences with step 1e-6 in Float64 have truncation error O(h²) ≈ 1e-12 and rounding
/// error ≈ 1e-16 / 1e-6 = 1e-10, so analytic and numeric gradients of smooth ops agree to ~1e-8;
/// the default tolerance 1e-6 (relative to the largest gradient, floor 1e-7) is loose enough for
/// that and tight enough to catch any wrong term. Inputs should avoid kinks (relu at 0, ties in max).
public enum GradientCheck {
    /// Random Float64 test input of the given shape, requiring gradients.
    public static func input(_ shape: [Int], seed: UInt64, low: Double = -1, high: Double = 1) -> Tensor {
        Tensor.uniform(shape, low: low, high: high, dtype: .float64, generator: RandomGenerator(seed: seed),
                       requiresGrad: true)
    }

    /// A scalar from `f`'s output: sum(f(x) * fixed random weights).
    static func projected(_ y: Tensor, seed: UInt64) -> Tensor {
        let w = Tensor.uniform(y.shape, low: 0.5, high: 1.5, dtype: .float64, generator: RandomGenerator(seed: seed))
        return (y * w).sum()
    }

    /// Asserts that the analytic gradients of `f` at `inputs` match central differences.
    public static func check(_ inputs: [Tensor], step: Double = 1e-6, relative: Double = 1e-6, floor: Double = 1e-7,
                             _ label: String = "", file: StaticString = #filePath, line: UInt = #line,
                             _ f: ([Tensor]) -> Tensor) {
        for x in inputs { precondition(x.dtype == .float64 && x.requiresGrad, "gradient check needs float64 leaves") }
        let seed: UInt64 = 12345
        let analytic = gradients(of: projected(f(inputs), seed: seed), wrt: inputs)
        for (k, x) in inputs.enumerated() {
            var numeric = [Double](repeating: 0, count: x.elementCount)
            let p = x.doublePointer
            // Evaluated with recording on: `f` may itself take gradients (second-order checks).
            for i in 0..<x.elementCount {
                let saved = p[i]
                p[i] = saved + step
                let plus = projected(f(inputs), seed: seed).item
                p[i] = saved - step
                let minus = projected(f(inputs), seed: seed).item
                p[i] = saved
                numeric[i] = (plus - minus) / (2 * step)
            }
            assertClose(analytic[k].doubleScalars(), numeric, relative: relative, floor: floor,
                        "\(label) gradient of input \(k)", file: file, line: line)
        }
    }

    /// Asserts that second-order gradients of `f` are right: checks the gradient of
    /// sum(∂(projected f)/∂inputs · fixed weights), taken with `createGraph: true`.
    public static func checkSecondOrder(_ inputs: [Tensor], step: Double = 1e-6, relative: Double = 1e-6,
                                        floor: Double = 1e-7, _ label: String = "",
                                        file: StaticString = #filePath, line: UInt = #line,
                                        _ f: @escaping ([Tensor]) -> Tensor) {
        check(inputs, step: step, relative: relative, floor: floor, "\(label) (second order)", file: file, line: line) { xs in
            let grads = gradients(of: projected(f(xs), seed: 777), wrt: xs, createGraph: true)
            return grads.enumerated().map { projected($0.element, seed: 900 + UInt64($0.offset)) }
                .reduce(Tensor(scalar: 0.0)) { $0 + $1 }
        }
    }
}
