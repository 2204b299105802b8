import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// The continuous-time noise processes against their closed forms, and the conversions between
/// prediction types.
///
/// Closed forms: for Gaussian data x0 ~ N(m, s^2), x_t = alpha x0 + sigma eps has mean alpha m and
/// variance alpha^2 s^2 + sigma^2. The SDE dx = f x dt + g dw moves those moments by
/// dM/dt = f M and dV/dt = 2 f V + g^2; integrating these (RK4, fine steps) from the data must land
/// on the process's alpha and sigma at every t, which checks drift and diffusion against the marginals.
final class NoiseProcessTests: XCTestCase {
    static let table = DiscreteDDPMProcess(schedule: .linear())
    static let processes: [(String, any NoiseProcess)] = [
        ("vp linear", VPProcess()),
        ("vp cosine", VPProcess.cosine()),
        ("sub-vp", SubVPProcess()),
        ("ve", VEProcess(sigmaMin: 0.01, sigmaMax: 50)),
        ("ddpm table", table),
    ]

    /// The moments of the SDE, integrated from time `start` (where the data sits at the process's own
    /// marginal) to each of `ends`, against alpha(t) m and alpha(t)^2 s^2 + sigma(t)^2.
    func testMomentsOfTheSDEMatchTheMarginals() {
        let m = 0.7, s = 0.3
        for (name, process) in Self.processes {
            // Start where the marginal is known; the cosine schedule's beta diverges at t = 1.
            let start = 1e-4, last = name == "vp cosine" ? 0.98 : 1.0
            let a0 = process.alpha(start), s0 = process.sigma(start)
            var mean = a0 * m, variance = a0 * a0 * s * s + s0 * s0
            var t = start
            let steps = 20_000
            let h = (last - start) / Double(steps)
            func derivatives(_ t: Double, _ mean: Double, _ variance: Double) -> (Double, Double) {
                let f = process.driftCoefficient(t), g = process.diffusion(t)
                return (f * mean, 2 * f * variance + g * g)
            }
            var checked = 0
            for k in 1...steps {
                let (k1m, k1v) = derivatives(t, mean, variance)
                let (k2m, k2v) = derivatives(t + h / 2, mean + h / 2 * k1m, variance + h / 2 * k1v)
                let (k3m, k3v) = derivatives(t + h / 2, mean + h / 2 * k2m, variance + h / 2 * k2v)
                let (k4m, k4v) = derivatives(t + h, mean + h * k3m, variance + h * k3v)
                mean += h / 6 * (k1m + 2 * k2m + 2 * k3m + k4m)
                variance += h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
                t = start + Double(k) * h
                if k % 4_000 == 0 {
                    let a = process.alpha(t), sigma = process.sigma(t)
                    XCTAssertEqual(mean, a * m, accuracy: 2e-4 * max(1, abs(a * m)), "\(name) mean at t = \(t)")
                    let expected = a * a * s * s + sigma * sigma
                    XCTAssertEqual(variance, expected, accuracy: 2e-4 * expected, "\(name) variance at t = \(t)")
                    checked += 1
                }
            }
            XCTAssertEqual(checked, 5, name)
        }
    }

