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
        target.storage.pointer.copyMemory(from: source.storage.pointer, byteCount: target.elementCount * target.dtype.byteSize)
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
        let (lr, mu, wd) = (Float(learningRate), Float(momentum), Float(weightDecay))
        for (i, (param, grad)) in zip(parameters, gradients).enumerated() {
            let p = param.value.floatPointer, g = grad.floatPointer, n = grad.elementCount
            if momentum == 0 {
                for j in 0..<n { p[j] -= lr * (g[j] + wd * p[j]) }
                continue
            }
            let first = buffers[i] == nil
            if first { buffers[i] = Tensor.zeros(grad.shape) }
            let b = buffers[i]!.floatPointer
            for j in 0..<n {
                let d = g[j] + wd * p[j]
                b[j] = first ? d : mu * b[j] + d
                p[j] -= lr * b[j]
            }
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
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - Double.pow(beta1, t), bc2 = 1 - Double.pow(beta2, t)
        let stepSize = Float(learningRate / bc1), bc2Sqrt = Float(bc2.squareRoot())
        let (b1, b2, e) = (Float(beta1), Float(beta2), Float(eps))
        let decay = Float(decoupledWeightDecay ? 1 - learningRate * weightDecay : 1)
        let l2 = Float(decoupledWeightDecay ? 0 : weightDecay)
        for (i, (param, grad)) in zip(parameters, gradients).enumerated() {
            let p = param.value.floatPointer, g = grad.floatPointer
            let mp = m[i].floatPointer, vp = v[i].floatPointer
            parallelFor((grad.elementCount + 15) / 16, costPerItem: 16) { range in
                // 16 lanes at a time (the four arrays are distinct, which the compiler cannot know).
                typealias V = SIMD16<Float>
                let end = Swift.min(range.upperBound * 16, grad.elementCount)
                var j = range.lowerBound * 16
                while j + 16 <= end {
                    let pj = UnsafeRawPointer(p + j).loadUnaligned(as: V.self)
                    let gj = UnsafeRawPointer(g + j).loadUnaligned(as: V.self) + l2 * pj
                    let mj = b1 * UnsafeRawPointer(mp + j).loadUnaligned(as: V.self) + (1 - b1) * gj
                    let vj = b2 * UnsafeRawPointer(vp + j).loadUnaligned(as: V.self) + (1 - b2) * gj * gj
                    let updated = pj * decay - stepSize * mj / (vj.squareRoot() / bc2Sqrt + e)
                    UnsafeMutableRawPointer(mp + j).storeBytes(of: mj, as: V.self)
                    UnsafeMutableRawPointer(vp + j).storeBytes(of: vj, as: V.self)
                    UnsafeMutableRawPointer(p + j).storeBytes(of: updated, as: V.self)
                    j += 16
                }
                while j < end {
                    let gj = g[j] + l2 * p[j]
                    p[j] *= decay
                    mp[j] = b1 * mp[j] + (1 - b1) * gj
                    vp[j] = b2 * vp[j] + (1 - b2) * gj * gj
                    p[j] -= stepSize * mp[j] / (vp[j].squareRoot() / bc2Sqrt + e)
                    j += 1
                }
            }
        }
    }
}

/// RMSprop (PyTorch's, no momentum, not centred): v = alpha v + (1 - alpha) g²;
/// p -= lr g / (sqrt(v) + eps).
public final class RMSprop: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Double
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
        let (lr, a, e, wd) = (Float(learningRate), Float(alpha), Float(eps), Float(weightDecay))
        for (i, (param, grad)) in zip(parameters, gradients).enumerated() {
            let p = param.value.floatPointer, g = grad.floatPointer, vp = v[i].floatPointer
            for j in 0..<grad.elementCount {
                let gj = g[j] + wd * p[j]
                vp[j] = a * vp[j] + (1 - a) * gj * gj
                p[j] -= lr * gj / (vp[j].squareRoot() + e)
            }
        }
    }
}
