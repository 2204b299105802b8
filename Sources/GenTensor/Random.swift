import RealModule

/// A seeded, counter-based random generator: the n-th 64-bit draw is a hash of (seed, n), so the
/// state is two integers that a checkpoint stores, and the same seed gives the same numbers on every
/// run and machine. The hash is SplitMix64 (Steele, Lea & Flood 2014).
public final class RandomGenerator: @unchecked Sendable {
    /// The seed this generator was made with.
    public let seed: UInt64
    /// How many 64-bit values have been drawn.
    public private(set) var counter: UInt64

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
        let out = Tensor(uninitializedShape: shape, dtype: dtype, requiresGrad: requiresGrad)
        let n = out.elementCount
        switch dtype {
        case .float32:
            // Rounding to Float32 can reach `high`; keep the promised half-open range.
            let top = Float(high).nextDown
            let (seed, base, p) = (generator.seed, generator.reserve(n), out.floatPointer)
            parallelChunks(n, costPerItem: 8) { r in
                for i in r { p[i] = Swift.min(Float(low + (high - low) * RandomGenerator.unitDouble(seed, base &+ UInt64(i))), top) }
            }
        case .float64:
            let (seed, base, p) = (generator.seed, generator.reserve(n), out.doublePointer)
            parallelChunks(n, costPerItem: 8) { r in
                for i in r { p[i] = low + (high - low) * RandomGenerator.unitDouble(seed, base &+ UInt64(i)) }
            }
        case .int64: preconditionFailure("uniform: int64 dtype; use randomIntegers")
        }
        return out
    }

    /// Normal values with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float32,
                              generator: RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: dtype, requiresGrad: requiresGrad)
        let n = out.elementCount
        switch dtype {
        case .float32:
            let (seed, base, p) = (generator.seed, generator.reserve(2 * n), out.floatPointer)
            parallelChunks(n, costPerItem: 64) { r in
                for i in r { p[i] = Float(mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i))) }
            }
        case .float64:
            let (seed, base, p) = (generator.seed, generator.reserve(2 * n), out.doublePointer)
            parallelChunks(n, costPerItem: 64) { r in
                for i in r { p[i] = mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i)) }
            }
        case .int64: preconditionFailure("normal: int64 dtype")
        }
        return out
    }

    /// Uniform integers in low..<high, as int64.
    public static func randomIntegers(_ shape: [Int], low: Int, high: Int, generator: RandomGenerator) -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: .int64)
        for i in 0..<out.elementCount { out.int64Pointer[i] = Int64(generator.nextInt(low, high)) }
        return out
    }
}
