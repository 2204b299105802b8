import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// The conformance suite every sampler passes (diffusers keeps one shared suite for all its
/// schedulers): output shapes, determinism under a seed, batch invariance of image i, the exact
/// timesteps visited, prediction-type conversions, clipping and guidance.
///
/// The model is a small random class-conditional U-Net on 8x8 images and the schedule a short
/// linear one (T = 20), so the whole suite runs in seconds while still going through a real network
/// (batch invariance is then a property of the engine's kernels as well as of the noise keys).
final class SamplerConformanceTests: XCTestCase {
    static let imageShape = [8, 8, 1]
    static let classes = 3
    /// A short schedule with the linear schedule's shape (abar_{T-1} about 0.02).
    static let schedule = NoiseSchedule.linear(T: 20, betaStart: 2e-3, betaEnd: 0.35)
    static var T: Int { schedule.steps }

    /// Every sampler configuration the suite runs: both DDPM variances, every DDIM spacing, eta 0, 0.5
    /// and 1, steps that do and do not divide T, clipping on and off.
    static let samplers: [(String, Sampler)] = [
        ("ddpm posterior", .ddpm(DDPMOptions(variance: .posterior))),
        ("ddpm beta, no clip", .ddpm(DDPMOptions(variance: .beta, clipX0: false))),
        ("ddim leading 10", .ddim(DDIMOptions(steps: 10))),
        ("ddim linspace 7 eta 0.5", .ddim(DDIMOptions(steps: 7, eta: 0.5, spacing: .linspace))),
        ("ddim trailing 6 eta 1, no clip", .ddim(DDIMOptions(steps: 6, eta: 1, spacing: .trailing, clipX0: false))),
        ("ddim trailing 20 (S = T)", .ddim(DDIMOptions(steps: 20, spacing: .trailing))),
    ]

    static let model = UNet(UNetConfig(width: 8, channelMultipliers: [1, 2], numRes: 1, numClasses: classes, groups: 4),
                            generator: RandomGenerator(seed: 7))

    /// Every sampler with and without classifier-free guidance (guidance 2 against the null label).
    func forEachSampler(_ body: (String, Sampler, any IndexedDenoiser) throws -> Void) rethrows {
        let model = Self.model
        for (name, sampler) in Self.samplers {
            try body(name, sampler, model)
            try body(name + " + cfg", sampler, ClassifierFreeGuidance(model, scale: 2, nullLabel: Self.classes))
        }
    }

    func run(_ sampler: Sampler, _ denoiser: any IndexedDenoiser, seed: UInt64 = 11, indices: [Int],
             labels: [Int]? = nil) -> SamplerOutput {
        let batch = SampleBatch(indices: indices, labels: labels ?? indices.map { $0 % Self.classes },
                                imageShape: Self.imageShape)
        return sampler.sample(denoiser, schedule: Self.schedule, noise: SeededNoise(seed: seed), batch: batch)
    }

    // MARK: shapes, determinism, batch invariance

    func testShapesAndCalls() {
        forEachSampler { name, sampler, denoiser in
            let out = run(sampler, denoiser, indices: [0, 1, 2])
            XCTAssertEqual(out.sample.shape, [3] + Self.imageShape, name)
            XCTAssertEqual(out.sample.dtype, .float32, name)
            XCTAssertTrue(out.sample.doubleScalars().allSatisfy(\.isFinite), "\(name): non-finite sample")
            XCTAssertEqual(out.denoiserCalls, sampler.timesteps(trainingSteps: Self.schedule.steps).count, name)
            XCTAssertTrue(out.trajectory.isEmpty, "\(name): trajectory kept without being asked for")
        }
        // The Fashion-MNIST shape through the batched entry point, with a closure denoiser.
        let zero = FunctionDenoiser { x, _, _ in Tensor.zeros(x.shape) }
        let images = Sampler.ddim(DDIMOptions(steps: 3)).sample(zero, schedule: .linear(), noise: SeededNoise(seed: 1),
                                                               count: 5, batchSize: 2, imageShape: [28, 28, 1])
        XCTAssertEqual(images.shape, [5, 28, 28, 1])
    }

