import Foundation
import GenTensor
import GenFormats
import GenNN

/// Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis"):
/// the gradient of a noise-aware classifier's log p(y | x_t, t), scaled by s, steers the sampler.
///
/// Notation (code -> paper):
/// - `gradient(x, t, y)` -> grad_{x_t} log p_phi(y | x_t), evaluated at the current x_t;
/// - `scale` -> s, the gradient scale;
/// - DDPM (their Algorithm 1): mu <- mu + s Sigma grad, with Sigma = sigma_t^2 the variance of the
///   reverse step (`DDPMVariance`);
/// - DDIM (their Algorithm 2, Eq. 14): eps_hat = eps - s sqrt(1 - abar_t) grad, and x0 and the step
///   are then computed from eps_hat.
///
/// The samplers call `gradient` with gradient recording on (even inside `withoutGradients`), on a
/// detached x_t, and detach what it returns.
public struct ClassifierGuidance {
    /// s.
    public let scale: Double
    /// (x_t (B, ...), time (B), y int64 (B)) -> grad_{x_t} sum_i log p(y_i | x_t_i, t_i), shaped like x_t.
    /// The samplers pass float64 times in [0, 1]; `indexed(steps:)` adapts a classifier of DDPM's
    /// int64 timestep indices.
    public let gradient: (Tensor, Tensor, Tensor) -> Tensor

    /// Guidance from an explicit gradient function (the caller differentiates its own classifier).
    public init(scale: Double, gradient: @escaping (Tensor, Tensor, Tensor) -> Tensor) {
        self.scale = scale
        self.gradient = gradient
    }

    /// Guidance from a noise-aware classifier's logits: grad_x sum_i log_softmax(logits(x, t))[i, y_i].
    ///
    /// - Parameter logits: (x_t (B, H, W, C), t int64 (B)) -> logits (B, K). It must treat the images
    ///   of a batch independently (eval-mode normalisation), so that the gradient of the sum is each
    ///   image's own gradient.
    public init(scale: Double, logits: @escaping (Tensor, Tensor) -> Tensor) {
        self.init(scale: scale) { x, t, y in
            ClassifierGuidance.logProbabilityGradient(of: logits, x: x, t: t, y: y)
        }
    }

    /// grad_x sum_i log p(y_i | x_i, t_i) with p = softmax(logits(x, t)), by the engine's autodiff.
    public static func logProbabilityGradient(of logits: (Tensor, Tensor) -> Tensor, x: Tensor, t: Tensor,
                                              y: Tensor) -> Tensor {
        GradMode.with(enabled: true) {
            let input = x.detached().requiringGrad()
            let logProbabilities = logits(input, t).logSoftmax(axis: -1)
            let (b, k) = (logProbabilities.shape[0], logProbabilities.shape[1])
            precondition(logProbabilities.rank == 2 && b == x.shape[0] && y.shape == [b],
                         "ClassifierGuidance: logits \(logProbabilities.shape) and labels \(y.shape) do not match x \(x.shape)")
            var oneHot = [Float](repeating: 0, count: b * k)
            for (i, label) in y.scalars(as: Int64.self).enumerated() {
                precondition(label >= 0 && Int(label) < k, "ClassifierGuidance: label \(label) outside 0..<\(k)")
                oneHot[i * k + Int(label)] = 1
            }
            let selected = (logProbabilities * Tensor(oneHot, shape: [b, k])).sum()
            return gradients(of: selected, wrt: [input])[0].detached()
        }
    }

    /// This guidance, for a classifier of a T-step table's int64 indices, seen in continuous time:
    /// time (i + 1) / T reaches the classifier as index i (and a time between the grid's as the
    /// fractional float64 index t T - 1, `DiscreteDDPMProcess.timesteps(ofTimes:steps:)`).
    public func indexed(steps: Int) -> ClassifierGuidance {
        let indexedGradient = gradient
        return ClassifierGuidance(scale: scale) { x, time, y in
            indexedGradient(x, DiscreteDDPMProcess.timesteps(ofTimes: time, steps: steps), y)
        }
    }

    /// The guidance gradient at (x, time, y), detached, with recording on whatever the caller's mode.
    func evaluate(_ x: Tensor, time: Tensor, y: Tensor?) -> Tensor {
        guard let y else { preconditionFailure("ClassifierGuidance: labels y are required (got nil)") }
        let g = GradMode.with(enabled: true) { gradient(x.detached(), time, y) }.detached()
        precondition(g.shape == x.shape, "ClassifierGuidance: gradient \(g.shape) is not shaped like x_t \(x.shape)")
        return g
    }
}
