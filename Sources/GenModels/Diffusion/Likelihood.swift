import Foundation
import GenTensor
import GenFormats
import GenNN

/// How the divergence of the probability-flow drift is computed.
public enum TraceEstimator: Sendable, Equatable {
    /// The exact trace of the Jacobian: one backward pass per dimension of an image (small shapes).
    case exact
    /// Hutchinson's estimator E[z^T J z] with `probes` Gaussian probes per evaluation, keyed by image
    /// index (Grathwohl et al. 2019; score_sde's default): one backward pass per probe.
    case hutchinson(probes: Int)
    /// Hutchinson's estimator with Rademacher (+1/-1) probes, keyed the same way: a lower variance
    /// than Gaussian probes (score_sde's default).
    case rademacher(probes: Int)
}

/// Options of `probabilityFlowLogLikelihood`.
public struct LikelihoodOptions: Sendable, Equatable {
    /// RK4 steps from the start time to the process's maximum time, uniform in sqrt(t - start).
    public var steps: Int
    /// The divergence: exact, or Hutchinson's estimate.
    public var trace: TraceEstimator
    /// Where the integration starts (score_sde's eps).
    public var startTime: Double

    public init(steps: Int = 100, trace: TraceEstimator = .hutchinson(probes: 1), startTime: Double = 1e-5) {
        precondition(steps >= 1, "LikelihoodOptions: steps must be at least 1, got \(steps)")
        self.steps = steps
        self.trace = trace
        self.startTime = startTime
    }

    /// The RK4 grid from `startTime` to `end`, `steps` steps uniform in sqrt(t - startTime): the flow
    /// changes fastest near the data (small t), where a uniform grid's first step would already
    /// cover a hundredth of the whole interval.
    public func times(to end: Double) -> [Double] {
        (0...steps).map { k in
            let u = Double(k) / Double(steps)
            return startTime + (end - startTime) * u * u
        }
    }
}

/// The log-likelihood log p_0(x) of each image by the instantaneous change of variables along the
/// probability-flow ODE (Song et al. 2021, Sec. 4.3 and Appendix D.2; Chen et al. 2018):
///
///     log p_eps(x_eps) = log p_T(x_T) + integral from eps to T of div f~(x_t, t) dt,
///     f~(x, t) = f(t) x - g(t)^2 s(x, t) / 2,
///
/// integrated forward from the data with RK4 on steps uniform in sqrt(t - eps), with the prior N(0, priorStd^2 I) at the
/// process's maximum time.
///
/// - Parameters:
///   - denoiser: the model in continuous time (any prediction type); it must be differentiable in x.
///   - process: the continuous noise process it was trained on (VP, sub-VP, VE).
///   - x: the data (B, ...), in the model's scale (for images, [-1, 1]).
///   - labels: one label per image for a conditional model, else nil.
///   - indices: the images' indices in the run (they key Hutchinson's probes); 0..<B by default.
///   - seed: the seed of Hutchinson's probes.
///   - progress: called after each RK4 step with the fraction done.
/// - Returns: log p(x_i) in nats, one per image.
public func probabilityFlowLogLikelihood(_ denoiser: any Denoiser, process: any NoiseProcess, x: Tensor,
                                         labels: [Int]? = nil, indices: [Int]? = nil, seed: UInt64 = 0,
                                         options: LikelihoodOptions = LikelihoodOptions(),
                                         progress: ((Double) -> Void)? = nil) -> [Double] {
    precondition(!(process is DiscreteDDPMProcess),
                 "probabilityFlowLogLikelihood: a model of DDPM's table is evaluated only at its own timesteps; its likelihood is the variational bound")
    let batch = SampleBatch(indices: indices ?? Array(0..<x.shape[0]), labels: labels, imageShape: Array(x.shape.dropFirst()))
    let probes = SeededNoise(seed: seed)

    /// (drift, divergence per image) at (x, t); `step` keys the probes.
    func field(_ x: Tensor, _ t: Double, _ step: Int) -> (Tensor, [Double]) {
        GradMode.with(enabled: true) {
            let input = x.detached().requiringGrad()
            let output = denoiser(input, time: batch.times(t), y: batch.labelTensor)
            let alpha = process.alpha(t), sigma = process.sigma(t)
            let eps = denoiser.prediction.epsilonAndX0(output, x: input, signal: alpha, noise: sigma,
                                                       preservesVariance: process.preservesVariance).eps
            let drift = reverseDrift(process, x: input, score: eps * (-1 / sigma), time: t, ode: true)
            let divergence = jacobianTrace(of: drift, at: input, estimator: options.trace, probes: probes, key: step, batch: batch)
            return (drift.detached(), divergence)
        }
    }

    var state = x.detached()
    var logDensityChange = [Double](repeating: 0, count: batch.count)
    let grid = options.times(to: process.maximumTime)
    for k in 0..<options.steps {
        let t = grid[k], h = grid[k + 1] - grid[k]
        let (d1, v1) = field(state, t, 4 * k)
        let (d2, v2) = field(state + (h / 2) * d1, t + h / 2, 4 * k + 1)
        let (d3, v3) = field(state + (h / 2) * d2, t + h / 2, 4 * k + 2)
        let (d4, v4) = field(state + h * d3, t + h, 4 * k + 3)
        state = withoutGradients { state + (h / 6) * (d1 + 2 * d2 + 2 * d3 + d4) }
        for i in 0..<batch.count { logDensityChange[i] += h / 6 * (v1[i] + 2 * v2[i] + 2 * v3[i] + v4[i]) }
        progress?(Double(k + 1) / Double(options.steps))
    }
    let prior = process.priorStandardDeviation
    let dimensions = Double(state.elementCount / batch.count)
    let squaredNorms = withoutGradients { state.square().reshaped([batch.count, state.elementCount / batch.count]).sum(axes: [1]) }
        .doubleScalars()
    return (0..<batch.count).map { i in
        let priorLog = -0.5 * dimensions * log(2 * Double.pi * prior * prior) - squaredNorms[i] / (2 * prior * prior)
        return priorLog + logDensityChange[i]
    }
}

