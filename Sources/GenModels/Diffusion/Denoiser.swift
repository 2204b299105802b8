import Foundation
import GenTensor
import GenFormats
import GenNN

/// What a diffusion network's output means, and the one place where any of them is converted to the
/// others, for x_t = alpha x0 + sigma eps (`NoiseProcess`):
///
/// | case | the network predicts | eps | x0 |
/// | --- | --- | --- | --- |
/// | `epsilon` | eps (Ho et al. 2020) | out | (x_t - sigma out) / alpha |
/// | `x0` | x0 | (x_t - alpha out) / sigma | out |
/// | `v` | v = alpha eps - sigma x0 (Salimans & Ho 2022) | (sigma x_t + alpha out) / r | (alpha x_t - sigma out) / r |
/// | `score` | grad log p_t(x_t) = -eps / sigma (Song et al. 2021) | -sigma out | (x_t + sigma^2 out) / alpha |
///
/// with r = alpha^2 + sigma^2, which is 1 for a variance-preserving process (the division is then
/// skipped, so DDPM's arithmetic is unchanged).
public enum PredictionType: String, CaseIterable, Codable, Sendable {
    case epsilon
    case x0
    case v
    case score

    /// The predicted noise and clean image for the network output `output` at x_t = `x`.
    ///
    /// - Parameters:
    ///   - output: the network output (B, ...).
    ///   - x: x_t, shaped like `output`.
    ///   - signal: alpha at the step (all images of a batch share one time).
    ///   - noise: sigma at the step.
    ///   - preservesVariance: alpha^2 + sigma^2 = 1 (v is then read without dividing by it).
    /// - Returns: (eps, x0), each shaped like `x`.
    public func epsilonAndX0(_ output: Tensor, x: Tensor, signal: Double, noise: Double,
                             preservesVariance: Bool = true) -> (eps: Tensor, x0: Tensor) {
        precondition(output.shape == x.shape, "PredictionType: output \(output.shape) and x_t \(x.shape) differ")
        switch self {
        case .epsilon:
            return (output, (x - noise * output) / signal)
        case .x0:
            return ((x - signal * output) / noise, output)
        case .v:
            let eps = noise * x + signal * output, x0 = signal * x - noise * output
            if preservesVariance { return (eps, x0) }
            let r = signal * signal + noise * noise
            return (eps / r, x0 / r)
        case .score:
            let eps = -noise * output
            return (eps, (x - noise * eps) / signal)
        }
    }

    /// The same with one signal and noise level per image, for a batch whose images sit at different
    /// times (an adaptive ODE solver steps each image on its own): `signal` and `noise` are float32
    /// (B, 1, ..., 1), broadcast against x.
    public func epsilonAndX0(_ output: Tensor, x: Tensor, signal: Tensor, noise: Tensor,
                             preservesVariance: Bool = true) -> (eps: Tensor, x0: Tensor) {
        precondition(output.shape == x.shape, "PredictionType: output \(output.shape) and x_t \(x.shape) differ")
        precondition(signal.shape == noise.shape && signal.rank == x.rank && signal.shape[0] == x.shape[0]
                        && signal.shape.dropFirst().allSatisfy { $0 == 1 },
                     "PredictionType: per-image signal \(signal.shape) and noise \(noise.shape) for x_t \(x.shape)")
        switch self {
        case .epsilon:
            return (output, (x - noise * output) / signal)
        case .x0:
            return ((x - signal * output) / noise, output)
        case .v:
            let eps = noise * x + signal * output, x0 = signal * x - noise * output
            if preservesVariance { return (eps, x0) }
            let r = signal * signal + noise * noise
            return (eps / r, x0 / r)
        case .score:
            let eps = -(noise * output)
            return (eps, (x - noise * eps) / signal)
        }
    }

    /// The same for DDPM's discrete table: alpha = sqrt(abar_t) and sigma = sqrt(1 - abar_t), each
    /// rounded to float32 as PyTorch's `abar[t].sqrt()` and `(1 - abar[t]).sqrt()` on a float32 schedule.
    public func epsilonAndX0(_ output: Tensor, x: Tensor, alphaBar: Float) -> (eps: Tensor, x0: Tensor) {
        epsilonAndX0(output, x: x, signal: Double(alphaBar.squareRoot()), noise: Double((1 - alphaBar).squareRoot()))
    }

    /// The output this prediction type would give for (eps, x0) at x_t = alpha x0 + sigma eps: the
    /// inverse of `epsilonAndX0`.
    public func output(eps: Tensor, x0: Tensor, signal: Double, noise: Double) -> Tensor {
        precondition(eps.shape == x0.shape, "PredictionType: eps \(eps.shape) and x0 \(x0.shape) differ")
        switch self {
        case .epsilon: return eps
        case .x0: return x0
        case .v: return signal * eps - noise * x0
        case .score: return eps / -noise
        }
    }

