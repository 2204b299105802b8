import GenTensor
import GenFormats
import GenNN
/// The "standard CNN" generator and critic of Miyato et al. (2018, Table 3), adapted to 28x28x1
/// (the PyTorch twins: `scripts/torch-gan-recipes.py`, same parameter names).

/// A weight that is used as it is, or divided by its spectral norm (PyTorch's `spectral_norm`).
/// Its names are `weight` (and `bias`) in the first case, `weight_orig`, `bias`, `weight_u` and
/// `weight_v` in the second.
final class CriticWeight {
    let raw: Parameter
    let bias: Parameter?
    let normalizer: SpectralNormalizer?

    init(raw: Parameter, bias: Parameter?, spectralNorm: Bool, generator: RandomGenerator) {
        self.raw = raw
        self.bias = bias
        normalizer = spectralNorm ? SpectralNormalizer(weight: raw, generator: generator) : nil
    }

    /// The weight the layer multiplies by.
    var value: Tensor { normalizer?.normalizedWeight ?? raw.value }

    var namedParameters: [(String, Parameter)] {
        guard let normalizer else { return [("weight", raw)] + (bias.map { [("bias", $0)] } ?? []) }
        return (bias.map { [("bias", $0)] } ?? []) + normalizer.namedParameters
    }
}

/// A 2-D convolution with a bias whose weight may be spectrally normalised (`CriticWeight`).
final class CriticConv: Module {
    let conv: Conv2d
    let weight: CriticWeight

    convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: Int, spectralNorm: Bool, generator: RandomGenerator) {
        self.init(wrapping: Conv2d(inChannels, outChannels, kernelSize: kernelSize, padding: padding, generator: generator),
                  spectralNorm: spectralNorm, generator: generator)
    }

    /// Wraps a convolution (with a bias) built earlier.
    init(wrapping conv: Conv2d, spectralNorm: Bool, generator: RandomGenerator) {
        self.conv = conv
        weight = CriticWeight(raw: conv.weight, bias: conv.bias, spectralNorm: spectralNorm, generator: generator)
    }

    var namedParameters: [(String, Parameter)] { weight.namedParameters }

    func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight.value, bias: conv.bias!.value, stride: conv.stride, padding: conv.padding, dilation: conv.dilation)
    }
}

/// A linear layer with a bias whose weight may be spectrally normalised (`CriticWeight`).
final class CriticLinear: Module {
    let linear: Linear
    let weight: CriticWeight

    convenience init(_ inFeatures: Int, _ outFeatures: Int, spectralNorm: Bool, generator: RandomGenerator) {
        self.init(wrapping: Linear(inFeatures, outFeatures, generator: generator), spectralNorm: spectralNorm, generator: generator)
    }

    /// Wraps a linear layer (with a bias) built earlier.
    init(wrapping linear: Linear, spectralNorm: Bool, generator: RandomGenerator) {
        self.linear = linear
        weight = CriticWeight(raw: linear.weight, bias: linear.bias, spectralNorm: spectralNorm, generator: generator)
    }

    var namedParameters: [(String, Parameter)] { weight.namedParameters }

    func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight.value, bias: linear.bias?.value) }
}

/// The standard-CNN critic for 28x28x1 images: seven convolutions with biases and LeakyReLU 0.1,
/// no normalisation layer, then a linear layer to one score. With base width ch (64 in the paper):
///
/// | name | layer | output |
/// | --- | --- | --- |
/// | `c0_0` | 3x3 stride 1, ch | 28x28 |
/// | `c0_1` | 4x4 stride 2, ch | 14x14 |
/// | `c1_0` | 3x3 stride 1, 2ch | 14x14 |
/// | `c1_1` | 4x4 stride 2, 2ch | 7x7 |
/// | `c2_0` | 3x3 stride 1, 4ch | 7x7 |
/// | `c2_1` | 4x4 stride 2, 4ch | 3x3 |
/// | `c3_0` | 3x3 stride 1, 8ch | 3x3 |
/// | `l4` | linear 9 * 8ch -> 1 | (N) |
///
/// The paper's 32x32 input halves to 16, 8 and 4; 28 halves to 14, 7 and 3 (padding 1). The
/// linear layer reads the features in PyTorch's (C, H, W) order.
///
/// - Input: images (N, 28, 28, 1). Output: scores (N).
/// - `spectralNorm` divides every weight by its spectral norm (SNGAN; names `weight_orig`,
///   `weight_u`, `weight_v`); without it (WGAN-GP) the names are `weight` and `bias`.
public final class StandardCNNCritic: Module, PowerIterating, GANDiscriminator {
    public static let layerNames = ["c0_0", "c0_1", "c1_0", "c1_1", "c2_0", "c2_1", "c3_0"]
    let convolutions: [CriticConv]
    let linear: CriticLinear
    public let spectralNorm: Bool
    let finalChannels: Int

