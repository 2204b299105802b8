/// The CPU backend's elementwise, reduction, normalisation, indexing, random and optimizer kernels:
/// the engine's own Swift loops (vectorised where it pays), threaded on the OpenMP pool.
extension CPUBackend {
    // MARK: Elementwise

    public func map(_ op: UnaryOp, _ x: Tensor, into y: Tensor) {
        switch op {
        case .negate: unary(NegF.self, x, y)
        case .exp: unary(ExpF.self, x, y)
        case .log: unary(LogF.self, x, y)
        case .log1p: unary(Log1pF.self, x, y)
        case .sqrt: unary(SqrtF.self, x, y)
        case .tanh: unary(TanhF.self, x, y)
        case .sin: unary(SinF.self, x, y)
        case .cos: unary(CosF.self, x, y)
        case .abs: unary(AbsF.self, x, y)
        case .relu: unary(ReluF.self, x, y)
        case .sign: unary(SignF.self, x, y)
        case .positiveMask: unary(PositiveMaskF.self, x, y)
        case .sigmoid: unary(SigmoidF.self, x, y)
        case .silu: unary(SiLUF.self, x, y)
        case .softplus: unary(SoftplusF.self, x, y)
        }
    }

    private func unary<F: UnaryFunctor>(_ f: F.Type, _ x: Tensor, _ y: Tensor) {
        switch x.dtype {
        case .float32: ElementwiseKernels.unary(f, x.floatPointer, y.floatPointer, x.elementCount)
        case .float64: ElementwiseKernels.unary(f, x.doublePointer, y.doublePointer, x.elementCount)
        case .int64: preconditionFailure("map: int64 tensor")
        }
    }

    public func zip(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, into y: Tensor) {
        switch op {
        case .add: binary(AddF.self, a, b, y)
        case .subtract: binary(SubF.self, a, b, y)
        case .multiply: binary(MulF.self, a, b, y)
        case .divide: binary(DivF.self, a, b, y)
        case .power: binary(PowF.self, a, b, y)
        case .siluGradient: binary(SiLUGradF.self, a, b, y)
        case .sigmoidGradient: binary(SigmoidGradF.self, a, b, y)
        case .tanhGradient: binary(TanhGradF.self, a, b, y)
        case .reluGradient: binary(ReluGradF.self, a, b, y)
        case .equalMask: binary(EqualMaskF.self, a, b, y)
        case .greaterMask: binary(GreaterMaskF.self, a, b, y)
        case .greaterEqualMask: binary(GreaterEqualMaskF.self, a, b, y)
        case .leakyRelu: binary(LeakyReluF.self, a, b, y)
        case .leakySlope: binary(LeakySlopeF.self, a, b, y)
        case .leakyReluGradient(let slope): leakyReluGradient(a, b, slope, y)
        }
    }

    /// g where x > 0, else slope * g, in one pass (g and x of y's shape).
    private func leakyReluGradient(_ g: Tensor, _ x: Tensor, _ slope: Double, _ y: Tensor) {
        func run<T: KernelFloat>(_ gp: UnsafeMutablePointer<T>, _ xp: UnsafeMutablePointer<T>, _ o: UnsafeMutablePointer<T>) {
            let s = T(slope)
            parallelChunks(y.elementCount) { r in
                for i in r { o[i] = xp[i] > 0 ? gp[i] : s * gp[i] }
            }
        }
        switch x.dtype {
        case .float32: run(g.floatPointer, x.floatPointer, y.floatPointer)
        case .float64: run(g.doublePointer, x.doublePointer, y.doublePointer)
        case .int64: preconditionFailure("leakyRelu backward: int64 tensors")
        }
    }

    private func binary<F: BinaryFunctor>(_ f: F.Type, _ a: Tensor, _ b: Tensor, _ y: Tensor) {
        let sa = Shapes.broadcastStrides(a.shape, to: y.shape), sb = Shapes.broadcastStrides(b.shape, to: y.shape)
        switch a.dtype {
        case .float32: ElementwiseKernels.binary(f, a.floatPointer, sa, b.floatPointer, sb, y.floatPointer, y.shape)
        case .float64: ElementwiseKernels.binary(f, a.doublePointer, sa, b.doublePointer, sb, y.doublePointer, y.shape)
        case .int64: preconditionFailure("zip: int64 tensors")
        }
    }

