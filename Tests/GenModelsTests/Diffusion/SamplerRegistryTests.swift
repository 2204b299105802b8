import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// Samplers as registered functions: the registry, a test-only sampler registered from outside the
/// library, and every built-in sampler on a closed-form case in continuous time and in a shape that
/// is not an image.
final class SamplerRegistryTests: XCTestCase {
    /// The data N(m, s^2) per element, and its exact x0 predictor E[x0 | x_t] =
    /// m + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha m), in the process's continuous time, at
    /// each image's own time (`ode-rk45` evaluates its images at different times).
    static let m = 0.3, s = 0.2

    static func gaussianOracle(_ process: any NoiseProcess, m: Double = m, s: Double = s) -> TimeFunctionDenoiser {
        TimeFunctionDenoiser(prediction: .x0) { x, time, _ in
            let times = time.scalars(as: Double.self)
            func gain(_ t: Double) -> Double {
                let a = process.alpha(t), sigma = process.sigma(t)
                return a * s * s / (a * a * s * s + sigma * sigma)
            }
            if Set(times).count == 1 { return (x - process.alpha(times[0]) * m) * gain(times[0]) + m }
            let column = [times.count] + [Int](repeating: 1, count: x.rank - 1)
            let signalMean = Tensor(times.map { Float(process.alpha($0) * m) }, shape: column)
            return (x - signalMean) * Tensor(times.map { Float(gain($0)) }, shape: column) + m
        }
    }

    func testBuiltInsAreRegistered() throws {
        XCTAssertTrue(Set(SamplerRegistry.names).isSuperset(of: ["ddpm", "ddim"]))
        XCTAssertEqual(try Sampler(named: "ddim", options: SamplerOptions(steps: 7)).grid(on: VPProcess()).steps, 7)
        XCTAssertThrowsError(try Sampler(named: "no-such-sampler", options: SamplerOptions())) { error in
            XCTAssertTrue("\(error)".contains("ddim") && "\(error)".contains("no-such-sampler"), "\(error)")
        }
    }

    /// Every built-in sampler, from the prior of a continuous VP process (and of the discrete table),
    /// with the exact denoiser of Gaussian data, ends at that Gaussian: mean m and standard deviation s
    /// over 10,000 one-number "images" (shape [1]: the core never assumes 28 x 28 x 1). 1,000 steps
    /// each: DDIM's own discretisation error on this case is -0.75% of s at S = 1,000 on the table
    /// (-6% at 100), computed by propagating its linear update in float64.
    func testEverySamplerReachesGaussianDataInContinuousTime() {
        let count = 10_000
        let processes: [(String, any NoiseProcess)] = [
            ("vp linear", VPProcess()), ("vp cosine", VPProcess.cosine()),
            ("ddpm table", DiscreteDDPMProcess(schedule: .linear())),
        ]
        let samplers: [(String, SamplerOptions)] = [
            ("ddpm", SamplerOptions(steps: 1000, clipX0: false)),
            ("ddim", SamplerOptions(steps: 1000, clipX0: false)),
            ("ddim", SamplerOptions(steps: 1000, eta: 1, clipX0: false)),
        ]
        for (processName, process) in processes {
            for (name, options) in samplers {
                let sampler = try! Sampler(named: name, options: options)
                let x = sampler.sample(Self.gaussianOracle(process), process: process, noise: SeededNoise(seed: 3),
                                       count: count, batchSize: count, imageShape: [1]).doubleScalars()
                let mean = x.reduce(0, +) / Double(count)
                let sd = (x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(count - 1)).squareRoot()
                let label = "\(name) eta \(options.eta) on \(processName)"
                XCTAssertEqual(mean, Self.m, accuracy: 5 * Self.s / Double(count).squareRoot() + 2e-3, label)
                XCTAssertEqual(sd, Self.s, accuracy: 5 * Self.s / (2 * Double(count)).squareRoot() + 3e-3, label)
            }
        }
    }

    /// The score samplers (reverse SDE, probability-flow ODE by Heun and by RK45, predictor-corrector,
    /// annealed Langevin)
    /// with the exact denoiser of Gaussian data reach N(m, s^2) from the prior of VP, sub-VP and VE
    /// (sigma_max 20: the ODE carries the prior's missing mean m into the sample, scaled by
    /// s / sigma_max) and of the DDPM table: 1,000 images of 64 independent numbers each (the
    /// Langevin step size reads each image's norms, which need more than one dimension to mean much).
    func testScoreSamplersReachGaussianData() throws {
        let images = 1_000, dimensions = 64, count = images * dimensions
        let processes: [(String, any NoiseProcess)] = [
            ("vp", VPProcess()), ("sub-vp", SubVPProcess()), ("ve", VEProcess(sigmaMin: 0.01, sigmaMax: 20)),
            ("ddpm table", DiscreteDDPMProcess(schedule: .linear())),
        ]
        let samplers: [(String, SamplerOptions, Double)] = [
            ("euler-maruyama", SamplerOptions(steps: 1000, clipX0: false), 4e-3),
            ("ode-heun", SamplerOptions(steps: 100, clipX0: false), 2e-3),
            ("ode-rk45", SamplerOptions(clipX0: false), 2e-3),
            ("pc", SamplerOptions(steps: 500, clipX0: false, snr: 0.1), 8e-3),
            // Unadjusted Langevin overshoots a Gaussian's variance by 1 / (1 - epsilon / 2v) (2% in s at
            // snr 0.2) and lags as the noise level falls: measured 5-7% high in s here.
            ("langevin", SamplerOptions(steps: 200, clipX0: false, correctorSteps: 10, snr: 0.2), 1.6e-2),
        ]
        for (processName, process) in processes {
            for (name, options, bias) in samplers {
                let sampler = try Sampler(named: name, options: options)
                let out = sampler.sample(Self.gaussianOracle(process), process: process, noise: SeededNoise(seed: 4),
                                         batch: SampleBatch(count: images, imageShape: [dimensions]))
                let x = out.sample.doubleScalars()
                let mean = x.reduce(0, +) / Double(count)
                let sd = (x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(count - 1)).squareRoot()
                let label = "\(name) on \(processName)"
                XCTAssertEqual(mean, Self.m, accuracy: 5 * Self.s / Double(count).squareRoot() + bias, label)
                XCTAssertEqual(sd, Self.s, accuracy: 5 * Self.s / (2 * Double(count)).squareRoot() + bias, label)
            }
        }
    }

    /// A sampler defined here, outside the library, registers by name and runs through `Sampler`:
    /// one step that returns the denoiser's x0 at t = 1 (the optimal one-step guess).
    func testATestOnlySamplerRegistersAndRuns() throws {
        SamplerRegistry.registerIfAbsent(TestOnlySamplers.oneStep)
        let sampler = try Sampler(named: TestOnlySamplers.oneStep.name, options: SamplerOptions())
        let process = VPProcess()
        let batch = SampleBatch(count: 3, imageShape: [7, 7, 4])
        let out = sampler.sample(Self.gaussianOracle(process), process: process, noise: SeededNoise(seed: 1), batch: batch)
        XCTAssertEqual(out.denoiserCalls, 1)
        XCTAssertEqual(out.sample.shape, [3, 7, 7, 4])
        let xT = SeededNoise(seed: 1).initialNoise(indices: [0, 1, 2], imageShape: [7, 7, 4])
        let a = process.alpha(1), sigma = process.sigma(1)
        let expected = (xT - a * Self.m) * (a * Self.s * Self.s / (a * a * Self.s * Self.s + sigma * sigma)) + Self.m
        assertClose(out.sample, expected, relative: 1e-5, "one-step x0")
    }
}
