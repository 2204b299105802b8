import RealModule

/// A seeded, counter-based random generator: the n-th 64-bit draw is a hash of (seed, n), so the
/// state is two integers that a checkpoint stores, and the same seed gives the same numbers on every
/// run and machine. The hash is SplitMix64 (Steele, Lea & Flood 2014).
///
/// **Batch shards.** While `shard` is set (data-parallel training: this process computes rows
/// `rows` of a global batch of `batch` examples), a tensor draw whose leading dimension is
/// `rows.count` returns those rows of the draw the whole batch would have made, and advances the
/// counter as the whole batch's draw does: every example gets the numbers it gets in one process,
/// whatever the split. Every other draw (scalars, and tensors of another leading dimension) comes
/// from a side stream keyed by the counter when the shard was set and the shard's first row, and
/// leaves the counter alone: valid random numbers, the same for the same split, but not shared
/// across splits.
public final class RandomGenerator: @unchecked Sendable {
    /// The seed this generator was made with.
    public let seed: UInt64
    /// How many 64-bit values have been drawn.
    public private(set) var counter: UInt64
    /// The rows of a global batch this process draws for (see the type's documentation); nil: all.
    public var shard: BatchShard? {
        didSet { side = shard.map { RandomGenerator(seed: Self.mix(seed ^ 0x5A4D_5EED, counter) ^ UInt64($0.rows.lowerBound), counter: 0) } }
    }
    /// The side stream of a sharded draw that is not one of the batch's rows.
    private var side: RandomGenerator?

    public init(seed: UInt64, counter: UInt64 = 0) {
        self.seed = seed
        self.counter = counter
    }

