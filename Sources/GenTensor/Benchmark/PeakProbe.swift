/// Measures the machine's FP32 peak the way the performance bar defines it: a loop of independent
/// fused multiply-adds on 16-wide Float vectors (512-bit registers under AVX-512) on every thread,
/// and oneDNN's sgemm on a large square product. `generative bench --peak` prints both, so that a
/// workload's GFLOP/s can be read against what this CPU delivers in the same run, not only against a
/// figure measured elsewhere.
public enum PeakProbe {
    /// One probe's result.
    public struct Result: Codable, Sendable {
        public let probe: String
        public let threads: Int
        public let gflops_per_s: Double
    }

    /// Independent accumulators in the FMA loop: enough to hide a 4-cycle latency on two FMA pipes.
    static let accumulators = 16

    /// `iterations` rounds of `accumulators` vector FMAs (a <- a m + c) on one thread; returns a value that depends
    /// on every accumulator, so that the loop cannot be removed.
    @inline(never)
    static func fmaLoop(iterations: Int, seed: Float) -> Float {
        typealias V = SIMD16<Float>
        var a0 = V(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5
        var a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
        var a12 = a0 + 12, a13 = a0 + 13, a14 = a0 + 14, a15 = a0 + 15
        let m = V(repeating: 0.999_999), c = V(repeating: 1e-7)
        for _ in 0..<iterations {
            a0 = c.addingProduct(a0, m); a1 = c.addingProduct(a1, m); a2 = c.addingProduct(a2, m)
            a3 = c.addingProduct(a3, m); a4 = c.addingProduct(a4, m); a5 = c.addingProduct(a5, m)
            a6 = c.addingProduct(a6, m); a7 = c.addingProduct(a7, m); a8 = c.addingProduct(a8, m)
            a9 = c.addingProduct(a9, m); a10 = c.addingProduct(a10, m); a11 = c.addingProduct(a11, m)
            a12 = c.addingProduct(a12, m); a13 = c.addingProduct(a13, m); a14 = c.addingProduct(a14, m)
            a15 = c.addingProduct(a15, m)
        }
        let s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11))
            + ((a12 + a13) + (a14 + a15))
        return s.sum()
    }

    /// FLOPs of one `fmaLoop` iteration: accumulators x 16 lanes x (multiply + add).
    static var flopsPerIteration: Double { Double(accumulators * SIMD16<Float>.scalarCount * 2) }

    /// Rounds of the FMA loop per timed call: about a millisecond on one core.
    static let iterationsPerCall = 1 << 18

    /// The FMA loop on every one of `threads` threads of the kernels' pool at once, timed like the
    /// kernel benchmark (the fastest of rounds over about `seconds`); the pool's size is restored after.
    public static func fma(threads: Int, seconds: Double = 1) -> Result {
        let ms = withThreads(threads) {
            let sink = UnsafeMutablePointer<Float>.allocate(capacity: threads)
            defer { sink.deallocate() }
            return KernelBenchmark.time(seconds) {
                parallelChunks(threads, costPerItem: iterationsPerCall) { range in
                    for t in range { sink[t] = fmaLoop(iterations: iterationsPerCall, seed: Float(t)) }
                }
            }
        }
        let flops = Double(iterationsPerCall) * flopsPerIteration * Double(threads)
        return Result(probe: "fma (16-wide float vectors)", threads: threads, gflops_per_s: flops / (ms * 1e6))
    }

    /// oneDNN's sgemm on `size` x `size` matrices on `threads` threads, timed like the kernel benchmark.
    public static func sgemm(threads: Int, size: Int = 2048, seconds: Double = 1) -> Result {
        let ms = withThreads(threads) {
            let count = size * size
            let a = KernelBenchmark.randomBuffer(count), b = KernelBenchmark.randomBuffer(count)
            let c = KernelBenchmark.randomBuffer(count)
            defer { a.deallocate(); b.deallocate(); c.deallocate() }
            return KernelBenchmark.time(seconds) {
                Backend.current.gemm(transA: false, transB: false, m: size, n: size, k: size, alpha: 1, a: a,
                                       lda: size, b: b, ldb: size, beta: 0, c: c, ldc: size)
            }
        }
        return Result(probe: "sgemm \(size)x\(size)x\(size)", threads: threads,
                      gflops_per_s: 2 * Double(size) * Double(size) * Double(size) / (ms * 1e6))
    }

    /// Runs `body` on a CPU backend with `threads` threads.
    private static func withThreads<T>(_ threads: Int, _ body: () -> T) -> T {
        Backend.with(CPUBackend(threads: threads), body)
    }
}
