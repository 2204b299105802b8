import Foundation
import GenTensor
import GenFormats
import GenNN

extension SamplerDefinition {
    /// `--sampler ode-rk45`: the probability-flow ODE (Song et al. 2021, Eq. 13) by adaptive
    /// Dormand-Prince RK45 with tolerances `--rtol` and `--atol` (1e-5 each by default, score_sde's),
    /// from the process's start down to its minimum time, then the denoiser's x0. Its network
    /// evaluations depend on the data: each run reports what every image used.
    public static let adaptiveProbabilityFlow = SamplerDefinition(
        name: "ode-rk45", summary: "probability-flow ODE, adaptive Dormand-Prince RK45 (--rtol, --atol; Song et al. 2021)",
        grid: { process, _ in adaptiveProbabilityFlowGrid(process) },
        evaluations: { _, _ in nil },
        run: sampleProbabilityFlowRK45)
}

/// The times `ode-rk45` integrates between, as a grid: [T, eps, 0], with T the process's maximum
/// time and eps its minimum time (score_sde's sampling_eps: 1e-3 for VP and sub-VP, 1e-5 for VE), or
/// on DDPM's table 1 / T, its first index (so that both ends are grid times the network was trained
/// at); the last step to 0 is the denoiser's x0 at eps.
func adaptiveProbabilityFlowGrid(_ process: any NoiseProcess) -> TimeGrid {
    let start = process.maximumTime
    let end = (process as? DiscreteDDPMProcess).map { $0.time(ofIndex: 0) } ?? max(process.minimumTime, 1e-5)
    return TimeGrid(end < start ? [start, end, 0] : [start, 0])
}

