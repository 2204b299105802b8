import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// `ode-rk45`: the probability-flow ODE by adaptive RK45, against the closed-form flow of Gaussian
/// data, with its evaluations counted per image, on DDPM's table through a real network.
final class AdaptiveProbabilityFlowSamplerTests: XCTestCase {
    static let m = SamplerRegistryTests.m, s = SamplerRegistryTests.s
    static let processes: [(String, any NoiseProcess)] = [
        ("vp", VPProcess()), ("sub-vp", SubVPProcess()), ("ve", VEProcess(sigmaMin: 0.01, sigmaMax: 20)),
        ("ddpm table", DiscreteDDPMProcess(schedule: .linear())),
    ]

    func rk45(rtol: Double = 1e-5, atol: Double = 1e-5, clip: Bool = false, record: Bool = false) -> Sampler {
        try! Sampler(named: "ode-rk45", options: SamplerOptions(clipX0: clip, recordTrajectory: record,
                                                                relativeTolerance: rtol, absoluteTolerance: atol))
    }

    /// The sample the exact flow gives from x_T for Gaussian data: x_T's standard score
    /// z = (x_T - alpha(T) m) / std(T) is kept along the ODE, x_eps = alpha(eps) m + std(eps) z, and the
    /// last step returns E[x0 | x_eps] = m + alpha s^2 / std^2 (x_eps - alpha m) at eps.
    func closedFormSample(_ process: any NoiseProcess, prior: [Double]) -> [Double] {
        let (m, s) = (Self.m, Self.s)
        let grid = rk45().grid(on: process).times
        let start = grid[0], end = grid[1]
        func std(_ t: Double) -> Double { (process.alpha(t) * process.alpha(t) * s * s + process.sigma(t) * process.sigma(t)).squareRoot() }
        let a = process.alpha(end)
        return prior.map { xT in
            let z = (xT - process.alpha(start) * m) / std(start)
            let x = a * m + std(end) * z
            return m + a * s * s / (std(end) * std(end)) * (x - a * m)
        }
    }

    /// Every image lands on the closed-form flow of its own x_T, on VP, sub-VP, VE and the DDPM table
    /// (integrated against lambda there): 24 images of 16 numbers, at rtol = atol = 1e-5. RK45 controls
    /// each step's local error, not the global one: the largest errors measured are 9e-6 (VE), 6e-6
    /// (table), 6e-5 (sub-VP) and 3e-4 (VP: image 13, whose first step's error estimate is float32
    /// rounding in the oracle's x0, which then set larger steps; the same image in float64 ends 7e-6
    /// off in 86 evaluations, as with scipy, against 57 here).
    func testFollowsTheClosedFormFlowOfGaussianData() {
        let batch = SampleBatch(count: 24, imageShape: [16])
        for (name, process) in Self.processes {
            let out = rk45().sample(SamplerRegistryTests.gaussianOracle(process), process: process,
                                    noise: SeededNoise(seed: 8), batch: batch)
            let prior = SeededNoise(seed: 8).initialNoise(indices: batch.indices, imageShape: batch.imageShape)
                .doubleScalars().map { $0 * process.priorStandardDeviation }
            let expected = closedFormSample(process, prior: prior)
            let error = zip(out.sample.doubleScalars(), expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(error, 1e-3, "\(name): largest error against the closed form")
            let mean = Double(out.imageEvaluations.reduce(0, +)) / Double(batch.count)
            print("ode-rk45 on \(name): largest error \(error), evaluations per image \(out.imageEvaluations.min()!)...\(out.imageEvaluations.max()!), mean \(mean)")
        }
    }

    /// The samples' mean and variance match the data's, N(m, s^2), within 2 standard errors
    /// (s / sqrt(n) and s^2 sqrt(2 / (n - 1))), for 10,000 one-number images from each process's prior.
    /// The deterministic flow carries the prior draws' own deviations into the samples, and a perfect
    /// sampler fails a 2-standard-error check for 1 seed in 20 by chance: seed 2's draws are within
    /// 1 standard error of N(0, 1) in mean and variance (checked first; seed 3's mean is 2.5 off), so a
    /// failure here is the sampler's.
    func testReachesGaussianDataWithinTwoStandardErrors() {
        let count = 10_000, seed: UInt64 = 2
        func moments(_ x: [Double]) -> (mean: Double, variance: Double) {
            let mean = x.reduce(0, +) / Double(x.count)
            return (mean, x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count - 1))
        }
        let meanError = 1 / Double(count).squareRoot(), varianceError = (2 / Double(count - 1)).squareRoot()
        let z = moments(SeededNoise(seed: seed).initialNoise(indices: Array(0..<count), imageShape: [1]).doubleScalars())
        XCTAssertLessThan(abs(z.mean), meanError, "the prior draws' mean")
        XCTAssertLessThan(abs(z.variance - 1), varianceError, "the prior draws' variance")
        for (name, process) in Self.processes {
            let x = rk45().sample(SamplerRegistryTests.gaussianOracle(process), process: process, noise: SeededNoise(seed: seed),
                                  count: count, batchSize: count, imageShape: [1]).doubleScalars()
            let (mean, variance) = moments(x)
            let s2 = Self.s * Self.s
            XCTAssertEqual(mean, Self.m, accuracy: 2 * Self.s * meanError, "\(name): mean")
            XCTAssertEqual(variance, s2, accuracy: 2 * s2 * varianceError, "\(name): variance")
        }
    }

