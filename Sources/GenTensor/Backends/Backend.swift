import Foundation

/// The backend seam: the kernels that ops call. Models and autodiff never call oneDNN directly; a
/// GPU backend implements this protocol without touching them. A backend is a value that carries its
/// own settings (threads, kernel choices); `Backend.current` is the one in use for the calling task.
///
/// Layouts: activations are channels-last (NHWC), convolution weights are PyTorch's OIHW of the
/// *forward* convolution (a transposed convolution runs as `conv2dBackwardData` of the convolution it
/// transposes, whose OIHW weight is exactly PyTorch's ConvTranspose2d IOHW weight).
/// All buffers are contiguous; outputs are overwritten (not accumulated).
public protocol ComputeBackend: Sendable, ElementwiseSeam, ReductionSeam, NormalizationSeam, IndexingSeam, RandomSeam,
                                OptimizerSeam {
    /// The name `--backend` and `GENERATIVE_BACKEND` select it by ("cpu", "reference").
    var name: String { get }
    /// The threads its kernels use (the Swift kernels' chunked loops too).
    var threads: Int { get }
    /// The memory its kernels read and write.
    var device: Device { get }
    /// C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is M x K, op(B) is K x N.
    func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
              a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int)
    /// `batch` independent products C_i = op(A_i) · op(B_i) (alpha 1, beta 0), the i-th matrices
    /// `i * strideA`, `i * strideB` and `i * strideC` elements from `a`, `b` and `c`.
    func batchedGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int, strideA: Int, b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int, batch: Int)
    /// output(M, N) = activation(input(M, K) · weight(N, K)ᵀ + bias(N)), all row-major: PyTorch's
    /// `F.linear` followed by an activation, in one pass where the backend can fuse them (bias may be
    /// nil).
    func linear(m: Int, n: Int, k: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                bias: UnsafePointer<Float>?, activation: LinearActivation, output: UnsafeMutablePointer<Float>)
    /// output(N, OH, OW, O) = conv(input(N, H, W, I), weight(O, I, KH, KW)).
    /// (bias (O) is added to every output position when given.)
    func conv2dForward(_ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>)
    /// gradInput(N, H, W, I) from gradOutput(N, OH, OW, O) and weight(O, I, KH, KW).
    func conv2dBackwardData(_ g: ConvGeometry, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            gradInput: UnsafeMutablePointer<Float>)
    /// gradWeight(O, I, KH, KW) from input(N, H, W, I) and gradOutput(N, OH, OW, O).
    func conv2dBackwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                               gradWeight: UnsafeMutablePointer<Float>)
    /// `conv2dBackwardWeights` that also writes the bias gradient, gradOutput summed over N, OH and
    /// OW, into gradBias(O).
    func conv2dBackwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                               gradWeight: UnsafeMutablePointer<Float>, gradBias: UnsafeMutablePointer<Float>)
}

/// An activation applied to a linear layer's output (`Tensor.linear`), fused into the same pass as the
/// product and bias where the backend can (on the CPU, a oneDNN eltwise post-op of the matmul).
public enum LinearActivation: String, Sendable, CaseIterable {
    /// The identity: x Wᵀ + b.
    case none
    /// max(x, 0).
    case relu
    /// 1 / (1 + e^-x).
    case sigmoid
    /// tanh(x).
    case tanh
    /// x * sigmoid(x) (SiLU / swish).
    case silu
}

/// The shape of one 2-D convolution (groups = 1). Padding may differ per side: a transposed
/// convolution with output padding is the backward-data pass of a convolution whose input has extra
/// rows or columns at the bottom/right, which that convolution's floor division ignores.
public struct ConvGeometry: Hashable, Sendable {
    public var batch: Int
    public var inChannels: Int, inHeight: Int, inWidth: Int
    public var outChannels: Int, outHeight: Int, outWidth: Int
    public var kernelHeight: Int, kernelWidth: Int
    public var strideH: Int, strideW: Int
    public var padTop: Int, padLeft: Int
    public var dilationH: Int, dilationW: Int

    /// Padding at the bottom and right implied by the sizes (may be smaller than top/left, or
    /// negative, when the input has rows the strided window never reaches).
    public var padBottom: Int { (outHeight - 1) * strideH + (kernelHeight - 1) * dilationH + 1 - inHeight - padTop }
    public var padRight: Int { (outWidth - 1) * strideW + (kernelWidth - 1) * dilationW + 1 - inWidth - padLeft }

