import Foundation
import GenTensor
import GenFormats
import GenNN

/// A diffusion's forward process in continuous time t in [0, 1] (Song et al. 2021, "Score-Based
/// Generative Modeling through Stochastic Differential Equations"):
///
///     dx = f(t) x dt + g(t) dw,   so that   x_t | x_0 ~ N(alpha(t) x_0, sigma(t)^2 I).
///
/// t = 0 is clean data (alpha = 1 and sigma = 0 for the discrete table; `minimumTime` says where a
/// continuous process's samplers and training stop), t = 1 the prior N(0, `priorStandardDeviation`^2 I).
/// Every quantity is a scalar of t: a process never assumes an image shape, so a latent is just
/// another shape.
///
/// | process | alpha(t) | sigma(t)^2 | f(t) | g(t)^2 |
/// | --- | --- | --- | --- | --- |
/// | `DiscreteDDPMProcess` | sqrt(abar_i) at t = (i + 1) / T | 1 - abar_i | -beta(t) / 2 | beta(t) = T beta_i |
/// | `VPProcess` (linear, cosine) | exp(-B(t) / 2), B = integral of beta | 1 - alpha^2 | -beta(t) / 2 | beta(t) |
/// | `SubVPProcess` | exp(-B(t) / 2) | (1 - alpha^2)^2 | -beta(t) / 2 | beta(t) (1 - alpha^4) |
/// | `VEProcess` | 1 | sigma_min^2 (sigma_max / sigma_min)^(2t) | 0 | d sigma^2 / dt |
public protocol NoiseProcess: Sendable {
    /// The signal scale alpha(t).
    func alpha(_ t: Double) -> Double
    /// The noise standard deviation sigma(t).
    func sigma(_ t: Double) -> Double
    /// The drift coefficient f(t) of dx = f(t) x dt + g(t) dw (every process here has a linear drift).
    func driftCoefficient(_ t: Double) -> Double
    /// The diffusion coefficient g(t).
    func diffusion(_ t: Double) -> Double
    /// The smallest time samplers step to and training draws (score_sde's eps; 0 for the discrete table).
    var minimumTime: Double { get }
    /// The largest time samplers start from (1, except where the process degenerates at 1).
    var maximumTime: Double { get }
    /// The standard deviation of the prior at t = 1 (1 for VP and sub-VP, sigma_max for VE).
    var priorStandardDeviation: Double { get }
    /// Whether alpha^2 + sigma^2 = 1 at every t (DDPM's table and VP): v-prediction is then read
    /// without dividing by alpha^2 + sigma^2.
    var preservesVariance: Bool { get }
    /// abar(t) = alpha(t)^2, the signal level the DDPM and DDIM samplers step with. The discrete
    /// table returns its float32 entries exactly (widened to Double), so samplers that round it back
    /// to float32 compute what they computed on the table.
    func alphaBar(_ t: Double) -> Double
    /// The beta of one sampler step from time `from` down to `to` (< from): 1 - abar(from) / abar(to),
    /// in float32. The discrete table returns its own beta_i for a single-index step.
    func stepBeta(from: Double, to: Double) -> Float
    /// The key of the fresh noise z that a sampler step leaving time t draws (`NoiseSource.stepNoise`):
    /// the table's index for the discrete process, so its samples keep their noise; round(t 1e6) otherwise.
    func noiseKey(ofTime t: Double) -> Int
}

extension NoiseProcess {
    public var minimumTime: Double { 0 }
    public var maximumTime: Double { 1 }
    public var priorStandardDeviation: Double { 1 }
    public var preservesVariance: Bool { false }
    public func alphaBar(_ t: Double) -> Double { alpha(t) * alpha(t) }
    public func stepBeta(from: Double, to: Double) -> Float { Float(1 - alphaBar(from) / alphaBar(to)) }
    public func noiseKey(ofTime t: Double) -> Int { Int((t * 1e6).rounded()) }

    /// The drift f(x, t) = f(t) x, shaped like x.
    public func drift(_ x: Tensor, t: Double) -> Tensor { driftCoefficient(t) * x }