/// The probability-flow ODE of Song et al. 2021, Eq. 13,
///
///     dx/dt = f(t) x - g(t)^2 s(x, t) / 2 = f(t) x + g(t)^2 / (2 sigma(t)) eps(x, t),
///
/// from x_T ~ N(0, priorStd^2 I) at T down to eps by Dormand & Prince's RK45 (`DormandPrince`: the
/// 5(4) pair of Dormand & Prince 1980 with scipy's step control), then the denoiser's x0 at eps, as
/// score_sde's ode_sampler does (scipy's solve_ivp RK45, rtol = atol = 1e-5, from T to eps = 1e-3,
/// then one denoising step). Classifier guidance adds s grad log p(y | x_t) to the score, that is
/// eps -> eps - sigma s grad.
///
/// Per-image step control: score_sde integrates the flattened batch as one system, so one image's
/// steps, and its result, depend on which images share its batch. Here every image is its own
/// system, with its own time, step size and error norm (scipy's norm over its own pixels), so image
/// i is the same whatever the batch, up to float rounding in the network (which can move an
/// accept/reject decision, a change of the size of the tolerance). A network call evaluates every
/// image still integrating, each at its own time (the denoiser's per-image time tensor); an image
/// that has reached eps leaves the batch. The state and the error norm are float64 on the host; the
/// network sees x in float32.
///
/// DDPM's table: its continuous-time extension (`DiscreteDDPMProcess`: log abar linear between grid
/// times) has a piecewise-constant beta, so f and g jump at each of the T grid times, and RK45's
/// error estimate does not see jumps of the right side (in t, scipy too ends 1e-3 off the exact
/// flow of Gaussian data at rtol 1e-5). There the same ODE is integrated against
/// lambda = log(sigma / alpha) (half the negative log-SNR, DPM-Solver's -lambda), an exact change of
/// variables for a variance-preserving process (alpha^2 = 1 / (1 + e^(2 lambda)), sigma^2 = 1 - alpha^2):
///
///     dx/dlambda = -sigma^2 x + sigma eps(x, t(lambda)),
///
/// whose coefficients are smooth in lambda (dlambda/dt = beta / (2 sigma^2) absorbs beta's jumps);
/// only the network's time input t(lambda) still bends at the grid times. (DDIM's d(x / alpha) /
/// d(sigma / alpha) = eps, Song, Meng & Ermon 2021, Eq. 14, is as smooth but costs RK45 twice the
/// evaluations on Gaussian data: 170 against 86 for scipy at rtol 1e-5.) Times between the grid's
/// reach the network as fractional indices (`DiscreteDDPMProcess.timesteps(ofTimes:steps:)`, as
/// score_sde and DPM-Solver evaluate discrete-time models).
///
/// - Parameters: as every `SamplerFunction`; `options` reads relativeTolerance and absoluteTolerance,
///   clipX0 (of the final x0), recordTrajectory (the start, where every image is at T, and the end,
///   where every image is at eps: the steps between fall at each image's own times) and
///   classifierGuidance.
/// - Returns: x_0 (B, ...). `imageEvaluations`: each image's 2 + 6 (accepted + rejected steps) RK45
///   evaluations plus the final denoising one; `denoiserCalls`: the batched calls, the most any
///   image used. An image whose integration fails (a non-finite network output, or 10,000 steps) is NaN.
public func sampleProbabilityFlowRK45(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid,
                                      noise: any NoiseSource, batch: SampleBatch, options: SamplerOptions) -> SamplerOutput {
    precondition(grid.times.last == 0, "ode-rk45: the grid must end at t = 0, got \(grid.times)")
    let start = grid.times[0], end = grid.times[grid.times.count - 2]
    let prior = priorSample(noise, process: process, batch: batch)
    let size = batch.imageShape.reduce(1, *)
    var x = prior
    var calls = 0
    var imageEvaluations = [Int](repeating: 0, count: batch.count)
    var startX0: Tensor?
    if start != end {
        let flow = ProbabilityFlowVariable(process, start: start, end: end)
        let values = prior.doubleScalars()
        let starts = (0..<batch.count).map { Array(values[($0 * size)..<(($0 + 1) * size)]) }
        let tolerance = DormandPrince.Tolerance(relative: options.relativeTolerance, absolute: options.absoluteTolerance)
        let solution = DormandPrince.integrate(starts, from: flow.start, to: flow.end, tolerance: tolerance) { systems, variables, states in
            let times = variables.map(flow.time)
            let (eps, x0) = guidedNoise(denoiser, process: process, states: states, times: times, imageShape: batch.imageShape,
                                        labels: batch.labels.map { labels in systems.map { labels[$0] } },
                                        guidance: options.classifierGuidance, wantX0: calls == 0 && options.recordTrajectory)
            if calls == 0 { startX0 = x0 }
            calls += 1
            return (0..<times.count).map { flow.derivative(state: states[$0], eps: eps[$0], time: times[$0]) }
        }
        imageEvaluations = solution.evaluations
        x = Tensor(solution.states.flatMap { $0.map(Float.init) }, shape: [batch.count] + batch.imageShape)
    }
    // score_sde's last denoising step: the denoiser's x0 at eps, where every image now is.
    var x0 = scoreAndX0(denoiser, process: process, x: x, time: end, batch: batch, guidance: options.classifierGuidance).x0
    if options.clipX0 { x0 = x0.clamped(min: -1, max: 1) }
    calls += 1
    var trajectory: [SamplerStep] = []
    if options.recordTrajectory {
        if start != end, let startX0 {
            trajectory.append(SamplerStep(time: start, t: tableIndex(process, start), x: prior, predictedX0: startX0))
        }
        trajectory.append(SamplerStep(time: end, t: tableIndex(process, end), x: x, predictedX0: x0))
    }
    return SamplerOutput(sample: x0, trajectory: trajectory, denoiserCalls: calls,
                         imageEvaluations: imageEvaluations.map { $0 + 1 })
}

/// The variable `ode-rk45` integrates x against: the time t on a continuous process, and on DDPM's
/// table lambda = log(sigma / alpha).
struct ProbabilityFlowVariable {
    let process: any NoiseProcess
    /// The table, when integrating against lambda.
    let table: DiscreteDDPMProcess?
    /// The variable at the start and the end time.
    let start: Double, end: Double
    /// The process times the integration runs between (the variable never maps outside them).
    let times: ClosedRange<Double>

    init(_ process: any NoiseProcess, start: Double, end: Double) {
        self.process = process
        table = process as? DiscreteDDPMProcess
        times = min(start, end)...max(start, end)
        if let table {
            self.start = Self.lambda(table, start)
            self.end = Self.lambda(table, end)
        } else {
            self.start = start
            self.end = end
        }
    }

