/// Reshape, permute, slice, pad, concatenate and split, with their vector-Jacobian products.
/// `reshaped` shares storage; the others copy (tensors are always contiguous).
extension Tensor {
    /// Resolves one -1 in `newShape`.
    func resolvedShape(_ newShape: [Int], _ op: String) -> [Int] {
        var s = newShape
        let known = s.filter { $0 != -1 }.reduce(1, *)
        if let i = s.firstIndex(of: -1) {
            precondition(s.filter { $0 == -1 }.count == 1 && known > 0 && elementCount % known == 0,
                         "\(op): cannot infer -1 in \(newShape) for \(elementCount) elements")
            s[i] = elementCount / known
        }
        precondition(s.reduce(1, *) == elementCount, "\(op): shape \(newShape) does not hold \(elementCount) elements of shape \(shape)")
        return s
    }

    func reshapedRaw(_ newShape: [Int]) -> Tensor {
        Tensor(storage: storage, shape: newShape, dtype: dtype)
    }

    /// The same elements under a new shape (one axis may be -1). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let s = resolvedShape(newShape, "reshape")
        if s == shape { return self }
        let x = self
        return reshapedRaw(s).recording("reshape", [x]) { g, _ in [g.reshaped(x.shape)] }
    }

    /// Flattens axes `from...` into one: (N, H, W, C) -> (N, H*W*C) for `from: 1`.
    public func flattened(from axis: Int = 1) -> Tensor {
        let a = Shapes.axis(axis, rank: rank, op: "flatten")
        return reshaped(Array(shape[..<a]) + [shape[a...].reduce(1, *)])
    }

    /// Inserts an axis of size 1.
    public func unsqueezed(axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        precondition(a >= 0 && a <= rank, "unsqueeze: axis \(axis) out of range for rank \(rank)")
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes an axis of size 1.
    public func squeezed(axis: Int) -> Tensor {
        let a = Shapes.axis(axis, rank: rank, op: "squeeze")
        precondition(shape[a] == 1, "squeeze: axis \(axis) has size \(shape[a]), not 1")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    func permutedRaw(_ axes: [Int]) -> Tensor {
        precondition(axes.sorted() == Array(0..<rank), "permute: \(axes) is not a permutation of \(rank) axes")
        if axes == Array(0..<rank) { return self }
        let newShape = axes.map { shape[$0] }
        let own = Shapes.strides(shape)
        let strides = axes.map { own[$0] }
        let out = Tensor(uninitializedShape: newShape, dtype: dtype)
        Backend.current.copyStrided(self, strides: strides, into: out)
        return out
    }

    /// Reorders axes: output axis i is input axis `axes[i]` (PyTorch's `permute`). Copies.
    public func permuted(_ axes: [Int]) -> Tensor {
        let axes = axes.map { Shapes.axis($0, rank: rank, op: "permute") }
        if axes == Array(0..<rank) { return self }
        var inverse = [Int](repeating: 0, count: axes.count)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        let x = self
        return permutedRaw(axes).recording("permute", [x]) { g, _ in [g.permuted(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var axes = Array(0..<rank)
        axes.swapAt(Shapes.axis(a, rank: rank, op: "transpose"), Shapes.axis(b, rank: rank, op: "transpose"))
        return permuted(axes)
    }

    /// (outer, axis size, inner) around one axis.
    func split3(_ axis: Int) -> (Int, Int, Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Elements `range` along `axis` (PyTorch's `narrow`). Copies.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = Shapes.axis(axis, rank: rank, op: "slice")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a],
                     "slice: range \(range) out of bounds for axis \(axis) of size \(shape[a])")
        var newShape = shape
        newShape[a] = range.count
        let (outer, dim, inner) = split3(a)
        let out = Tensor(uninitializedShape: newShape, dtype: dtype)
        Backend.current.copyRuns(count: outer, length: range.count * inner, from: self, offset: range.lowerBound * inner,
                                 stride: dim * inner, into: out, offset: 0, stride: range.count * inner)
        let x = self
        return out.recording("slice", [x]) { g, _ in
            [g.padded(axis: a, before: range.lowerBound, after: x.shape[a] - range.upperBound)]
        }
    }

    /// Zeros added before and after the elements along `axis`.
    public func padded(axis: Int, before: Int, after: Int) -> Tensor {
        let a = Shapes.axis(axis, rank: rank, op: "pad")
        precondition(before >= 0 && after >= 0, "pad: negative padding")
        var newShape = shape
        newShape[a] += before + after
        let (outer, dim, inner) = split3(a)
        let out = Tensor.zeros(newShape, dtype: dtype)
        Backend.current.copyRuns(count: outer, length: dim * inner, from: self, offset: 0, stride: dim * inner,
                                 into: out, offset: before * inner, stride: newShape[a] * inner)
        let x = self
        return out.recording("pad", [x]) { g, _ in [g.sliced(axis: a, before..<(before + x.shape[a]))] }
    }

    /// Joins tensors along an existing axis; all other axes must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concatenate: no tensors")
        let first = tensors[0]
        let a = Shapes.axis(axis, rank: first.rank, op: "concatenate")
        for t in tensors {
            var s1 = t.shape, s0 = first.shape
            precondition(t.rank == first.rank && t.dtype == first.dtype,
                         "concatenate: tensors of shapes \(first.shape) and \(t.shape) (\(first.dtype), \(t.dtype))")
            s1[a] = 0; s0[a] = 0
            precondition(s1 == s0, "concatenate: shapes \(first.shape) and \(t.shape) differ off axis \(axis)")
        }
        var newShape = first.shape
        newShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let out = Tensor(uninitializedShape: newShape, dtype: first.dtype)
        let (outer, _, inner) = first.split3(a)
        let newDim = newShape[a]
        var offset = 0
        var ranges: [Range<Int>] = []
        for t in tensors {
            let d = t.shape[a]
            Backend.current.copyRuns(count: outer, length: d * inner, from: t, offset: 0, stride: d * inner,
                                     into: out, offset: offset * inner, stride: newDim * inner)
            ranges.append(offset..<(offset + d))
            offset += d
        }
        return out.recording("concatenate", tensors) { g, needs in
            zip(ranges, needs).map { r, need in need ? g.sliced(axis: a, r) : nil }
        }
    }

    /// Splits along `axis` into pieces of the given sizes.
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let a = Shapes.axis(axis, rank: rank, op: "split")
        precondition(sizes.reduce(0, +) == shape[a], "split: sizes \(sizes) do not add up to \(shape[a])")
        var start = 0
        return sizes.map { n in
            defer { start += n }
            return sliced(axis: a, start..<(start + n))
        }
    }

    /// Splits along `axis` into `count` equal pieces.
    public func chunked(_ count: Int, axis: Int) -> [Tensor] {
        let a = Shapes.axis(axis, rank: rank, op: "chunk")
        precondition(shape[a] % count == 0, "chunk: axis size \(shape[a]) is not divisible by \(count)")
        return split(sizes: [Int](repeating: shape[a] / count, count: count), axis: a)
    }
}

extension Tensor {
    /// Rows (entries along axis 0) picked by `indices`, in that order (PyTorch's `x[indices]`).
    /// Differentiable: the gradient scatters back to the picked rows.
    public func rows(_ indices: [Int]) -> Tensor {
        precondition(rank >= 1, "rows: needs rank >= 1, got \(shape)")
        let rowSize = elementCount / Swift.max(shape[0], 1)
        let n = shape[0]
        if !tracksGradient || !GradMode.isEnabled {
            let out = Tensor(uninitializedShape: [indices.count] + shape.dropFirst(), dtype: dtype)
            let backend = Backend.current
            for (i, r) in indices.enumerated() {
                precondition(r >= 0 && r < n, "rows: index \(r) out of range 0..<\(n)")
                backend.copyRuns(count: 1, length: rowSize, from: self, offset: r * rowSize, stride: 0,
                                 into: out, offset: i * rowSize, stride: 0)
            }
            return out
        }
        var flat: [Int] = []
        flat.reserveCapacity(indices.count * rowSize)
        for r in indices {
            precondition(r >= 0 && r < n, "rows: index \(r) out of range 0..<\(n)")
            for j in 0..<rowSize { flat.append(r * rowSize + j) }
        }
        return Tensor.gatherFlat(self, indices: flat, shape: [indices.count] + shape.dropFirst())
    }
}