    /// `noised` draws x_t with the closed-form mean and variance (100,000 draws, 5 standard errors).
    func testNoisedSamplesHaveTheMarginalMoments() {
        let n = 100_000, m = -0.4, s = 0.5
        for (name, process) in Self.processes {
            for t in [0.1, 0.5, 1.0] {
                let x0 = Tensor.normal([n, 1], mean: m, std: s, generator: RandomGenerator(seed: 1))
                let eps = Tensor.normal([n, 1], generator: RandomGenerator(seed: 2))
                let xt = process.noised(x0: x0, times: [Double](repeating: t, count: n), eps: eps).doubleScalars()
                let mean = xt.reduce(0, +) / Double(n)
                let variance = xt.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)
                let a = process.alpha(t), sigma = process.sigma(t)
                let expectedVariance = a * a * s * s + sigma * sigma
                XCTAssertEqual(mean, a * m, accuracy: 5 * (expectedVariance / Double(n)).squareRoot(), "\(name) mean at \(t)")
                XCTAssertEqual(variance, expectedVariance, accuracy: 5 * expectedVariance * (2 / Double(n)).squareRoot(),
                               "\(name) variance at \(t)")
            }
        }
    }

    func testClosedFormsOfEachProcess() {
        // VP linear: alpha(t) = exp(-(t^2 (20 - 0.1) / 4 + 0.1 t / 2)); VE: sigma geometric; sub-VP: sigma = 1 - alpha^2.
        let vp = VPProcess(), subVP = SubVPProcess(), ve = VEProcess(sigmaMin: 0.01, sigmaMax: 50)
        for t in [0.0, 0.25, 0.5, 1.0] {
            let alpha = exp(-(t * t * 19.9 / 4 + 0.05 * t))
            XCTAssertEqual(vp.alpha(t), alpha, accuracy: 1e-12)
            XCTAssertEqual(vp.alpha(t) * vp.alpha(t) + vp.sigma(t) * vp.sigma(t), 1, accuracy: 1e-12)
            XCTAssertEqual(subVP.sigma(t), 1 - alpha * alpha, accuracy: 1e-12)
            XCTAssertEqual(ve.sigma(t), 0.01 * pow(5000, t), accuracy: 1e-9 * ve.sigma(t))
            XCTAssertEqual(ve.alpha(t), 1)
        }
        XCTAssertEqual(ve.priorStandardDeviation, 50)
        XCTAssertEqual(VPProcess.cosine().alphaBar(0), 1, accuracy: 1e-12)
        // The cosine schedule's abar(t) = cos^2(((t + s) / (1 + s)) pi / 2) / cos^2((s / (1 + s)) pi / 2).
        let s = 0.008, c = cos((0.3 + s) / (1 + s) * .pi / 2) / cos(s / (1 + s) * .pi / 2)
        XCTAssertEqual(VPProcess.cosine().alphaBar(0.3), c * c, accuracy: 1e-12)
    }

    /// The discrete table: index i sits at (i + 1) / T and maps back exactly; abar there is the
    /// float32 table entry; t = 0 is clean; a single-index step's beta is the table's own.
    func testDiscreteTableRoundTripsItsIndices() {
        let table = Self.table
        for i in 0..<table.steps {
            let t = table.time(ofIndex: i)
            XCTAssertEqual(table.index(ofTime: t), i)
            XCTAssertEqual(Float(table.alphaBar(t)), table.schedule.alphaBars[i])
            XCTAssertEqual(table.noiseKey(ofTime: t), i)
            let previous = i == 0 ? 0 : table.time(ofIndex: i - 1)
            XCTAssertEqual(table.stepBeta(from: t, to: previous), table.schedule.betas[i])
        }
        XCTAssertEqual(table.alphaBar(0), 1)
        let indices = Tensor([0, 17, 999] as [Int64], shape: [3])
        XCTAssertEqual(DiscreteDDPMProcess.indices(ofTimes: table.times(ofIndices: indices), steps: 1000)
            .scalars(as: Int64.self), [0, 17, 999])
        // Between grid points abar is log-linear: halfway between i and i + 1 it is their geometric mean.
        let mid = (table.time(ofIndex: 10) + table.time(ofIndex: 11)) / 2
        let expected = (Double(table.schedule.alphaBars[10]) * Double(table.schedule.alphaBars[11])).squareRoot()
        XCTAssertEqual(table.alphaBar(mid), expected, accuracy: 1e-12)
    }

    /// Every prediction type converts to every other and back, for a variance-preserving pair
    /// (alpha, sigma) and for VE's (1, sigma).
    func testPredictionConversionsRoundTrip() {
        let x0 = Tensor.uniform([3, 4, 4, 2], low: -1, high: 1, generator: RandomGenerator(seed: 3))
        let eps = Tensor.normal([3, 4, 4, 2], generator: RandomGenerator(seed: 4))
        for (signal, noise, preserves) in [(0.8, 0.6, true), (1.0, 3.5, false), (0.05, 0.99875, true)] {
            let x = signal * x0 + noise * eps
            for from in PredictionType.allCases {
                let output = from.output(eps: eps, x0: x0, signal: signal, noise: noise)
                let (e, c) = from.epsilonAndX0(output, x: x, signal: signal, noise: noise, preservesVariance: preserves)
                assertClose(e, eps, relative: 1e-4, "\(from) eps at (\(signal), \(noise))")
                assertClose(c, x0, relative: 1e-4, "\(from) x0 at (\(signal), \(noise))")
                for to in PredictionType.allCases {
                    let converted = from.convert(output, to: to, x: x, signal: signal, noise: noise, preservesVariance: preserves)
                    let back = to.convert(converted, to: from, x: x, signal: signal, noise: noise, preservesVariance: preserves)
                    assertClose(converted, to.output(eps: eps, x0: x0, signal: signal, noise: noise), relative: 1e-4,
                                "\(from) -> \(to)")
                    assertClose(back, output, relative: 1e-4, "\(from) -> \(to) -> \(from)")
                }
            }
        }
        // The score is -eps / sigma.
        let score = PredictionType.score.output(eps: eps, x0: x0, signal: 0.8, noise: 0.6)
        assertClose(score, eps * (-1 / 0.6), relative: 1e-6, "score")
    }
}

