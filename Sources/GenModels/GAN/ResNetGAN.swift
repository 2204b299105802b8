import GenTensor
import GenFormats
import GenNN
/// The ResNet generator and critic of Miyato et al. (2018, appendix B, after Gulrajani et al.
/// 2017), adapted to 28x28x1 (the PyTorch twins: `scripts/torch-gan-recipes.py`, same names).

/// One residual block of the ResNet critic, (N, H, W, in) -> (N, H', W', out), H' = H / 2 when
/// `down`:
/// - the first block (`first`): conv3x3, ReLU, conv3x3, 2x2 average pooling; shortcut: average
///   pooling, then a 1x1 convolution;
/// - the others: ReLU, conv3x3, ReLU, conv3x3 (then pooling when `down`); shortcut: a 1x1
///   convolution then pooling when `down` or the width changes, the identity otherwise.
///
/// Names: `conv1`, `conv2`, `shortcut` (each `weight`/`bias`, or spectral norm's names).
final class ResNetCriticBlock: Module {
    let conv1: CriticConv, conv2: CriticConv
    let shortcut: CriticConv?
    let first: Bool, down: Bool

    init(_ inChannels: Int, _ outChannels: Int, first: Bool, down: Bool, spectralNorm: Bool, generator: RandomGenerator) {
        self.first = first
        self.down = down
        conv1 = CriticConv(inChannels, outChannels, kernelSize: 3, padding: 1, spectralNorm: spectralNorm, generator: generator)
        conv2 = CriticConv(outChannels, outChannels, kernelSize: 3, padding: 1, spectralNorm: spectralNorm, generator: generator)
        shortcut = (down || inChannels != outChannels)
            ? CriticConv(inChannels, outChannels, kernelSize: 1, padding: 0, spectralNorm: spectralNorm, generator: generator) : nil
    }

    var weights: [CriticWeight] { [conv1.weight, conv2.weight] + (shortcut.map { [$0.weight] } ?? []) }

    var namedParameters: [(String, Parameter)] {
        prefixed("conv1", conv1.namedParameters) + prefixed("conv2", conv2.namedParameters)
            + (shortcut.map { prefixed("shortcut", $0.namedParameters) } ?? [])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv2(conv1(first ? x : x.relu()).relu())
        if down { h = h.avgPool2d(kernel: 2) }
        var s = x
        if let shortcut {
            s = first ? shortcut(x.avgPool2d(kernel: 2)) : shortcut(x)
            if down && !first { s = s.avgPool2d(kernel: 2) }
        }
        return h + s
    }
}

/// The ResNet critic for 28x28x1 images: residual blocks down to 14x14 and 7x7 (the paper's 32x32
/// halves to 16 and 8), two more at 7x7, ReLU, the sum over positions, and a linear layer to one
/// score. Width w (128 in the paper) everywhere.
///
/// - Names: `block1` (the first block), `block2` (down), `block3`, `block4`, `l5` (linear w -> 1).
/// - Input: images (N, 28, 28, 1). Output: scores (N).
/// - `spectralNorm` normalises every weight, shortcuts and the linear layer included.
public final class ResNetCritic: Module, PowerIterating, GANDiscriminator {
    let blocks: [ResNetCriticBlock]
    let linear: CriticLinear
    public let spectralNorm: Bool

    public init(width: Int = 128, spectralNorm: Bool, generator: RandomGenerator) {
        self.spectralNorm = spectralNorm
        blocks = [ResNetCriticBlock(1, width, first: true, down: true, spectralNorm: spectralNorm, generator: generator),
                  ResNetCriticBlock(width, width, first: false, down: true, spectralNorm: spectralNorm, generator: generator),
                  ResNetCriticBlock(width, width, first: false, down: false, spectralNorm: spectralNorm, generator: generator),
                  ResNetCriticBlock(width, width, first: false, down: false, spectralNorm: spectralNorm, generator: generator)]
        linear = CriticLinear(width, 1, spectralNorm: spectralNorm, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        blocks.enumerated().flatMap { prefixed("block\($0.offset + 1)", $0.element.namedParameters) }
            + prefixed("l5", linear.namedParameters)
    }

    public func powerIterate(_ iterations: Int) {
        for w in blocks.flatMap(\.weights) + [linear.weight] { w.normalizer?.powerIterate(iterations) }
    }

    /// Scores images: (N, 28, 28, 1) -> (N).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && Array(x.shape[1...]) == [28, 28, 1], "ResNetCritic: images \(x.shape) should be (N, 28, 28, 1)")
        var h = x
        for block in blocks { h = block(h) }
        let pooled = h.relu().sum(axes: [1, 2])
        return linear(pooled).reshaped([-1])
    }

    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor { self(x) }
}

