/// Convolutions that the CPU backend runs as sgemm calls instead of oneDNN convolution primitives,
/// where oneDNN's choice is slow:
///
/// - a window that covers the whole unpadded input once (kernel = input size, one output pixel): the
///   DCGAN generator's first transposed convolution (z 100 -> 256x7x7) and the discriminator's last
///   convolution. oneDNN runs these as a slow inner product behind weight reorders;
///   they are one GEMM each, once the reduction axes of the NHWC activations (pixel, channel) and
///   the OIHW weights (channel, pixel) agree, which costs a transpose of whichever side is smaller;
/// - the backward-data pass of a convolution with one input channel (the DCGAN generator's last
///   transposed convolution 128 -> 1 runs it as its forward pass, the discriminator's first convolution
///   in the generator's step), where oneDNN falls back to a slow gemm-based kernel: one
///   GEMM of the output gradient with the weights, then each column added back into its pixels
///   (col2im).
///
/// oneDNN's throughput on these shapes: docs/architecture.md, Measurements and history.
///
/// Activations are NHWC, weights OIHW, as in the rest of the backend. `scratch` returns a buffer of
/// at least the given number of floats, valid for the call.
enum GemmConvolution {
    /// Whether the convolution's window covers the whole unpadded input exactly once.
    static func coversWholeInput(_ g: ConvGeometry) -> Bool {
        g.outHeight == 1 && g.outWidth == 1 && g.kernelHeight == g.inHeight && g.kernelWidth == g.inWidth
            && g.padTop == 0 && g.padLeft == 0 && g.dilationH == 1 && g.dilationW == 1
    }

    /// Whether the backward-data pass runs as a GEMM and col2im.
    static func backwardDataAsGemm(_ g: ConvGeometry) -> Bool { g.inChannels == 1 && !coversWholeInput(g) }

    /// The implementation name the benchmark prints, or nil where oneDNN runs the pass.
    static func implementationName(_ g: ConvGeometry, _ pass: ConvolutionPass) -> String? {
        if coversWholeInput(g) { return "gemm (whole-input window)" }
        if pass == .backwardData && backwardDataAsGemm(g) { return "gemm + col2im (one input channel)" }
        return nil
    }

    /// Which side is transposed so that the reduction axes agree: the activations (one matrix of
    /// pixels x channels per image) or the weights (one of channels x pixels per output channel).
    private static func transposesActivations(_ g: ConvGeometry) -> Bool { g.batch <= g.outChannels }

    /// y[n, o] = sum over (pixel, channel) of x[n, pixel, channel] w[o, channel, pixel] (+ bias[o]).
    static func wholeInputForward(_ g: ConvGeometry, _ gemm: CPUBackend, input: UnsafePointer<Float>,
                                  weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                  output: UnsafeMutablePointer<Float>, scratch: (Int) -> UnsafeMutablePointer<Float>) {
        let (n, o, c, p) = (g.batch, g.outChannels, g.inChannels, g.inHeight * g.inWidth)
        if let bias {
            for row in 0..<n { (output + row * o).update(from: bias, count: o) }
        }
        let beta: Float = bias == nil ? 0 : 1
        if transposesActivations(g) {
            let xt = scratch(n * c * p)
            transposeMatrices(input, count: n, rows: p, columns: c, into: xt)
            gemm.gemm(transA: false, transB: true, m: n, n: o, k: c * p, alpha: 1, a: xt, lda: c * p, b: weight,
                      ldb: c * p, beta: beta, c: output, ldc: o)
        } else {
            let wt = scratch(o * c * p)
            transposeMatrices(weight, count: o, rows: c, columns: p, into: wt)
            gemm.gemm(transA: false, transB: true, m: n, n: o, k: c * p, alpha: 1, a: input, lda: c * p, b: wt,
                      ldb: c * p, beta: beta, c: output, ldc: o)
        }
    }

    /// dx[n, pixel, channel] = sum over o of dy[n, o] w[o, channel, pixel].
    static func wholeInputBackwardData(_ g: ConvGeometry, _ gemm: CPUBackend, gradOutput: UnsafePointer<Float>,
                                       weight: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>,
                                       scratch: (Int) -> UnsafeMutablePointer<Float>) {
        let (n, o, c, p) = (g.batch, g.outChannels, g.inChannels, g.inHeight * g.inWidth)
        if transposesActivations(g) {
            let dxt = scratch(n * c * p)
            gemm.gemm(transA: false, transB: false, m: n, n: c * p, k: o, alpha: 1, a: gradOutput, lda: o, b: weight,
                      ldb: c * p, beta: 0, c: dxt, ldc: c * p)
            transposeMatrices(dxt, count: n, rows: c, columns: p, into: gradInput)
        } else {
            let wt = scratch(o * c * p)
            transposeMatrices(weight, count: o, rows: c, columns: p, into: wt)
            gemm.gemm(transA: false, transB: false, m: n, n: c * p, k: o, alpha: 1, a: gradOutput, lda: o, b: wt,
                      ldb: c * p, beta: 0, c: gradInput, ldc: c * p)
        }
    }