    func testDeterministicUnderASeed() {
        forEachSampler { name, sampler, denoiser in
            let a = run(sampler, denoiser, seed: 5, indices: [0, 1]).sample
            let b = run(sampler, denoiser, seed: 5, indices: [0, 1]).sample
            XCTAssertEqual(a.scalars(as: Float.self), b.scalars(as: Float.self), "\(name): same seed, other sample")
            let c = run(sampler, denoiser, seed: 6, indices: [0, 1]).sample
            XCTAssertNotEqual(a.scalars(as: Float.self), c.scalars(as: Float.self), "\(name): seed ignored")
        }
    }

    /// Image i is the same alone (count 1), in one batch of 4, and in batches of 3 + 1, within float
    /// rounding (the network's kernels may block a batch differently): 1e-4 of the largest value.
    func testImageIndependentOfBatchAndCount() {
        forEachSampler { name, sampler, denoiser in
            let labels = [2, 0, 1, 2]
            let batchOf4 = sampler.sample(denoiser, schedule: Self.schedule, noise: SeededNoise(seed: 3), count: 4,
                                          batchSize: 4, labels: labels, imageShape: Self.imageShape)
            let batchesOf3 = sampler.sample(denoiser, schedule: Self.schedule, noise: SeededNoise(seed: 3), count: 4,
                                            batchSize: 3, labels: labels, imageShape: Self.imageShape)
            let first = sampler.sample(denoiser, schedule: Self.schedule, noise: SeededNoise(seed: 3), count: 1,
                                       batchSize: 1, labels: [labels[0]], imageShape: Self.imageShape)
            let third = run(sampler, denoiser, seed: 3, indices: [2], labels: [labels[2]]).sample
            assertClose(batchesOf3, batchOf4, "\(name): batches of 3 + 1 against one batch of 4")
            assertClose(first, batchOf4.sliced(axis: 0, 0..<1), "\(name): image 0 with count 1")
            assertClose(third, batchOf4.sliced(axis: 0, 2..<3), "\(name): image 2 alone")
            XCTAssertNotEqual(batchOf4.sliced(axis: 0, 0..<1).scalars(as: Float.self),
                              batchOf4.sliced(axis: 0, 1..<2).scalars(as: Float.self), "\(name): images 0 and 1 equal")
        }
    }

    // MARK: timesteps

    /// The sampler visits exactly `timesteps(trainingSteps:)`, in order, calling the denoiser with it.
    func testVisitsItsTimestepList() {
        for (name, sampler) in Self.samplers {
            var seen: [Int] = []
            let recorder = FunctionDenoiser { x, t, _ in
                let steps = t.scalars(as: Int64.self)
                XCTAssertEqual(Set(steps).count, 1, "\(name): one timestep per call")
                seen.append(Int(steps[0]))
                return Tensor.zeros(x.shape)
            }
            _ = sampler.sample(recorder, schedule: Self.schedule, noise: SeededNoise(seed: 1),
                               batch: SampleBatch(count: 2, imageShape: Self.imageShape))
            let expected = sampler.timesteps(trainingSteps: Self.schedule.steps)
            XCTAssertEqual(seen, expected, name)
            if sampler.name == "ddpm" { XCTAssertEqual(seen, Array((0..<Self.T).reversed()), name) }
        }
    }

