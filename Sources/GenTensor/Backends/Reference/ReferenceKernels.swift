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
        // op(B) as a contiguous K x N copy when B is stored transposed, so every product runs i-k-j:
        // C's row i accumulates alpha * op(A)[i, p] times row p of op(B) (contiguous, vectorizable).
        var bt: UnsafeMutablePointer<T>? = nil
        if transB && k > 0 && n > 0 {
            let t = UnsafeMutablePointer<T>.allocate(capacity: k * n)
            for j in 0..<n { for p in 0..<k { (t + p * n + j).initialize(to: b[j * ldb + p]) } }
            bt = t
        }
        defer { bt?.deallocate() }
        let (bRows, bStride) = bt.map { (UnsafePointer($0), n) } ?? (b, ldb)
        for i in 0..<m {
            let cRow = c + i * ldc
            if beta == 0 {
                cRow.update(repeating: 0, count: n)
            } else if beta != 1 {
                for j in 0..<n { cRow[j] *= beta }
            }
            for p in 0..<k {
                let aip = alpha * (transA ? a[p * lda + i] : a[i * lda + p])
                let bRow = bRows + p * bStride
                for j in 0..<n { cRow[j] += aip * bRow[j] }
            }
        }
    }

    /// output(N, OH, OW, O) = conv(input(N, H, W, I), weight(O, I, KH, KW)).
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public static func conv2dForward<T: KernelFloat>(_ g: ConvGeometry, input: UnsafePointer<T>,
                                                     weight: UnsafePointer<T>, output: UnsafeMutablePointer<T>) {
        let ci = g.inChannels, co = g.outChannels
        // Weights as (KH, KW, I, O): each input value scales a contiguous row of O weights into the
        // output position's O sums (independent sums, so the inner loop vectorizes).
        let w = transposedWeight(g, weight, layout: .kernelInputOutput)
        defer { w.deallocate() }
        for n in 0..<g.batch {
            for oh in 0..<g.outHeight {
                for ow in 0..<g.outWidth {
                    let out = output + ((n * g.outHeight + oh) * g.outWidth + ow) * co
                    out.update(repeating: 0, count: co)
                    for kh in 0..<g.kernelHeight {
                        let ih = oh * g.strideH - g.padTop + kh * g.dilationH
                        if ih < 0 || ih >= g.inHeight { continue }
                        for kw in 0..<g.kernelWidth {
                            let iw = ow * g.strideW - g.padLeft + kw * g.dilationW
                            if iw < 0 || iw >= g.inWidth { continue }
                            let x = input + ((n * g.inHeight + ih) * g.inWidth + iw) * ci
                            for i in 0..<ci {
                                let v = x[i]
                                let wk = w + ((kh * g.kernelWidth + kw) * ci + i) * co
                                for o in 0..<co { out[o] += v * wk[o] }
                            }
                        }
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
        let w = transposedWeight(g, weight, layout: .kernelOutputInput)
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

    private enum WeightLayout { case kernelInputOutput, kernelOutputInput }

    /// A copy of the OIHW weight as (KH, KW, I, O) or (KH, KW, O, I).
    private static func transposedWeight<T: KernelFloat>(_ g: ConvGeometry, _ weight: UnsafePointer<T>,
                                                         layout: WeightLayout) -> UnsafeMutablePointer<T> {
        let ci = g.inChannels, co = g.outChannels, kk = g.kernelHeight * g.kernelWidth
        let w = UnsafeMutablePointer<T>.allocate(capacity: co * ci * kk)
        for o in 0..<co {
            for i in 0..<ci {
                for k in 0..<kk {
                    let to = layout == .kernelInputOutput ? (k * ci + i) * co + o : (k * co + o) * ci + i
                    (w + to).initialize(to: weight[(o * ci + i) * kk + k])
                }
            }
        }
        return w
    }
}
