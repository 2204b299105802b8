/// Reductions (sum, mean, max, variance) and broadcasting, with their vector-Jacobian products.
extension Tensor {
    /// Normalised, sorted, de-duplicated reduction axes (all axes when `axes` is nil).
    func reductionAxes(_ axes: [Int]?, _ op: String) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        return Array(Set(axes.map { Shapes.axis($0, rank: rank, op: op) })).sorted()
    }

    /// The shape after reducing `axes`, with ones kept in their place.
    func keptShape(_ axes: [Int]) -> [Int] {
        var s = shape
        for a in axes { s[a] = 1 }
        return s
    }

    /// Sum over `axes` (all when nil). Float32 sums accumulate in Double.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        checkFloat("sum")
        let ax = reductionAxes(axes, "sum")
        let kept = keptShape(ax)
        let out = sumRaw(ax).reshapedRaw(kept)
        let finalShape = keepDims ? kept : kept.enumerated().filter { !ax.contains($0.offset) }.map { $0.element }
        let x = self
        let result = out.reshapedRaw(finalShape)
        return result.recording("sum", [x]) { g, _ in [g.reshaped(kept).expanded(to: x.shape)] }
    }

    /// Sum over one axis.
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, "mean")
        let count = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) / Double(Swift.max(count, 1))
    }

    /// Mean over one axis.
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Variance over `axes`; `unbiased` divides by n - 1 (Bessel's correction) instead of n.
    public func variance(axes: [Int]? = nil, keepDims: Bool = false, unbiased: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, "variance")
        let count = ax.reduce(1) { $0 * shape[$1] }
        let centered = self - mean(axes: ax, keepDims: true)
        let ss = centered.square().sum(axes: ax, keepDims: keepDims)
        return ss / Double(Swift.max(unbiased ? count - 1 : count, 1))
    }

    /// Maximum over `axes` (all when nil). The gradient is shared equally between tied maxima.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        checkFloat("max")
        let ax = reductionAxes(axes, "max")
        precondition(ax.allSatisfy { shape[$0] > 0 }, "max: cannot reduce an empty axis of shape \(shape)")
        let kept = keptShape(ax)
        let keptAxes = (0..<rank).filter { !ax.contains($0) }
        let moved = permutedRaw(keptAxes + ax)
        let inner = ax.reduce(1) { $0 * shape[$1] }
        let rows = elementCount / Swift.max(inner, 1)
        let out = Tensor(uninitializedShape: kept, dtype: dtype)
        func rowMax<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, _ o: UnsafeMutablePointer<T>) {
            parallelChunks(rows, costPerItem: inner) { r in
                for row in r {
                    let p = x + row * inner
                    var m = p[0]
                    for j in 1..<Swift.max(inner, 1) where p[j] > m || p[j].isNaN { m = p[j] }
                    o[row] = m
                }
            }
        }
        switch dtype {
        case .float32: rowMax(moved.floatPointer, out.floatPointer)
        case .float64: rowMax(moved.doublePointer, out.doublePointer)
        case .int64: break
        }
        let finalShape = keepDims ? kept : keptAxes.map { shape[$0] }
        let x = self
        let result = out.reshapedRaw(finalShape)
        return result.recording("max", [x]) { [unowned result] g, _ in
            let m = result.detached().reshapedRaw(kept)
            let mask = x.detached().equalMask(m)
            let share = mask / mask.sum(axes: ax, keepDims: true).detached()
            return [g.reshaped(kept) * share]
        }
    }

    /// Maximum over one axis.
    public func max(axis: Int, keepDims: Bool = false) -> Tensor { max(axes: [axis], keepDims: keepDims) }

    /// log(sum(exp(x))) over an axis, computed stably.
    public func logSumExp(axis: Int, keepDims: Bool = false) -> Tensor {
        let m = max(axis: axis, keepDims: true).detached()
        let lse = (self - m).exp().sum(axis: axis, keepDims: true).log() + m
        return keepDims ? lse : lse.squeezed(axis: axis)
    }

    /// Broadcasts to `target` (NumPy rules); the gradient sums back over the broadcast axes.
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let x = self
        return expandedRaw(to: target).recording("expand", [x]) { g, _ in [g.sumToShape(x.shape)] }
    }

    /// Sums a broadcast result back to `target` (the adjoint of `expanded(to:)`).
    public func sumToShape(_ target: [Int]) -> Tensor {
        if target == shape { return self }
        let lead = rank - target.count
        precondition(lead >= 0, "sumToShape: cannot reduce \(shape) to \(target)")
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        return sum(axes: axes, keepDims: true).reshaped(target)
    }

    // MARK: raw kernels

    func expandedRaw(to target: [Int]) -> Tensor {
        if target == shape { return self }
        guard Shapes.broadcast(shape, target) == target else {
            preconditionFailure("expand: shape \(shape) cannot broadcast to \(target)")
        }
        let out = Tensor(uninitializedShape: target, dtype: dtype)
        let s = Shapes.broadcastStrides(shape, to: target)
        switch dtype {
        case .float32: ElementwiseKernels.gatherStrided(UnsafePointer(floatPointer), s, out.floatPointer, target)
        case .float64: ElementwiseKernels.gatherStrided(UnsafePointer(doublePointer), s, out.doublePointer, target)
        case .int64: ElementwiseKernels.gatherStrided(UnsafePointer(int64Pointer), s, out.int64Pointer, target)
        }
        return out
    }

    /// Sum over sorted axes, as a flat tensor of the kept elements in order. Reads the input in place
    /// (no permuted copy): adjacent axes that are both reduced or both kept are merged, and the input
    /// is walked in memory order, one run of its last merged axis at a time, into Double accumulators.
    func sumRaw(_ axes: [Int]) -> Tensor {
        let keptCount = (0..<rank).filter { !axes.contains($0) }.reduce(1) { $0 * shape[$1] }
        let out = Tensor(uninitializedShape: [keptCount], dtype: dtype)
        if axes.isEmpty || elementCount == 0 {
            if axes.isEmpty {
                out.storage.pointer.copyMemory(from: storage.pointer, byteCount: elementCount * dtype.byteSize)
            } else {
                out.storage.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: keptCount * dtype.byteSize)
            }
            return out
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
        let threads = Swift.min(Threads.count, elementCount < 32_768 ? 1 : rows)
        let firstKept = !reduced[0] && dims.count > 1 && dims[0] >= threads
        let partialCount = firstKept ? 1 : threads
        let units = firstKept ? dims[0] : rows, unitRows = rows / units
        var partials = [Double](repeating: 0, count: keptCount * partialCount)
        func run<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, _ o: UnsafeMutablePointer<T>) {
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
        switch dtype {
        case .float32: run(floatPointer, out.floatPointer)
        case .float64: run(doublePointer, out.doublePointer)
        case .int64: break
        }
        return out
    }
}
