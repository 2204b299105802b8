/// The parts of the backend seam beyond GEMM and convolution: every kernel that ops, optimizers and
/// samplers run goes through one of these, on tensors whose storage the backend owns. Outputs are
/// allocated by the caller (contiguous, row-major, of the stated shape and dtype) and overwritten.
/// Float kernels take float32 or float64 tensors; the backend reads the dtype from the tensor.

/// A pointwise function of one value (`ElementwiseSeam.map`).
public enum UnaryOp: Sendable, Equatable {
    case negate, exp, log, log1p, sqrt, tanh, sin, cos, abs, relu, sign
    /// 1 where x > 0, else 0.
    case positiveMask
    case sigmoid
    /// x * sigmoid(x).
    case silu
    /// log(1 + e^x), computed stably.
    case softplus
}

extension LinearActivation {
    /// The elementwise op this activation is (nil for `none`).
    public var unaryOp: UnaryOp? {
        switch self {
        case .none: return nil
        case .relu: return .relu
        case .sigmoid: return .sigmoid
        case .tanh: return .tanh
        case .silu: return .silu
        }
    }
}

/// A pointwise function of two values, read with broadcasting (`ElementwiseSeam.zip`).
public enum BinaryOp: Sendable, Equatable {
    case add, subtract, multiply, divide
    /// a^b (whole exponents by repeated multiplication, as PyTorch for negative bases).
    case power
    /// g * d silu(x)/dx; operands (g, x).
    case siluGradient
    /// g * y (1 - y); operands (g, y = sigmoid(x)).
    case sigmoidGradient
    /// g * (1 - y²); operands (g, y = tanh(x)).
    case tanhGradient
    /// g where x > 0, else 0; operands (g, x).
    case reluGradient
    /// 1 where a == b (a > b, a >= b), else 0.
    case equalMask, greaterMask, greaterEqualMask
    /// x where x > 0, else slope * x; operands (x, slope).
    case leakyRelu
    /// 1 where x > 0, else slope; operands (x, slope).
    case leakySlope
    /// g where x > 0, else slope * g; operands (g, x).
    case leakyReluGradient(slope: Double)
}

/// Elementwise kernels and copies.
public protocol ElementwiseSeam {
    /// y = op(x); x and y have the same element count and float dtype (y may be x).
    func map(_ op: UnaryOp, _ x: Tensor, into y: Tensor)
    /// y = op(a, b), a and b broadcast to y's shape (NumPy's rules); one float dtype.
    func zip(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, into y: Tensor)
    /// y (contiguous, any dtype) = x read through `strides` (elements, per axis of y; 0 repeats an
    /// axis): permutes, broadcasts and transposes.
    func copyStrided(_ x: Tensor, strides: [Int], into y: Tensor)
    /// `count` runs of `length` elements: run i from x at `sourceOffset + i * sourceStride` to y at
    /// `targetOffset + i * targetStride` (slices, pads, concatenations; any dtype).
    func copyRuns(count: Int, length: Int, from x: Tensor, offset sourceOffset: Int, stride sourceStride: Int,
                  into y: Tensor, offset targetOffset: Int, stride targetStride: Int)
    /// Every element of y set to `value` (any dtype).
    func fill(_ y: Tensor, with value: Double)
    /// y = min(max(x, lower), upper) in x's precision (float dtypes).
    func clamp(_ x: Tensor, lower: Double, upper: Double, into y: Tensor)
    /// y = a where condition is non-zero, else b; all four of one shape, a, b and y of one dtype.
    func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor, into y: Tensor)
    /// y = x converted to y's dtype (to int64 by truncation towards zero).
    func convert(_ x: Tensor, into y: Tensor)
    /// A linear layer's activation over a float32 tensor, in place (`ComputeBackend.linear`'s
    /// unfused form).
    func activate(_ activation: LinearActivation, _ x: Tensor)
}

/// Reductions, accumulated in float64.
public protocol ReductionSeam {
    /// y (flat, the kept elements in order) = x summed over the sorted `axes`.
    func sum(_ x: Tensor, axes: [Int], into y: Tensor)
    /// y[r] = the maximum of row r of x seen as (y.count, inner) rows; NaN wins.
    func rowMax(_ x: Tensor, into y: Tensor)
}

/// The shape of one batch normalisation: `rows` positions (N·H·W) of `channels` channels-last
/// values, each channel normalised over all rows.
public struct BatchNormGeometry: Sendable {
    public let rows: Int, channels: Int
    public let eps: Double
    public let activation: NormActivation

    /// Rows per block of the CPU backend's threaded sums. Fixed, so that results do not depend on the
    /// thread count.
    static let blockRows = 128
    var blocks: Int { (rows + Self.blockRows - 1) / Self.blockRows }
}

/// The shape of one group normalisation: `batch` samples of `spatial` positions of `channels`
/// channels-last values, split into `groups` groups.
public struct GroupNormGeometry: Sendable {
    public let batch: Int, spatial: Int, channels: Int, groups: Int
    public let eps: Double
    /// Whether SiLU follows the affine transform.
    public let silu: Bool

    var channelsPerGroup: Int { channels / groups }
    /// Elements that share one mean and variance.
    var groupSize: Int { spatial * channelsPerGroup }
}

