/// Elementwise math with NumPy broadcasting, each op with its vector-Jacobian product written in
/// differentiable ops (so backward passes can be differentiated again).
extension Tensor {
    // MARK: kernels without gradient recording

    func checkFloat(_ op: String) {
        precondition(dtype.isFloatingPoint, "\(op): expected a floating-point tensor, got \(dtype)")
    }

    /// Applies a unary op on the current backend (no gradient recording).
    func mapRaw(_ f: UnaryOp, _ op: String) -> Tensor {
        checkFloat(op)
        let out = Tensor(uninitializedShape: shape, dtype: dtype)
        Backend.current.map(f, self, into: out)
        return out
    }

    /// Applies a binary op with broadcasting on the current backend (no gradient recording).
    static func zipRaw(_ f: BinaryOp, _ a: Tensor, _ b: Tensor, _ op: String) -> Tensor {
        a.checkFloat(op)
        precondition(a.dtype == b.dtype, "\(op): dtypes differ (\(a.dtype) and \(b.dtype))")
        guard let shape = Shapes.broadcast(a.shape, b.shape) else {
            preconditionFailure("\(op): shapes \(a.shape) and \(b.shape) are not broadcastable")
        }
        let out = Tensor(uninitializedShape: shape, dtype: a.dtype)
        Backend.current.zip(f, a, b, into: out)
        return out
    }

    /// A scalar tensor of this tensor's dtype.
    func scalarLike(_ value: Double) -> Tensor { Tensor(repeating: value, shape: [], dtype: dtype) }