    /// DDIM steps from each listed timestep to the NEXT LISTED one (then to abar = 1), never to
    /// t - T // S (diffusers' #12633, #11347). With a model that predicts x0 = c and eta 0, the
    /// implied noise eps = (x_t - sqrt(abar_t) c) / sqrt(1 - abar_t) stays constant along the whole
    /// trajectory exactly when every step used the right abar_prev; a wrong previous timestep changes it.
    func testDDIMStepsToTheNextListedTimestep() {
        let schedule = NoiseSchedule.linear()
        let c = Tensor([Float](repeating: 0.25, count: 64), shape: [1, 8, 8, 1])
        let oracle = FunctionDenoiser(prediction: .x0) { x, _, _ in c.expanded(to: x.shape) }
        for spacing in TimestepSpacing.allCases {
            for steps in [1, 7, 10, 13, 30] {
                let options = DDIMOptions(steps: steps, spacing: spacing, clipX0: false, recordTrajectory: true)
                let out = sampleDDIM(oracle, schedule: schedule, noise: SeededNoise(seed: 2),
                                     batch: SampleBatch(count: 1, imageShape: [8, 8, 1]), options: options)
                XCTAssertEqual(out.trajectory.map(\.t), ddimTimesteps(steps: steps, trainingSteps: 1000, spacing: spacing))
                let first = out.trajectory[0]
                let eps0 = impliedNoise(first.x, c: c, alphaBar: schedule.alphaBars[first.t])
                for step in out.trajectory.dropFirst() {
                    let eps = impliedNoise(step.x, c: c, alphaBar: schedule.alphaBars[step.t])
                    assertClose(eps, eps0, relative: 1e-3, "\(spacing) S = \(steps): implied noise at t = \(step.t)")
                }
                // The last step goes to abar = 1: x_0 = c exactly up to rounding.
                assertClose(out.sample, c, relative: 1e-5, "\(spacing) S = \(steps): final sample")
            }
        }
    }

    func impliedNoise(_ x: Tensor, c: Tensor, alphaBar: Float) -> Tensor {
        (x - Double(alphaBar.squareRoot()) * c) / Double((1 - alphaBar).squareRoot())
    }