    /// lambda = log(sigma / alpha) = log(1 / abar - 1) / 2.
    static func lambda(_ table: DiscreteDDPMProcess, _ t: Double) -> Double {
        0.5 * log(1 / table.alphaBar(t) - 1)
    }

    /// The process time of a value of the variable: itself, or on the table the t whose lambda it is
    /// (log abar is linear between grid times, so t follows exactly), kept within `times`.
    func time(_ variable: Double) -> Double {
        guard let table else { return variable }
        let target = -log1p(exp(2 * variable))  // log abar = -log(1 + e^(2 lambda))
        // log abar at k / T: 0 for k = 0, log abar_{k-1} after; decreasing in k.
        func level(_ k: Int) -> Double { k == 0 ? 0 : log(Double(table.schedule.alphaBars[k - 1])) }
        var low = 0, high = table.steps
        let t: Double
        if target >= level(low) {
            t = 0
        } else if target <= level(high) {
            t = 1
        } else {
            // level(low) > target >= level(high)
            while high - low > 1 {
                let middle = (low + high) / 2
                if level(middle) > target { low = middle } else { high = middle }
            }
            t = (Double(low) + (level(low) - target) / (level(low) - level(high))) / Double(table.steps)
        }
        return min(max(t, times.lowerBound), times.upperBound)
    }

    /// dx / d variable at x = `state`, whose guided noise is `eps`, at `time`: f x + g^2 / (2 sigma) eps
    /// against t, -sigma^2 x + sigma eps against lambda.
    func derivative(state: [Double], eps: [Double], time: Double) -> [Double] {
        let sigma = process.sigma(time)
        let (linear, weight): (Double, Double)
        if table != nil {
            (linear, weight) = (-sigma * sigma, sigma)
        } else {
            let g = process.diffusion(time)
            (linear, weight) = (process.driftCoefficient(time), 0.5 * g * g / sigma)
        }
        return (0..<state.count).map { linear * state[$0] + weight * eps[$0] }
    }
}

/// The guided noise eps - sigma s grad log p(y | x_t) (the score -eps / sigma plus classifier
/// guidance, `scoreAndX0`'s) of images each at its own time, from one denoiser call.
///
/// - Parameters:
///   - states: each image's x, flattened (float64).
///   - times: each image's time.
///   - labels: each image's label, or nil.
///   - wantX0: also return the x0 prediction (else nil).
/// - Returns: each image's guided eps (float64, flattened), and the x0 prediction (B, ...) when asked.
func guidedNoise(_ denoiser: any Denoiser, process: any NoiseProcess, states: [[Double]], times: [Double],
                 imageShape: [Int], labels: [Int]?, guidance: ClassifierGuidance?,
                 wantX0: Bool) -> (eps: [[Double]], x0: Tensor?) {
    let n = times.count
    let x = Tensor(states.flatMap { $0.map(Float.init) }, shape: [n] + imageShape)
    let timeTensor = Tensor(times, shape: [n])
    let labelTensor = labels.map { Tensor($0.map(Int64.init), shape: [n]) }
    let gradient = guidance.map { $0.evaluate(x, time: timeTensor, y: labelTensor) }
    let column = [n] + [Int](repeating: 1, count: imageShape.count)
    let (eps, x0) = withoutGradients { () -> (Tensor, Tensor?) in
        let output = callDenoiser(denoiser, x, time: timeTensor, y: labelTensor)
        let alpha = Tensor(times.map { Float(process.alpha($0)) }, shape: column)
        let sigma = Tensor(times.map { Float(process.sigma($0)) }, shape: column)
        var (eps, x0) = denoiser.prediction.epsilonAndX0(output, x: x, signal: alpha, noise: sigma,
                                                         preservesVariance: process.preservesVariance)
        if let guidance, let gradient {
            eps = eps - sigma * (guidance.scale * gradient)
            x0 = (x - sigma * eps) / alpha
        }
        return (eps, wantX0 ? x0 : nil)
    }
    let values = eps.doubleScalars()
    let size = values.count / max(n, 1)
    return ((0..<n).map { Array(values[($0 * size)..<(($0 + 1) * size)]) }, x0)
}