/// Bits per dimension of 8-bit data from the log-density of its dequantised, [-1, 1]-scaled copy
/// (x = 2 (v + u) / 256 - 1 with u uniform in [0, 1)): -(log p(x) + D log 2) / (D ln 2) + 8.
public func bitsPerDimension(logLikelihood: Double, dimensions: Int) -> Double {
    let d = Double(dimensions)
    return -(logLikelihood + d * log(2)) / (d * log(2)) + 8
}

/// The trace of d output / d input for each image: exact (a backward pass per dimension, the probe
/// e_j for every image at once) or Hutchinson's z^T J z with Gaussian probes keyed by image and `key`.
func jacobianTrace(of output: Tensor, at input: Tensor, estimator: TraceEstimator, probes: SeededNoise, key: Int,
                   batch: SampleBatch) -> [Double] {
    let b = batch.count, d = input.elementCount / b
    var traces = [Double](repeating: 0, count: b)
    func accumulate(_ probe: Tensor, weight: Double) {
        let vjp = gradients(of: (output * probe).sum(), wrt: [input], seed: nil, createGraph: false)[0]
        let products = withoutGradients { (vjp * probe).reshaped([b, d]).sum(axes: [1]) }.doubleScalars()
        for i in 0..<b { traces[i] += weight * products[i] }
    }
    switch estimator {
    case .exact:
        for j in 0..<d {
            var oneHot = [Float](repeating: 0, count: b * d)
            for i in 0..<b { oneHot[i * d + j] = 1 }
            accumulate(Tensor(oneHot, shape: input.shape), weight: 1)
        }
    case let .hutchinson(count):
        for p in 0..<count {
            let z = probes.stepNoise(t: key * 64 + p, indices: batch.indices, imageShape: batch.imageShape)
            accumulate(z, weight: 1 / Double(count))
        }
    case let .rademacher(count):
        for p in 0..<count {
            let z = probes.stepNoise(t: key * 64 + p, indices: batch.indices, imageShape: batch.imageShape)
            accumulate(withoutGradients { z.greater(0) * 2 - 1 }, weight: 1 / Double(count))
        }
    }
    return traces
}
