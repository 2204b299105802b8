/// Vectorised Float32 transcendental functions for the elementwise kernels.
///
/// libm's `expf` is called one element at a time; these work on 16 lanes (one AVX-512 register) with
/// the classic Cody-Waite range reduction and a minimax polynomial (Cephes' `expf` coefficients), and
/// stay within 2 ulp of the correctly rounded result over the whole Float range (tested against
/// Double-precision `exp` in OpForwardTests).
public enum VectorMath {
    public typealias Vector = SIMD16<Float>

    /// e^x per lane; 0 below -103.97 (where Float underflows), +inf above 88.72.
    ///
    /// Written with plain lane arithmetic and bit casts only: the standard library's generic SIMD
    /// conversions (`SIMD16<Int32>(floats)`, `rounded`, `clamped`) compile to per-lane calls.
    @inline(__always)
    public static func exp(_ x: Vector) -> Vector {
        let hi: Float = 88.72283, lo: Float = -103.972084
        var xc = x
        xc.replace(with: Vector(repeating: hi), where: x .> hi)
        xc.replace(with: Vector(repeating: lo), where: x .< lo)
        // n = round(x / ln 2) by the 1.5 * 2^23 trick: adding it rounds to an integer, which then sits
        // in the low mantissa bits. r = x - n ln 2 in two parts (Cody-Waite) keeps full precision.
        let magic: Float = 12582912
        let t = xc * 1.44269504088896341 + magic
        let n = t - magic
        var r = xc - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = Vector(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3333452e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * (r * r) + r + 1
        // Scale by 2^n in two halves so that n down to -150 (subnormal results) and up to 128 work.
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let n1 = ni &>> 1, n2 = ni &- n1
        let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: Vector.self)
        let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: Vector.self)
        var result = y * s1 * s2
        result.replace(with: .infinity, where: x .> hi)
        result.replace(with: 0, where: x .< lo)
        result.replace(with: x, where: x .!= x)  // NaN stays NaN
        return result
    }

    /// 1 / (1 + e^-x) per lane, never overflowing.
    @inline(__always)
    public static func sigmoid(_ x: Vector) -> Vector {
        let e = exp(-abs(x))  // in (0, 1]
        let positive = 1 / (1 + e)
        var result = e * positive  // e / (1 + e): the value for x < 0
        result.replace(with: positive, where: x .>= 0)
        return result
    }

    @inline(__always)
    static func abs(_ x: Vector) -> Vector {
        Vector(bitPattern: x.bitPattern(as: SIMD16<UInt32>.self) & 0x7fff_ffff)
    }
}

extension SIMD16 where Scalar == Float {
    @inline(__always)
    func bitPattern(as: SIMD16<UInt32>.Type) -> SIMD16<UInt32> {
        unsafeBitCast(self, to: SIMD16<UInt32>.self)
    }

    @inline(__always)
    init(bitPattern bits: SIMD16<UInt32>) {
        self = unsafeBitCast(bits, to: SIMD16<Float>.self)
    }

    @inline(__always)
    init(bitPattern bits: SIMD16<Int32>) {
        self = unsafeBitCast(bits, to: SIMD16<Float>.self)
    }
}

/// A pointwise function with a 16-lane Float32 form beside its scalar one.
protocol VectorUnaryFunctor: UnaryFunctor {
    static func apply(vector x: VectorMath.Vector) -> VectorMath.Vector
}

/// A pointwise function of two values with a 16-lane Float32 form.
protocol VectorBinaryFunctor: BinaryFunctor {
    static func apply(vector a: VectorMath.Vector, _ b: VectorMath.Vector) -> VectorMath.Vector
}

extension ElementwiseKernels {
    /// y = F(x) over n Float32 values, threaded; each thread runs `serialUnary` on its chunk.
    static func unaryVector<F: VectorUnaryFunctor>(_ f: F.Type, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        parallelChunks((n + 15) / 16, costPerItem: 16) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            serialUnary(f, x + lo, y + lo, hi - lo)
        }
    }

    /// out = F(a, b) over n contiguous Float32 pairs, threaded; each thread runs `serialBinary`.
    static func binaryVector<F: VectorBinaryFunctor>(_ f: F.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                                     _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        parallelChunks((n + 15) / 16, costPerItem: 16) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            serialBinary(f, a + lo, b + lo, out + lo, hi - lo)
        }
    }

    /// y = F(x) over n values on the calling thread (also for kernels already inside a parallel
    /// region; y may be x). Float32 runs 16 lanes at a time, the tail through a padded vector.
    static func serialUnary<F: VectorUnaryFunctor, T: KernelFloat>(_ f: F.Type, _ x: UnsafePointer<T>,
                                                                  _ y: UnsafeMutablePointer<T>, _ n: Int) {
        guard T.self == Float.self else {
            for i in 0..<n { y[i] = F.apply(x[i]) }
            return
        }
        let px = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self)
        let py = UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self)
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(px + i).loadUnaligned(as: VectorMath.Vector.self)
            UnsafeMutableRawPointer(py + i).storeBytes(of: F.apply(vector: v), as: VectorMath.Vector.self)
            i += 16
        }
        if i < n {
            var v = VectorMath.Vector(repeating: 0)
            for j in 0..<(n - i) { v[j] = px[i + j] }
            let o = F.apply(vector: v)
            for j in 0..<(n - i) { py[i + j] = o[j] }
        }
    }

    /// out = F(a, b) over n values on the calling thread (out may be a or b). Float32 runs 16 lanes at
    /// a time, the tail through a padded vector.
    static func serialBinary<F: VectorBinaryFunctor, T: KernelFloat>(_ f: F.Type, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>,
                                                                    _ out: UnsafeMutablePointer<T>, _ n: Int) {
        guard T.self == Float.self else {
            for i in 0..<n { out[i] = F.apply(a[i], b[i]) }
            return
        }
        let pa = UnsafeRawPointer(a).assumingMemoryBound(to: Float.self)
        let pb = UnsafeRawPointer(b).assumingMemoryBound(to: Float.self)
        let po = UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self)
        var i = 0
        while i + 16 <= n {
            let va = UnsafeRawPointer(pa + i).loadUnaligned(as: VectorMath.Vector.self)
            let vb = UnsafeRawPointer(pb + i).loadUnaligned(as: VectorMath.Vector.self)
            UnsafeMutableRawPointer(po + i).storeBytes(of: F.apply(vector: va, vb), as: VectorMath.Vector.self)
            i += 16
        }
        if i < n {
            var va = VectorMath.Vector(repeating: 0), vb = va
            for j in 0..<(n - i) { va[j] = pa[i + j]; vb[j] = pb[i + j] }
            let o = F.apply(vector: va, vb)
            for j in 0..<(n - i) { po[i + j] = o[j] }
        }
    }
}
