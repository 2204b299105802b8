/// Gathers and scatters by flat element index, and the ops built on them (embedding lookup, max
/// pooling). `gatherFlat` and `scatterAddFlat` are each other's adjoints, so both are differentiable
/// to any order.
extension Tensor {
    /// out[i] = x.flat[indices[i]], shaped `shape`.
    public static func gatherFlat(_ x: Tensor, indices: [Int], shape: [Int]) -> Tensor {
        precondition(indices.count == shape.reduce(1, *), "gather: \(indices.count) indices for shape \(shape)")
        let out = Tensor(uninitializedShape: shape, dtype: x.dtype)
        Backend.current.gather(x, indices: indices, into: out)
        let inputShape = x.shape
        return out.recording("gather", [x]) { g, _ in [scatterAddFlat(g, indices: indices, shape: inputShape)] }
    }

    /// out = zeros(shape); out.flat[indices[i]] += g.flat[i].
    public static func scatterAddFlat(_ g: Tensor, indices: [Int], shape: [Int]) -> Tensor {
        precondition(indices.count == g.elementCount, "scatterAdd: \(indices.count) indices for \(g.elementCount) values")
        precondition(g.dtype.isFloatingPoint, "scatterAdd: int64 values")
        let out = Tensor(uninitializedShape: shape, dtype: g.dtype)
        Backend.current.scatterAdd(g, indices: indices, into: out)
        let gShape = g.shape
        return out.recording("scatterAdd", [g]) { gg, _ in [gatherFlat(gg, indices: indices, shape: gShape)] }
    }

    /// Rows of `table` (V, D) picked by `indices` (any shape, int64): output indices.shape + [D].
    public static func embedding(_ table: Tensor, indices: Tensor) -> Tensor {
        precondition(table.rank == 2, "embedding: table must be (V, D), got \(table.shape)")
        precondition(indices.dtype == .int64, "embedding: indices must be int64, got \(indices.dtype)")
        let (v, d) = (table.shape[0], table.shape[1])
        var flat: [Int] = []
        flat.reserveCapacity(indices.elementCount * d)
        for row in indices.scalars(as: Int64.self) {
            precondition(row >= 0 && Int(row) < v, "embedding: index \(row) out of range 0..<\(v)")
            for j in 0..<d { flat.append(Int(row) * d + j) }
        }
        return gatherFlat(table, indices: flat, shape: indices.shape + [d])
    }

    /// Max pooling on (N, H, W, C) with a square window, no padding, floor output size.
    /// The gradient goes to the first maximum of each window (PyTorch's convention).
    public func maxPool2d(kernel: Int, stride: Int? = nil) -> Tensor {
        precondition(rank == 4, "maxPool2d: input must be (N, H, W, C), got \(shape)")
        let s = stride ?? kernel
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let oh = (h - kernel) / s + 1, ow = (w - kernel) / s + 1
        precondition(oh > 0 && ow > 0, "maxPool2d: input \(shape) smaller than kernel \(kernel)")
        // Indices of the maxima are kept only when the backward pass will need them.
        let recordsIndices = GradMode.isEnabled && tracksGradient
        var indices = [Int](repeating: 0, count: recordsIndices ? n * oh * ow * c : 0)
        precondition(dtype.isFloatingPoint, "maxPool2d: int64 input")
        let out = Tensor(uninitializedShape: [n, oh, ow, c], dtype: dtype)
        let geometry = PoolGeometry(batch: n, height: h, width: w, channels: c, kernel: kernel, stride: s)
        indices.withUnsafeMutableBufferPointer { idx in
            Backend.current.maxPool2d(geometry, self, into: out, argmax: recordsIndices ? idx.baseAddress : nil)
        }
        guard recordsIndices else { return out }
        let inputShape = shape
        return out.recording("maxPool2d", [self]) { g, _ in [Tensor.scatterAddFlat(g, indices: indices, shape: inputShape)] }
    }

    /// Average pooling on (N, H, W, C) with window = stride = `kernel`, no padding; trailing rows
    /// and columns that do not fill a window are dropped (floor mode).
    public func avgPool2d(kernel: Int) -> Tensor {
        precondition(rank == 4, "avgPool2d: input must be (N, H, W, C), got \(shape)")
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        let oh = h / kernel, ow = w / kernel
        precondition(oh > 0 && ow > 0, "avgPool2d: input \(shape) smaller than kernel \(kernel)")
        let cropped = (oh * kernel == h && ow * kernel == w) ? self
            : sliced(axis: 1, 0..<(oh * kernel)).sliced(axis: 2, 0..<(ow * kernel))
        return cropped.reshaped([n, oh, kernel, ow, kernel, c]).mean(axes: [2, 4])
    }

    /// Nearest-neighbour upsampling of (N, H, W, C) by an integer factor.
    public func upsampleNearest(scale: Int) -> Tensor {
        precondition(rank == 4, "upsampleNearest: input must be (N, H, W, C), got \(shape)")
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        return reshaped([n, h, 1, w, 1, c]).expanded(to: [n, h, scale, w, scale, c])
            .reshaped([n, h * scale, w * scale, c])
    }
}