    /// Geometry of a convolution with symmetric padding; the output size follows PyTorch's formula.
    public init(batch: Int, inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int,
                kernelHeight: Int, kernelWidth: Int, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                dilation: (Int, Int) = (1, 1)) {
        self.batch = batch
        self.inChannels = inChannels; self.inHeight = inHeight; self.inWidth = inWidth
        self.outChannels = outChannels
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.strideH = stride.0; self.strideW = stride.1
        self.padTop = padding.0; self.padLeft = padding.1
        self.dilationH = dilation.0; self.dilationW = dilation.1
        self.outHeight = (inHeight + 2 * padding.0 - dilation.0 * (kernelHeight - 1) - 1) / stride.0 + 1
        self.outWidth = (inWidth + 2 * padding.1 - dilation.1 * (kernelWidth - 1) - 1) / stride.1 + 1
    }

    /// FLOPs of the forward pass (2 per multiply-add); backward-data and backward-weights cost the same.
    public var flops: Double {
        2.0 * Double(batch * outHeight * outWidth * outChannels) * Double(inChannels * kernelHeight * kernelWidth)
    }
}

/// The backend in use: a task-local value, so that a scope (a command, a test) picks its own without
/// a process-wide switch. Outside any scope it is the process default, named by the environment
/// variable `GENERATIVE_BACKEND` (`cpu`, the default, or `reference`), read once.
public enum Backend {
    /// The backend names `named(_:threads:)` accepts.
    public static let names = ["cpu", "reference"]

    /// The backend of this process outside any `with` scope: `GENERATIVE_BACKEND`, or the CPU backend
    /// on OpenMP's thread count. An unknown name stops the process with a one-line error.
    public static let processDefault: any ComputeBackend = {
        let name = environmentName ?? "cpu"
        do {
            return try named(name, threads: CPUBackend.defaultThreads)
        } catch {
            fputs("Error: GENERATIVE_BACKEND=\(name): \(error)\n", stderr)
            exit(2)
        }
    }()

    /// `GENERATIVE_BACKEND` when set and not empty.
    public static var environmentName: String? {
        guard let value = ProcessInfo.processInfo.environment["GENERATIVE_BACKEND"], !value.isEmpty else { return nil }
        return value
    }

    @TaskLocal private static var scoped: (any ComputeBackend)?

    /// The backend ops run on in the calling task.
    @inline(__always)
    public static var current: any ComputeBackend { scoped ?? processDefault }

    /// Runs `body` with `backend` as the current backend of this task (and of tasks it creates).
    public static func with<R>(_ backend: any ComputeBackend, _ body: () throws -> R) rethrows -> R {
        try $scoped.withValue(backend, operation: body)
    }

    /// A backend by name: `cpu` (oneDNN, `threads` threads) or `reference` (the Swift reference
    /// kernels, serial).
    public static func named(_ name: String, threads: Int) throws -> any ComputeBackend {
        switch name {
        case "cpu": return CPUBackend(threads: threads)
        case "reference": return ReferenceBackend()
        default: throw BackendError.unknownName(name)
        }
    }
}

/// A backend name that names no backend.
public enum BackendError: Error, CustomStringConvertible {
    case unknownName(String)

    public var description: String {
        switch self {
        case .unknownName(let name):
            return "unknown backend '\(name)'; expected one of \(Backend.names.joined(separator: ", "))"
        }
    }
}

extension ComputeBackend {
    /// The weight gradient, then the bias gradient summed in Float64 position by position.
    public func conv2dBackwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                      gradWeight: UnsafeMutablePointer<Float>, gradBias: UnsafeMutablePointer<Float>) {
        conv2dBackwardWeights(g, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
        var sums = [Double](repeating: 0, count: g.outChannels)
        for position in 0..<(g.batch * g.outHeight * g.outWidth) {
            for o in 0..<g.outChannels { sums[o] += Double(gradOutput[position * g.outChannels + o]) }
        }
        for o in 0..<g.outChannels { gradBias[o] = Float(sums[o]) }
    }

    /// One `gemm` after another.
    public func batchedGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int, strideA: Int, b: UnsafePointer<Float>, ldb: Int,
                            strideB: Int, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int, batch: Int) {
        for i in 0..<batch {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a + i * strideA, lda: lda,
                 b: b + i * strideB, ldb: ldb, beta: 0, c: c + i * strideC, ldc: ldc)
        }
    }

    /// The convolution without bias.
    public func conv2dForward(_ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              output: UnsafeMutablePointer<Float>) {
        conv2dForward(g, input: input, weight: weight, bias: nil, output: output)
    }
}
