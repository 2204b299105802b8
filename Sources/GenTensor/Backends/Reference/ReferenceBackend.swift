/// The second complete backend: every kernel of the seam as the plain Swift loops of
/// `ReferenceKernels`, serial, with no oneDNN and no OpenMP. It proves that ops reach their kernels
/// only through `ComputeBackend`, and it is the oracle the CPU backend is tested against.
///
/// Selected with `--backend reference` or `GENERATIVE_BACKEND=reference`. Same layouts as every
/// backend: row-major GEMM, NHWC activations, OIHW weights of the forward convolution.
public struct ReferenceBackend: ComputeBackend {
    public var name: String { "reference" }
    public var device: Device { .host }
    /// Always 1: the reference kernels are serial.
    public var threads: Int { 1 }

    public init() {}

    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        ReferenceKernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// The bias on every row, the product added by the reference GEMM, then the activation.
    public func linear(m: Int, n: Int, k: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, activation: LinearActivation, output: UnsafeMutablePointer<Float>) {
        for row in 0..<m {
            for j in 0..<n { output[row * n + j] = bias?[j] ?? 0 }
        }
        ReferenceKernels.gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: input, lda: k, b: weight,
                              ldb: k, beta: 1, c: output, ldc: n)
        guard let op = activation.unaryOp else { return }
        for i in 0..<(m * n) { output[i] = Self.apply(op, output[i]) }
    }

    public func conv2dForward(_ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
        ReferenceKernels.conv2dForward(g, input: input, weight: weight, output: output)
        guard let bias else { return }
        for position in 0..<(g.batch * g.outHeight * g.outWidth) {
            let row = output + position * g.outChannels
            for o in 0..<g.outChannels { row[o] += bias[o] }
        }
    }

    public func conv2dBackwardData(_ g: ConvGeometry, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                   gradInput: UnsafeMutablePointer<Float>) {
        ReferenceKernels.conv2dBackwardData(g, gradOutput: gradOutput, weight: weight, gradInput: gradInput)
    }

    public func conv2dBackwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                      gradWeight: UnsafeMutablePointer<Float>) {
        ReferenceKernels.conv2dBackwardWeights(g, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
    }
}
