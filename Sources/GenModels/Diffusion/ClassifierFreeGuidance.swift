import Foundation
import GenTensor
import GenFormats
import GenNN

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
///
/// It wraps any denoiser: a continuous-time `Denoiser` gives a `Denoiser`, an `IndexedDenoiser` an
/// `IndexedDenoiser`.
public struct ClassifierFreeGuidance<Base> {
    public let base: Base
    /// s: 0 unconditional, 1 conditional, > 1 guided.
    public let scale: Double
    /// The "no label" token (`UNetConfig.nullLabel`, 10 for Fashion-MNIST's 10 classes).
    public let nullLabel: Int
    private let basePrediction: PredictionType

    /// The prediction type of the wrapped model.
    public var prediction: PredictionType { basePrediction }

    /// - Input: x_t (B, ...), the time argument (B) of the base (float64 times or int64 indices), y
    ///   int64 (B) (required: guidance needs a class); `call` runs the base on the doubled batch.
    /// - Output: the guided output, shaped like x_t.
    private func guided(_ x: Tensor, _ t: Tensor, _ y: Tensor?, _ call: (Tensor, Tensor, Tensor) -> Tensor) -> Tensor {
        guard let y else { preconditionFailure("ClassifierFreeGuidance: labels y are required (got nil)") }
        let b = x.shape[0]
        precondition(t.shape == [b] && y.shape == [b],
                     "ClassifierFreeGuidance: t \(t.shape) and y \(y.shape) must be (\(b)) for x \(x.shape)")
        let null = Tensor([Int64](repeating: Int64(nullLabel), count: b), shape: [b])
        let out = call(Tensor.concatenate([x, x], axis: 0), Tensor.concatenate([t, t], axis: 0),
                       Tensor.concatenate([y, null], axis: 0))
        let conditional = out.sliced(axis: 0, 0..<b), unconditional = out.sliced(axis: 0, b..<(2 * b))
        return unconditional + scale * (conditional - unconditional)
    }
}

extension ClassifierFreeGuidance: Denoiser where Base: Denoiser {
    public init(_ base: Base, scale: Double, nullLabel: Int) {
        self.base = base
        self.scale = scale
        self.nullLabel = nullLabel
        basePrediction = base.prediction
    }

    public func callAsFunction(_ x: Tensor, time: Tensor, y: Tensor?) -> Tensor {
        guided(x, time, y) { base($0, time: $1, y: $2) }
    }
}

extension ClassifierFreeGuidance: IndexedDenoiser where Base: IndexedDenoiser {
    public init(_ base: Base, scale: Double, nullLabel: Int) {
        self.base = base
        self.scale = scale
        self.nullLabel = nullLabel
        basePrediction = base.prediction
    }

    public func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor?) -> Tensor {
        guided(x, t, y) { base($0, t: $1, y: $2) }
    }
}