    /// dw[o, channel, pixel] = sum over n of dy[n, o] x[n, pixel, channel]; dbias[o] = sum over n of dy[n, o].
    static func wholeInputBackwardWeights(_ g: ConvGeometry, _ gemm: CPUBackend, input: UnsafePointer<Float>,
                                          gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                                          gradBias: UnsafeMutablePointer<Float>?,
                                          scratch: (Int) -> UnsafeMutablePointer<Float>) {
        let (n, o, c, p) = (g.batch, g.outChannels, g.inChannels, g.inHeight * g.inWidth)
        if transposesActivations(g) {
            let xt = scratch(n * c * p)
            transposeMatrices(input, count: n, rows: p, columns: c, into: xt)
            gemm.gemm(transA: true, transB: false, m: o, n: c * p, k: n, alpha: 1, a: gradOutput, lda: o, b: xt,
                      ldb: c * p, beta: 0, c: gradWeight, ldc: c * p)
        } else {
            let dwt = scratch(o * c * p)
            gemm.gemm(transA: true, transB: false, m: o, n: c * p, k: n, alpha: 1, a: gradOutput, lda: o, b: input,
                      ldb: c * p, beta: 0, c: dwt, ldc: c * p)
            transposeMatrices(dwt, count: o, rows: p, columns: c, into: gradWeight)
        }
        if let gradBias {
            gradBias.update(repeating: 0, count: o)
            for row in 0..<n {
                let dy = gradOutput + row * o
                for j in 0..<o { gradBias[j] += dy[j] }
            }
        }
    }

    /// The backward-data pass of a convolution with one input channel: columns[(n, oy, ox), (ky, kx)] =
    /// sum over o of dy[(n, oy, ox), o] w[o, (ky, kx)], then each column value added to the input pixel
    /// its tap read (pixels no window reads get zero).
    static func oneChannelBackwardData(_ g: ConvGeometry, _ gemm: CPUBackend, gradOutput: UnsafePointer<Float>,
                                       weight: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>,
                                       scratch: (Int) -> UnsafeMutablePointer<Float>) {
        precondition(g.inChannels == 1, "oneChannelBackwardData: \(g.inChannels) input channels")
        let taps = g.kernelHeight * g.kernelWidth, outPixels = g.outHeight * g.outWidth
        let inPixels = g.inHeight * g.inWidth
        let columns = scratch(g.batch * outPixels * taps)
        gemm.gemm(transA: false, transB: false, m: g.batch * outPixels, n: taps, k: g.outChannels, alpha: 1,
                  a: gradOutput, lda: g.outChannels, b: weight, ldb: taps, beta: 0, c: columns, ldc: taps)
        let cols = UnsafePointer(columns)
        parallelChunks(g.batch, costPerItem: outPixels * taps) { images in
            for image in images {
                let dx = gradInput + image * inPixels
                dx.update(repeating: 0, count: inPixels)
                var column = cols + image * outPixels * taps
                for oy in 0..<g.outHeight {
                    for ox in 0..<g.outWidth {
                        for ky in 0..<g.kernelHeight {
                            let iy = oy * g.strideH - g.padTop + ky * g.dilationH
                            if iy < 0 || iy >= g.inHeight { continue }
                            for kx in 0..<g.kernelWidth {
                                let ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                                if ix >= 0 && ix < g.inWidth { dx[iy * g.inWidth + ix] += column[ky * g.kernelWidth + kx] }
                            }
                        }
                        column += taps
                    }
                }
            }
        }
    }

    /// Transposes `count` row-major rows x columns matrices, one after another, into columns x rows ones.
    private static func transposeMatrices(_ x: UnsafePointer<Float>, count: Int, rows: Int, columns: Int,
                                          into out: UnsafeMutablePointer<Float>) {
        ElementwiseKernels.gatherStrided(x, [rows * columns, 1, columns], out, [count, columns, rows])
    }
}
