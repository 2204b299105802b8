import RealModule
import GenTensor
import GenFormats

/// An optimizer: per-parameter state plus an update rule applied in place to the parameters.
/// Update rules follow PyTorch's `torch.optim` exactly (the fixtures check three steps of each).
public protocol Optimizer: AnyObject {
    /// The parameters it updates, in order.
    var parameters: [Parameter] { get }
    /// The learning rate (schedules set it before each step).
    var learningRate: Double { get set }
    /// Applies one update, with one gradient per parameter (same order, same shapes).
    func step(_ gradients: [Tensor])
    /// The optimizer's state tensors under stable names (for checkpoints): per-parameter state is
    /// named `INDEX.NAME` (INDEX into `parameters`), global state by its name alone.
    var namedState: [(String, Tensor)] { get }
    /// Restores state written by `namedState` (a checkpoint); fails on a missing or misshapen tensor.
    func loadState(_ state: [String: Tensor]) throws
    /// What the optimizer keeps of its last step's gradients, and its clipping bound.
    var gradientRecord: GradientRecord { get set }
}

/// Combines one replica's gradients with the other data-parallel replicas' in place (each tensor
/// `assign`ed its combined value), so that every replica takes the same step.
public protocol GradientReducer: AnyObject {
    func reduce(_ gradients: [Tensor])
}

/// An optimizer's last step's gradients (kept for `lastGradientNorm`) and the optional clipping
/// bound applied to each step's gradients before the update.
public struct GradientRecord {
    /// The gradients of the last step (empty before the first).
    public private(set) var gradients: [Tensor] = []
    /// When set, each step first scales its gradients so that their global L2 norm is at most this
    /// (`clipGradientNorm`, PyTorch's `clip_grad_norm_`).
    public var maxNorm: Double?
    /// The last step's gradient norm before clipping, when it clipped (nil otherwise).
    public private(set) var normBeforeClipping: Double?

    public init() {}

    /// When set, each step first combines its gradients with those of the other data-parallel
    /// replicas (in place), before clipping.
    public var reducer: GradientReducer?

    /// Reduces and clips `gradients` in place when asked, and keeps them: the start of every `step`.
    mutating func take(_ gradients: [Tensor]) {
        reducer?.reduce(gradients)
        normBeforeClipping = maxNorm.map { clipGradientNorm(gradients, maxNorm: $0) }
        self.gradients = gradients
    }
}

extension Optimizer {
    /// The clipping bound of each step's gradients (nil: none); see `GradientRecord.maxNorm`.
    public var maxGradientNorm: Double? {
        get { gradientRecord.maxNorm }
        set { gradientRecord.maxNorm = newValue }
    }

    /// Whether every element of the last step's gradients is finite (true before the first step);
    /// one cheap pass, so the training loop asks it after every step.
    public var lastGradientsAreFinite: Bool { gradientRecord.gradients.allSatisfy(\.isAllFinite) }

    /// The global L2 norm of the last step's gradients (`globalGradientNorm`); nil before the first
    /// step. Computed when asked. With `maxGradientNorm`, the norm before clipping (what
    /// `clip_grad_norm_` returns).
    public var lastGradientNorm: Double? {
        if let norm = gradientRecord.normBeforeClipping { return norm }
        return gradientRecord.gradients.isEmpty ? nil : globalGradientNorm(gradientRecord.gradients)
    }
}

/// A checkpoint's optimizer state does not fit the optimizer.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}

extension Optimizer {
    /// Copies `state[name]` into `target` (same shape), or fails naming the tensor.
    func restore(_ target: Tensor, from state: [String: Tensor], _ name: String) throws {
        guard let source = state[name] else { throw OptimizerStateError(description: "optimizer state '\(name)' is missing") }
        guard source.shape == target.shape, source.dtype == target.dtype else {
            throw OptimizerStateError(description: "optimizer state '\(name)' has shape \(source.shape) (\(source.dtype)), expected \(target.shape) (\(target.dtype))")
        }
        target.assign(source)
    }
}

extension Optimizer {
    func checkGradients(_ gradients: [Tensor], _ name: String) {
        precondition(gradients.count == parameters.count,
                     "\(name): \(gradients.count) gradients for \(parameters.count) parameters")
        for (p, g) in zip(parameters, gradients) {
            precondition(p.value.shape == g.shape && p.value.dtype == .float32 && g.dtype == .float32,
                         "\(name): gradient \(g.shape) (\(g.dtype)) for parameter \(p.value.shape) (\(p.value.dtype))")
        }
    }
}

/// Stochastic gradient descent with optional momentum and L2 weight decay (PyTorch's `SGD`,
/// dampening 0, no Nesterov): buf = momentum buf + g (buf = g at the first step); p -= lr buf.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Double
    public var gradientRecord = GradientRecord()
    public let momentum: Double, weightDecay: Double
    var buffers: [Tensor?]

    public init(_ parameters: [Parameter], learningRate: Double, momentum: Double = 0, weightDecay: Double = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        buffers = Array(repeating: nil, count: parameters.count)
    }

    public var namedState: [(String, Tensor)] {
        buffers.enumerated().compactMap { i, b in b.map { ("\(i).momentum_buffer", $0) } }
    }

    public func loadState(_ state: [String: Tensor]) throws {
        for i in 0..<parameters.count {
            if state["\(i).momentum_buffer"] != nil {
                let b = Tensor.zeros(parameters[i].value.shape)
                try restore(b, from: state, "\(i).momentum_buffer")
                buffers[i] = b
            } else {
                buffers[i] = nil
            }
        }
    }

    public func step(_ gradients: [Tensor]) {
        checkGradients(gradients, "SGD")
        gradientRecord.take(gradients)
        let backend = Backend.current
        for (i, (param, grad)) in zip(parameters, gradients).enumerated() {
            let first = momentum != 0 && buffers[i] == nil
            if first { buffers[i] = Tensor.zeros(grad.shape) }
            backend.update(.sgd(learningRate: Float(learningRate), momentum: Float(momentum), weightDecay: Float(weightDecay),
                                firstStep: first),
                           parameter: param.value, gradient: grad, state: momentum == 0 ? [] : [buffers[i]!])
        }
    }
}

/// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), in PyTorch's form:
/// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²;
/// p -= (lr / (1 - b1ᵗ)) m / (sqrt(v) / sqrt(1 - b2ᵗ) + eps).
/// Adam adds weight decay to the gradient (L2); AdamW first decays p <- p (1 - lr wd).
public final class Adam: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Double
    public var gradientRecord = GradientRecord()
    public let beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    /// Whether weight decay is decoupled (AdamW) rather than added to the gradient.
    public let decoupledWeightDecay: Bool
    public private(set) var stepCount = 0
    var m: [Tensor], v: [Tensor]

    public init(_ parameters: [Parameter], learningRate: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Double = 1e-8, weightDecay: Double = 0, decoupledWeightDecay: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        beta1 = betas.0; beta2 = betas.1
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        m = parameters.map { Tensor.zeros($0.value.shape) }
        v = parameters.map { Tensor.zeros($0.value.shape) }
    }

    /// AdamW with PyTorch's default weight decay 0.01.
    public static func adamW(_ parameters: [Parameter], learningRate: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                             eps: Double = 1e-8, weightDecay: Double = 0.01) -> Adam {
        Adam(parameters, learningRate: learningRate, betas: betas, eps: eps, weightDecay: weightDecay,
             decoupledWeightDecay: true)
    }

    public var namedState: [(String, Tensor)] {
        var out: [(String, Tensor)] = [("step", Tensor(scalar: Int64(stepCount)))]
        for i in 0..<parameters.count { out += [("\(i).exp_avg", m[i]), ("\(i).exp_avg_sq", v[i])] }
        return out
    }

    public func loadState(_ state: [String: Tensor]) throws {
        guard let step = state["step"], step.elementCount == 1 else {
            throw OptimizerStateError(description: "optimizer state 'step' is missing")
        }
        stepCount = Int(step.item)
        for i in 0..<parameters.count {
            try restore(m[i], from: state, "\(i).exp_avg")
            try restore(v[i], from: state, "\(i).exp_avg_sq")
        }
    }

    public func step(_ gradients: [Tensor]) {
        checkGradients(gradients, decoupledWeightDecay ? "AdamW" : "Adam")
        gradientRecord.take(gradients)
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - Double.pow(beta1, t), bc2 = 1 - Double.pow(beta2, t)
        let stepSize = Float(learningRate / bc1), bc2Sqrt = Float(bc2.squareRoot())
        let (b1, b2, e) = (Float(beta1), Float(beta2), Float(eps))
        let decay = Float(decoupledWeightDecay ? 1 - learningRate * weightDecay : 1)
        let l2 = Float(decoupledWeightDecay ? 0 : weightDecay)
        let rule = ParameterUpdate.adam(stepSize: stepSize, beta1: b1, beta2: b2, eps: e, bc2Sqrt: bc2Sqrt, decay: decay, l2: l2)
        let backend = Backend.current
        for (i, (param, grad)) in zip(parameters, gradients).enumerated() {
            backend.update(rule, parameter: param.value, gradient: grad, state: [m[i], v[i]])
        }
    }
}

/// RMSprop (PyTorch's, no momentum, not centred): v = alpha v + (1 - alpha) g²;
/// p -= lr g / (sqrt(v) + eps).
public final class RMSprop: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Double
    public var gradientRecord = GradientRecord()
    public let alpha: Double, eps: Double, weightDecay: Double
    var v: [Tensor]

    public init(_ parameters: [Parameter], learningRate: Double = 1e-2, alpha: Double = 0.99, eps: Double = 1e-8,
                weightDecay: Double = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.alpha = alpha
        self.eps = eps
        self.weightDecay = weightDecay
        v = parameters.map { Tensor.zeros($0.value.shape) }
    }

    public var namedState: [(String, Tensor)] { v.enumerated().map { ("\($0.offset).square_avg", $0.element) } }

    public func loadState(_ state: [String: Tensor]) throws {
        for i in 0..<parameters.count { try restore(v[i], from: state, "\(i).square_avg") }
    }

    public func step(_ gradients: [Tensor]) {
        checkGradients(gradients, "RMSprop")
        gradientRecord.take(gradients)
        let rule = ParameterUpdate.rmsprop(learningRate: Float(learningRate), alpha: Float(alpha), eps: Float(eps),
                                           weightDecay: Float(weightDecay))
        let backend = Backend.current
        for (i, (param, grad)) in zip(parameters, gradients).enumerated() {
            backend.update(rule, parameter: param.value, gradient: grad, state: [v[i]])
        }
    }
}