/// The probability-flow likelihood against the exact density of Gaussian data.
final class LikelihoodTests: XCTestCase {
    /// Data N(m, s^2) in 4 dimensions with its exact denoiser: log p(x) from the ODE (RK4, exact
    /// trace) matches the Gaussian's log-density at the integration's start, within 0.01 nats, on
    /// VP, sub-VP and VE; Hutchinson's estimate (16 probes) agrees within its noise. VE's data are
    /// centred: its prior N(0, sigma_max^2) misses a mean m by about m |x| / sigma_max^2 nats per
    /// dimension (0.03 nats here for m = 0.3), an approximation of the method, not of the code.
    func testMatchesTheExactDensityOfGaussianData() {
        let s = 0.2, d = 4
        let cases: [(String, any NoiseProcess, Double)] = [
            ("vp", VPProcess(), 0.3), ("sub-vp", SubVPProcess(), 0.3), ("ve", VEProcess(sigmaMin: 0.01, sigmaMax: 20), 0),
        ]
        for (name, process, m) in cases {
            let x = Tensor.normal([6, d], mean: m, std: s, generator: RandomGenerator(seed: 5))
            let values = x.doubleScalars()
            let oracle = SamplerRegistryTests.gaussianOracle(process, m: m, s: s)
            let exactTrace = probabilityFlowLogLikelihood(oracle, process: process, x: x,
                                                          options: LikelihoodOptions(steps: 200, trace: .exact))
            let start = 1e-5, a = process.alpha(start), sigma = process.sigma(start)
            let variance = a * a * s * s + sigma * sigma
            for i in 0..<6 {
                let row = values[(i * d)..<((i + 1) * d)]
                let exact = -0.5 * Double(d) * log(2 * .pi * variance) - row.map { ($0 - a * m) * ($0 - a * m) }.reduce(0, +) / (2 * variance)
                XCTAssertEqual(exactTrace[i], exact, accuracy: 1e-2, "\(name) image \(i)")
            }
            let estimated = probabilityFlowLogLikelihood(oracle, process: process, x: x, seed: 3,
                                                         options: LikelihoodOptions(steps: 50, trace: .hutchinson(probes: 16)))
            for i in 0..<6 { XCTAssertEqual(estimated[i], exactTrace[i], accuracy: 0.5, "\(name) Hutchinson, image \(i)") }
        }
        // Bits per dimension of 8-bit data: a density of 1 per unit of [-1, 1]^D is 128 per unit of
        // [0, 1]^D and 1/2 per pixel bin: 7 bits per dimension.
        XCTAssertEqual(bitsPerDimension(logLikelihood: 0, dimensions: 784), 7, accuracy: 1e-12)
    }
}
