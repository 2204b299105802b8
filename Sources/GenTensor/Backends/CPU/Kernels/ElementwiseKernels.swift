import RealModule

/// A pointwise function of one value, specialised per element type.
protocol UnaryFunctor {
    static func apply<T: KernelFloat>(_ x: T) -> T
}

/// A pointwise function of two values.
protocol BinaryFunctor {
    static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T
}

enum NegF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { -x } }
enum ExpF: VectorUnaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { T.exp(x) }
    @inline(__always) static func apply(vector x: VectorMath.Vector) -> VectorMath.Vector { VectorMath.exp(x) }
}
enum LogF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { T.log(x) } }
enum Log1pF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { T.log(onePlus: x) } }
enum SqrtF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { x.squareRoot() } }
enum TanhF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { T.tanh(x) } }
enum SinF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { T.sin(x) } }
enum CosF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { T.cos(x) } }
enum AbsF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { x.magnitude } }
enum ReluF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { x > 0 ? x : 0 } }
enum SignF: UnaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { x > 0 ? 1 : (x < 0 ? -1 : 0) }
}
/// 1 where x > 0, else 0: the derivative of relu.
enum PositiveMaskF: UnaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { x > 0 ? 1 : 0 } }
enum SigmoidF: VectorUnaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T {
        // Stable for large |x|: never exponentiates a large positive number.
        if x >= 0 { return 1 / (1 + T.exp(-x)) }
        let e = T.exp(x)
        return e / (1 + e)
    }
    @inline(__always) static func apply(vector x: VectorMath.Vector) -> VectorMath.Vector { VectorMath.sigmoid(x) }
}
/// x * sigmoid(x) (SiLU).
enum SiLUF: VectorUnaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { x * SigmoidF.apply(x) }
    @inline(__always) static func apply(vector x: VectorMath.Vector) -> VectorMath.Vector { x * VectorMath.sigmoid(x) }
}

/// log(1 + exp(x)), stable for large |x|.
enum SoftplusF: UnaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { (x > 0 ? x : 0) + T.log(onePlus: T.exp(-x.magnitude)) }
}

enum AddF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a + b } }
enum SubF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a - b } }
enum MulF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a * b } }
enum DivF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a / b } }

// Fused backward passes (first-order only: under createGraph the ops use composite VJPs instead).

/// g * d/dx silu(x) = g * s (1 + x (1 - s)), s = sigmoid(x); operands (g, x).
enum SiLUGradF: VectorBinaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ g: T, _ x: T) -> T {
        let s = SigmoidF.apply(x)
        return g * s * (1 + x * (1 - s))
    }
    @inline(__always) static func apply(vector g: VectorMath.Vector, _ x: VectorMath.Vector) -> VectorMath.Vector {
        let s = VectorMath.sigmoid(x)
        return g * s * (1 + x * (1 - s))
    }
}
/// g * y (1 - y) with y = sigmoid(x); operands (g, y).
enum SigmoidGradF: BinaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ g: T, _ y: T) -> T { g * y * (1 - y) }
}
/// g * (1 - y²) with y = tanh(x); operands (g, y).
enum TanhGradF: BinaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ g: T, _ y: T) -> T { g * (1 - y * y) }
}
/// g where x > 0, else 0; operands (g, x).
enum ReluGradF: BinaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ g: T, _ x: T) -> T { x > 0 ? g : 0 }
}
/// a^b; whole exponents use repeated multiplication so negative bases and 0^0 follow PyTorch
/// (RealModule's real-exponent `pow` is defined for positive bases only).
enum PowF: BinaryFunctor {
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T {
        if b == b.rounded() && b.magnitude < 0x1p30 { return T.pow(a, Int(b)) }
        return T.pow(a, b)
    }
}
/// 1 where a == b, else 0.
enum EqualMaskF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a == b ? 1 : 0 } }
/// 1 where a > b, else 0.
enum GreaterMaskF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a > b ? 1 : 0 } }
/// 1 where a >= b, else 0.
enum GreaterEqualMaskF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a >= b ? 1 : 0 } }
/// x where x > 0, else slope * x: leaky relu with the slope as second operand.
enum LeakyReluF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T, _ s: T) -> T { x > 0 ? x : x * s } }
/// 1 where x > 0, else slope: the derivative of leaky relu.
enum LeakySlopeF: BinaryFunctor { @inline(__always) static func apply<T: KernelFloat>(_ x: T, _ s: T) -> T { x > 0 ? 1 : s } }

