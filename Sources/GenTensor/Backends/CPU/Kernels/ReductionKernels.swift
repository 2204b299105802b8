/// The CPU backend's reductions, threaded, accumulated in Double.
enum ReductionKernels {
    /// Sum over sorted axes, into the kept elements in order. Reads the input in place
    /// (no permuted copy): adjacent axes that are both reduced or both kept are merged, and the input
    /// is walked in memory order, one run of its last merged axis at a time, into Double accumulators.
    static func sum<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, shape: [Int], axes: [Int], into o: UnsafeMutablePointer<T>,
                                    threads availableThreads: Int) {
        let rank = shape.count, elementCount = shape.reduce(1, *)
        let keptCount = (0..<rank).filter { !axes.contains($0) }.reduce(1) { $0 * shape[$1] }
        if axes.isEmpty {
            o.update(from: x, count: elementCount)
            return
        }
        if elementCount == 0 {
            o.update(repeating: 0, count: keptCount)
            return
        }
        // Merge runs of axes with the same status, dropping axes of size 1.
        var dims: [Int] = [], reduced: [Bool] = []
        for d in 0..<rank where shape[d] != 1 {
            let r = axes.contains(d)
            if let last = reduced.last, last == r { dims[dims.count - 1] *= shape[d] } else { dims.append(shape[d]); reduced.append(r) }
        }
        if dims.isEmpty { dims = [1]; reduced = [true] }
        // Output strides of the merged axes (0 for reduced ones).
        var outStrides = [Int](repeating: 0, count: dims.count)
        var acc = 1
        for d in stride(from: dims.count - 1, through: 0, by: -1) where !reduced[d] {
            outStrides[d] = acc
            acc *= dims[d]
        }
        let inner = dims[dims.count - 1], innerReduced = reduced[dims.count - 1]
        let rows = elementCount / inner
        let outerDims = Array(dims.dropLast()), outerStrides = Array(outStrides.dropLast())
        // Rows split over threads; when rows of different threads can meet in one output, each thread
        // sums into its own buffer and the buffers are added at the end.
        let threads = Swift.min(availableThreads, elementCount < 32_768 ? 1 : rows)
        let firstKept = !reduced[0] && dims.count > 1 && dims[0] >= threads
        let partialCount = firstKept ? 1 : threads
        let units = firstKept ? dims[0] : rows, unitRows = rows / units
        var partials = [Double](repeating: 0, count: keptCount * partialCount)
        do {
            partials.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                let work: (Range<Int>) -> Void = { tr in
                    for t in tr {
                        let accum = firstKept ? base : base + t * keptCount
                        // With a kept first axis, threads take whole slices of it, which own disjoint outputs.
                        let lo = units * t / threads * unitRows, hi = units * (t + 1) / threads * unitRows
                        for row in lo..<hi {
                            var rem = row, off = 0
                            var d = outerDims.count - 1
                            while d >= 0 {
                                off += (rem % outerDims[d]) * outerStrides[d]
                                rem /= outerDims[d]
                                d -= 1
                            }
                            let p = x + row * inner
                            if innerReduced {
                                var s = 0.0
                                for j in 0..<inner { s += Double(p[j]) }
                                accum[off] += s
                            } else {
                                let a = accum + off
                                for j in 0..<inner { a[j] += Double(p[j]) }
                            }
                        }
                    }
                }
                if threads == 1 { work(0..<1) } else { parallelChunks(threads, costPerItem: 1 << 20, work) }
                for k in 0..<keptCount {
                    var s = base[k]
                    for t in 1..<partialCount { s += base[t * keptCount + k] }
                    o[k] = T(s)
                }
            }
        }
    }

    /// o[r] = the maximum of row r of x, `rows` rows of `inner` values; NaN wins.
    static func rowMax<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, rows: Int, inner: Int, into o: UnsafeMutablePointer<T>) {
        parallelChunks(rows, costPerItem: inner) { r in
            for row in r {
                let p = x + row * inner
                var m = p[0]
                for j in 1..<Swift.max(inner, 1) where p[j] > m || p[j].isNaN { m = p[j] }
                o[row] = m
            }
        }
    }
}
