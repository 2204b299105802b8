/// Slow, obviously correct GEMM and convolutions, generic over Float and Double: the Float64 path
/// (gradient checks, metrics; oneDNN has no f64 kernels) and the oracle the backend tests compare
/// against. Same layouts as `ComputeBackend`: row-major GEMM, NHWC activations, OIHW weights of the
/// forward convolution; outputs are overwritten. Every sum accumulates in `T`; the loops keep the
/// contiguous axis innermost.
public enum ReferenceKernels {
    /// C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is M x K, op(B) is K x N. With beta = 0,
    /// C is not read (as in BLAS).
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public static func gemm<T: KernelFloat>(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
                                            a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                            beta: T, c: UnsafeMutablePointer<T>, ldc: Int) {
        for i in 0..<m {
            let cRow = c + i * ldc
            if beta == 0 {
                cRow.update(repeating: 0, count: n)
            } else if beta != 1 {
                for j in 0..<n { cRow[j] *= beta }
            }
            if transB {
                // Rows of B are the columns of op(B): each element of C is a dot product.
                for j in 0..<n {
                    let bRow = b + j * ldb
                    var sum: T = 0
                    if transA {
                        for p in 0..<k { sum += a[p * lda + i] * bRow[p] }
                    } else {
                        let aRow = a + i * lda
                        for p in 0..<k { sum += aRow[p] * bRow[p] }
                    }
                    cRow[j] += alpha * sum
                }
            } else {
                // i-k-j: C's row i accumulates alpha * A[i, p] times B's row p.
                for p in 0..<k {
                    let aip = alpha * (transA ? a[p * lda + i] : a[i * lda + p])
                    if aip == 0 { continue }
                    let bRow = b + p * ldb
                    for j in 0..<n { cRow[j] += aip * bRow[j] }
                }
            }
        }
    }

    /// output(N, OH, OW, O) = conv(input(N, H, W, I), weight(O, I, KH, KW)).
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public static func conv2dForward<T: KernelFloat>(_ g: ConvGeometry, input: UnsafePointer<T>,
                                                     weight: UnsafePointer<T>, output: UnsafeMutablePointer<T>) {
        let ci = g.inChannels, co = g.outChannels
        // Weights as (O, KH, KW, I) so the channel loop is contiguous in both operands.
        let w = transposedWeight(g, weight, toKernelMajor: false)
        defer { w.deallocate() }
        for n in 0..<g.batch {
            for oh in 0..<g.outHeight {
                for ow in 0..<g.outWidth {
                    let out = output + ((n * g.outHeight + oh) * g.outWidth + ow) * co
                    for o in 0..<co {
                        var sum: T = 0
                        for kh in 0..<g.kernelHeight {
                            let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                            if ih < 0 || ih >= g.inHeight { continue }
                            for kw in 0..<g.kernelWidth {
                                let iw = ow * g.strideW - g.padLeft + kw * g.dilationW
                                if iw < 0 || iw >= g.inWidth { continue }
                                let x = input + ((n * g.inHeight + ih) * g.inWidth + iw) * ci
                                let wk = w + ((o * g.kernelHeight + kh) * g.kernelWidth + kw) * ci
                                for i in 0..<ci { sum += x[i] * wk[i] }
                            }
                        }
                        out[o] = sum
                    }
                }
            }
        }
    }

    /// gradInput(N, H, W, I) from gradOutput(N, OH, OW, O) and weight(O, I, KH, KW): each output
    /// position scatters gradOutput times the weight back to the input positions it read.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public static func conv2dBackwardData<T: KernelFloat>(_ g: ConvGeometry, gradOutput: UnsafePointer<T>,
                                                          weight: UnsafePointer<T>,
                                                          gradInput: UnsafeMutablePointer<T>) {
        let ci = g.inChannels, co = g.outChannels
        // Weights as (KH, KW, O, I).
        let w = transposedWeight(g, weight, toKernelMajor: true)
        defer { w.deallocate() }
        gradInput.update(repeating: 0, count: g.batch * g.inHeight * g.inWidth * ci)
        for n in 0..<g.batch {
            for oh in 0..<g.outHeight {
                for ow in 0..<g.outWidth {
                    let gy = gradOutput + ((n * g.outHeight + oh) * g.outWidth + ow) * co
                    for kh in 0..<g.kernelHeight {
                        let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                        if ih < 0 || ih >= g.inHeight { continue }
                        for kw in 0..<g.kernelWidth {
                            let iw = ow * g.strideW - g.padLeft + kw * g.dilationW
                            if iw < 0 || iw >= g.inWidth { continue }
                            let gx = gradInput + ((n * g.inHeight + ih) * g.inWidth + iw) * ci
                            for o in 0..<co {
                                let v = gy[o]
                                let wk = w + ((kh * g.kernelWidth + kw) * co + o) * ci
                                for i in 0..<ci { gx[i] += v * wk[i] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// gradWeight(O, I, KH, KW) from input(N, H, W, I) and gradOutput(N, OH, OW, O).
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public static func conv2dBackwardWeights<T: KernelFloat>(_ g: ConvGeometry, input: UnsafePointer<T>,
                                                             gradOutput: UnsafePointer<T>,
                                                             gradWeight: UnsafeMutablePointer<T>) {
        let ci = g.inChannels, co = g.outChannels, kk = g.kernelHeight * g.kernelWidth
        // Accumulate as (KH, KW, O, I), then transpose to OIHW.
        let acc = UnsafeMutablePointer<T>.allocate(capacity: kk * co * ci)
        defer { acc.deallocate() }
        acc.initialize(repeating: 0, count: kk * co * ci)
        for n in 0..<g.batch {
            for oh in 0..<g.outHeight {
                for ow in 0..<g.outWidth {
                    let gy = gradOutput + ((n * g.outHeight + oh) * g.outWidth + ow) * co
                    for kh in 0..<g.kernelHeight {
                        let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                        if ih < 0 || ih >= g.inHeight { continue }
                        for kw in 0..<g.kernelWidth {
                            let iw = ow * g.strideW - g.padLeft + kw * g.dilationW
                            if iw < 0 || iw >= g.inWidth { continue }
                            let x = input + ((n * g.inHeight + ih) * g.inWidth + iw) * ci
                            for o in 0..<co {
                                let v = gy[o]
                                let a = acc + ((kh * g.kernelWidth + kw) * co + o) * ci
                                for i in 0..<ci { a[i] += v * x[i] }
                            }
                        }
                    }
                }
            }
        }
        for o in 0..<co {
            for i in 0..<ci {
                for k in 0..<kk { gradWeight[(o * ci + i) * kk + k] = acc[(k * co + o) * ci + i] }
            }
        }
    }

    /// A copy of the OIHW weight as (O, KH, KW, I), or as (KH, KW, O, I) when `toKernelMajor`.
    private static func transposedWeight<T: KernelFloat>(_ g: ConvGeometry, _ weight: UnsafePointer<T>,
                                                         toKernelMajor: Bool) -> UnsafeMutablePointer<T> {
        let ci = g.inChannels, co = g.outChannels, kk = g.kernelHeight * g.kernelWidth
        let w = UnsafeMutablePointer<T>.allocate(capacity: co * ci * kk)
        for o in 0..<co {
            for i in 0..<ci {
                for k in 0..<kk {
                    let to = toKernelMajor ? (k * co + o) * ci + i : (o * kk + k) * ci + i
                    (w + to).initialize(to: weight[(o * ci + i) * kk + k])
                }
            }
        }
        return w
    }
}
