/// Gathers and scatters by flat element index, and the ops built on them (embedding lookup, max
/// pooling). `gatherFlat` and `scatterAddFlat` are each other's adjoints, so both are differentiable
/// to any order.
extension Tensor {
    /// out[i] = x.flat[indices[i]], shaped `shape`.
    public static func gatherFlat(_ x: Tensor, indices: [Int], shape: [Int]) -> Tensor {
        precondition(indices.count == shape.reduce(1, *), "gather: \(indices.count) indices for shape \(shape)")
        let n = x.elementCount
        let out = Tensor(uninitializedShape: shape, dtype: x.dtype)
        func run<T>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>) {
            indices.withUnsafeBufferPointer { idx in
                parallelChunks(idx.count) { r in
                    for i in r {
                        precondition(idx[i] >= 0 && idx[i] < n, "gather: index \(idx[i]) out of range 0..<\(n)")
                        dst[i] = src[idx[i]]
                    }
                }
            }
        }
        switch x.dtype {
        case .float32: run(x.floatPointer, out.floatPointer)
        case .float64: run(x.doublePointer, out.doublePointer)
        case .int64: run(x.int64Pointer, out.int64Pointer)
        }
        let inputShape = x.shape
        return out.recording("gather", [x]) { g, _ in [scatterAddFlat(g, indices: indices, shape: inputShape)] }
    }

    /// out = zeros(shape); out.flat[indices[i]] += g.flat[i].
    public static func scatterAddFlat(_ g: Tensor, indices: [Int], shape: [Int]) -> Tensor {
        precondition(indices.count == g.elementCount, "scatterAdd: \(indices.count) indices for \(g.elementCount) values")
        let out = Tensor.zeros(shape, dtype: g.dtype)
        let n = out.elementCount
        func run<T: KernelFloat>(_ src: UnsafeMutablePointer<T>, _ dst: UnsafeMutablePointer<T>) {
            for (i, j) in indices.enumerated() {
                precondition(j >= 0 && j < n, "scatterAdd: index \(j) out of range 0..<\(n)")
                dst[j] += src[i]
            }
        }
        switch g.dtype {
        case .float32: run(g.floatPointer, out.floatPointer)
        case .float64: run(g.doublePointer, out.doublePointer)
        case .int64: preconditionFailure("scatterAdd: int64 values")
        }
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
        let out = Tensor(uninitializedShape: [n, oh, ow, c], dtype: dtype)
        func pool<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>) {
            indices.withUnsafeMutableBufferPointer { idx in
                let o = recordsIndices ? idx.baseAddress : nil
                // One output row (b, i) per item; channels innermost, so every loop reads contiguously.
                parallelChunks(n * oh, costPerItem: ow * c * kernel * kernel) { rows in
                    for row in rows {
                        let b = row / oh, i = row % oh
                        for j in 0..<ow {
                            let base = (row * ow + j) * c
                            let first = ((b * h + i * s) * w + j * s) * c
                            let best = y + base
                            best.update(from: x + first, count: c)
                            if let o { for ch in 0..<c { o[base + ch] = first + ch } }
                            for di in 0..<kernel {
                                for dj in 0..<kernel where di + dj > 0 {
                                    let start = ((b * h + i * s + di) * w + j * s + dj) * c
                                    let v = x + start
                                    if let o {
                                        for ch in 0..<c where v[ch] > best[ch] || (v[ch].isNaN && !best[ch].isNaN) {
                                            best[ch] = v[ch]
                                            o[base + ch] = start + ch
                                        }
                                    } else {
                                        for ch in 0..<c {
                                            let a = v[ch], m = best[ch]
                                            best[ch] = (a > m || (a.isNaN && !m.isNaN)) ? a : m
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        switch dtype {
        case .float32: pool(floatPointer, out.floatPointer)
        case .float64: pool(doublePointer, out.doublePointer)
        case .int64: preconditionFailure("maxPool2d: int64 input")
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