    /// The forward process q(x_t | x_0): alpha(t) x0 + sigma(t) eps, with one time per image.
    ///
    /// - Parameters:
    ///   - x0: clean samples (B, ...), any shape after the batch axis.
    ///   - times: B times in [0, 1].
    ///   - eps: standard normal noise shaped like x0.
    /// - Returns: x_t shaped like x0 (differentiable in x0 and eps).
    public func noised(x0: Tensor, times: [Double], eps: Tensor) -> Tensor {
        precondition(x0.shape == eps.shape, "NoiseProcess.noised: x0 \(x0.shape) and eps \(eps.shape) differ")
        precondition(x0.rank >= 1 && times.count == x0.shape[0],
                     "NoiseProcess.noised: \(times.count) times for a batch of \(x0.shape)")
        let shape = [times.count] + [Int](repeating: 1, count: x0.rank - 1)
        let signal = Tensor(times.map { Float(alpha($0)) }, shape: shape).cast(to: x0.dtype)
        let noise = Tensor(times.map { Float(sigma($0)) }, shape: shape).cast(to: x0.dtype)
        return signal * x0 + noise * eps
    }
}

/// The variance-preserving SDE (Song et al. 2021, Eq. 11): dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw,
/// with beta linear from `betaMin` to `betaMax` (score_sde's 0.1 and 20), or Nichol & Dhariwal's cosine.
public struct VPProcess: NoiseProcess, Equatable {
    /// How beta(t) runs over [0, 1].
    public enum Schedule: Sendable, Equatable {
        /// beta(t) = betaMin + t (betaMax - betaMin).
        case linear(betaMin: Double, betaMax: Double)
        /// alpha(t)^2 = cos^2(((t + s) / (1 + s)) pi / 2) / cos^2((s / (1 + s)) pi / 2) (Nichol & Dhariwal 2021, Eq. 17).
        case cosine(offset: Double)
    }

    public let schedule: Schedule
    public let minimumTime: Double

    /// - Parameters:
    ///   - schedule: linear (0.1 to 20 by default) or cosine.
    ///   - minimumTime: where sampling ends (score_sde: 1e-3 for VP sampling, 1e-5 for training and likelihood).
    public init(schedule: Schedule = .linear(betaMin: 0.1, betaMax: 20), minimumTime: Double = 1e-3) {
        self.schedule = schedule
        self.minimumTime = minimumTime
    }

    /// The cosine schedule with s = 0.008.
    public static func cosine(minimumTime: Double = 1e-3) -> VPProcess { VPProcess(schedule: .cosine(offset: 0.008), minimumTime: minimumTime) }

    public var preservesVariance: Bool { true }

    /// 1 for the linear schedule; 0.9946 for the cosine one, whose beta diverges and alpha reaches 0 at
    /// t = 1 (the end DPM-Solver uses for it, Lu et al. 2022).
    public var maximumTime: Double {
        if case .cosine = schedule { return 0.9946 }
        return 1
    }

    /// B(t) = integral from 0 to t of beta, so that alpha(t)^2 = exp(-B(t)).
    public func integratedBeta(_ t: Double) -> Double {
        switch schedule {
        case let .linear(b0, b1): return b0 * t + 0.5 * (b1 - b0) * t * t
        case let .cosine(s):
            let c = cos((t + s) / (1 + s) * .pi / 2), c0 = cos(s / (1 + s) * .pi / 2)
            return -2 * log(c / c0)
        }
    }

    /// beta(t) = dB/dt.
    public func beta(_ t: Double) -> Double {
        switch schedule {
        case let .linear(b0, b1): return b0 + t * (b1 - b0)
        case let .cosine(s): return .pi / (1 + s) * tan((t + s) / (1 + s) * .pi / 2)
        }
    }

    public func alpha(_ t: Double) -> Double { exp(-0.5 * integratedBeta(t)) }
    public func sigma(_ t: Double) -> Double { (-expm1(-integratedBeta(t))).squareRoot() }
    public func alphaBar(_ t: Double) -> Double { exp(-integratedBeta(t)) }
    public func driftCoefficient(_ t: Double) -> Double { -0.5 * beta(t) }
    public func diffusion(_ t: Double) -> Double { beta(t).squareRoot() }
}

/// The sub-VP SDE (Song et al. 2021, Eq. 12): the VP drift with g(t)^2 = beta(t) (1 - exp(-2 B(t))),
/// whose marginal variance (1 - exp(-B(t)))^2 stays below the VP one.
public struct SubVPProcess: NoiseProcess, Equatable {
    public let vp: VPProcess

