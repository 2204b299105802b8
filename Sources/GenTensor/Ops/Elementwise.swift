/// Elementwise math with NumPy broadcasting, each op with its vector-Jacobian product written in
/// differentiable ops (so backward passes can be differentiated again).
extension Tensor {
    // MARK: kernels without gradient recording

    func checkFloat(_ op: String) {
        precondition(dtype.isFloatingPoint, "\(op): expected a floating-point tensor, got \(dtype)")
    }

    /// Applies a unary functor (no gradient recording).
    func mapRaw<F: UnaryFunctor>(_ f: F.Type, _ op: String) -> Tensor {
        checkFloat(op)
        let out = Tensor(uninitializedShape: shape, dtype: dtype)
        switch dtype {
        case .float32: ElementwiseKernels.unary(f, floatPointer, out.floatPointer, elementCount)
        case .float64: ElementwiseKernels.unary(f, doublePointer, out.doublePointer, elementCount)
        case .int64: break
        }
        return out
    }

    /// Applies a binary functor with broadcasting (no gradient recording).
    static func zipRaw<F: BinaryFunctor>(_ f: F.Type, _ a: Tensor, _ b: Tensor, _ op: String) -> Tensor {
        a.checkFloat(op)
        precondition(a.dtype == b.dtype, "\(op): dtypes differ (\(a.dtype) and \(b.dtype))")
        guard let shape = Shapes.broadcast(a.shape, b.shape) else {
            preconditionFailure("\(op): shapes \(a.shape) and \(b.shape) are not broadcastable")
        }
        let out = Tensor(uninitializedShape: shape, dtype: a.dtype)
        let sa = Shapes.broadcastStrides(a.shape, to: shape), sb = Shapes.broadcastStrides(b.shape, to: shape)
        switch a.dtype {
        case .float32: ElementwiseKernels.binary(f, a.floatPointer, sa, b.floatPointer, sb, out.floatPointer, shape)
        case .float64: ElementwiseKernels.binary(f, a.doublePointer, sa, b.doublePointer, sb, out.doublePointer, shape)
        case .int64: break
        }
        return out
    }

    /// A scalar tensor of this tensor's dtype.
    func scalarLike(_ value: Double) -> Tensor { Tensor(repeating: value, shape: [], dtype: dtype) }

