import Foundation
import GenModels
import XCTest
import GenTensor
import GenFormats
import GenNN

/// DDPM's variational bound: against a float64 evaluation of the same sum written from the general
/// Gaussian KL, against the closed form of a perfect denoiser of a one-image data set, and
/// independent of the batching.
final class VariationalBoundTests: XCTestCase {
    static let schedule = NoiseSchedule.linear(T: 20, betaStart: 2e-3, betaEnd: 0.35)
    static let shape = [3, 4, 4, 1]

    /// 8-bit images on the grid of [-1, 1], the outer levels included.
    static func images() -> Tensor {
        let generator = RandomGenerator(seed: 3)
        let levels = (0..<shape.reduce(1, *)).map { i -> Float in
            i % 7 == 0 ? 0 : (i % 11 == 0 ? 255 : Float(Int(generator.nextUnitDouble() * 256)))
        }
        return Tensor(levels.map { $0 * (2.0 / 255) - 1 }, shape: shape)
    }

    /// A smooth, imperfect eps model: 0.7 x_t + 0.05 t.
    static let model = FunctionDenoiser { x, t, _ in
        let shift = Tensor(t.scalars(as: Int64.self).map { Float(0.05 * Double($0)) }, shape: [t.shape[0], 1, 1, 1])
        return x * 0.7 + shift
    }

    func testMatchesAFloat64EvaluationOfTheSameSum() {
        let schedule = Self.schedule, x0 = Self.images()
        let indices = [4, 9, 2]
        let bound = variationalBound(Self.model, schedule: schedule, x0: x0, indices: indices, seed: 5)

        let b = Self.shape[0], d = x0.elementCount / b
        let clean = x0.scalars(as: Float.self).map(Double.init)
        let abar = schedule.alphaBars.map(Double.init), beta = schedule.betas.map(Double.init)
        func gaussianKL(_ m1: Double, _ v1: Double, _ m2: Double, _ v2: Double) -> Double {
            0.5 * (log(v2 / v1) + (v1 + (m1 - m2) * (m1 - m2)) / v2 - 1)
        }
        func normalCDF(_ z: Double) -> Double { 0.5 * (1 + erf(z / 2.0.squareRoot())) }
        var expected = [Double](repeating: 0, count: b)
        let noise = SeededNoise(seed: 5)
        let T = schedule.steps
        for n in 0..<b {
            for k in 0..<d { expected[n] += gaussianKL(abar[T - 1].squareRoot() * clean[n * d + k], 1 - abar[T - 1], 0, 1) }
        }
        for i in 0..<T {
            let z = noise.stepNoise(t: i, indices: indices, imageShape: [4, 4, 1]).scalars(as: Float.self).map(Double.init)
            for n in 0..<b {
                for k in 0..<d {
                    let j = n * d + k
                    let xt = Double(Float(abar[i].squareRoot() * clean[j] + (1 - abar[i]).squareRoot() * z[j]))
                    let eps = 0.7 * xt + 0.05 * Double(i)
                    let x0Hat = min(1, max(-1, (xt - (1 - abar[i]).squareRoot() * eps) / abar[i].squareRoot()))
                    let previous = i == 0 ? 1 : abar[i - 1]
                    let c1 = beta[i] * previous.squareRoot() / (1 - abar[i])
                    let c2 = (1 - beta[i]).squareRoot() * (1 - previous) / (1 - abar[i])
                    if i == 0 {
                        let s = (beta[1] * (1 - abar[0]) / (1 - abar[1])).squareRoot()
                        let x = clean[j]
                        let upper = x > 0.999 ? 1 : normalCDF((x + 1.0 / 255 - x0Hat) / s)
                        let lower = x < -0.999 ? 0 : normalCDF((x - 1.0 / 255 - x0Hat) / s)
                        expected[n] -= log(upper - lower)
                    } else {
                        let variance = beta[i] * (1 - previous) / (1 - abar[i])
                        expected[n] += gaussianKL(c1 * clean[j] + c2 * xt, variance, c1 * x0Hat + c2 * xt, variance)
                    }
                }
            }
        }
        for n in 0..<b {
            XCTAssertEqual(bound.total[n], expected[n], accuracy: 1e-4 * expected[n], "image \(n)")
        }
        XCTAssertTrue(bound.decoder.allSatisfy { $0 > 0 } && bound.diffusion.allSatisfy { $0 > 0 } && bound.prior.allSatisfy { $0 > 0 })
    }

    /// The denoiser that knows the one image of its data set predicts x0 exactly: every KL term of
    /// the diffusion is 0, and the decoder's term is the closed form of a Gaussian centred on each
    /// pixel over its bin (open at the ends).
    func testAPerfectDenoiserOfOneImage() {
        let schedule = Self.schedule, x0 = Self.images().sliced(axis: 0, 0..<1)
        let abar = schedule.alphaBars.map(Double.init)
        let perfect = FunctionDenoiser { x, t, _ in
            let i = Int(t.scalars(as: Int64.self)[0])
            return (x - x0 * abar[i].squareRoot()) * (1 / (1 - abar[i]).squareRoot())
        }
        let bound = variationalBound(perfect, schedule: schedule, x0: x0, seed: 1)
        let s = (Double(schedule.betas[1]) * (1 - abar[0]) / (1 - abar[1])).squareRoot()
        let interior = -log(erf(1.0 / 255 / (s * 2.0.squareRoot())))
        let outer = -log(0.5 * (1 + erf(1.0 / 255 / (s * 2.0.squareRoot()))))
        let pixels = x0.scalars(as: Float.self)
        let edges = pixels.filter { abs($0) > 0.999 }.count
        XCTAssertEqual(bound.diffusion[0], 0, accuracy: 1e-3)
        XCTAssertEqual(bound.decoder[0], Double(edges) * outer + Double(pixels.count - edges) * interior, accuracy: 1e-3)
    }

    func testTheBatchingDoesNotChangeAnImage() {
        let x0 = Self.images()
        let whole = variationalBound(Self.model, schedule: Self.schedule, x0: x0, indices: [0, 1, 2], seed: 8)
        let last = variationalBound(Self.model, schedule: Self.schedule, x0: x0.sliced(axis: 0, 2..<3), indices: [2], seed: 8)
        XCTAssertEqual(whole.total[2], last.total[0], accuracy: 1e-9)
        XCTAssertNotEqual(whole.total[2], variationalBound(Self.model, schedule: Self.schedule, x0: x0.sliced(axis: 0, 2..<3),
                                                           indices: [2], seed: 9).total[0], "the seed keys the noise")
    }

    func testDiscretizedGaussianIsANormalisedDistributionOverTheLevels() {
        for (mean, scale) in [(0.3, 0.01), (-0.98, 0.05), (0.999, 0.002), (5.0, 0.5)] {
            let total = (0...255).map { discretizedGaussianLogProbability(Double($0) * 2 / 255 - 1, mean: mean, scale: scale) }
                .map(exp).reduce(0, +)
            XCTAssertEqual(total, 1, accuracy: 1e-9, "mean \(mean), scale \(scale)")
        }
    }
}