    public func copyStrided(_ x: Tensor, strides: [Int], into y: Tensor) {
        switch x.dtype {
        case .float32: ElementwiseKernels.gatherStrided(UnsafePointer(x.floatPointer), strides, y.floatPointer, y.shape)
        case .float64: ElementwiseKernels.gatherStrided(UnsafePointer(x.doublePointer), strides, y.doublePointer, y.shape)
        case .int64: ElementwiseKernels.gatherStrided(UnsafePointer(x.int64Pointer), strides, y.int64Pointer, y.shape)
        }
    }

    public func copyRuns(count: Int, length: Int, from x: Tensor, offset sourceOffset: Int, stride sourceStride: Int,
                         into y: Tensor, offset targetOffset: Int, stride targetStride: Int) {
        let size = x.dtype.byteSize, bytes = length * size
        let source = x.storage.pointer + sourceOffset * size, target = y.storage.pointer + targetOffset * size
        parallelChunks(count, costPerItem: Swift.max(1, bytes / 4)) { runs in
            for i in runs {
                (target + i * targetStride * size).copyMemory(from: source + i * sourceStride * size, byteCount: bytes)
            }
        }
    }

    public func fill(_ y: Tensor, with value: Double) {
        let n = y.elementCount
        switch y.dtype {
        case .float32: y.floatPointer.update(repeating: Float(value), count: n)
        case .float64: y.doublePointer.update(repeating: value, count: n)
        case .int64: y.int64Pointer.update(repeating: Int64(value), count: n)
        }
    }