    /// Each image's evaluations are in the output: 2 + 6 per attempted step + the final denoising one;
    /// the batched calls are the most any image made; looser tolerances take fewer. The sampler's
    /// tally averages them over every batch it ran, as the command line reports them.
    func testReportsTheEvaluationsItUsed() {
        let process = VPProcess()
        var rows = 0, calls = 0
        let oracle = SamplerRegistryTests.gaussianOracle(process)
        let counting = TimeFunctionDenoiser(prediction: .x0) { x, time, y in
            rows += x.shape[0]
            calls += 1
            return oracle(x, time: time, y: y)
        }
        let batch = SampleBatch(count: 8, imageShape: [4, 4, 1])
        var means: [Double] = []
        for tolerance in [1e-5, 1e-3, 1e-2] {
            rows = 0
            calls = 0
            let out = rk45(rtol: tolerance, atol: tolerance).sample(counting, process: process, noise: SeededNoise(seed: 2), batch: batch)
            XCTAssertEqual(out.imageEvaluations.count, 8)
            XCTAssertEqual(out.imageEvaluations.reduce(0, +), rows, "every row the network saw is counted once")
            XCTAssertEqual(out.denoiserCalls, calls)
            XCTAssertEqual(out.denoiserCalls, out.imageEvaluations.max())
            XCTAssertTrue(out.imageEvaluations.allSatisfy { $0 >= 9 && ($0 - 3) % 6 == 0 }, "\(out.imageEvaluations)")
            means.append(Double(out.imageEvaluations.reduce(0, +)) / 8)
        }
        print("ode-rk45 on vp, 16 numbers per image: mean evaluations per image at tolerance 1e-5, 1e-3, 1e-2: \(means)")
        XCTAssertGreaterThan(means[0], means[1])
        XCTAssertGreaterThan(means[1], means[2])

        let sampler = rk45()
        XCTAssertTrue(sampler.isAdaptive(on: process))
        XCTAssertNil(sampler.evaluations(on: process))
        XCTAssertNil(sampler.evaluationsPerImage(on: process), "unknown before it has sampled")
        XCTAssertEqual(sampler.stepsDescription(on: process), "rtol 1e-05, atol 1e-05")
        let batched = sampler.sample(oracle, process: process, noise: SeededNoise(seed: 2), count: 11, batchSize: 4,
                                     imageShape: [4, 4, 1])
        let alone = (0..<11).map {
            rk45().sample(oracle, process: process, noise: SeededNoise(seed: 2), batch: SampleBatch(indices: [$0], imageShape: [4, 4, 1]))
        }
        let each = alone.map { $0.imageEvaluations[0] }
        // The oracle computes each image alone whatever its batch, so the images are exactly equal.
        XCTAssertEqual(batched.scalars(as: Float.self), Tensor.concatenate(alone.map(\.sample), axis: 0).scalars(as: Float.self))
        XCTAssertEqual(sampler.tally.imageCount, 11)
        XCTAssertEqual(sampler.tally.meanPerImage!, Double(each.reduce(0, +)) / 11, accuracy: 1e-12,
                       "each image's evaluations are its own, whatever its batch")
        XCTAssertEqual(sampler.evaluationsPerImage(on: process), Int((Double(each.reduce(0, +)) / 11).rounded()))
        // A fixed-step sampler still reports its own count.
        XCTAssertEqual(try Sampler(named: "ode-heun", options: SamplerOptions(steps: 20)).evaluationsPerImage(on: process), 39)
    }