/// The loops behind elementwise ops, threaded over row chunks.
enum ElementwiseKernels {
    static func unary<F: UnaryFunctor, T: KernelFloat>(_ f: F.Type, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
        if T.self == Float.self, let vector = F.self as? any VectorUnaryFunctor.Type {
            unaryVector(vector, UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
                        UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self), n)
            return
        }
        parallelChunks(n) { r in
            for i in r { y[i] = F.apply(x[i]) }
        }
    }

    /// out = F(a, b) with both read through broadcast strides over `shape` (the output shape).
    static func binary<F: BinaryFunctor, T: KernelFloat>(_ f: F.Type, _ a: UnsafePointer<T>, _ sa: [Int],
                                                          _ b: UnsafePointer<T>, _ sb: [Int],
                                                          _ out: UnsafeMutablePointer<T>, _ shape: [Int]) {
        let n = shape.reduce(1, *)
        if n == 0 { return }
        let rank = shape.count
        let aContiguous = sa == Shapes.strides(shape), bContiguous = sb == Shapes.strides(shape)
        if aContiguous && bContiguous {
            if T.self == Float.self, let vector = F.self as? any VectorBinaryFunctor.Type {
                binaryVector(vector, UnsafeRawPointer(a).assumingMemoryBound(to: Float.self),
                             UnsafeRawPointer(b).assumingMemoryBound(to: Float.self),
                             UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self), n)
                return
            }
            parallelChunks(n) { r in for i in r { out[i] = F.apply(a[i], b[i]) } }
            return
        }
        // One operand contiguous, the other repeating a contiguous block along leading axes (a bias
        // over (N, H, W, C)): no index arithmetic per row.
        if let inner = aContiguous ? Self.repeatingBlock(sb, shape) : bContiguous ? Self.repeatingBlock(sa, shape) : nil {
            let (rowA, rowB) = aContiguous ? (inner, 0) : (0, inner)
            parallelChunks(n / inner, costPerItem: inner) { r in
                for row in r {
                    let o = out + row * inner, x = a + row * rowA, y = b + row * rowB
                    for j in 0..<inner { o[j] = F.apply(x[j], y[j]) }
                }
            }
            return
        }
        if bContiguous && sa.allSatisfy({ $0 == 0 }) {
            let av = a[0]
            parallelChunks(n) { r in for i in r { out[i] = F.apply(av, b[i]) } }
            return
        }
        if aContiguous && sb.allSatisfy({ $0 == 0 }) {
            let bv = b[0]
            parallelChunks(n) { r in for i in r { out[i] = F.apply(a[i], bv) } }
            return
        }
        // General case: rows along the last axis, offsets from the multi-index of each row.
        let inner = rank == 0 ? 1 : shape[rank - 1]
        let rows = n / inner
        let ia = rank == 0 ? 0 : sa[rank - 1], ib = rank == 0 ? 0 : sb[rank - 1]
        parallelChunks(rows, costPerItem: inner) { r in
            for row in r {
                var rem = row, oa = 0, ob = 0
                var d = rank - 2
                while d >= 0 {
                    let idx = rem % shape[d]
                    rem /= shape[d]
                    oa += idx * sa[d]; ob += idx * sb[d]
                    d -= 1
                }
                let o = out + row * inner
                if ia == 1 && ib == 1 {
                    for j in 0..<inner { o[j] = F.apply(a[oa + j], b[ob + j]) }
                } else if ia == 0 && ib == 1 {
                    let av = a[oa]
                    for j in 0..<inner { o[j] = F.apply(av, b[ob + j]) }
                } else if ia == 1 && ib == 0 {
                    let bv = b[ob]
                    for j in 0..<inner { o[j] = F.apply(a[oa + j], bv) }
                } else {
                    for j in 0..<inner { o[j] = F.apply(a[oa + j * ia], b[ob + j * ib]) }
                }
            }
        }
    }

    /// When `strides` read a contiguous block of the trailing axes again and again along the leading
    /// axes (strides 0 there), the block's element count.
    static func repeatingBlock(_ strides: [Int], _ shape: [Int]) -> Int? {
        var block = 1, d = shape.count - 1
        while d >= 0 && (strides[d] == block || shape[d] == 1) && !(strides[d] == 0 && shape[d] > 1) {
            block *= shape[d]
            d -= 1
        }
        guard block > 1 else { return nil }
        while d >= 0 {
            if strides[d] != 0 && shape[d] > 1 { return nil }
            d -= 1
        }
        return block
    }

    /// Copies a tensor read through `strides` over `shape` into contiguous `out`.
    static func gatherStrided<T>(_ x: UnsafePointer<T>, _ strides: [Int], _ out: UnsafeMutablePointer<T>, _ shape: [Int]) {
        let n = shape.reduce(1, *)
        if n == 0 { return }
        let rank = shape.count
        if rank == 0 { out[0] = x[0]; return }
        let inner = shape[rank - 1], step = strides[rank - 1]
        if rank >= 2 && strides[rank - 2] == 1 && step != 1 && inner > 1 && shape[rank - 2] > 1 {
            transposeLastTwo(x, strides, out, shape)
            return
        }
        let rows = n / inner
        parallelChunks(rows, costPerItem: inner) { r in
            for row in r {
                let off = Shapes.offset(ofElement: row, shape: shape, strides: strides, leadingAxes: rank - 1)
                let o = out + row * inner
                if step == 1 {
                    for j in 0..<inner { o[j] = x[off + j] }
                } else {
                    for j in 0..<inner { o[j] = x[off + j * step] }
                }
            }
        }
    }
}