    /// Converts an output of this type to `other`'s, at x_t = `x`.
    public func convert(_ output: Tensor, to other: PredictionType, x: Tensor, signal: Double, noise: Double,
                        preservesVariance: Bool = true) -> Tensor {
        let (eps, x0) = epsilonAndX0(output, x: x, signal: signal, noise: noise, preservesVariance: preservesVariance)
        return other.output(eps: eps, x0: x0, signal: signal, noise: noise)
    }
}

/// A diffusion model as the samplers see it: a function of (x_t, time, y) whose output is read as
/// `prediction` says (k-diffusion's "one denoiser interface"), in the continuous time of a
/// `NoiseProcess`.
///
/// - Input: x_t (B, ...) any shape after the batch axis; time float64 (B), each in [0, 1]; y int64
///   (B) labels or nil.
/// - Output: the network output, shaped like x_t.
///
/// A model trained on DDPM's integer timesteps is an `IndexedDenoiser`; `DiscreteTimeDenoiser` maps
/// the time back to its index exactly. `TimeFunctionDenoiser` wraps any closure;
/// `ClassifierFreeGuidance` wraps any denoiser.
public protocol Denoiser {
    /// What the output means.
    var prediction: PredictionType { get }
    /// The network output for x_t at `time` with labels y.
    func callAsFunction(_ x: Tensor, time: Tensor, y: Tensor?) -> Tensor
}

/// A model of DDPM's discrete timesteps: a function of (x_t, t, y) with t the 0-based int64 index
/// (B) into a T-step table. `UNet` conforms; `DiscreteTimeDenoiser` makes it a `Denoiser`.
///
/// A sampler that evaluates between the table's times (`ode-rk45`, whose adaptive steps land
/// anywhere) calls it with float64 fractional indices t T - 1 instead, as score_sde and DPM-Solver
/// feed a discrete-time model (`DiscreteDDPMProcess.timesteps(ofTimes:steps:)`): a sinusoidal time
/// embedding (`UNet`, `NoisyClassifier`) reads them as they are.
public protocol IndexedDenoiser {
    /// What the output means.
    var prediction: PredictionType { get }
    /// The network output for x_t at timesteps t with labels y.
    func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor?) -> Tensor
}

/// An indexed model seen in continuous time: time (i + 1) / T calls the base with index i, exactly
/// (`DiscreteDDPMProcess.index(ofTime:steps:)`); a batch with a time between the grid's calls it with
/// fractional float64 indices (`DiscreteDDPMProcess.timesteps(ofTimes:steps:)`).
public struct DiscreteTimeDenoiser<Base: IndexedDenoiser>: Denoiser {
    public let base: Base
    /// T, the table's length.
    public let steps: Int

    public init(_ base: Base, steps: Int) {
        precondition(steps >= 1, "DiscreteTimeDenoiser: T must be positive, got \(steps)")
        self.base = base
        self.steps = steps
    }

    public var prediction: PredictionType { base.prediction }

    public func callAsFunction(_ x: Tensor, time: Tensor, y: Tensor?) -> Tensor {
        base(x, t: DiscreteDDPMProcess.timesteps(ofTimes: time, steps: steps), y: y)
    }
}

/// An indexed denoiser made from a closure, for tests, other networks, or a model predicting x0 or v.
public struct FunctionDenoiser: IndexedDenoiser {
    public let prediction: PredictionType
    public let body: (Tensor, Tensor, Tensor?) -> Tensor

    /// - Parameters:
    ///   - prediction: what `body` returns.
    ///   - body: (x_t (B, ...), t int64 (B), y int64 (B) or nil) -> output shaped like x_t.
    public init(prediction: PredictionType = .epsilon, _ body: @escaping (Tensor, Tensor, Tensor?) -> Tensor) {
        self.prediction = prediction
        self.body = body
    }

    public func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor?) -> Tensor { body(x, t, y) }
}

/// A continuous-time denoiser made from a closure: (x_t (B, ...), time float64 (B), y int64 (B) or
/// nil) -> output shaped like x_t.
public struct TimeFunctionDenoiser: Denoiser {
    public let prediction: PredictionType
    public let body: (Tensor, Tensor, Tensor?) -> Tensor

    public init(prediction: PredictionType = .epsilon, _ body: @escaping (Tensor, Tensor, Tensor?) -> Tensor) {
        self.prediction = prediction
        self.body = body
    }

    public func callAsFunction(_ x: Tensor, time: Tensor, y: Tensor?) -> Tensor { body(x, time, y) }
}

extension UNet: IndexedDenoiser {
    /// The reference U-Net predicts the noise eps (the training loss of scripts/torch_reference/models.py).
    public var prediction: PredictionType { .epsilon }
}
