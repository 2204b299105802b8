import Foundation
import GenModels
import XCTest
import GenTensor
import GenNN

/// The VAE's ELBO as a density of [0, 1] pixels: the decoder densities integrate to 1, the bound
/// equals the training loss plus the constants it drops, and it lies below the exact marginal
/// log-density of a model small enough to integrate.
final class EvidenceLowerBoundTests: XCTestCase {
    /// Simpson's rule on [a, b] with `intervals` (even) intervals.
    func integrate(_ a: Double, _ b: Double, intervals: Int = 2000, _ f: (Double) -> Double) -> Double {
        let h = (b - a) / Double(intervals)
        var total = f(a) + f(b)
        for k in 1..<intervals { total += (k % 2 == 1 ? 4 : 2) * f(a + Double(k) * h) }
        return total * h / 3
    }

    func testContinuousBernoulliIsNormalised() {
        for l in [0, 1e-6, -3e-5, 0.5, -2, 9, -30] {
            let lambda = 1 / (1 + exp(-l))
            let mass = integrate(0, 1) { x in
                exp(x * log(lambda) + (1 - x) * log(1 - lambda) + continuousBernoulliLogNormalizer(logit: l))
            }
            XCTAssertEqual(mass, 1, accuracy: 1e-8, "logit \(l)")
        }
    }

    /// -ELBO is the training loss (one image) less the continuous Bernoulli's normalisers, or plus
    /// the Gaussian's log(pi) / 2 per pixel.
    func testEqualsTheTrainingLossUpToTheNormalisers() {
        let vae = MLPVAE(inputDim: 784, hiddenDim: 16, latentDim: 3, generator: RandomGenerator(seed: 2))
        let x = Tensor.uniform([1, 28, 28, 1], generator: RandomGenerator(seed: 3))
        let eps = Tensor.normal([1, 3], generator: RandomGenerator(seed: 4))
        let logits = withoutGradients { vae.loss(x, eps: eps).logits }.cast(to: .float64).scalars(as: Double.self)
        let normalisers = logits.map { continuousBernoulliLogNormalizer(logit: $0) }.reduce(0, +)
        let bernoulli = evidenceLowerBound(vae, x: x, eps: eps, reconstruction: .bernoulli)[0]
        XCTAssertEqual(-bernoulli, withoutGradients { vae.loss(x, eps: eps, reconstruction: .bernoulli).loss.item } - normalisers,
                       accuracy: 1e-3)
        let gaussian = evidenceLowerBound(vae, x: x, eps: eps, reconstruction: .gaussian)[0]
        XCTAssertEqual(-gaussian, withoutGradients { vae.loss(x, eps: eps, reconstruction: .gaussian).loss.item } + 392 * log(Double.pi),
                       accuracy: 1e-3)
    }

    /// A VAE of 2 pixels and a 1-D latent: the marginal p(x) = integral of p(x | z) N(z) dz by
    /// quadrature integrates to 1 over [0, 1]^2, and the expected ELBO (over eps) lies below log p(x).
    func testBelowTheExactMarginalOfATinyModel() {
        let vae = MLPVAE(inputDim: 2, hiddenDim: 4, latentDim: 1, generator: RandomGenerator(seed: 5))
        let zs = (0...4000).map { -10 + Double($0) * 20 / 4000 }
        let logits = withoutGradients { vae.decode(Tensor(zs.map(Float.init), shape: [zs.count, 1])) }
            .cast(to: .float64).scalars(as: Double.self)
        func logDecoder(_ x: [Double], _ j: Int) -> Double {
            (0..<2).map { k in
                let l = logits[j * 2 + k]
                return -(max(l, 0) - l * x[k] + log1p(exp(-abs(l)))) + continuousBernoulliLogNormalizer(logit: l)
            }.reduce(0, +)
        }
        func marginal(_ x: [Double]) -> Double {
            let h = 20.0 / 4000
            var total = 0.0
            for j in 0..<zs.count {
                let weight = (j == 0 || j == zs.count - 1) ? 1.0 : (j % 2 == 1 ? 4.0 : 2.0)
                total += weight * exp(logDecoder(x, j) - 0.5 * zs[j] * zs[j]) / (2 * Double.pi).squareRoot()
            }
            return total * h / 3
        }
        let mass = integrate(0, 1, intervals: 40) { a in self.integrate(0, 1, intervals: 40) { b in marginal([a, b]) } }
        XCTAssertEqual(mass, 1, accuracy: 1e-6)
        for (a, b) in [(0.1, 0.8), (0.5, 0.5), (0.97, 0.02)] {
            let x = Tensor([Float(a), Float(b)], shape: [1, 2, 1, 1])
            let exact = log(marginal([Double(Float(a)), Double(Float(b))]))
            let elbos = (0..<400).map { s in
                evidenceLowerBound(vae, x: x, eps: Tensor.normal([1, 1], generator: RandomGenerator(seed: UInt64(s))),
                                   reconstruction: .bernoulli)[0]
            }
            let mean = elbos.reduce(0, +) / 400
            let se = (elbos.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 399 / 400).squareRoot()
            XCTAssertLessThan(mean, exact + 3 * se, "x (\(a), \(b)): the expected ELBO is a lower bound")
            XCTAssertGreaterThan(mean, exact - 1, "x (\(a), \(b)): loose by the posterior's KL only")
        }
    }
}