    // MARK: binary arithmetic

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(AddF.self, a, b, "add").recording("add", [a, b]) { g, _ in
            [g.sumToShape(a.shape), g.sumToShape(b.shape)]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(SubF.self, a, b, "sub").recording("sub", [a, b]) { g, needs in
            [g.sumToShape(a.shape), needs[1] ? (-g).sumToShape(b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(MulF.self, a, b, "mul").recording("mul", [a, b]) { g, needs in
            [needs[0] ? (g * b).sumToShape(a.shape) : nil, needs[1] ? (g * a).sumToShape(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        zipRaw(DivF.self, a, b, "div").recording("div", [a, b]) { g, needs in
            [needs[0] ? (g / b).sumToShape(a.shape) : nil,
             needs[1] ? (-(g * a) / (b * b)).sumToShape(b.shape) : nil]
        }
    }

    public static prefix func - (x: Tensor) -> Tensor {
        x.mapRaw(NegF.self, "neg").recording("neg", [x]) { g, _ in [-g] }
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
        return Tensor.zipRaw(PowF.self, x, x.scalarLike(p), "pow").recording("pow", [x]) { g, _ in
            [g * p * x.pow(p - 1)]
        }
    }

    /// x * x.
    public func square() -> Tensor { self * self }

    // MARK: unary math

    public func exp() -> Tensor {
        let x = self
        let out = mapRaw(ExpF.self, "exp")
        return out.recording("exp", [x]) { [unowned out] g, _ in [g * out] }
    }

    public func log() -> Tensor {
        let x = self
        return mapRaw(LogF.self, "log").recording("log", [x]) { g, _ in [g / x] }
    }

    /// log(1 + x), accurate for small x.
    public func log1p() -> Tensor {
        let x = self
        return mapRaw(Log1pF.self, "log1p").recording("log1p", [x]) { g, _ in [g / (x + 1)] }
    }

    public func sqrt() -> Tensor {
        let x = self
        let out = mapRaw(SqrtF.self, "sqrt")
        return out.recording("sqrt", [x]) { [unowned out] g, _ in [g / (out * 2)] }
    }

    public func tanh() -> Tensor {
        let x = self
        let out = mapRaw(TanhF.self, "tanh")
        return out.recording("tanh", [x]) { [unowned out] g, _ in
            GradMode.isEnabled ? [g * (1 - out * out)] : [Tensor.zipRaw(TanhGradF.self, g, out.detached(), "tanh")]
        }
    }

    public func sigmoid() -> Tensor {
        let x = self
        let out = mapRaw(SigmoidF.self, "sigmoid")
        return out.recording("sigmoid", [x]) { [unowned out] g, _ in
            GradMode.isEnabled ? [g * out * (1 - out)] : [Tensor.zipRaw(SigmoidGradF.self, g, out.detached(), "sigmoid")]
        }
    }

    public func sin() -> Tensor {
        let x = self
        return mapRaw(SinF.self, "sin").recording("sin", [x]) { g, _ in [g * x.cos()] }
    }

    public func cos() -> Tensor {
        let x = self
        return mapRaw(CosF.self, "cos").recording("cos", [x]) { g, _ in [-(g * x.sin())] }
    }

    public func abs() -> Tensor {
        let x = self
        return mapRaw(AbsF.self, "abs").recording("abs", [x]) { g, _ in [g * x.mapRaw(SignF.self, "sign")] }
    }

    /// max(x, 0).
    public func relu() -> Tensor {
        let x = self
        return mapRaw(ReluF.self, "relu").recording("relu", [x]) { g, _ in
            GradMode.isEnabled ? [g * x.mapRaw(PositiveMaskF.self, "relu")] : [Tensor.zipRaw(ReluGradF.self, g, x.detached(), "relu")]
        }
    }

    /// x where x > 0, else slope * x.
    public func leakyRelu(_ slope: Double = 0.01) -> Tensor {
        let x = self
        return Tensor.zipRaw(LeakyReluF.self, x, x.scalarLike(slope), "leakyRelu").recording("leakyRelu", [x]) { g, _ in
            if GradMode.isEnabled { return [g * Tensor.zipRaw(LeakySlopeF.self, x, x.scalarLike(slope), "leakyRelu")] }
            return [Tensor.leakyReluBackward(g, x.detached(), slope: slope)]
        }
    }

    /// g where x > 0, else slope * g: LeakyReLU's first-order backward pass in one pass.
    static func leakyReluBackward(_ g: Tensor, _ x: Tensor, slope: Double) -> Tensor {
        precondition(g.shape == x.shape && g.dtype == x.dtype, "leakyRelu backward: \(g.shape) \(g.dtype) and \(x.shape) \(x.dtype)")
        let out = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
        let count = x.elementCount
        func run<T: KernelFloat>(_ gp: UnsafeMutablePointer<T>, _ xp: UnsafeMutablePointer<T>, _ o: UnsafeMutablePointer<T>) {
            let s = T(slope)
            parallelChunks(count) { r in
                for i in r { o[i] = xp[i] > 0 ? gp[i] : s * gp[i] }
            }
        }
        switch x.dtype {
        case .float32: run(g.floatPointer, x.floatPointer, out.floatPointer)
        case .float64: run(g.doublePointer, x.doublePointer, out.doublePointer)
        case .int64: break
        }
        return out
    }

    /// x * sigmoid(x) (SiLU / swish), in one pass; its backward pass is one pass too (a composite of
    /// differentiable ops when the backward pass is itself recorded, for second-order gradients).
    public func silu() -> Tensor {
        let x = self
        return mapRaw(SiLUF.self, "silu").recording("silu", [x]) { g, _ in
            if GradMode.isEnabled {
                let s = x.sigmoid()
                return [g * (s * (1 + x * (1 - s)))]
            }
            return [Tensor.zipRaw(SiLUGradF.self, g, x.detached(), "silu")]
        }
    }

    /// log(1 + exp(x)), stable for large |x|; its derivative is sigmoid(x) everywhere, 0 included.
    public func softplus() -> Tensor {
        let x = self
        return mapRaw(SoftplusF.self, "softplus").recording("softplus", [x]) { g, _ in [g * x.sigmoid()] }
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
        let n = elementCount
        switch dtype {
        case .float32:
            let (lo, hi, p, o) = (Float(lower), Float(upper), floatPointer, out.floatPointer)
            for i in 0..<n { o[i] = Swift.min(Swift.max(p[i], lo), hi) }
        case .float64:
            let (p, o) = (doublePointer, out.doublePointer)
            for i in 0..<n { o[i] = Swift.min(Swift.max(p[i], lower), upper) }
        case .int64: break
        }
        return out.recording("clamp", [x]) { g, _ in
            let inside = Tensor.zipRaw(GreaterEqualMaskF.self, x, x.scalarLike(lower), "clamp")
                * Tensor.zipRaw(GreaterEqualMaskF.self, x.scalarLike(upper), x, "clamp")
            return [g * inside]
        }
    }

    // MARK: comparisons (masks, not differentiable)

    /// 1 where self > other, else 0, in this tensor's dtype.
    public func greater(_ other: Tensor) -> Tensor { Tensor.zipRaw(GreaterMaskF.self, self, other, "greater") }
    /// 1 where self == other, else 0.
    public func equalMask(_ other: Tensor) -> Tensor { Tensor.zipRaw(EqualMaskF.self, self, other, "equal") }
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
        let n = out.elementCount
        func choose<C: TensorScalar, T>(_ cp: UnsafeMutablePointer<C>, _ pa: UnsafeMutablePointer<T>,
                                                                                  _ pb: UnsafeMutablePointer<T>, _ po: UnsafeMutablePointer<T>) {
            parallelChunks(n) { r in for i in r { po[i] = cp[i] != 0 ? pa[i] : pb[i] } }
        }
        func run<T>(_ pa: UnsafeMutablePointer<T>, _ pb: UnsafeMutablePointer<T>, _ po: UnsafeMutablePointer<T>) {
            switch c.dtype {
            case .float32: choose(c.floatPointer, pa, pb, po)
            case .float64: choose(c.doublePointer, pa, pb, po)
            case .int64: choose(c.int64Pointer, pa, pb, po)
            }
        }
        switch a.dtype {
        case .float32: run(av.floatPointer, bv.floatPointer, out.floatPointer)
        case .float64: run(av.doublePointer, bv.doublePointer, out.doublePointer)
        case .int64: run(av.int64Pointer, bv.int64Pointer, out.int64Pointer)
        }
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
        let n = elementCount
        switch (dtype, target) {
        case (.float32, .float64): for i in 0..<n { out.doublePointer[i] = Double(floatPointer[i]) }
        case (.float64, .float32): for i in 0..<n { out.floatPointer[i] = Float(doublePointer[i]) }
        case (.int64, .float32): for i in 0..<n { out.floatPointer[i] = Float(int64Pointer[i]) }
        case (.int64, .float64): for i in 0..<n { out.doublePointer[i] = Double(int64Pointer[i]) }
        case (.float32, .int64): for i in 0..<n { out.int64Pointer[i] = Int64(floatPointer[i].rounded(.towardZero)) }
        case (.float64, .int64): for i in 0..<n { out.int64Pointer[i] = Int64(doublePointer[i].rounded(.towardZero)) }
        default: break
        }
        let source = dtype
        return out.recording("cast", [self]) { g, _ in [g.cast(to: source)] }
    }
}
