import Foundation

/// What a diffusion network's output means. The samplers convert any of them to the pair
/// (eps, x0) they step with, given x_t and abar_t:
///
/// | case | the network predicts | eps | x0 |
/// | --- | --- | --- | --- |
/// | `epsilon` | eps (Ho et al. 2020) | out | (x_t - sqrt(1 - abar_t) out) / sqrt(abar_t) |
/// | `x0` | x0 | (x_t - sqrt(abar_t) out) / sqrt(1 - abar_t) | out |
/// | `v` | v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022) | sqrt(1 - abar_t) x_t + sqrt(abar_t) out | sqrt(abar_t) x_t - sqrt(1 - abar_t) out |
public enum PredictionType: String, CaseIterable, Sendable {
    case epsilon
    case x0
    case v

    /// The predicted noise and clean image for the network output `output` at x_t = `x` with
    /// signal level `alphaBar` (abar_t).
    ///
    /// The square roots are float32, as PyTorch's `abar[t].sqrt()` and `(1 - abar[t]).sqrt()` on a
    /// float32 schedule; each tensor op then rounds once, as PyTorch does.
    ///
    /// - Parameters:
    ///   - output: the network output (B, H, W, C).
    ///   - x: x_t, shaped like `output`.
    ///   - alphaBar: abar_t of the step (all images of a batch share one timestep).
    /// - Returns: (eps, x0), each shaped like `x`.
    public func epsilonAndX0(_ output: Tensor, x: Tensor, alphaBar: Float) -> (eps: Tensor, x0: Tensor) {
        precondition(output.shape == x.shape, "PredictionType: output \(output.shape) and x_t \(x.shape) differ")
        let signal = Double(alphaBar.squareRoot()), noise = Double((1 - alphaBar).squareRoot())
        switch self {
        case .epsilon:
            return (output, (x - noise * output) / signal)
        case .x0:
            return ((x - signal * output) / noise, output)
        case .v:
            return (noise * x + signal * output, signal * x - noise * output)
        }
    }
}

/// A diffusion model as the samplers see it: a function of (x_t, t, y) whose output is read as
/// `prediction` says (k-diffusion's "one denoiser interface").
///
/// - Input: x_t (B, H, W, C) channels-last, t int64 (B) 0-based timesteps, y int64 (B) labels or nil.
/// - Output: the network output, shaped like x_t.
///
/// `UNet` conforms (it predicts eps); `FunctionDenoiser` wraps any closure; `ClassifierFreeGuidance`
/// wraps another denoiser.
public protocol Denoiser {
    /// What the output means.
    var prediction: PredictionType { get }
    /// The network output for x_t at timesteps t with labels y.
    func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor?) -> Tensor
}

/// A denoiser made from a closure, for tests, other networks, or a model predicting x0 or v.
public struct FunctionDenoiser: Denoiser {
    public let prediction: PredictionType
    public let body: (Tensor, Tensor, Tensor?) -> Tensor

    /// - Parameters:
    ///   - prediction: what `body` returns.
    ///   - body: (x_t (B, H, W, C), t int64 (B), y int64 (B) or nil) -> output shaped like x_t.
    public init(prediction: PredictionType = .epsilon, _ body: @escaping (Tensor, Tensor, Tensor?) -> Tensor) {
        self.prediction = prediction
        self.body = body
    }

    public func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor?) -> Tensor { body(x, t, y) }
}

extension UNet: Denoiser {
    /// The reference U-Net predicts the noise eps (scripts/torch_reference/models.py's training loss). If `UNetConfig` gains
    /// a prediction type, return it here (or wrap the model in a `FunctionDenoiser`).
    public var prediction: PredictionType { .epsilon }
}