/// One upsampling residual block of the ResNet generator, (N, H, W, in) -> (N, 2H, 2W, out):
/// BatchNorm, ReLU, nearest 2x upsampling, conv3x3, BatchNorm, ReLU, conv3x3; shortcut: upsampling,
/// then a 1x1 convolution. Names: `bn1`, `conv1`, `bn2`, `conv2`, `shortcut`.
final class ResNetGeneratorBlock: Module {
    let bn1: BatchNorm, conv1: Conv2d, bn2: BatchNorm, conv2: Conv2d, shortcut: Conv2d

    init(_ inChannels: Int, _ outChannels: Int, generator: RandomGenerator) {
        bn1 = BatchNorm(inChannels)
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        bn2 = BatchNorm(outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        shortcut = Conv2d(inChannels, outChannels, kernelSize: 1, generator: generator)
    }

    var namedParameters: [(String, Parameter)] {
        prefixed("bn1", bn1.namedParameters) + prefixed("conv1", conv1.namedParameters)
            + prefixed("bn2", bn2.namedParameters) + prefixed("conv2", conv2.namedParameters)
            + prefixed("shortcut", shortcut.namedParameters)
    }

    func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        var h = bn1(x, training: training, activation: .relu).upsampleNearest(scale: 2)
        h = conv2(bn2(conv1(h), training: training, activation: .relu))
        return h + shortcut(x.upsampleNearest(scale: 2))
    }
}

/// The ResNet generator adapted to 28x28x1: a linear layer to 7x7xw, two upsampling residual
/// blocks (14, 28; the paper's three go 4 -> 8 -> 16 -> 32), BatchNorm, ReLU, a 3x3 convolution to
/// one channel and tanh. Width w (256 in the paper).
///
/// - Names: `l0`, `block1`, `block2`, `bn`, `c3`.
/// - Input: z (N, zDim). Output: images (N, 28, 28, 1) in (-1, 1). The linear layer's outputs are
///   read in PyTorch's (C, H, W) order.
public final class ResNetGenerator: Module, GANGenerator {
    public let zDim: Int
    let width: Int
    let l0: Linear
    let blocks: [ResNetGeneratorBlock]
    let bn: BatchNorm
    let c3: Conv2d

    public init(zDim: Int = 128, width: Int = 128, generator: RandomGenerator) {
        self.zDim = zDim
        self.width = width
        l0 = Linear(zDim, width * 49, generator: generator)
        blocks = [ResNetGeneratorBlock(width, width, generator: generator), ResNetGeneratorBlock(width, width, generator: generator)]
        bn = BatchNorm(width)
        c3 = Conv2d(width, 1, kernelSize: 3, padding: 1, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("l0", l0.namedParameters)
            + blocks.enumerated().flatMap { prefixed("block\($0.offset + 1)", $0.element.namedParameters) }
            + prefixed("bn", bn.namedParameters) + prefixed("c3", c3.namedParameters)
    }

    public var batchNorms: [BatchNorm] { blocks.flatMap { [$0.bn1, $0.bn2] } + [bn] }

    public func callAsFunction(_ z: Tensor, training: Bool) -> Tensor {
        precondition(z.rank == 2 && z.shape[1] == zDim, "ResNetGenerator: z \(z.shape) should be (N, \(zDim))")
        var h = l0(z).reshaped([z.shape[0], width, 7, 7]).permuted([0, 2, 3, 1])
        for block in blocks { h = block(h, training: training) }
        return c3(bn(h, training: training, activation: .relu)).tanh()
    }
}