    /// - Parameters: as `VPProcess` (linear 0.1 to 20 by default).
    public init(schedule: VPProcess.Schedule = .linear(betaMin: 0.1, betaMax: 20), minimumTime: Double = 1e-3) {
        vp = VPProcess(schedule: schedule, minimumTime: minimumTime)
    }

    public var minimumTime: Double { vp.minimumTime }
    public var maximumTime: Double { vp.maximumTime }
    public func alpha(_ t: Double) -> Double { vp.alpha(t) }
    public func sigma(_ t: Double) -> Double { -expm1(-vp.integratedBeta(t)) }
    public func driftCoefficient(_ t: Double) -> Double { vp.driftCoefficient(t) }
    public func diffusion(_ t: Double) -> Double { (vp.beta(t) * -expm1(-2 * vp.integratedBeta(t))).squareRoot() }
}

/// The variance-exploding SDE (Song et al. 2021, Eq. 9): dx = sqrt(d sigma^2 / dt) dw with geometric
/// sigma(t) = sigma_min (sigma_max / sigma_min)^t, alpha = 1.
///
/// As score_sde, sigma(t) is the perturbation kernel's standard deviation from clean data (the SDE
/// started at t = 0 with variance sigma_min^2 reaches exactly sigma(t)^2).
public struct VEProcess: NoiseProcess, Equatable {
    public let sigmaMin: Double
    public let sigmaMax: Double
    public let minimumTime: Double

    /// - Parameters:
    ///   - sigmaMin: 0.01 (score_sde).
    ///   - sigmaMax: about the largest distance between two training images at the data's scale
    ///     (Song & Ermon 2020, technique 1).
    ///   - minimumTime: 1e-5 (score_sde).
    public init(sigmaMin: Double = 0.01, sigmaMax: Double, minimumTime: Double = 1e-5) {
        precondition(sigmaMin > 0 && sigmaMax > sigmaMin, "VEProcess: need 0 < sigma_min < sigma_max, got \(sigmaMin), \(sigmaMax)")
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
        self.minimumTime = minimumTime
    }

    public var priorStandardDeviation: Double { sigmaMax }
    public func alpha(_ t: Double) -> Double { 1 }
    public func sigma(_ t: Double) -> Double { sigmaMin * pow(sigmaMax / sigmaMin, t) }
    public func driftCoefficient(_ t: Double) -> Double { 0 }
    public func diffusion(_ t: Double) -> Double { sigma(t) * (2 * log(sigmaMax / sigmaMin)).squareRoot() }
}

/// DDPM's discrete table (Ho et al. 2020) as a process: index i of T sits at time t_i = (i + 1) / T,
/// and t = 0 is the clean data (abar = 1). Between the grid points, log abar is interpolated linearly,
/// so beta(t) = T beta_i on ((i) / T, (i + 1) / T], the VP SDE the table discretises.
///
/// `index(ofTime:)` maps a grid time back to its index exactly, so a model trained on indices sees
/// the same integers it always did.
public struct DiscreteDDPMProcess: NoiseProcess, Equatable {
    public let schedule: NoiseSchedule

    public init(schedule: NoiseSchedule) { self.schedule = schedule }

    /// T.
    public var steps: Int { schedule.steps }
    public var preservesVariance: Bool { true }

    /// The time of index i: (i + 1) / T.
    public func time(ofIndex i: Int) -> Double {
        precondition(i >= 0 && i < steps, "DiscreteDDPMProcess: index \(i) outside 0..<\(steps)")
        return Double(i + 1) / Double(steps)
    }

    /// The index of a grid time, exactly (a time off the grid is a programming error).
    public func index(ofTime t: Double) -> Int { Self.index(ofTime: t, steps: steps) }

    /// The index i of the grid time t = (i + 1) / T of a T-step table.
    public static func index(ofTime t: Double, steps: Int) -> Int {
        let scaled = t * Double(steps)
        let i = Int(scaled.rounded()) - 1
        precondition(i >= 0 && i < steps && abs(scaled - Double(i + 1)) < 1e-6,
                     "DiscreteDDPMProcess: time \(t) is not on the grid of \(steps) steps")
        return i
    }