    // MARK: binary arithmetic

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(.add, a, b, "add").recording("add", [a, b]) { g, _ in
            [g.sumToShape(a.shape), g.sumToShape(b.shape)]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(.subtract, a, b, "sub").recording("sub", [a, b]) { g, needs in
            [g.sumToShape(a.shape), needs[1] ? (-g).sumToShape(b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(.multiply, a, b, "mul").recording("mul", [a, b]) { g, needs in
            [needs[0] ? (g * b).sumToShape(a.shape) : nil, needs[1] ? (g * a).sumToShape(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(.divide, a, b, "div").recording("div", [a, b]) { g, needs in
            [needs[0] ? (g / b).sumToShape(a.shape) : nil,
             needs[1] ? (-(g * a) / (b * b)).sumToShape(b.shape) : nil]
        }
    }

    public static prefix func - (x: Tensor) -> Tensor {
        x.mapRaw(.negate, "neg").recording("neg", [x]) { g, _ in [-g] }
    }

    public static func + (a: Tensor, b: Double) -> Tensor { a + a.scalarLike(b) }
    public static func - (a: Tensor, b: Double) -> Tensor { a - a.scalarLike(b) }
    public static func * (a: Tensor, b: Double) -> Tensor { a * a.scalarLike(b) }
    public static func / (a: Tensor, b: Double) -> Tensor { a / a.scalarLike(b) }
    public static func + (a: Double, b: Tensor) -> Tensor { b.scalarLike(a) + b }
    public static func - (a: Double, b: Tensor) -> Tensor { b.scalarLike(a) - b }
    public static func * (a: Double, b: Tensor) -> Tensor { b.scalarLike(a) * b }
    public static func / (a: Double, b: Tensor) -> Tensor { b.scalarLike(a) / b }

    /// x raised to a constant power.
    public func pow(_ p: Double) -> Tensor {
        let x = self
        return Tensor.zipRaw(.power, x, x.scalarLike(p), "pow").recording("pow", [x]) { g, _ in
            [g * p * x.pow(p - 1)]
        }
    }

    /// x * x.
    public func square() -> Tensor { self * self }

    // MARK: unary math

    public func exp() -> Tensor {
        let x = self
        let out = mapRaw(.exp, "exp")
        return out.recording("exp", [x]) { [unowned out] g, _ in [g * out] }
    }

    public func log() -> Tensor {
        let x = self
        return mapRaw(.log, "log").recording("log", [x]) { g, _ in [g / x] }
    }

    /// log(1 + x), accurate for small x.
    public func log1p() -> Tensor {
        let x = self
        return mapRaw(.log1p, "log1p").recording("log1p", [x]) { g, _ in [g / (x + 1)] }
    }

    public func sqrt() -> Tensor {
        let x = self
        let out = mapRaw(.sqrt, "sqrt")
        return out.recording("sqrt", [x]) { [unowned out] g, _ in [g / (out * 2)] }
    }

    public func tanh() -> Tensor {
        let x = self
        let out = mapRaw(.tanh, "tanh")
        return out.recording("tanh", [x]) { [unowned out] g, _ in
            GradMode.isEnabled ? [g * (1 - out * out)] : [Tensor.zipRaw(.tanhGradient, g, out.detached(), "tanh")]
        }
    }

    public func sigmoid() -> Tensor {
        let x = self
        let out = mapRaw(.sigmoid, "sigmoid")
        return out.recording("sigmoid", [x]) { [unowned out] g, _ in
            GradMode.isEnabled ? [g * out * (1 - out)] : [Tensor.zipRaw(.sigmoidGradient, g, out.detached(), "sigmoid")]
        }
    }

    public func sin() -> Tensor {
        let x = self
        return mapRaw(.sin, "sin").recording("sin", [x]) { g, _ in [g * x.cos()] }
    }

    public func cos() -> Tensor {
        let x = self
        return mapRaw(.cos, "cos").recording("cos", [x]) { g, _ in [-(g * x.sin())] }
    }

    public func abs() -> Tensor {
        let x = self
        return mapRaw(.abs, "abs").recording("abs", [x]) { g, _ in [g * x.mapRaw(.sign, "sign")] }
    }

    /// max(x, 0).
    public func relu() -> Tensor {
        let x = self
        return mapRaw(.relu, "relu").recording("relu", [x]) { g, _ in
            GradMode.isEnabled ? [g * x.mapRaw(.positiveMask, "relu")] : [Tensor.zipRaw(.reluGradient, g, x.detached(), "relu")]
        }
    }

    /// x where x > 0, else slope * x.
    public func leakyRelu(_ slope: Double = 0.01) -> Tensor {
        let x = self
        return Tensor.zipRaw(.leakyRelu, x, x.scalarLike(slope), "leakyRelu").recording("leakyRelu", [x]) { g, _ in
            if GradMode.isEnabled { return [g * Tensor.zipRaw(.leakySlope, x, x.scalarLike(slope), "leakyRelu")] }
            return [Tensor.leakyReluBackward(g, x.detached(), slope: slope)]
        }
    }

    /// g where x > 0, else slope * g: LeakyReLU's first-order backward pass in one pass.
    static func leakyReluBackward(_ g: Tensor, _ x: Tensor, slope: Double) -> Tensor {
        precondition(g.shape == x.shape && g.dtype == x.dtype, "leakyRelu backward: \(g.shape) \(g.dtype) and \(x.shape) \(x.dtype)")
        return zipRaw(.leakyReluGradient(slope: slope), g, x, "leakyRelu")
    }

    /// x * sigmoid(x) (SiLU / swish), in one pass; its backward pass is one pass too (a composite of
    /// differentiable ops when the backward pass is itself recorded, for second-order gradients).
    public func silu() -> Tensor {
        let x = self
        return mapRaw(.silu, "silu").recording("silu", [x]) { g, _ in
            if GradMode.isEnabled {
                let s = x.sigmoid()
                return [g * (s * (1 + x * (1 - s)))]
            }
            return [Tensor.zipRaw(.siluGradient, g, x.detached(), "silu")]
        }
    }

    /// log(1 + exp(x)), stable for large |x|; its derivative is sigmoid(x) everywhere, 0 included.
    public func softplus() -> Tensor {
        let x = self
        return mapRaw(.softplus, "softplus").recording("softplus", [x]) { g, _ in [g * x.sigmoid()] }
    }

    /// The Euclidean norm over `axes`: sqrt(sum(x²)). Where the norm is 0 the gradient is 0 (as
    /// PyTorch's `norm`), not the NaN that sqrt's derivative would give; the WGAN-GP penalty needs that.
    public func norm(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let x = self
        let ax = reductionAxes(axes, "norm")
        let out = withoutGradients { x.square().sum(axes: ax, keepDims: keepDims).sqrt() }
        let kept = keptShape(ax)
        return out.recording("norm", [x]) { [unowned out] g, _ in
            let n = out.reshaped(kept), gk = g.reshaped(kept)
            let zero = n.detached().equalMask(n.scalarLike(0))
            let safe = Tensor.select(zero, n.scalarLike(1), n)
            return [Tensor.select(zero, x.scalarLike(0), gk * x / safe)]
        }
    }

    /// Limits values to [lower, upper]; the gradient passes where the value was strictly inside or
    /// on a bound (PyTorch's convention).
    public func clamped(min lower: Double = -.infinity, max upper: Double = .infinity) -> Tensor {
        checkFloat("clamp")
        let x = self
        let out = Tensor(uninitializedShape: shape, dtype: dtype)
        Backend.current.clamp(self, lower: lower, upper: upper, into: out)
        return out.recording("clamp", [x]) { g, _ in
            let inside = Tensor.zipRaw(.greaterEqualMask, x, x.scalarLike(lower), "clamp")
                * Tensor.zipRaw(.greaterEqualMask, x.scalarLike(upper), x, "clamp")
            return [g * inside]
        }
    }

    // MARK: comparisons (masks, not differentiable)

    /// 1 where self > other, else 0, in this tensor's dtype.
    public func greater(_ other: Tensor) -> Tensor { Tensor.zipRaw(.greaterMask, self, other, "greater") }
    /// 1 where self == other, else 0.
    public func equalMask(_ other: Tensor) -> Tensor { Tensor.zipRaw(.equalMask, self, other, "equal") }
    public func greater(_ value: Double) -> Tensor { greater(scalarLike(value)) }

    // MARK: selection

    /// Elementwise choice with broadcasting: `a` where `condition` is non-zero, else `b` (PyTorch's
    /// `torch.where`). The condition is a mask and receives no gradient.
    public static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.dtype == b.dtype, "where: dtypes differ (\(a.dtype) and \(b.dtype))")
        guard let ab = Shapes.broadcast(a.shape, b.shape), let shape = Shapes.broadcast(ab, condition.shape) else {
            preconditionFailure("where: shapes \(condition.shape), \(a.shape) and \(b.shape) are not broadcastable")
        }
        let c = condition.expandedRaw(to: shape), av = a.expandedRaw(to: shape), bv = b.expandedRaw(to: shape)
        let out = Tensor(uninitializedShape: shape, dtype: a.dtype)
        Backend.current.select(c, av, bv, into: out)
        let cond = condition.detached()
        return out.recording("where", [a, b]) { g, needs in
            let zero = g.scalarLike(0)
            return [needs[0] ? select(cond, g, zero).sumToShape(a.shape) : nil,
                    needs[1] ? select(cond, zero, g).sumToShape(b.shape) : nil]
        }
    }

    // MARK: dtype conversion

    /// The values converted to another dtype; differentiable between float types.
    public func cast(to target: DType) -> Tensor {
        if target == dtype { return self }
        let out = Tensor(uninitializedShape: shape, dtype: target)
        Backend.current.convert(self, into: out)
        let source = dtype
        return out.recording("cast", [self]) { g, _ in [g.cast(to: source)] }
    }
}
