import Dispatch

/// Threading for the Swift kernels: splits `0..<count` into contiguous chunks run on
/// `Threads.count` threads (Dispatch's `concurrentPerform`). oneDNN's OpenMP pool and this one never
/// run at once, because ops execute one after another.
public enum Threads {
    /// Threads used by the Swift kernels and (through the backend) by oneDNN.
    nonisolated(unsafe) public private(set) static var count = 2

    /// Sets the thread count for both the Swift kernels and the backend.
    public static func set(_ n: Int) {
        count = max(1, n)
        Backend.current.setThreads(count)
    }
}

/// Runs `body(range)` over chunks of `0..<count`, in parallel when the work is large enough.
/// `costPerItem` is a rough element count per item, so that tiny loops stay on one thread.
@inline(__always)
func parallelChunks(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = Threads.count
    if threads <= 1 || count < 2 || count * costPerItem < 32_768 {
        body(0..<count)
        return
    }
    let chunks = min(threads, count)
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = count * c / chunks, hi = count * (c + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}