    /// Float64 times (B) -> the int64 indices (B) of a T-step table.
    public static func indices(ofTimes times: Tensor, steps: Int) -> Tensor {
        precondition(times.rank == 1 && times.dtype == .float64,
                     "DiscreteDDPMProcess: times must be float64 (B), got \(times.dtype) \(times.shape)")
        let indices = times.scalars(as: Double.self).map { Int64(index(ofTime: $0, steps: steps)) }
        return Tensor(indices, shape: [indices.count])
    }

    /// Float64 times (B) -> what a model of a T-step table is called with: int64 indices when every
    /// time is on the grid (`indices(ofTimes:steps:)`), else float64 indices t T - 1, fractional
    /// between grid times and whole on them (score_sde's "continuous labels" t (N - 1) and DPM-Solver's
    /// 1000 (t - 1 / N) for discrete-time models, in this table's time). Times must lie in [1 / T, 1],
    /// indices 0 ... T - 1.
    public static func timesteps(ofTimes times: Tensor, steps: Int) -> Tensor {
        precondition(times.rank == 1 && times.dtype == .float64,
                     "DiscreteDDPMProcess: times must be float64 (B), got \(times.dtype) \(times.shape)")
        var fractional = false
        let indices = times.scalars(as: Double.self).map { t -> Double in
            let scaled = t * Double(steps), nearest = scaled.rounded()
            precondition(scaled >= 1 - 1e-6 && scaled <= Double(steps) + 1e-6,
                         "DiscreteDDPMProcess: time \(t) is outside the \(steps)-step table's [1 / T, 1]")
            if abs(scaled - nearest) < 1e-6 { return nearest - 1 }
            fractional = true
            return scaled - 1
        }
        if !fractional { return Tensor(indices.map { Int64($0) }, shape: [indices.count]) }
        return Tensor(indices, shape: [indices.count])
    }

    /// Int64 indices (B) -> their float64 grid times (B).
    public func times(ofIndices t: Tensor) -> Tensor {
        precondition(t.rank == 1 && t.dtype == .int64, "DiscreteDDPMProcess: t must be int64 (B), got \(t.dtype) \(t.shape)")
        let times = t.scalars(as: Int64.self).map { time(ofIndex: Int($0)) }
        return Tensor(times, shape: [times.count])
    }

    /// abar at t: the table's float32 entry on the grid, 1 at t = 0, log-linear in between.
    public func alphaBar(_ t: Double) -> Double {
        precondition(t >= 0 && t <= 1, "DiscreteDDPMProcess: time \(t) outside [0, 1]")
        let scaled = t * Double(steps)
        let nearest = scaled.rounded()
        if abs(scaled - nearest) < 1e-9 {
            return nearest == 0 ? 1 : Double(schedule.alphaBars[Int(nearest) - 1])
        }
        let below = Int(scaled.rounded(.down)), fraction = scaled - Double(below)
        let low = below == 0 ? 0 : log(Double(schedule.alphaBars[below - 1]))
        let high = log(Double(schedule.alphaBars[below]))
        return exp(low + fraction * (high - low))
    }

    public func alpha(_ t: Double) -> Double { alphaBar(t).squareRoot() }
    public func sigma(_ t: Double) -> Double { (1 - alphaBar(t)).squareRoot() }

    /// T beta_i on the interval of index i (i / T, (i + 1) / T].
    public func beta(_ t: Double) -> Double {
        let i = min(steps - 1, max(0, Int((t * Double(steps)).rounded(.up)) - 1))
        let previous = i == 0 ? 1 : Double(schedule.alphaBars[i - 1])
        return -Double(steps) * log(Double(schedule.alphaBars[i]) / previous)
    }

    public func driftCoefficient(_ t: Double) -> Double { -0.5 * beta(t) }
    public func diffusion(_ t: Double) -> Double { beta(t).squareRoot() }

    public func noiseKey(ofTime t: Double) -> Int { index(ofTime: t) }

    /// The table's own beta_i when the step goes from index i to index i - 1 (or to t = 0 from i = 0).
    public func stepBeta(from: Double, to: Double) -> Float {
        let i = index(ofTime: from)
        if to == 0 ? i == 0 : index(ofTime: to) == i - 1 { return schedule.betas[i] }
        return Float(1 - alphaBar(from) / alphaBar(to))
    }
}
