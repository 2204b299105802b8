import GenTensor
import GenFormats
import GenNN
/// CycleGAN's networks (Zhu et al. 2017), scaled to 28x28 grey images: a ResNet generator
/// (c7s1-ch, d2ch, d4ch, R residual blocks, u2ch, uch, c7s1-1, tanh) with instance normalisation,
/// and a PatchGAN discriminator scoring 7x7 patches. Zero padding replaces the paper's reflection
/// padding. Images are channels-last (N, 28, 28, 1) in [-1, 1].

/// Instance normalisation (PyTorch's `InstanceNorm2d(C, affine=True)`): per image and channel over
/// the spatial axes. It is `GroupNorm` with one group per channel.
public func instanceNorm(_ channels: Int) -> GroupNorm { GroupNorm(groups: channels, channels: channels) }

/// CycleGAN's residual block: x + IN(conv3x3(ReLU(IN(conv3x3(x))))).
///
/// - Parameters: `conv1`, `norm1`, `conv2`, `norm2` (convolutions with bias, instance norms with
///   weight and bias).
public final class CycleResidualBlock: Module {
    public let conv1: Conv2d, norm1: GroupNorm, conv2: Conv2d, norm2: GroupNorm

    public init(_ channels: Int, generator: RandomGenerator) {
        conv1 = Conv2d(channels, channels, kernelSize: 3, padding: 1, generator: generator)
        norm1 = instanceNorm(channels)
        conv2 = Conv2d(channels, channels, kernelSize: 3, padding: 1, generator: generator)
        norm2 = instanceNorm(channels)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("conv1", conv1.namedParameters) + prefixed("norm1", norm1.namedParameters)
            + prefixed("conv2", conv2.namedParameters) + prefixed("norm2", norm2.namedParameters)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x + norm2(conv2(norm1(conv1(x)).relu()))
    }
}

/// CycleGAN's ResNet generator for 28x28: 28 -> 14 -> 7, residual blocks at 7x7, 7 -> 14 -> 28.
///
/// - Input and output: (N, 28, 28, 1); the output in (-1, 1).
/// - Parameters: `inc.{conv,norm}` (7x7, 1 -> ch), `down.{0,1}.{conv,norm}` (3x3 stride 2),
///   `res.I.*`, `up.{0,1}.{conv,norm}` (3x3 transposed, stride 2, output padding 1),
///   `out.conv` (7x7, ch -> 1).
public final class CycleGANGenerator: Module {
    public let inConv: Conv2d, inNorm: GroupNorm
    public let downConvs: [Conv2d], downNorms: [GroupNorm]
    public let blocks: [CycleResidualBlock]
    public let upConvs: [ConvTranspose2d], upNorms: [GroupNorm]
    public let outConv: Conv2d

    public init(channels ch: Int = 32, residualBlocks: Int = 3, generator: RandomGenerator) {
        inConv = Conv2d(1, ch, kernelSize: 7, padding: 3, generator: generator)
        inNorm = instanceNorm(ch)
        downConvs = [Conv2d(ch, 2 * ch, kernelSize: 3, stride: 2, padding: 1, generator: generator),
                     Conv2d(2 * ch, 4 * ch, kernelSize: 3, stride: 2, padding: 1, generator: generator)]
        downNorms = [instanceNorm(2 * ch), instanceNorm(4 * ch)]
        blocks = (0..<residualBlocks).map { _ in CycleResidualBlock(4 * ch, generator: generator) }
        upConvs = [ConvTranspose2d(4 * ch, 2 * ch, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1, generator: generator),
                   ConvTranspose2d(2 * ch, ch, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1, generator: generator)]
        upNorms = [instanceNorm(2 * ch), instanceNorm(ch)]
        outConv = Conv2d(ch, 1, kernelSize: 7, padding: 3, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        var out = prefixed("inc.conv", inConv.namedParameters) + prefixed("inc.norm", inNorm.namedParameters)
        for i in 0..<2 {
            out += prefixed("down.\(i).conv", downConvs[i].namedParameters) + prefixed("down.\(i).norm", downNorms[i].namedParameters)
        }
        for (i, b) in blocks.enumerated() { out += prefixed("res.\(i)", b.namedParameters) }
        for i in 0..<2 {
            out += prefixed("up.\(i).conv", upConvs[i].namedParameters) + prefixed("up.\(i).norm", upNorms[i].namedParameters)
        }
        return out + prefixed("out.conv", outConv.namedParameters)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = inNorm(inConv(x)).relu()
        for i in 0..<2 { h = downNorms[i](downConvs[i](h)).relu() }
        for b in blocks { h = b(h) }
        for i in 0..<2 { h = upNorms[i](upConvs[i](h)).relu() }
        return outConv(h).tanh()
    }
}

/// CycleGAN's PatchGAN discriminator for 28x28: one raw least-squares score per 7x7 patch.
///
/// - Input: (N, 28, 28, 1). Output: (N, 7, 7, 1).
/// - Parameters: `net.0` Conv(1, ch, 4, 2, 1), `net.2` Conv(ch, 2ch, 4, 2, 1), `net.3` instance
///   norm, `net.5` Conv(2ch, 1, 3, 1, 1); LeakyReLU 0.2.
public final class PatchDiscriminator: Module {
    public let conv1: Conv2d, conv2: Conv2d, norm: GroupNorm, conv3: Conv2d

    public init(channels ch: Int = 64, generator: RandomGenerator) {
        conv1 = Conv2d(1, ch, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        conv2 = Conv2d(ch, 2 * ch, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        norm = instanceNorm(2 * ch)
        conv3 = Conv2d(2 * ch, 1, kernelSize: 3, stride: 1, padding: 1, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("net.0", conv1.namedParameters) + prefixed("net.2", conv2.namedParameters)
            + prefixed("net.3", norm.namedParameters) + prefixed("net.5", conv3.namedParameters)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = norm(conv2(conv1(x).leakyRelu(0.2))).leakyRelu(0.2)
        return conv3(h)
    }
}

/// The mean absolute difference (PyTorch's `F.l1_loss`), rank 0.
public func meanAbsoluteError(_ prediction: Tensor, _ target: Tensor) -> Tensor {
    precondition(prediction.shape == target.shape, "meanAbsoluteError: \(prediction.shape) and \(target.shape) differ")
    return (prediction - target).abs().mean()
}