    /// SplitMix64's output function over the stream position.
    @inline(__always)
    static func mix(_ seed: UInt64, _ n: UInt64) -> UInt64 {
        var z = seed &+ (n &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next 64 random bits.
    public func next() -> UInt64 {
        if let side { return side.next() }
        defer { counter &+= 1 }
        return RandomGenerator.mix(seed, counter)
    }

    /// A uniform double in [0, 1).
    public func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A uniform integer in low..<high, without modulo bias.
    public func nextInt(_ low: Int, _ high: Int) -> Int {
        precondition(high > low, "randomInteger: empty range \(low)..<\(high)")
        let range = UInt64(high - low)
        let limit = UInt64.max - UInt64.max % range
        var x = next()
        while x >= limit { x = next() }
        return low + Int(x % range)
    }

    /// A standard normal double (Box-Muller; each call draws two values and uses one).
    public func nextNormal() -> Double {
        if let side { return side.nextNormal() }
        defer { counter &+= 2 }
        return RandomGenerator.normal(seed, counter)
    }

    /// The uniform double in [0, 1) at stream position n.
    @inline(__always)
    static func unitDouble(_ seed: UInt64, _ n: UInt64) -> Double { Double(mix(seed, n) >> 11) * 0x1p-53 }

    /// The normal value drawn from stream positions n and n + 1 (what `nextNormal` returns there).
    @inline(__always)
    static func normal(_ seed: UInt64, _ n: UInt64) -> Double {
        let u1 = 1 - unitDouble(seed, n)  // (0, 1]
        let u2 = unitDouble(seed, n &+ 1)
        return (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }

    /// Reserves `count` draws and returns the position of the first: tensors fill their elements from
    /// the positions in parallel, with the values a sequential loop would give.
    func reserve(_ count: Int) -> UInt64 {
        defer { counter &+= UInt64(count) }
        return counter
    }

    /// `body`'s draws from this stream even under a shard (the whole batch's draw).
    func onMainStream<T>(_ body: () -> T) -> T {
        let saved = side
        side = nil
        defer { side = saved }
        return body()
    }

    /// The generator and first position of a tensor draw of `shape` taking `perElement` positions
    /// per element: under a shard, the shard's rows of the global batch's draw (leading dimension
    /// `rows.count`) or the side stream; otherwise this stream.
    func reserve(shape: [Int], perElement: Int) -> (seed: UInt64, base: UInt64) {
        let count = shape.reduce(1, *) * perElement
        guard let shard, let side else { return (seed, reserve(count)) }
        guard shape.first == shard.rows.count else { return (side.seed, side.reserve(count)) }
        let perRow = count / Swift.max(shard.rows.count, 1)
        return (seed, reserve(perRow * shard.batch) + UInt64(perRow * shard.rows.lowerBound))
    }

    /// A random permutation of 0..<n (Fisher-Yates).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(0, i + 1)) }
        return p
    }
}

extension Tensor {
    /// Uniform values in [low, high).
    public static func uniform(_ shape: [Int], low: Double = 0, high: Double = 1, dtype: DType = .float32,
                               generator: RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        precondition(dtype.isFloatingPoint, "uniform: int64 dtype; use randomIntegers")
        let out = Tensor(uninitializedShape: shape, dtype: dtype, requiresGrad: requiresGrad)
        let (seed, base) = generator.reserve(shape: shape, perElement: 1)
        Backend.current.fillUniform(out, low: low, high: high, seed: seed, base: base)
        return out
    }

    /// Normal values with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float32,
                              generator: RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        precondition(dtype.isFloatingPoint, "normal: int64 dtype")
        let out = Tensor(uninitializedShape: shape, dtype: dtype, requiresGrad: requiresGrad)
        let (seed, base) = generator.reserve(shape: shape, perElement: 2)
        Backend.current.fillNormal(out, mean: mean, std: std, seed: seed, base: base)
        return out
    }

    /// Uniform integers in low..<high, as int64.
    /// Under a batch shard (`RandomGenerator.shard`), a draw of the shard's rows is that of the
    /// whole batch (drawn in full: a value may take more than one position), sliced to the rows.
    public static func randomIntegers(_ shape: [Int], low: Int, high: Int, generator: RandomGenerator) -> Tensor {
        let count = shape.reduce(1, *)
        if let shard = generator.shard, shape.first == shard.rows.count {
            let perRow = count / Swift.max(shard.rows.count, 1)
            let all = generator.onMainStream { (0..<(perRow * shard.batch)).map { _ in Int64(generator.nextInt(low, high)) } }
            return Tensor(Array(all[(perRow * shard.rows.lowerBound)..<(perRow * shard.rows.upperBound)]), shape: shape)
        }
        return Tensor((0..<count).map { _ in Int64(generator.nextInt(low, high)) }, shape: shape)
    }
}

/// The rows `rows` of a batch of `batch` examples that one data-parallel replica computes.
public struct BatchShard: Equatable, Sendable {
    public let batch: Int
    public let rows: Range<Int>

    public init(batch: Int, rows: Range<Int>) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= batch, "BatchShard: rows \(rows) outside a batch of \(batch)")
        self.batch = batch
        self.rows = rows
    }
}

/// Float32 normal draws eight at a time, with exactly the values of the scalar definition
/// (`Float(mean + std * RandomGenerator.normal(seed, n))`, libm's `log` and `cos` in Double).
///
/// The eight lanes compute the same Box-Muller math with SplitMix64, `log`, `cos` and `sqrt` written
/// as Double-precision polynomials and Newton steps (SIMD lanes instead of two libm calls per value).
/// They are not libm's bit for bit, but within a relative 2^-46 of it (both are within a few Double
/// ulp of the exact values; the tests measure the gap), and the result is rounded to Float32, whose
/// ulp is 2^29 times coarser. A lane's value is kept only when everything within a generous 2^-38 of
/// it (relative) rounds to the same Float32, so that libm's value must round there too; otherwise
/// (values within 1e-3 of zero, and about one in 10^4 near a rounding boundary) that element is drawn
/// by the scalar code. It exists because it is faster than the scalar loop (figures: docs/architecture.md,
/// Measurements and history).
enum NormalFloatKernel {
    typealias Doubles = SIMD8<Double>
    typealias Words = SIMD8<UInt64>