    /// The exact lists, checked against diffusers' definitions evaluated with numpy 2.4
    /// (scheduling_ddim.py's set_timesteps, T = 1000).
    func testExactTimestepLists() {
        func list(_ s: Int, _ spacing: TimestepSpacing) -> [Int] { ddimTimesteps(steps: s, trainingSteps: 1000, spacing: spacing) }
        XCTAssertEqual(list(10, .leading), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
        XCTAssertEqual(list(10, .linspace), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
        XCTAssertEqual(list(10, .trailing), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])
        // S = 7 does not divide T; linspace's exact ties 832.5, 499.5, 166.5 round half to even.
        XCTAssertEqual(list(7, .leading), [852, 710, 568, 426, 284, 142, 0])
        XCTAssertEqual(list(7, .linspace), [999, 832, 666, 500, 333, 166, 0])
        XCTAssertEqual(list(7, .trailing), [999, 856, 713, 570, 428, 285, 142])
        // Trailing S = 13: diffusers' issue #9261 lists these, and shows its formula stepping 999 -> 923.
        XCTAssertEqual(list(13, .trailing), [999, 922, 845, 768, 691, 614, 537, 461, 384, 307, 230, 153, 76])
        XCTAssertEqual(list(30, .leading), Array(stride(from: 957, through: 0, by: -33)))
        XCTAssertEqual(list(30, .linspace), [999, 965, 930, 896, 861, 827, 792, 758, 723, 689, 655, 620, 586, 551, 517,
                                              482, 448, 413, 379, 344, 310, 276, 241, 207, 172, 138, 103, 69, 34, 0])
        XCTAssertEqual(list(30, .trailing), [999, 966, 932, 899, 866, 832, 799, 766, 732, 699, 666, 632, 599, 566, 532,
                                              499, 466, 432, 399, 366, 332, 299, 266, 232, 199, 166, 132, 99, 66, 32])
        // S = 999: leading steps by T // S = 1 from 998; linspace and trailing skip only 499 (linspace's
        // 499 * 999 / 998 = 499.5 rounds to 500).
        XCTAssertEqual(list(999, .leading), Array((0...998).reversed()))
        XCTAssertEqual(list(999, .linspace), Array((500...999).reversed()) + Array((0...498).reversed()))
        XCTAssertEqual(list(999, .trailing), Array((500...999).reversed()) + Array((0...498).reversed()))
        for spacing in TimestepSpacing.allCases {
            XCTAssertEqual(list(1000, spacing), Array((0..<1000).reversed()), "\(spacing), S = T")
        }
        XCTAssertEqual(list(1, .leading), [0])
        XCTAssertEqual(list(1, .linspace), [0])
        XCTAssertEqual(list(1, .trailing), [999])
        // An exact tie diffusers' float64 arange moves: T (S - i) / S = 937.5 for S = 48, i = 3.
        XCTAssertEqual(list(48, .trailing)[3], 937)
        // Trailing S = 61, where diffusers' np.arange returns 62 values ending in -1: ours has 61, ending at 15.
        XCTAssertEqual(Array(list(61, .trailing).suffix(2)), [32, 15])
    }

    /// Structure of every list for every S in 1...T: S strictly decreasing values in 0..<T, leading and
    /// linspace ending at 0, linspace (S > 1) and trailing starting at T - 1, consecutive timesteps no
    /// further apart than the spacing's stride rounded up (T // S, ceil((T - 1) / (S - 1)), ceil(T / S)).
    /// Also for a T that is not a round number.
    func testTimestepListStructureForEveryStepCount() {
        for trainingSteps in [1000, 37] {
            for s in 1...trainingSteps {
                for spacing in TimestepSpacing.allCases {
                    let ts = ddimTimesteps(steps: s, trainingSteps: trainingSteps, spacing: spacing)
                    let label = "\(spacing) S = \(s) T = \(trainingSteps)"
                    guard ts.count == s else { XCTFail("\(label): \(ts.count) timesteps"); continue }
                    XCTAssertTrue(zip(ts, ts.dropFirst()).allSatisfy { $0 > $1 }, "\(label): not decreasing")
                    XCTAssertTrue(ts.first! < trainingSteps && ts.last! >= 0, "\(label): out of range")
                    let widest = zip(ts, ts.dropFirst()).map { $0 - $1 }.max() ?? 0
                    let stride: Int
                    switch spacing {
                    case .leading: stride = trainingSteps / s
                    case .linspace: stride = s == 1 ? 0 : (trainingSteps - 1 + s - 2) / (s - 1)
                    case .trailing: stride = (trainingSteps + s - 1) / s
                    }
                    XCTAssertLessThanOrEqual(widest, stride, label)
                    switch spacing {
                    case .leading:
                        XCTAssertEqual(ts.last, 0, label)
                        XCTAssertEqual(ts, (0..<s).reversed().map { $0 * (trainingSteps / s) }, label)
                    case .linspace:
                        XCTAssertEqual(ts.last, 0, label)
                        if s > 1 { XCTAssertEqual(ts.first, trainingSteps - 1, label) }
                    case .trailing:
                        XCTAssertEqual(ts.first, trainingSteps - 1, label)
                    }
                }
            }
        }
    }

    // MARK: prediction types, clipping, noise use

    /// An oracle that knows the clean image c, written as an eps-, x0- or v-predictor, gives the same
    /// samples with every sampler; DDIM (eta 0) and DDPM both end at c.
    func testPredictionTypesAgree() {
        let schedule = Self.schedule
        let c = Tensor.uniform([2] + Self.imageShape, low: -0.9, high: 0.9, generator: RandomGenerator(seed: 4))
        func oracle(_ type: PredictionType) -> FunctionDenoiser {
            FunctionDenoiser(prediction: type) { x, t, _ in
                let a = schedule.alphaBars[Int(t.scalars(as: Int64.self)[0])]
                let signal = Double(a.squareRoot()), noise = Double((1 - a).squareRoot())
                let eps = (x - signal * c) / noise
                switch type {
                case .epsilon: return eps
                case .x0: return c
                case .v: return signal * eps - noise * c
                case .score: return eps / -noise
                }
            }
        }
        for (name, sampler) in Self.samplers {
            let batch = SampleBatch(count: 2, imageShape: Self.imageShape)
            let samples = PredictionType.allCases.map { type in
                sampler.sample(oracle(type), schedule: schedule, noise: SeededNoise(seed: 9), batch: batch).sample
            }
            assertClose(samples[1], samples[0], relative: 1e-4, "\(name): x0 against eps prediction")
            assertClose(samples[2], samples[0], relative: 1e-4, "\(name): v against eps prediction")
            assertClose(samples[3], samples[0], relative: 1e-4, "\(name): score against eps prediction")
            if sampler.name == "ddim", sampler.options.eta == 0 {
                assertClose(samples[0], c, relative: 1e-4, "\(name): deterministic DDIM ends at the oracle's x0")
            }
            if sampler.name == "ddpm" {
                assertClose(samples[0], c, relative: 1e-4, "\(name): DDPM's last step lands on the oracle's x0")
            }
        }
    }

    /// x0 clipping (on by default) keeps DDIM's and DDPM's final samples in [-1, 1] for a model whose
    /// x0 prediction is far outside; turned off, the samples follow the model.
    func testClipping() {
        let wild = FunctionDenoiser(prediction: .x0) { x, _, _ in Tensor(repeating: 5, shape: x.shape) }
        let batch = SampleBatch(count: 2, imageShape: Self.imageShape)
        for sampler: Sampler in [.ddpm(DDPMOptions()), .ddim(DDIMOptions(steps: 5)), .ddim(DDIMOptions(steps: 5, eta: 1))] {
            let clipped = sampler.sample(wild, schedule: Self.schedule, noise: SeededNoise(seed: 1), batch: batch).sample
            XCTAssertEqual(clipped.doubleScalars().map { abs($0) }.max()!, 1, accuracy: 1e-5, "\(sampler.name) \(sampler.options.eta)")
            var open = sampler
            open.options.clipX0 = false
            let unclipped = open.sample(wild, schedule: Self.schedule, noise: SeededNoise(seed: 1), batch: batch).sample
            XCTAssertGreaterThan(unclipped.doubleScalars().map { abs($0) }.max()!, 4, "\(open.name) \(open.options.eta)")
        }
    }

    /// Step noise is drawn exactly where the sampler adds it: DDPM at every t > 0, DDIM only for eta > 0
    /// (so DDIM with eta 0 runs from an `ExplicitNoise` with no step noise).
    func testStepNoiseUse() {
        final class Counting: NoiseSource {
            let base = SeededNoise(seed: 1)
            var steps: [Int] = []
            func initialNoise(indices: [Int], imageShape: [Int]) -> Tensor {
                base.initialNoise(indices: indices, imageShape: imageShape)
            }
            func stepNoise(t: Int, indices: [Int], imageShape: [Int]) -> Tensor {
                steps.append(t)
                return base.stepNoise(t: t, indices: indices, imageShape: imageShape)
            }
        }
        let zero = FunctionDenoiser { x, _, _ in Tensor.zeros(x.shape) }
        let batch = SampleBatch(count: 1, imageShape: Self.imageShape)
        func noiseSteps(_ sampler: Sampler) -> [Int] {
            let noise = Counting()
            _ = sampler.sample(zero, schedule: Self.schedule, noise: noise, batch: batch)
            return noise.steps
        }
        XCTAssertEqual(noiseSteps(.ddpm(DDPMOptions())), Array((1..<Self.T).reversed()))
        XCTAssertEqual(noiseSteps(.ddim(DDIMOptions(steps: 8))), [])
        let listed = ddimTimesteps(steps: 8, trainingSteps: Self.T, spacing: .linspace)
        XCTAssertEqual(noiseSteps(.ddim(DDIMOptions(steps: 8, eta: 0.3, spacing: .linspace))), Array(listed.dropLast()))
        let explicit = ExplicitNoise(initial: Tensor.normal([1] + Self.imageShape, generator: RandomGenerator(seed: 2)))
        let out = sampleDDIM(zero, schedule: Self.schedule, noise: explicit, batch: batch, options: DDIMOptions(steps: 8))
        XCTAssertEqual(out.sample.shape, [1] + Self.imageShape)
    }

    /// DDIM with eta = 1 over all T timesteps is DDPM with the posterior variance (Song et al. 2021,
    /// Sec. 4.1), step for step with the same noise.
    func testDDIMWithEtaOneOverAllStepsIsDDPM() {
        let model = Self.model
        let batch = SampleBatch(count: 2, labels: [0, 2], imageShape: Self.imageShape)
        for clip in [false, true] {
            let ddpm = sampleDDPM(model, schedule: Self.schedule, noise: SeededNoise(seed: 8), batch: batch,
                                  options: DDPMOptions(variance: .posterior, clipX0: clip)).sample
            let ddim = sampleDDIM(model, schedule: Self.schedule, noise: SeededNoise(seed: 8), batch: batch,
                                  options: DDIMOptions(steps: Self.T, eta: 1, spacing: .leading, clipX0: clip)).sample
            assertClose(ddim, ddpm, relative: 1e-4, "clip \(clip)")
        }
    }

    func testTrajectory() {
        for (name, sampler) in Self.samplers {
            var recorded = sampler
            recorded.options.recordTrajectory = true
            let plain = run(sampler, Self.model, indices: [0, 1]).sample
            let out = run(recorded, Self.model, indices: [0, 1])
            XCTAssertEqual(out.trajectory.map(\.t), sampler.timesteps(trainingSteps: Self.T), name)
            XCTAssertEqual(out.sample.scalars(as: Float.self), plain.scalars(as: Float.self), "\(name): recording changed the sample")
            XCTAssertEqual(out.trajectory.first?.x.shape, [2] + Self.imageShape, name)
            XCTAssertEqual(out.trajectory.last?.predictedX0.shape, [2] + Self.imageShape, name)
            let xT = SeededNoise(seed: 11).initialNoise(indices: [0, 1], imageShape: Self.imageShape)
            XCTAssertEqual(out.trajectory.first?.x.scalars(as: Float.self), xT.scalars(as: Float.self), "\(name): starts at x_T")
        }
    }

    // MARK: noise sources

    func testSeededNoiseIsKeyedByImageAndStep() {
        let noise = SeededNoise(seed: 42)
        let shape = [4, 4, 1]
        let pair = noise.initialNoise(indices: [2, 3], imageShape: shape)
        let alone = noise.initialNoise(indices: [3], imageShape: shape)
        XCTAssertEqual(pair.sliced(axis: 0, 1..<2).scalars(as: Float.self), alone.scalars(as: Float.self))
        let reversed = noise.initialNoise(indices: [3, 2], imageShape: shape)
        XCTAssertEqual(reversed.sliced(axis: 0, 0..<1).scalars(as: Float.self), alone.scalars(as: Float.self))
        let streams = [noise.initialNoise(indices: [3], imageShape: shape), noise.stepNoise(t: 0, indices: [3], imageShape: shape),
                       noise.stepNoise(t: 1, indices: [3], imageShape: shape), noise.initialNoise(indices: [4], imageShape: shape),
                       SeededNoise(seed: 43).initialNoise(indices: [3], imageShape: shape)]
        XCTAssertEqual(Set(streams.map { $0.scalars(as: Float.self) }).count, streams.count, "every key its own stream")
        // Standard normal: 64 images x 32 steps x 16 values.
        var values: [Double] = []
        for t in 0..<32 { values += noise.stepNoise(t: t, indices: Array(0..<64), imageShape: shape).doubleScalars() }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        XCTAssertEqual(mean, 0, accuracy: 0.02)  // 5 standard errors for n = 32,768
        XCTAssertEqual(variance, 1, accuracy: 0.04)
    }

    func testExplicitNoiseRows() {
        let initial = Tensor((0..<24).map(Float.init), shape: [3, 2, 4, 1])
        let steps = Tensor((0..<(5 * 24)).map { Float($0) + 1000 }, shape: [5, 3, 2, 4, 1])
        let noise = ExplicitNoise(initial: initial, steps: steps)
        XCTAssertEqual(noise.initialNoise(indices: [2, 0], imageShape: [2, 4, 1]).scalars(as: Float.self),
                       (16..<24).map(Float.init) + (0..<8).map(Float.init))
        XCTAssertEqual(noise.stepNoise(t: 4, indices: [1], imageShape: [2, 4, 1]).scalars(as: Float.self),
                       (0..<8).map { Float(4 * 24 + 8 + $0) + 1000 })
    }

    // MARK: guidance

    /// Classifier-free guidance evaluates conditional and unconditional in one batch of 2B (y then
    /// the null label) and combines them as uncond + s (cond - uncond).
    func testClassifierFreeGuidance() {
        var calls: [(Int, [Int64])] = []
        let base = FunctionDenoiser { x, _, y in
            calls.append((x.shape[0], y!.scalars(as: Int64.self)))
            // A label-dependent output: x * (1 + label).
            let factors = y!.scalars(as: Int64.self).map { Float(1 + $0) }
            return x * Tensor(factors, shape: [factors.count, 1, 1, 1])
        }
        let x = Tensor.normal([2, 4, 4, 1], generator: RandomGenerator(seed: 1))
        let t = Tensor([Int64(5), 5], shape: [2]), y = Tensor([Int64(1), 2], shape: [2])
        for s in [0.0, 1, 3] {
            calls = []
            let guided = ClassifierFreeGuidance(base, scale: s, nullLabel: 3)(x, t: t, y: y)
            XCTAssertEqual(calls.count, 1, "one network call")
            XCTAssertEqual(calls.first?.0, 4)
            XCTAssertEqual(calls.first?.1, [1, 2, 3, 3])
            // factor: 4 + s (1 + y - 4)
            let factors = [1, 2].map { Float(4 + s * Double(1 + $0 - 4)) }
            assertClose(guided, x * Tensor(factors, shape: [2, 1, 1, 1]), relative: 1e-6, "s = \(s)")
        }
        // With the real model: s = 1 is the conditional model, s = 0 the unconditional one.
        let model = Self.model
        let xs = Tensor.normal([2] + Self.imageShape, generator: RandomGenerator(seed: 2))
        let ts = Tensor([Int64(30), 3], shape: [2]), ys = Tensor([Int64(0), 2], shape: [2])
        let null = Tensor([Int64(3), 3], shape: [2])
        assertClose(ClassifierFreeGuidance(model, scale: 1, nullLabel: 3)(xs, t: ts, y: ys), model(xs, t: ts, y: ys), "s = 1")
        assertClose(ClassifierFreeGuidance(model, scale: 0, nullLabel: 3)(xs, t: ts, y: ys), model(xs, t: ts, y: null), "s = 0")
    }

    /// Classifier guidance against a direct float64 evaluation of Dhariwal & Nichol's updates, with a
    /// constant gradient g and a model predicting eps = 0 (no clipping):
    /// DDPM (Algorithm 1): x_{t-1} = x_t / sqrt(alpha_t) + s sigma_t^2 g + sigma_t z_t;
    /// DDIM (Eq. 14): eps_hat = -s sqrt(1 - abar_t) g, x0 = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t),
    /// x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps_hat.
    func testClassifierGuidanceUpdates() {
        let schedule = Self.schedule
        let shape = [4, 4, 1], n = 16
        let zero = FunctionDenoiser { x, _, _ in Tensor.zeros(x.shape) }
        let gValues = (0..<n).map { Float($0 % 5) * 0.1 - 0.2 }
        let g = Tensor(gValues, shape: [1] + shape)
        var seenLabels: [[Int64]] = []
        let guidance = ClassifierGuidance(scale: 2.5) { x, _, y in
            seenLabels.append(y.scalars(as: Int64.self))
            return g.expanded(to: x.shape)
        }
        let noise = SeededNoise(seed: 12)
        let batch = SampleBatch(indices: [3], labels: [1], imageShape: shape)
        for variance in DDPMVariance.allCases {
            let out = sampleDDPM(zero, schedule: schedule, noise: noise, batch: batch,
                                 options: DDPMOptions(variance: variance, clipX0: false), classifierGuidance: guidance)
            var x = noise.initialNoise(indices: [3], imageShape: shape).doubleScalars()
            for t in stride(from: Self.T - 1, through: 0, by: -1) {
                let beta = Double(schedule.betas[t]), abar = Double(schedule.alphaBars[t])
                let abarPrev = t == 0 ? 1 : Double(schedule.alphaBars[t - 1])
                let sigma2 = variance == .beta ? beta : beta * (1 - abarPrev) / (1 - abar)
                let z = t > 0 ? noise.stepNoise(t: t, indices: [3], imageShape: shape).doubleScalars() : [Double](repeating: 0, count: n)
                x = (0..<n).map { i in x[i] / (1 - beta).squareRoot() + 2.5 * sigma2 * Double(gValues[i]) + sigma2.squareRoot() * z[i] }
            }
            assertClose(out.sample.doubleScalars(), x, relative: 1e-5, "DDPM \(variance)")
        }
        XCTAssertEqual(seenLabels.first, [1])
        let options = DDIMOptions(steps: 6, spacing: .trailing, clipX0: false)
        let out = sampleDDIM(zero, schedule: schedule, noise: noise, batch: batch, options: options, classifierGuidance: guidance)
        var x = noise.initialNoise(indices: [3], imageShape: shape).doubleScalars()
        let ts = ddimTimesteps(steps: 6, trainingSteps: Self.T, spacing: .trailing)
        for (i, t) in ts.enumerated() {
            let abar = Double(schedule.alphaBars[t]), abarPrev = i + 1 < ts.count ? Double(schedule.alphaBars[ts[i + 1]]) : 1
            let epsHat = gValues.map { -2.5 * (1 - abar).squareRoot() * Double($0) }
            let x0 = (0..<n).map { (x[$0] - (1 - abar).squareRoot() * epsHat[$0]) / abar.squareRoot() }
            x = (0..<n).map { abarPrev.squareRoot() * x0[$0] + (1 - abarPrev).squareRoot() * epsHat[$0] }
        }
        assertClose(out.sample.doubleScalars(), x, relative: 1e-5, "DDIM")
    }

    /// The gradient of log p(y | x) of a linear classifier (logits = W flatten(x)) is W_y - sum_k p_k W_k.
    func testClassifierLogProbabilityGradient() {
        let k = 3, d = 8
        let w = Tensor.normal([d, k], generator: RandomGenerator(seed: 3))
        let logits: (Tensor, Tensor) -> Tensor = { x, _ in Tensor.matmul(x.reshaped([x.shape[0], d]), w) }
        let x = Tensor.normal([2, 2, 4, 1], generator: RandomGenerator(seed: 4))
        let y = Tensor([Int64(2), 0], shape: [2]), t = Tensor([Int64(0), 0], shape: [2])
        // Under withoutGradients, as a sampler calls it.
        let g = withoutGradients { ClassifierGuidance.logProbabilityGradient(of: logits, x: x, t: t, y: y) }
        XCTAssertEqual(g.shape, x.shape)
        let wv = w.doubleScalars(), xv = x.doubleScalars()
        var expected: [Double] = []
        for (b, label) in [2, 0].enumerated() {
            let z = (0..<k).map { j in (0..<d).reduce(0.0) { $0 + xv[b * d + $1] * wv[$1 * k + j] } }
            let m = z.max()!, e = z.map { exp($0 - m) }, p = e.map { $0 / e.reduce(0, +) }
            expected += (0..<d).map { i in wv[i * k + label] - (0..<k).reduce(0.0) { $0 + p[$1] * wv[i * k + $1] } }
        }
        assertClose(g.doubleScalars(), expected, relative: 1e-5, "grad log p(y | x)")
    }
}
