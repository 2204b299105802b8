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
        if rows > 0 { Backend.current.rowMax(moved, into: out) }
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
        Backend.current.copyStrided(self, strides: Shapes.broadcastStrides(shape, to: target), into: out)
        return out
    }

    /// Sum over sorted axes, as a flat tensor of the kept elements in order, accumulated in Double
    /// on the current backend.
    func sumRaw(_ axes: [Int]) -> Tensor {
        let keptCount = (0..<rank).filter { !axes.contains($0) }.reduce(1) { $0 * shape[$1] }
        let out = Tensor(uninitializedShape: [keptCount], dtype: dtype)
        Backend.current.sum(self, axes: axes, into: out)
        return out
    }
}
