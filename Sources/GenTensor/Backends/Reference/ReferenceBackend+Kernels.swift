import RealModule

/// The reference backend's elementwise, reduction, normalisation, indexing, random and optimizer
/// kernels: each the textbook loop of its definition, serial, accumulating in Double, written apart
/// from the CPU backend's so that each checks the other.
extension ReferenceBackend {
    /// Runs the Float or the Double form of a kernel, as the tensor's dtype says.
    private func dispatch(_ dtype: DType, _ op: String, float: () -> Void, double: () -> Void) {
        switch dtype {
        case .float32: float()
        case .float64: double()
        case .int64: preconditionFailure("\(op): int64 tensor")
        }
    }

    // MARK: Elementwise

    public func map(_ op: UnaryOp, _ x: Tensor, into y: Tensor) {
        func run<T: KernelFloat>(_: T.Type) {
            let src = x.pointer(as: T.self), dst = y.pointer(as: T.self)
            for i in 0..<x.elementCount { dst[i] = Self.apply(op, src[i]) }
        }
        dispatch(x.dtype, "map", float: { run(Float.self) }, double: { run(Double.self) })
    }

    /// The definition of each unary op.
    static func apply<T: KernelFloat>(_ op: UnaryOp, _ x: T) -> T {
        switch op {
        case .negate: return -x
        case .exp: return T.exp(x)
        case .log: return T.log(x)
        case .log1p: return T.log(onePlus: x)
        case .sqrt: return x.squareRoot()
        case .tanh: return T.tanh(x)
        case .sin: return T.sin(x)
        case .cos: return T.cos(x)
        case .abs: return x.magnitude
        case .relu: return x > 0 ? x : 0
        case .sign: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .positiveMask: return x > 0 ? 1 : 0
        case .sigmoid: return x >= 0 ? 1 / (1 + T.exp(-x)) : T.exp(x) / (1 + T.exp(x))
        case .silu: return x * apply(.sigmoid, x)
        case .softplus: return Swift.max(x, 0) + T.log(onePlus: T.exp(-x.magnitude))
        }
    }

    public func zip(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, into y: Tensor) {
        let sa = Shapes.broadcastStrides(a.shape, to: y.shape), sb = Shapes.broadcastStrides(b.shape, to: y.shape)
        let shape = y.shape
        func run<T: KernelFloat>(_: T.Type) {
            let pa = a.pointer(as: T.self), pb = b.pointer(as: T.self), out = y.pointer(as: T.self)
            for i in 0..<y.elementCount {
                out[i] = Self.apply(op, pa[Shapes.offset(ofElement: i, shape: shape, strides: sa)],
                                    pb[Shapes.offset(ofElement: i, shape: shape, strides: sb)])
            }
        }
        dispatch(a.dtype, "zip", float: { run(Float.self) }, double: { run(Double.self) })
    }

    /// The definition of each binary op.
    static func apply<T: KernelFloat>(_ op: BinaryOp, _ a: T, _ b: T) -> T {
        switch op {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        case .power: return b == b.rounded() && b.magnitude < 0x1p30 ? T.pow(a, Int(b)) : T.pow(a, b)
        case .siluGradient:
            let s = apply(.sigmoid, b)
            return a * s * (1 + b * (1 - s))
        case .sigmoidGradient: return a * b * (1 - b)
        case .tanhGradient: return a * (1 - b * b)
        case .reluGradient: return b > 0 ? a : 0
        case .equalMask: return a == b ? 1 : 0
        case .greaterMask: return a > b ? 1 : 0
        case .greaterEqualMask: return a >= b ? 1 : 0
        case .leakyRelu: return a > 0 ? a : a * b
        case .leakySlope: return a > 0 ? 1 : b
        case .leakyReluGradient(let slope): return b > 0 ? a : T(slope) * a
        }
    }

    public func copyStrided(_ x: Tensor, strides: [Int], into y: Tensor) {
        let shape = y.shape, size = x.dtype.byteSize
        let source = x.storage.pointer, target = y.storage.pointer
        for i in 0..<y.elementCount {
            let offset = Shapes.offset(ofElement: i, shape: shape, strides: strides)
            (target + i * size).copyMemory(from: source + offset * size, byteCount: size)
        }
    }