    public init(channels ch: Int = 64, spectralNorm: Bool, generator: RandomGenerator) {
        self.spectralNorm = spectralNorm
        let widths = [ch, ch, 2 * ch, 2 * ch, 4 * ch, 4 * ch, 8 * ch]
        var inputs = 1
        var layers: [Conv2d] = []
        for (i, width) in widths.enumerated() {
            let down = i % 2 == 1
            layers.append(Conv2d(inputs, width, kernelSize: down ? 4 : 3, stride: down ? 2 : 1, padding: 1, generator: generator))
            inputs = width
        }
        finalChannels = inputs
        // Every weight is drawn before the singular-vector estimates, so a seed gives the weights it gave before.
        let dense = Linear(inputs * 3 * 3, 1, generator: generator)
        convolutions = layers.map { CriticConv(wrapping: $0, spectralNorm: spectralNorm, generator: generator) }
        linear = CriticLinear(wrapping: dense, spectralNorm: spectralNorm, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        zip(Self.layerNames, convolutions).flatMap { prefixed($0.0, $0.1.namedParameters) } + prefixed("l4", linear.namedParameters)
    }

    public func powerIterate(_ iterations: Int) {
        for w in convolutions.map(\.weight) + [linear.weight] { w.normalizer?.powerIterate(iterations) }
    }

    /// Scores images: (N, 28, 28, 1) -> (N).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && Array(x.shape[1...]) == [28, 28, 1],
                     "StandardCNNCritic: images \(x.shape) should be (N, 28, 28, 1)")
        var h = x
        for conv in convolutions { h = conv(h).leakyRelu(0.1) }
        return linear(h.permuted([0, 3, 1, 2]).reshaped([x.shape[0], finalChannels * 9])).reshaped([-1])
    }

    /// No BatchNorm: training and evaluation are the same (the power iteration is explicit).
    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor { self(x) }
}

/// The standard-CNN generator adapted to 28x28x1: the paper's dense layer to 4x4x512 followed by
/// three upsampling stages (8, 16, 32) becomes a dense layer to 7x7 and two stages (14, 28),
/// keeping the paper's last widths. With base width ch (64):
///
/// | name | layer | output |
/// | --- | --- | --- |
/// | `l0`, `bn0` | linear zDim -> 7 * 7 * 4ch, BatchNorm, ReLU | 7x7x4ch |
/// | `dc1`, `bn1` | 4x4 stride-2 transposed convolution, BatchNorm, ReLU | 14x14x2ch |
/// | `dc2`, `bn2` | 4x4 stride-2 transposed convolution, BatchNorm, ReLU | 28x28xch |
/// | `c3` | 3x3 stride-1 convolution, tanh | 28x28x1 |
///
/// - Input: z (N, zDim). Output: images (N, 28, 28, 1) in (-1, 1).
/// - The dense layer's outputs are read in PyTorch's (C, H, W) order (`view(N, 4ch, 7, 7)`).
public final class StandardCNNGenerator: Module, GANGenerator {
    public let zDim: Int
    let l0: Linear
    let bn0: BatchNorm
    let dc1: ConvTranspose2d
    let bn1: BatchNorm
    let dc2: ConvTranspose2d
    let bn2: BatchNorm
    let c3: Conv2d
    let width: Int

    public init(zDim: Int = 128, channels ch: Int = 64, generator: RandomGenerator) {
        self.zDim = zDim
        width = 4 * ch
        l0 = Linear(zDim, 4 * ch * 49, generator: generator)
        bn0 = BatchNorm(4 * ch)
        dc1 = ConvTranspose2d(4 * ch, 2 * ch, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        bn1 = BatchNorm(2 * ch)
        dc2 = ConvTranspose2d(2 * ch, ch, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        bn2 = BatchNorm(ch)
        c3 = Conv2d(ch, 1, kernelSize: 3, stride: 1, padding: 1, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("l0", l0.namedParameters) + prefixed("bn0", bn0.namedParameters)
            + prefixed("dc1", dc1.namedParameters) + prefixed("bn1", bn1.namedParameters)
            + prefixed("dc2", dc2.namedParameters) + prefixed("bn2", bn2.namedParameters)
            + prefixed("c3", c3.namedParameters)
    }

    public var batchNorms: [BatchNorm] { [bn0, bn1, bn2] }

    /// Generates images: z (N, zDim) -> (N, 28, 28, 1); `training` picks batch statistics.
    public func callAsFunction(_ z: Tensor, training: Bool) -> Tensor {
        precondition(z.rank == 2 && z.shape[1] == zDim, "StandardCNNGenerator: z \(z.shape) should be (N, \(zDim))")
        var h = l0(z).reshaped([z.shape[0], width, 7, 7]).permuted([0, 2, 3, 1])
        h = bn0(h, training: training, activation: .relu)
        h = bn1(dc1(h), training: training, activation: .relu)
        h = bn2(dc2(h), training: training, activation: .relu)
        return c3(h).tanh()
    }
}
