/// The CPU backend's gathers, scatters and max pooling, threaded where the writes are disjoint.
enum IndexingKernels {
    static func gather<T>(_ src: UnsafeMutablePointer<T>, count n: Int, indices: [Int], into dst: UnsafeMutablePointer<T>) {
        indices.withUnsafeBufferPointer { idx in
            parallelChunks(idx.count) { r in
                for i in r {
                    precondition(idx[i] >= 0 && idx[i] < n, "gather: index \(idx[i]) out of range 0..<\(n)")
                    dst[i] = src[idx[i]]
                }
            }
        }
    }

    /// dst = 0, then dst[indices[i]] += src[i] in index order (serial: indices may repeat).
    static func scatterAdd<T: KernelFloat>(_ src: UnsafeMutablePointer<T>, indices: [Int], into dst: UnsafeMutablePointer<T>,
                                           count n: Int) {
        dst.update(repeating: 0, count: n)
        for (i, j) in indices.enumerated() {
            precondition(j >= 0 && j < n, "scatterAdd: index \(j) out of range 0..<\(n)")
            dst[j] += src[i]
        }
    }

    /// One output row (b, i) per item; channels innermost, so every loop reads contiguously.
    static func maxPool2d<T: KernelFloat>(_ geo: PoolGeometry, _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>,
                                          argmax o: UnsafeMutablePointer<Int>?) {
        let (h, w, c, kernel, s) = (geo.height, geo.width, geo.channels, geo.kernel, geo.stride)
        let (oh, ow) = (geo.outHeight, geo.outWidth)
        parallelChunks(geo.batch * oh, costPerItem: ow * c * kernel * kernel) { rows in
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
