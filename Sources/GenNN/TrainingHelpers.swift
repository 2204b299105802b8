import RealModule
import GenTensor
import GenFormats

/// An exponential moving average of a module's parameters (Polyak averaging), with an optional
/// warm-up: decay_n = min(decay, (1 + n) / (10 + n)) at update n, so that early averages are not
/// dominated by the random initialisation.
public final class ExponentialMovingAverage {
    /// The averaged copies, in the order of the tracked parameters.
    public let shadows: [Tensor]
    public let parameters: [Parameter]
    public let decay: Double
    public let warmup: Bool
    public private(set) var updates: Int

    /// Starts the average at the parameters' current values (buffers are copied, not averaged).
    public init(_ parameters: [Parameter], decay: Double = 0.999, warmup: Bool = true) {
        self.parameters = parameters
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        shadows = parameters.map { $0.value.copied() }
    }

    /// The decay used at the next update.
    public var currentDecay: Double {
        warmup ? min(decay, Double(1 + updates) / Double(10 + updates)) : decay
    }

    /// shadow <- d shadow + (1 - d) value for trainable parameters; buffers are copied.
    public func update() {
        let rule = ParameterUpdate.movingAverage(decay: Float(currentDecay))
        let backend = Backend.current
        for (p, s) in zip(parameters, shadows) {
            if p.isTrainable && s.dtype == .float32 {
                backend.update(rule, parameter: s, gradient: p.value, state: [])
            } else {
                s.assign(p.value)
            }
        }
        updates += 1
    }

    /// Restores the update count (checkpoint loading; the shadow values are copied in separately).
    public func restore(updates: Int) { self.updates = updates }
}

/// Learning-rate schedules as pure functions of the step.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate at every step.
    case constant
    /// Linear warm-up from 0 over `warmupSteps`, then constant.
    case linearWarmup(warmupSteps: Int)
    /// Linear warm-up, then cosine decay to `minFactor` times the base rate at `totalSteps`.
    case cosine(warmupSteps: Int, totalSteps: Int, minFactor: Double)

    /// The rate at `step` (0-based) for base rate `base`.
    public func rate(at step: Int, base: Double) -> Double {
        switch self {
        case .constant:
            return base
        case let .linearWarmup(w):
            return w > 0 && step < w ? base * Double(step + 1) / Double(w) : base
        case let .cosine(w, total, minFactor):
            if w > 0 && step < w { return base * Double(step + 1) / Double(w) }
            let progress = min(1, Double(step - w) / Double(max(total - w, 1)))
            return base * (minFactor + (1 - minFactor) * 0.5 * (1 + Double.cos(Double.pi * progress)))
        }
    }
}

/// The global L2 norm of gradients (all tensors together, as PyTorch's `clip_grad_norm_` measures
/// it), summed in float64.
public func globalGradientNorm(_ gradients: [Tensor]) -> Double {
    withoutGradients {
        gradients.reduce(0.0) { total, g in total + g.cast(to: .float64).square().sum().item }.squareRoot()
    }
}

/// Scales gradients in place so that their global L2 norm is at most `maxNorm` (PyTorch's
/// `clip_grad_norm_`, with its 1e-6 in the denominator). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: [Tensor], maxNorm: Double) -> Double {
    let norm = globalGradientNorm(gradients)
    let scale = maxNorm / (norm + 1e-6)
    if scale < 1 {
        withoutGradients {
            for g in gradients { g.assign(g * Double(Float(scale))) }
        }
    }
    return norm
}
