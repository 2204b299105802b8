import GenTensor
import GenFormats
import GenNN
/// Spectral normalisation (Miyato et al. 2018) in the form of PyTorch's
/// `torch.nn.utils.spectral_norm`, and the SNGAN critic built from it.

/// A layer whose weights are spectrally normalised: it keeps power-iteration state to advance.
public protocol PowerIterating: AnyObject {
    /// Runs `iterations` power iterations on every normalised weight (no gradient), moving the
    /// stored singular-vector estimates u and v.
    func powerIterate(_ iterations: Int)
}

/// The state of one spectrally normalised weight, as PyTorch's `SpectralNorm` hook keeps it:
/// the raw weight (`weight_orig`, trainable) and the left and right singular-vector estimates
/// (`weight_u` (out), `weight_v` (in * kh * kw), buffers).
///
/// With W the raw weight reshaped to (out, rest): a power iteration sets
/// v = normalize(Wᵀ u), u = normalize(W v) (normalize(x) = x / max(||x||, eps)), and the layer uses
/// W / sigma with sigma = uᵀ W v, differentiated through W with u and v held constant (PyTorch's
/// convention). u and v start as normalised N(0, 1) draws, as PyTorch's.
public final class SpectralNormalizer {
    /// `weight_orig`.
    public let weight: Parameter
    /// `weight_u`, (out).
    public let u: Parameter
    /// `weight_v`, (rest).
    public let v: Parameter
    public let eps: Double

    public init(weight: Parameter, eps: Double = 1e-12, generator: RandomGenerator) {
        self.weight = weight
        self.eps = eps
        let rows = weight.value.shape[0], columns = weight.value.elementCount / max(rows, 1)
        u = Parameter(Self.normalized(Tensor.normal([rows], generator: generator), eps), trainable: false)
        v = Parameter(Self.normalized(Tensor.normal([columns], generator: generator), eps), trainable: false)
    }

    /// `weight_orig`, `weight_u`, `weight_v`.
    public var namedParameters: [(String, Parameter)] {
        [("weight_orig", weight), ("weight_u", u), ("weight_v", v)]
    }

    static func normalized(_ x: Tensor, _ eps: Double) -> Tensor {
        let norm = max(Double(x.scalars(as: Float.self).reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()), eps)
        return x / norm
    }

    /// The raw weight as a matrix (out, rest).
    var matrix: Tensor {
        let w = weight.value
        return w.reshaped([w.shape[0], w.elementCount / w.shape[0]])
    }

    /// Advances u and v by `iterations` power iterations, without gradient.
    public func powerIterate(_ iterations: Int = 1) {
        withoutGradients {
            let w = matrix.detached()
            var uu = u.value, vv = v.value
            for _ in 0..<iterations {
                vv = Self.normalized(Tensor.matmul(w, uu.reshaped([-1, 1]), transposeA: true).reshaped([-1]), eps)
                uu = Self.normalized(Tensor.matmul(w, vv.reshaped([-1, 1])).reshaped([-1]), eps)
            }
            u.assign(uu)
            v.assign(vv)
        }
    }

    /// sigma = uᵀ W v, rank 0, differentiable with respect to W.
    public var sigma: Tensor {
        let wv = Tensor.matmul(matrix, v.value.reshaped([-1, 1]))
        return Tensor.matmul(u.value.reshaped([1, -1]), wv).reshaped([])
    }

    /// W / sigma, shaped like the raw weight.
    public var normalizedWeight: Tensor { weight.value / sigma }
}

/// A `Conv2d` with spectral normalisation on its weight (`spectral_norm(nn.Conv2d(...))`).
///
/// - Input: (N, H, W, inChannels). Output: (N, OH, OW, outChannels).
/// - Parameters (PyTorch's names): `weight_orig` (out, in, KH, KW), `bias` (out), buffers
///   `weight_u` (out) and `weight_v` (in * KH * KW).
/// - The forward pass never advances the power iteration: call `powerIterate` once per training
///   step (PyTorch advances it at every training-mode forward).
public final class SpectralNormConv2d: Module, PowerIterating {
    public let conv: Conv2d
    public let normalizer: SpectralNormalizer

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, generator: RandomGenerator) {
        conv = Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, bias: bias,
                      generator: generator)
        normalizer = SpectralNormalizer(weight: conv.weight, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        (conv.bias.map { [("bias", $0)] } ?? []) + normalizer.namedParameters
    }

    public func powerIterate(_ iterations: Int = 1) { normalizer.powerIterate(iterations) }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = Tensor.conv2d(x, normalizer.normalizedWeight, stride: conv.stride, padding: conv.padding,
                              dilation: conv.dilation)
        return conv.bias.map { y + $0.value } ?? y
    }
}

/// The SNGAN critic: the `WGANCritic` architecture (three convolutions with biases, LeakyReLU 0.2,
/// no BatchNorm, a raw score) with spectral normalisation on every layer.
///
/// - Input: images (N, 28, 28, 1). Output: scores (N).
/// - Parameters: `net.{0,2,4}.{weight_orig, bias, weight_u, weight_v}`, which load into
///   `WGANCritic` with `spectral_norm` applied to each `nn.Conv2d` in PyTorch.
public final class SNGANCritic: Module, PowerIterating {
    public let conv1: SpectralNormConv2d
    public let conv2: SpectralNormConv2d
    public let conv3: SpectralNormConv2d

    public init(channels ch: Int = 64, generator: RandomGenerator) {
        conv1 = SpectralNormConv2d(1, ch, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        conv2 = SpectralNormConv2d(ch, ch * 2, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        conv3 = SpectralNormConv2d(ch * 2, 1, kernelSize: 7, stride: 1, padding: 0, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("net.0", conv1.namedParameters) + prefixed("net.2", conv2.namedParameters)
            + prefixed("net.4", conv3.namedParameters)
    }

    public func powerIterate(_ iterations: Int = 1) {
        for layer in [conv1, conv2, conv3] { layer.powerIterate(iterations) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = conv2(conv1(x).leakyRelu(0.2)).leakyRelu(0.2)
        return conv3(h).reshaped([-1])
    }
}

extension SNGANCritic: GANDiscriminator {
    /// No BatchNorm: training and evaluation are the same (the power iteration is explicit).
    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor { self(x) }
}
