import CDNNL

/// Threading for the Swift kernels: `0..<count` is split into contiguous chunks, one per thread of
/// the OpenMP pool that oneDNN uses. One pool for everything: Dispatch's `concurrentPerform` beside
/// OpenMP's spin-waiting workers leaves the two fighting for the cores (see docs/architecture.md,
/// Measurements and history).
public enum Threads {
    /// Threads used by the Swift kernels: the current backend's (`Backend.current.threads`).
    public static var count: Int { Backend.current.threads }
}

/// The work of one parallel region, handed to the C trampoline by pointer.
private struct ParallelRegion {
    let count: Int
    let body: (Range<Int>) -> Void
}

private let parallelTrampoline: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
    guard let raw else { return }
    let region = raw.assumingMemoryBound(to: ParallelRegion.self).pointee
    let threads = Int(omp_get_num_threads()), me = Int(omp_get_thread_num())
    let lo = region.count * me / threads, hi = region.count * (me + 1) / threads
    if lo < hi { region.body(lo..<hi) }
}

/// Runs `body(range)` over chunks of `0..<count`, in parallel when the work is large enough.
/// `costPerItem` is a rough element count per item, so that tiny loops stay on one thread.
@inline(__always)
func parallelChunks(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
    if count * costPerItem < 32_768 {
        body(0..<count)
        return
    }
    let threads = min(Threads.count, count)
    if threads <= 1 {
        body(0..<count)
        return
    }
    withoutActuallyEscaping(body) { escaping in
        var region = ParallelRegion(count: count, body: escaping)
        withUnsafeMutablePointer(to: &region) { pointer in
            GOMP_parallel(parallelTrampoline, UnsafeMutableRawPointer(pointer), UInt32(threads), 0)
        }
    }
}

/// Public form of the chunked parallel loop, for kernels written outside the engine (optimizers).
public func parallelFor(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
    parallelChunks(count, costPerItem: costPerItem, body)
}