/// The activation a batch normalisation may apply in the same pass (BatchNorm + ReLU in the DCGAN
/// generator, BatchNorm + LeakyReLU in its discriminator).
public enum NormActivation: Equatable, Sendable {
    /// The normalised, affine-transformed value itself.
    case none
    /// max(z, 0).
    case relu
    /// z for z > 0, slope z otherwise (slope in [0, 1)).
    case leakyRelu(slope: Double)

    /// The slope applied to negative values (1 for none: the identity).
    var negativeSlope: Double {
        switch self {
        case .none: return 1
        case .relu: return 0
        case .leakyRelu(let slope): return slope
        }
    }
}

/// Fused normalisation kernels. Statistics are float64: batch norm's (3, C) rows are the mean,
/// 1 / sqrt(biased variance + eps) and the unbiased variance; group norm's (N, groups, 2) the mean
/// and 1 / sqrt(variance + eps). Weight and bias are (C), or nil for 1 and 0.
public protocol NormalizationSeam {
    func batchNormForward(_ g: BatchNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, output: Tensor,
                          statistics: Tensor)
    func batchNormInference(_ g: BatchNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, mean: Tensor,
                            variance: Tensor, output: Tensor)
    /// First-order gradients; `output` is the forward output (the activation's slope is read from it).
    func batchNormBackward(_ g: BatchNormGeometry, gradOutput: Tensor, x: Tensor, output: Tensor, weight: Tensor?,
                           statistics: Tensor, gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor)
    func groupNormForward(_ g: GroupNormGeometry, x: Tensor, weight: Tensor?, bias: Tensor?, output: Tensor,
                          statistics: Tensor)
    func groupNormBackward(_ g: GroupNormGeometry, gradOutput: Tensor, x: Tensor, weight: Tensor?, bias: Tensor?,
                           statistics: Tensor, gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor)
}

/// The shape of one max pooling: (batch, height, width, channels) in, a square `kernel` window moved
/// by `stride`, (batch, outHeight, outWidth, channels) out.
public struct PoolGeometry: Sendable {
    public let batch: Int, height: Int, width: Int, channels: Int
    public let kernel: Int, stride: Int
    public var outHeight: Int { (height - kernel) / stride + 1 }
    public var outWidth: Int { (width - kernel) / stride + 1 }
}

/// Gathers, scatters and pooling by flat element index.
public protocol IndexingSeam {
    /// y[i] = x.flat[indices[i]] (any dtype); indices are in range.
    func gather(_ x: Tensor, indices: [Int], into y: Tensor)
    /// y = 0, then y.flat[indices[i]] += g.flat[i], in index order (float dtypes).
    func scatterAdd(_ g: Tensor, indices: [Int], into y: Tensor)
    /// y = the window maxima (NaN wins; the first maximum on ties); with `argmax`, the flat input
    /// index of each (N·OH·OW·C entries).
    func maxPool2d(_ g: PoolGeometry, _ x: Tensor, into y: Tensor, argmax: UnsafeMutablePointer<Int>?)
}

/// Counter-based random draws: element i of a fill uses stream positions `base + i` (uniform) or
/// `base + 2i` and `base + 2i + 1` (normal) of the generator's seed, so every backend draws the same
/// values (`RandomGenerator.unitDouble` and `RandomGenerator.normal` define them).
public protocol RandomSeam {
    /// y[i] = low + (high - low) u_i, below `high` in the tensor's precision (float dtypes).
    func fillUniform(_ y: Tensor, low: Double, high: Double, seed: UInt64, base: UInt64)
    /// y[i] = mean + std n_i (float dtypes).
    func fillNormal(_ y: Tensor, mean: Double, std: Double, seed: UInt64, base: UInt64)
}

/// One optimizer or EMA update rule, in PyTorch's form, in float32.
public enum ParameterUpdate: Sendable {
    /// p -= lr (g + wd p); with momentum, b = (first ? d : mu b + d) with d = g + wd p, p -= lr b.
    /// State: [] without momentum, [b] with.
    case sgd(learningRate: Float, momentum: Float, weightDecay: Float, firstStep: Bool)
    /// m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'² with g' = g + l2 p; p = p decay - stepSize m /
    /// (sqrt(v) / bc2Sqrt + eps). State: [m, v].
    case adam(stepSize: Float, beta1: Float, beta2: Float, eps: Float, bc2Sqrt: Float, decay: Float, l2: Float)
    /// v = alpha v + (1 - alpha) g'², p -= lr g' / (sqrt(v) + eps), g' = g + wd p. State: [v].
    case rmsprop(learningRate: Float, alpha: Float, eps: Float, weightDecay: Float)
    /// p = d p + (1 - d) g: an EMA shadow p moved towards the value g. State: [].
    case movingAverage(decay: Float)
}

/// Optimizer updates, in place on the parameter and its state.
public protocol OptimizerSeam {
    /// Applies `rule` to the float32 `parameter` with `gradient` (same element count) and the rule's
    /// state tensors.
    func update(_ rule: ParameterUpdate, parameter: Tensor, gradient: Tensor, state: [Tensor])
}