    /// On DDPM's table, times between the grid's reach an indexed model as fractional float64
    /// indices, and grid times as int64 ones. With eps = 0 the ODE is dx/dlambda = -sigma^2 x, so
    /// x follows alpha and the sample is x_T alpha(1 / T) / alpha(1) / alpha(1 / T) = x_T / sqrt(abar_{T-1})
    /// (within the tolerance). The trajectory holds the two times every image shares.
    func testRunsOnTheTableWithFractionalTimesteps() {
        let schedule = NoiseSchedule.linear(T: 50)
        var seen: [(DType, [Double])] = []
        let zero = FunctionDenoiser { x, t, _ in
            seen.append((t.dtype, t.doubleScalars()))
            return Tensor.zeros(x.shape)
        }
        let batch = SampleBatch(count: 3, imageShape: [2, 2, 1])
        let out = rk45(record: true).sample(zero, schedule: schedule, noise: SeededNoise(seed: 1), batch: batch)
        let xT = SeededNoise(seed: 1).initialNoise(indices: [0, 1, 2], imageShape: [2, 2, 1])
        assertClose(out.sample, xT / Double(schedule.alphaBars[49].squareRoot()), relative: 1e-4, "x_T / alpha(1)")
        XCTAssertEqual(seen.first?.0, .int64)
        XCTAssertEqual(seen.first?.1, [49, 49, 49])
        XCTAssertEqual(seen.last?.0, .int64)
        XCTAssertEqual(seen.last?.1, [0, 0, 0])
        XCTAssertTrue(seen.contains { $0.0 == .float64 }, "fractional indices between grid times")
        XCTAssertTrue(seen.allSatisfy { $0.1.allSatisfy { (0.0...49.0).contains($0) } })
        XCTAssertEqual(out.trajectory.map(\.t), [49, 0])
        XCTAssertEqual(out.trajectory.first?.x.scalars(as: Float.self), xT.scalars(as: Float.self))
        XCTAssertEqual(DiscreteDDPMProcess.timesteps(ofTimes: Tensor([0.5, 1], shape: [2]), steps: 50).scalars(as: Int64.self), [24, 49])
        XCTAssertEqual(DiscreteDDPMProcess.timesteps(ofTimes: Tensor([0.5, 0.505], shape: [2]), steps: 50).scalars(as: Double.self)[1],
                       24.25, accuracy: 1e-12)
    }

    /// Image i is the same alone, in a batch of 4, and in batches of 3 + 1, with the conformance suite's
    /// random U-Net on its short table, with and without classifier-free guidance, within 1e-4: the
    /// network's float rounding differs with the batch, and can move the solver's steps (measured:
    /// 1.5e-4 at rtol 1e-4, 2.5e-5 at 1e-6, without clipping).
    func testImageIndependentOfBatchWithARealNetwork() {
        let model = SamplerConformanceTests.model
        let schedule = SamplerConformanceTests.schedule
        let shape = SamplerConformanceTests.imageShape
        let labels = [2, 0, 1, 2]
        let denoisers: [(String, any IndexedDenoiser)] = [
            ("u-net", model), ("u-net + cfg", ClassifierFreeGuidance(model, scale: 2, nullLabel: SamplerConformanceTests.classes)),
        ]
        for (name, denoiser) in denoisers {
            let sampler = rk45(clip: true)
            let batchOf4 = sampler.sample(denoiser, schedule: schedule, noise: SeededNoise(seed: 3), count: 4, batchSize: 4,
                                          labels: labels, imageShape: shape)
            let batchesOf3 = sampler.sample(denoiser, schedule: schedule, noise: SeededNoise(seed: 3), count: 4, batchSize: 3,
                                            labels: labels, imageShape: shape)
            let third = sampler.sample(denoiser, schedule: schedule, noise: SeededNoise(seed: 3),
                                       batch: SampleBatch(indices: [2], labels: [labels[2]], imageShape: shape))
            XCTAssertTrue(batchOf4.doubleScalars().allSatisfy { $0.isFinite && abs($0) <= 1 }, name)
            assertClose(batchesOf3, batchOf4, "\(name): batches of 3 + 1 against one batch of 4")
            assertClose(third.sample, batchOf4.sliced(axis: 0, 2..<3), "\(name): image 2 alone")
            XCTAssertEqual(sampler.tally.imageCount, 9)
            print("ode-rk45 with the conformance U-Net (\(name)), rtol = atol = 1e-5: \(third.imageEvaluations[0]) evaluations for image 2, "
                  + "mean over every run \(sampler.tally.meanPerImage!)")
        }
    }
}