    public func clamp(_ x: Tensor, lower: Double, upper: Double, into y: Tensor) {
        let n = x.elementCount
        switch x.dtype {
        case .float32:
            let (lo, hi, p, o) = (Float(lower), Float(upper), x.floatPointer, y.floatPointer)
            for i in 0..<n { o[i] = Swift.min(Swift.max(p[i], lo), hi) }
        case .float64:
            let (p, o) = (x.doublePointer, y.doublePointer)
            for i in 0..<n { o[i] = Swift.min(Swift.max(p[i], lower), upper) }
        case .int64: preconditionFailure("clamp: int64 tensor")
        }
    }

    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor, into y: Tensor) {
        let n = y.elementCount
        func choose<C: TensorScalar, T>(_ cp: UnsafeMutablePointer<C>, _ pa: UnsafeMutablePointer<T>,
                                        _ pb: UnsafeMutablePointer<T>, _ po: UnsafeMutablePointer<T>) {
            parallelChunks(n) { r in for i in r { po[i] = cp[i] != 0 ? pa[i] : pb[i] } }
        }
        func run<T>(_ pa: UnsafeMutablePointer<T>, _ pb: UnsafeMutablePointer<T>, _ po: UnsafeMutablePointer<T>) {
            switch condition.dtype {
            case .float32: choose(condition.floatPointer, pa, pb, po)
            case .float64: choose(condition.doublePointer, pa, pb, po)
            case .int64: choose(condition.int64Pointer, pa, pb, po)
            }
        }
        switch a.dtype {
        case .float32: run(a.floatPointer, b.floatPointer, y.floatPointer)
        case .float64: run(a.doublePointer, b.doublePointer, y.doublePointer)
        case .int64: run(a.int64Pointer, b.int64Pointer, y.int64Pointer)
        }
    }

    public func convert(_ x: Tensor, into y: Tensor) {
        let n = x.elementCount
        switch (x.dtype, y.dtype) {
        case (.float32, .float64): for i in 0..<n { y.doublePointer[i] = Double(x.floatPointer[i]) }
        case (.float64, .float32): for i in 0..<n { y.floatPointer[i] = Float(x.doublePointer[i]) }
        case (.int64, .float32): for i in 0..<n { y.floatPointer[i] = Float(x.int64Pointer[i]) }
        case (.int64, .float64): for i in 0..<n { y.doublePointer[i] = Double(x.int64Pointer[i]) }
        case (.float32, .int64): for i in 0..<n { y.int64Pointer[i] = Int64(x.floatPointer[i].rounded(.towardZero)) }
        case (.float64, .int64): for i in 0..<n { y.int64Pointer[i] = Int64(x.doublePointer[i].rounded(.towardZero)) }
        default: y.storage.pointer.copyMemory(from: x.storage.pointer, byteCount: n * x.dtype.byteSize)
        }
    }

    public func activate(_ activation: LinearActivation, _ x: Tensor) {
        ElementwiseKernels.activation(activation, x.floatPointer, x.elementCount)
    }

    // MARK: Reductions

    public func sum(_ x: Tensor, axes: [Int], into y: Tensor) {
        switch x.dtype {
        case .float32: ReductionKernels.sum(x.floatPointer, shape: x.shape, axes: axes, into: y.floatPointer, threads: threads)
        case .float64: ReductionKernels.sum(x.doublePointer, shape: x.shape, axes: axes, into: y.doublePointer, threads: threads)
        case .int64: preconditionFailure("sum: int64 tensor")
        }
    }

    public func rowMax(_ x: Tensor, into y: Tensor) {
        let rows = y.elementCount, inner = x.elementCount / Swift.max(rows, 1)
        switch x.dtype {
        case .float32: ReductionKernels.rowMax(x.floatPointer, rows: rows, inner: inner, into: y.floatPointer)
        case .float64: ReductionKernels.rowMax(x.doublePointer, rows: rows, inner: inner, into: y.doublePointer)
        case .int64: preconditionFailure("max: int64 tensor")
        }
    }

    // MARK: Normalisation

    public func batchNormForward(_ g: BatchNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, output: Tensor,
                                 statistics: Tensor) {
        switch x.dtype {
        case .float32:
            BatchNormKernels.forward(g, x.floatPointer, weight?.floatPointer, bias?.floatPointer, output.floatPointer,
                                     statistics.doublePointer)
        case .float64:
            BatchNormKernels.forward(g, x.doublePointer, weight?.doublePointer, bias?.doublePointer, output.doublePointer,
                                     statistics.doublePointer)
        case .int64: preconditionFailure("batchNorm: int64 tensor")
        }
    }

    public func batchNormInference(_ g: BatchNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, mean: Tensor,
                                   variance: Tensor, output: Tensor) {
        switch x.dtype {
        case .float32:
            BatchNormKernels.inference(g, x.floatPointer, weight?.floatPointer, bias?.floatPointer, mean.floatPointer,
                                       variance.floatPointer, output.floatPointer)
        case .float64:
            BatchNormKernels.inference(g, x.doublePointer, weight?.doublePointer, bias?.doublePointer, mean.doublePointer,
                                       variance.doublePointer, output.doublePointer)
        case .int64: preconditionFailure("batchNorm: int64 tensor")
        }
    }

    public func batchNormBackward(_ g: BatchNormGeometry, gradOutput: Tensor, x: Tensor, output: Tensor, weight: Tensor?,
                                  statistics: Tensor, gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor) {
        switch x.dtype {
        case .float32:
            BatchNormKernels.backward(g, gradOutput.floatPointer, x.floatPointer, output.floatPointer, weight?.floatPointer,
                                      statistics.doublePointer, gradInput.floatPointer, gradWeight.floatPointer,
                                      gradBias.floatPointer)
        case .float64:
            BatchNormKernels.backward(g, gradOutput.doublePointer, x.doublePointer, output.doublePointer,
                                      weight?.doublePointer, statistics.doublePointer, gradInput.doublePointer,
                                      gradWeight.doublePointer, gradBias.doublePointer)
        case .int64: preconditionFailure("batchNorm: int64 tensor")
        }
    }

    public func groupNormForward(_ g: GroupNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, output: Tensor,
                                 statistics: Tensor) {
        switch x.dtype {
        case .float32:
            GroupNormKernels.forward(g, x.floatPointer, weight?.floatPointer, bias?.floatPointer, output.floatPointer,
                                     statistics.doublePointer)
        case .float64:
            GroupNormKernels.forward(g, x.doublePointer, weight?.doublePointer, bias?.doublePointer, output.doublePointer,
                                     statistics.doublePointer)
        case .int64: preconditionFailure("groupNorm: int64 tensor")
        }
    }

    public func groupNormBackward(_ g: GroupNormGeometry, gradOutput: Tensor, x: Tensor, weight: Tensor?, bias: Tensor?,
                                  statistics: Tensor, gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor) {
        switch x.dtype {
        case .float32:
            GroupNormKernels.backward(g, gradOutput.floatPointer, x.floatPointer, weight?.floatPointer, bias?.floatPointer,
                                      statistics.doublePointer, gradInput.floatPointer, gradWeight.floatPointer,
                                      gradBias.floatPointer)
        case .float64:
            GroupNormKernels.backward(g, gradOutput.doublePointer, x.doublePointer, weight?.doublePointer,
                                      bias?.doublePointer, statistics.doublePointer, gradInput.doublePointer,
                                      gradWeight.doublePointer, gradBias.doublePointer)
        case .int64: preconditionFailure("groupNorm: int64 tensor")
        }
    }

    // MARK: Indexing

    public func gather(_ x: Tensor, indices: [Int], into y: Tensor) {
        let n = x.elementCount
        switch x.dtype {
        case .float32: IndexingKernels.gather(x.floatPointer, count: n, indices: indices, into: y.floatPointer)
        case .float64: IndexingKernels.gather(x.doublePointer, count: n, indices: indices, into: y.doublePointer)
        case .int64: IndexingKernels.gather(x.int64Pointer, count: n, indices: indices, into: y.int64Pointer)
        }
    }

    public func scatterAdd(_ g: Tensor, indices: [Int], into y: Tensor) {
        switch g.dtype {
        case .float32: IndexingKernels.scatterAdd(g.floatPointer, indices: indices, into: y.floatPointer, count: y.elementCount)
        case .float64: IndexingKernels.scatterAdd(g.doublePointer, indices: indices, into: y.doublePointer, count: y.elementCount)
        case .int64: preconditionFailure("scatterAdd: int64 values")
        }
    }

    public func maxPool2d(_ g: PoolGeometry, _ x: Tensor, into y: Tensor, argmax: UnsafeMutablePointer<Int>?) {
        switch x.dtype {
        case .float32: IndexingKernels.maxPool2d(g, x.floatPointer, y.floatPointer, argmax: argmax)
        case .float64: IndexingKernels.maxPool2d(g, x.doublePointer, y.doublePointer, argmax: argmax)
        case .int64: preconditionFailure("maxPool2d: int64 input")
        }
    }

    // MARK: Random

    public func fillUniform(_ y: Tensor, low: Double, high: Double, seed: UInt64, base: UInt64) {
        let n = y.elementCount
        switch y.dtype {
        case .float32:
            // Rounding to Float32 can reach `high`; keep the promised half-open range.
            let top = Float(high).nextDown, p = y.floatPointer
            parallelChunks(n, costPerItem: 8) { r in
                for i in r { p[i] = Swift.min(Float(low + (high - low) * RandomGenerator.unitDouble(seed, base &+ UInt64(i))), top) }
            }
        case .float64:
            let p = y.doublePointer
            parallelChunks(n, costPerItem: 8) { r in
                for i in r { p[i] = low + (high - low) * RandomGenerator.unitDouble(seed, base &+ UInt64(i)) }
            }
        case .int64: preconditionFailure("uniform: int64 dtype; use randomIntegers")
        }
    }

    public func fillNormal(_ y: Tensor, mean: Double, std: Double, seed: UInt64, base: UInt64) {
        let n = y.elementCount
        switch y.dtype {
        case .float32:
            // The scalar definition's values, eight lanes at a time (NormalFloatKernel).
            let p = y.floatPointer
            parallelChunks(n, costPerItem: 64) { r in
                NormalFloatKernel.fill(p, r, seed: seed, base: base, mean: mean, std: std)
            }
        case .float64:
            let p = y.doublePointer
            parallelChunks(n, costPerItem: 64) { r in
                for i in r { p[i] = mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i)) }
            }
        case .int64: preconditionFailure("normal: int64 dtype")
        }
    }

    // MARK: Optimizers

    public func update(_ rule: ParameterUpdate, parameter: Tensor, gradient: Tensor, state: [Tensor]) {
        let p = parameter.floatPointer, g = gradient.floatPointer, n = parameter.elementCount
        switch rule {
        case let .sgd(lr, momentum, wd, first):
            OptimizerKernels.sgd(p, g, n, buffer: state.first?.floatPointer, learningRate: lr, momentum: momentum,
                                 weightDecay: wd, firstStep: first)
        case let .adam(stepSize, b1, b2, eps, bc2Sqrt, decay, l2):
            OptimizerKernels.adam(p, g, n, m: state[0].floatPointer, v: state[1].floatPointer, stepSize: stepSize,
                                  b1: b1, b2: b2, e: eps, bc2Sqrt: bc2Sqrt, decay: decay, l2: l2)
        case let .rmsprop(lr, alpha, eps, wd):
            OptimizerKernels.rmsprop(p, g, n, v: state[0].floatPointer, learningRate: lr, alpha: alpha, eps: eps,
                                     weightDecay: wd)
        case let .movingAverage(decay):
            OptimizerKernels.movingAverage(p, g, n, decay: decay)
        }
    }
}