    /// p[i] = Float(mean + std * normal(seed, base + 2 i)) for i in `range`.
    static func fill(_ p: UnsafeMutablePointer<Float>, _ range: Range<Int>, seed: UInt64, base: UInt64,
                     mean: Double, std: Double) {
        var i = range.lowerBound
        let lanes = Words(0, 1, 2, 3, 4, 5, 6, 7)
        while i + 8 <= range.upperBound {
            let x = normals(seed, (Words(repeating: UInt64(truncatingIfNeeded: i)) &+ lanes) &* 2 &+ base)
            let scaled = std * x
            let d = mean + scaled
            let e = (absolute(scaled) + absolute(d)) * 0x1p-38
            let f = SIMD8<Float>(d)
            let low = SIMD8<Float>(d - e), high = SIMD8<Float>(d + e), away = SIMD8<Float>(absolute(x))
            var exact: SIMDMask<SIMD8<Int32>> = low .== f
            exact = exact .& (high .== f)
            exact = exact .& (away .>= 1e-3)
            exact = exact .& (f .!= 0)  // a zero's sign is not checked by the comparisons
            UnsafeMutableRawPointer(p + i).storeBytes(of: f, as: SIMD8<Float>.self)
            if !all(exact) {
                for j in 0..<8 where !exact[j] {
                    p[i + j] = Float(mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i + j)))
                }
            }
            i += 8
        }
        while i < range.upperBound {
            p[i] = Float(mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i)))
            i += 1
        }
    }

    /// The Box-Muller normals drawn from stream positions n and n + 1, per lane (to within 2^-46
    /// relative of `RandomGenerator.normal`).
    @inline(__always)
    static func normals(_ seed: UInt64, _ n: Words) -> Doubles {
        let u1 = 1 - unitDoubles(seed, n)
        let u2 = unitDoubles(seed, n &+ 1)
        return squareRoot(-2 * log(u1)) * cos(2 * Double.pi * u2)
    }

    /// sqrt(x) per lane for x >= 0, to within a few ulp: 1/sqrt(x) from the exponent-halving bit
    /// trick (within 4% relative), four Newton steps (each squares the error: 2^-4.6 to below 2^-53),
    /// times x. The standard library's SIMD `squareRoot` runs lane by lane through libm's `sqrt`.
    @inline(__always)
    static func squareRoot(_ x: Doubles) -> Doubles {
        var y = Doubles(bitPattern: 0x5FE6_EB50_C7B5_37A9 &- (x.bitPattern &>> 1))
        let half = 0.5 * x
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        return x * y
    }

    /// |x| per lane.
    @inline(__always)
    static func absolute(_ x: Doubles) -> Doubles { Doubles(bitPattern: x.bitPattern & 0x7FFF_FFFF_FFFF_FFFF) }

    /// SplitMix64 per lane (`RandomGenerator.mix`).
    @inline(__always)
    static func mix(_ seed: UInt64, _ n: Words) -> Words {
        var z = (n &+ 1) &* 0x9E37_79B9_7F4A_7C15 &+ seed
        z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z &>> 31)
    }

    /// Uniform doubles in [0, 1) per lane (`RandomGenerator.unitDouble`): the top 53 bits, converted
    /// exactly as two halves of at most 32 bits each (2^52 + h as a Double's bits, minus 2^52).
    @inline(__always)
    static func unitDoubles(_ seed: UInt64, _ n: Words) -> Doubles {
        let v = mix(seed, n) &>> 11
        let twoTo52 = Doubles(repeating: 0x1p52)
        let high = Doubles(bitPattern: (v &>> 32) | 0x4330_0000_0000_0000) - twoTo52
        let low = Doubles(bitPattern: (v & 0xFFFF_FFFF) | 0x4330_0000_0000_0000) - twoTo52
        return (high * 0x1p32 + low) * 0x1p-53
    }

    /// Natural log of normal positive doubles (fdlibm's reduction: x = 2^e m with m in
    /// [sqrt(2)/2, sqrt(2)), log m = 2 atanh(s) with s = (m - 1) / (m + 1), a series in s²).
    @inline(__always)
    static func log(_ x: Doubles) -> Doubles {
        let bits = x.bitPattern
        var m = Doubles(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)  // [1, 2)
        var e = Doubles(bitPattern: (bits &>> 52) | 0x4330_0000_0000_0000) - (0x1p52 + 1023)
        let high = m .> 1.4142135623730951
        m.replace(with: m * 0.5, where: high)
        e.replace(with: e + 1, where: high)
        let f = m - 1
        let s = f / (2 + f)
        let z = s * s
        // 1 + z/3 + z²/5 + ... + z⁹/19: |s| <= 0.1716, so the first term left out, z¹⁰/21, is < 2^-56.
        var r = Doubles(repeating: 1.0 / 19)
        r = r * z + 1.0 / 17
        r = r * z + 1.0 / 15
        r = r * z + 1.0 / 13
        r = r * z + 1.0 / 11
        r = r * z + 1.0 / 9
        r = r * z + 1.0 / 7
        r = r * z + 1.0 / 5
        r = r * z + 1.0 / 3
        r = r * z + 1
        let ln2High = 6.93147180369123816490e-01, ln2Low = 1.90821492927058770002e-10  // ln2High has 32 bits
        return e * ln2High + (e * ln2Low + 2 * s * r)
    }

    /// cos of doubles in [0, 2π]: x = k π/2 + r with |r| <= π/4 (Cody-Waite, π/2 in two parts), then
    /// the Taylor series of ±cos r or ±sin r by k mod 4.
    @inline(__always)
    static func cos(_ x: Doubles) -> Doubles {
        let magic = Doubles(repeating: 0x1.8p52)
        let t = x * 0.63661977236758134308 + magic  // 2/π; the sum rounds x 2/π to an integer k
        let k = t - magic
        let r = (x - k * 1.57079632673412561417e+00) - k * 6.07710050650619224932e-11
        let z = r * r
        // Terms through r¹⁶/16! and r¹⁵/15!: for |r| <= π/4 the first ones left out are < 2^-55 relative.
        var c = Doubles(repeating: 1.0 / 20_922_789_888_000)
        c = c * z - 1.0 / 87_178_291_200
        c = c * z + 1.0 / 479_001_600
        c = c * z - 1.0 / 3_628_800
        c = c * z + 1.0 / 40320
        c = c * z - 1.0 / 720
        c = c * z + 1.0 / 24
        c = c * z - 0.5
        c = c * z + 1
        var s = Doubles(repeating: -1.0 / 1_307_674_368_000)
        s = s * z + 1.0 / 6_227_020_800
        s = s * z - 1.0 / 39_916_800
        s = s * z + 1.0 / 362_880
        s = s * z - 1.0 / 5040
        s = s * z + 1.0 / 120
        s = s * z - 1.0 / 6
        s = r + r * z * s
        // k is 0...4 (4: x near 2π, the quadrant of 0). Compared as doubles: integer lane compares
        // run lane by lane.
        var result = c
        result.replace(with: -s, where: k .== 1)
        result.replace(with: -c, where: k .== 2)
        result.replace(with: s, where: k .== 3)
        return result
    }
}

extension SIMD8 where Scalar == Double {
    @inline(__always)
    var bitPattern: SIMD8<UInt64> { unsafeBitCast(self, to: SIMD8<UInt64>.self) }

    @inline(__always)
    init(bitPattern bits: SIMD8<UInt64>) { self = unsafeBitCast(bits, to: SIMD8<Double>.self) }
}
