import Foundation

/// Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Eq. 6), as a
/// denoiser wrapping a class-conditional one.
///
/// Notation (code -> paper):
/// - `base(x, t, y)` -> eps_theta(z_lambda, c), the conditional prediction;
/// - `base(x, t, nullLabel)` -> eps_theta(z_lambda), the unconditional one (the model was trained with
///   the label dropped to the null label);
/// - `scale` -> s = 1 + w: the output is eps(x, t, null) + s (eps(x, t, y) - eps(x, t, null)), so
///   s = 0 is unconditional, s = 1 conditional, s > 1 guided. (The paper writes
///   (1 + w) eps(c) - w eps(); the two forms are the same with s = 1 + w.)
///
/// Both predictions come from one call of the base denoiser on a batch of 2B: rows 0..<B carry y, rows
/// B..<2B the null label. The combination is applied to the raw output, whatever its prediction type:
/// eps, x0 and v are each affine in the output for a fixed (x_t, t), so guiding the output guides eps.
public struct ClassifierFreeGuidance<Base: Denoiser>: Denoiser {
    public let base: Base
    /// s: 0 unconditional, 1 conditional, > 1 guided.
    public let scale: Double
    /// The "no label" token (`UNetConfig.nullLabel`, 10 for Fashion-MNIST's 10 classes).
    public let nullLabel: Int

    public init(_ base: Base, scale: Double, nullLabel: Int) {
        self.base = base
        self.scale = scale
        self.nullLabel = nullLabel
    }

    public var prediction: PredictionType { base.prediction }

    /// - Input: x_t (B, H, W, C), t int64 (B), y int64 (B) (required: guidance needs a class).
    /// - Output: the guided output (B, H, W, C).
    public func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor?) -> Tensor {
        guard let y else { preconditionFailure("ClassifierFreeGuidance: labels y are required (got nil)") }
        let b = x.shape[0]
        precondition(t.shape == [b] && y.shape == [b],
                     "ClassifierFreeGuidance: t \(t.shape) and y \(y.shape) must be (\(b)) for x \(x.shape)")
        let null = Tensor([Int64](repeating: Int64(nullLabel), count: b), shape: [b])
        let out = base(Tensor.concatenate([x, x], axis: 0), t: Tensor.concatenate([t, t], axis: 0),
                       y: Tensor.concatenate([y, null], axis: 0))
        let conditional = out.sliced(axis: 0, 0..<b), unconditional = out.sliced(axis: 0, b..<(2 * b))
        return unconditional + scale * (conditional - unconditional)
    }
}