    public func copyRuns(count: Int, length: Int, from x: Tensor, offset sourceOffset: Int, stride sourceStride: Int,
                         into y: Tensor, offset targetOffset: Int, stride targetStride: Int) {
        let size = x.dtype.byteSize
        for i in 0..<count {
            (y.storage.pointer + (targetOffset + i * targetStride) * size)
                .copyMemory(from: x.storage.pointer + (sourceOffset + i * sourceStride) * size, byteCount: length * size)
        }
    }

    public func fill(_ y: Tensor, with value: Double) {
        for i in 0..<y.elementCount {
            switch y.dtype {
            case .float32: y.floatPointer[i] = Float(value)
            case .float64: y.doublePointer[i] = value
            case .int64: y.int64Pointer[i] = Int64(value)
            }
        }
    }

    public func clamp(_ x: Tensor, lower: Double, upper: Double, into y: Tensor) {
        func run<T: KernelFloat>(_: T.Type) {
            let p = x.pointer(as: T.self), o = y.pointer(as: T.self)
            for i in 0..<x.elementCount { o[i] = Swift.min(Swift.max(p[i], T(lower)), T(upper)) }
        }
        dispatch(x.dtype, "clamp", float: { run(Float.self) }, double: { run(Double.self) })
    }

    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor, into y: Tensor) {
        let chosen = condition.doubleScalars()
        let size = y.dtype.byteSize
        for i in 0..<y.elementCount {
            let source = chosen[i] != 0 ? a : b
            (y.storage.pointer + i * size).copyMemory(from: source.storage.pointer + i * size, byteCount: size)
        }
    }

    public func convert(_ x: Tensor, into y: Tensor) {
        let values = x.doubleScalars()
        for i in values.indices {
            switch y.dtype {
            case .float32: y.floatPointer[i] = x.dtype == .float32 ? x.floatPointer[i] : Float(values[i])
            case .float64: y.doublePointer[i] = values[i]
            case .int64: y.int64Pointer[i] = x.dtype == .int64 ? x.int64Pointer[i] : Int64(values[i].rounded(.towardZero))
            }
        }
    }

    public func activate(_ activation: LinearActivation, _ x: Tensor) {
        if let op = activation.unaryOp { map(op, x, into: x) }
    }

    // MARK: Reductions

    public func sum(_ x: Tensor, axes: [Int], into y: Tensor) {
        let shape = x.shape
        // The output's stride of each input axis: row-major over the kept axes, 0 for reduced ones.
        var outputStrides = [Int](repeating: 0, count: shape.count), step = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) where !axes.contains(d) {
            outputStrides[d] = step
            step *= shape[d]
        }
        var sums = [Double](repeating: 0, count: y.elementCount)
        func run<T: KernelFloat>(_: T.Type) {
            let p = x.pointer(as: T.self)
            for i in 0..<x.elementCount {
                sums[Shapes.offset(ofElement: i, shape: shape, strides: outputStrides)] += Double(p[i])
            }
            let out = y.pointer(as: T.self)
            for k in 0..<sums.count { out[k] = T(sums[k]) }
        }
        dispatch(x.dtype, "sum", float: { run(Float.self) }, double: { run(Double.self) })
    }

    public func rowMax(_ x: Tensor, into y: Tensor) {
        let rows = y.elementCount, inner = x.elementCount / Swift.max(rows, 1)
        func run<T: KernelFloat>(_: T.Type) {
            let p = x.pointer(as: T.self), out = y.pointer(as: T.self)
            for r in 0..<rows {
                var m = p[r * inner]
                for j in 0..<inner where p[r * inner + j] > m || p[r * inner + j].isNaN { m = p[r * inner + j] }
                out[r] = m
            }
        }
        dispatch(x.dtype, "max", float: { run(Float.self) }, double: { run(Double.self) })
    }

    // MARK: Normalisation

    /// act(z) for a batch norm's fused activation.
    private static func activated(_ z: Double, _ activation: NormActivation) -> Double {
        activation == .none || z > 0 ? z : z * activation.negativeSlope
    }

    public func batchNormForward(_ g: BatchNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, output: Tensor,
                                 statistics: Tensor) {
        let (rows, c) = (g.rows, g.channels)
        let values = x.doubleScalars(), w = weight?.doubleScalars(), b = bias?.doubleScalars()
        let stats = statistics.doublePointer
        var result = [Double](repeating: 0, count: rows * c)
        for k in 0..<c {
            var mean = 0.0
            for r in 0..<rows { mean += values[r * c + k] }
            mean /= Double(rows)
            var squares = 0.0
            for r in 0..<rows { squares += (values[r * c + k] - mean) * (values[r * c + k] - mean) }
            let rstd = 1 / (squares / Double(rows) + g.eps).squareRoot()
            stats[k] = mean
            stats[c + k] = rstd
            stats[2 * c + k] = squares / Double(Swift.max(rows - 1, 1))
            for r in 0..<rows {
                let z = (values[r * c + k] - mean) * rstd * (w?[k] ?? 1) + (b?[k] ?? 0)
                result[r * c + k] = Self.activated(z, g.activation)
            }
        }
        Self.store(result, into: output)
    }

    public func batchNormInference(_ g: BatchNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, mean: Tensor,
                                   variance: Tensor, output: Tensor) {
        let (rows, c) = (g.rows, g.channels)
        let values = x.doubleScalars(), w = weight?.doubleScalars(), b = bias?.doubleScalars()
        let m = mean.doubleScalars(), v = variance.doubleScalars()
        var result = [Double](repeating: 0, count: rows * c)
        for r in 0..<rows {
            for k in 0..<c {
                let z = (values[r * c + k] - m[k]) / (v[k] + g.eps).squareRoot() * (w?[k] ?? 1) + (b?[k] ?? 0)
                result[r * c + k] = Self.activated(z, g.activation)
            }
        }
        Self.store(result, into: output)
    }

    public func batchNormBackward(_ g: BatchNormGeometry, gradOutput: Tensor, x: Tensor, output: Tensor, weight: Tensor?,
                                  statistics: Tensor, gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor) {
        let (rows, c, n) = (g.rows, g.channels, Double(g.rows))
        let dy = gradOutput.doubleScalars(), values = x.doubleScalars(), y = output.doubleScalars()
        let w = weight?.doubleScalars(), stats = statistics.doubleScalars()
        var dx = [Double](repeating: 0, count: rows * c), dw = [Double](repeating: 0, count: c), db = dw
        for k in 0..<c {
            let (mean, rstd, scale) = (stats[k], stats[c + k], w?[k] ?? 1)
            // dz: dy through the activation, whose slope shows in the output's sign.
            let dz = (0..<rows).map { r in g.activation == .none || y[r * c + k] > 0 ? dy[r * c + k] : dy[r * c + k] * g.activation.negativeSlope }
            let xhat = (0..<rows).map { r in (values[r * c + k] - mean) * rstd }
            let sumDz = dz.reduce(0, +), sumDzXhat = Swift.zip(dz, xhat).map(*).reduce(0, +)
            db[k] = sumDz
            dw[k] = sumDzXhat
            for r in 0..<rows {
                dx[r * c + k] = scale * rstd * (dz[r] - sumDz / n - xhat[r] * sumDzXhat / n)
            }
        }
        Self.store(dx, into: gradInput)
        Self.store(dw, into: gradWeight)
        Self.store(db, into: gradBias)
    }

    public func groupNormForward(_ g: GroupNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, output: Tensor,
                                 statistics: Tensor) {
        let (s, c, cpg) = (g.spatial, g.channels, g.channelsPerGroup)
        let values = x.doubleScalars(), w = weight?.doubleScalars(), b = bias?.doubleScalars()
        let stats = statistics.doublePointer
        var result = [Double](repeating: 0, count: values.count)
        for n in 0..<g.batch {
            for group in 0..<g.groups {
                let members = Self.groupMembers(n, group, s, c, cpg)
                let mean = members.map { values[$0] }.reduce(0, +) / Double(members.count)
                let variance = members.map { (values[$0] - mean) * (values[$0] - mean) }.reduce(0, +) / Double(members.count)
                let rstd = 1 / (variance + g.eps).squareRoot()
                stats[(n * g.groups + group) * 2] = mean
                stats[(n * g.groups + group) * 2 + 1] = rstd
                for i in members {
                    let k = i % c
                    let z = (values[i] - mean) * rstd * (w?[k] ?? 1) + (b?[k] ?? 0)
                    result[i] = g.silu ? z / (1 + Double.exp(-z)) : z
                }
            }
        }
        Self.store(result, into: output)
    }

    public func groupNormBackward(_ g: GroupNormGeometry, gradOutput: Tensor, x: Tensor, weight: Tensor?, bias: Tensor?,
                                  statistics: Tensor, gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor) {
        let (s, c, cpg) = (g.spatial, g.channels, g.channelsPerGroup)
        let dy = gradOutput.doubleScalars(), values = x.doubleScalars()
        let w = weight?.doubleScalars(), b = bias?.doubleScalars(), stats = statistics.doubleScalars()
        var dx = [Double](repeating: 0, count: values.count), dw = [Double](repeating: 0, count: c), db = dw
        for n in 0..<g.batch {
            for group in 0..<g.groups {
                let members = Self.groupMembers(n, group, s, c, cpg)
                let (mean, rstd) = (stats[(n * g.groups + group) * 2], stats[(n * g.groups + group) * 2 + 1])
                var dxhat: [Double] = [], xhat: [Double] = []
                for i in members {
                    let k = i % c, h = (values[i] - mean) * rstd
                    var dz = dy[i]
                    if g.silu {  // through SiLU at z = h w + b
                        let z = h * (w?[k] ?? 1) + (b?[k] ?? 0), sigma = 1 / (1 + Double.exp(-z))
                        dz *= sigma * (1 + z * (1 - sigma))
                    }
                    dw[k] += dz * h
                    db[k] += dz
                    xhat.append(h)
                    dxhat.append(dz * (w?[k] ?? 1))
                }
                let m1 = dxhat.reduce(0, +) / Double(members.count)
                let m2 = Swift.zip(dxhat, xhat).map(*).reduce(0, +) / Double(members.count)
                for (j, i) in members.enumerated() { dx[i] = rstd * (dxhat[j] - m1 - xhat[j] * m2) }
            }
        }
        Self.store(dx, into: gradInput)
        Self.store(dw, into: gradWeight)
        Self.store(db, into: gradBias)
    }

    /// The flat indices of sample n's group (channels group·cpg ..< (group + 1)·cpg at every position).
    private static func groupMembers(_ n: Int, _ group: Int, _ spatial: Int, _ c: Int, _ cpg: Int) -> [Int] {
        (0..<spatial).flatMap { p in ((group * cpg)..<((group + 1) * cpg)).map { (n * spatial + p) * c + $0 } }
    }

    /// Writes Double values into a float tensor of the same element count, rounding once.
    private static func store(_ values: [Double], into t: Tensor) {
        switch t.dtype {
        case .float32: for i in values.indices { t.floatPointer[i] = Float(values[i]) }
        case .float64: for i in values.indices { t.doublePointer[i] = values[i] }
        case .int64: preconditionFailure("store: int64 tensor")
        }
    }

    // MARK: Indexing

    public func gather(_ x: Tensor, indices: [Int], into y: Tensor) {
        let size = x.dtype.byteSize
        for (i, j) in indices.enumerated() {
            precondition(j >= 0 && j < x.elementCount, "gather: index \(j) out of range 0..<\(x.elementCount)")
            (y.storage.pointer + i * size).copyMemory(from: x.storage.pointer + j * size, byteCount: size)
        }
    }

    public func scatterAdd(_ g: Tensor, indices: [Int], into y: Tensor) {
        func run<T: KernelFloat>(_: T.Type) {
            let src = g.pointer(as: T.self), dst = y.pointer(as: T.self)
            for i in 0..<y.elementCount { dst[i] = 0 }
            for (i, j) in indices.enumerated() {
                precondition(j >= 0 && j < y.elementCount, "scatterAdd: index \(j) out of range 0..<\(y.elementCount)")
                dst[j] += src[i]
            }
        }
        dispatch(g.dtype, "scatterAdd", float: { run(Float.self) }, double: { run(Double.self) })
    }

    public func maxPool2d(_ g: PoolGeometry, _ x: Tensor, into y: Tensor, argmax: UnsafeMutablePointer<Int>?) {
        func run<T: KernelFloat>(_: T.Type) {
            let src = x.pointer(as: T.self), dst = y.pointer(as: T.self)
            for b in 0..<g.batch {
                for i in 0..<g.outHeight {
                    for j in 0..<g.outWidth {
                        for ch in 0..<g.channels {
                            var best = -1
                            for di in 0..<g.kernel {
                                for dj in 0..<g.kernel {
                                    let at = ((b * g.height + i * g.stride + di) * g.width + j * g.stride + dj) * g.channels + ch
                                    if best < 0 || src[at] > src[best] || (src[at].isNaN && !src[best].isNaN) { best = at }
                                }
                            }
                            let out = ((b * g.outHeight + i) * g.outWidth + j) * g.channels + ch
                            dst[out] = src[best]
                            argmax?[out] = best
                        }
                    }
                }
            }
        }
        dispatch(x.dtype, "maxPool2d", float: { run(Float.self) }, double: { run(Double.self) })
    }

    // MARK: Random

    public func fillUniform(_ y: Tensor, low: Double, high: Double, seed: UInt64, base: UInt64) {
        for i in 0..<y.elementCount {
            let value = low + (high - low) * RandomGenerator.unitDouble(seed, base &+ UInt64(i))
            switch y.dtype {
            case .float32: y.floatPointer[i] = Swift.min(Float(value), Float(high).nextDown)
            case .float64: y.doublePointer[i] = value
            case .int64: preconditionFailure("uniform: int64 dtype; use randomIntegers")
            }
        }
    }

    public func fillNormal(_ y: Tensor, mean: Double, std: Double, seed: UInt64, base: UInt64) {
        for i in 0..<y.elementCount {
            let value = mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i))
            switch y.dtype {
            case .float32: y.floatPointer[i] = Float(value)
            case .float64: y.doublePointer[i] = value
            case .int64: preconditionFailure("normal: int64 dtype")
            }
        }
    }

    // MARK: Optimizers

    public func update(_ rule: ParameterUpdate, parameter: Tensor, gradient: Tensor, state: [Tensor]) {
        let p = parameter.floatPointer, g = gradient.floatPointer
        for j in 0..<parameter.elementCount {
            switch rule {
            case let .sgd(lr, momentum, wd, first):
                let d = g[j] + wd * p[j]
                if let buffer = state.first?.floatPointer {
                    buffer[j] = first ? d : momentum * buffer[j] + d
                    p[j] -= lr * buffer[j]
                } else {
                    p[j] -= lr * d
                }
            case let .adam(stepSize, b1, b2, eps, bc2Sqrt, decay, l2):
                let (m, v) = (state[0].floatPointer, state[1].floatPointer)
                let gj = g[j] + l2 * p[j]
                m[j] = b1 * m[j] + (1 - b1) * gj
                v[j] = b2 * v[j] + (1 - b2) * gj * gj
                p[j] = p[j] * decay - stepSize * m[j] / (v[j].squareRoot() / bc2Sqrt + eps)
            case let .rmsprop(lr, alpha, eps, wd):
                let v = state[0].floatPointer
                let gj = g[j] + wd * p[j]
                v[j] = alpha * v[j] + (1 - alpha) * gj * gj
                p[j] -= lr * gj / (v[j].squareRoot() + eps)
            case let .movingAverage(decay):
                p[j] = decay * p[j] + (1 - decay) * g[j]
            }
        }
    }
}