extension ElementwiseKernels {
    /// `gatherStrided` when the output's second-to-last axis is the input's contiguous one (a batch of
    /// matrix transposes, such as channels-first <-> channels-last): copied in 16 x 16 tiles, so that
    /// both the reads and the writes of a tile stay in the L1 cache.
    private static func transposeLastTwo<T>(_ x: UnsafePointer<T>, _ strides: [Int], _ out: UnsafeMutablePointer<T>, _ shape: [Int]) {
        let rank = shape.count
        let rowsPerMatrix = shape[rank - 2], inner = shape[rank - 1], step = strides[rank - 1]
        let matrices = shape.reduce(1, *) / (rowsPerMatrix * inner)
        let tile = 16
        parallelChunks(matrices, costPerItem: rowsPerMatrix * inner) { range in
            for m in range {
                let source = x + Shapes.offset(ofElement: m, shape: shape, strides: strides, leadingAxes: rank - 2), target = out + m * rowsPerMatrix * inner
                for a0 in stride(from: 0, to: rowsPerMatrix, by: tile) {
                    let a1 = Swift.min(a0 + tile, rowsPerMatrix)
                    for j0 in stride(from: 0, to: inner, by: tile) {
                        for j in j0..<Swift.min(j0 + tile, inner) {
                            let column = source + j * step
                            for a in a0..<a1 { target[a * inner + j] = column[a] }
                        }
                    }
                }
            }
        }
    }

    /// Applies a linear layer's activation to n Float32 values in place, with the same functors (and
    /// so the same values) as the activation ops.
    static func activation(_ a: LinearActivation, _ x: UnsafeMutablePointer<Float>, _ n: Int) {
        switch a {
        case .none: break
        case .relu: unary(ReluF.self, x, x, n)
        case .sigmoid: unary(SigmoidF.self, x, x, n)
        case .tanh: unary(TanhF.self, x, x, n)
        case .silu: unary(SiLUF.self, x, x, n)
        }
    }
}
