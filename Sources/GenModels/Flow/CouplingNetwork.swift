import GenTensor
import GenNN

/// The network inside a coupling layer (RealNVP's residual network): from the conditioning half
/// (N, H, W, inChannels) to the scale and translation of the other half, (N, H, W, 2 outChannels).
///
/// conv3x3(in, mid), then `blocks` pre-activation residual blocks
/// x + conv3x3(relu(bn(conv3x3(relu(bn(x)))))), then relu(bn(.)) and a zero-initialised
/// conv3x3(mid, 2 out), so that a new coupling starts as the identity. Batch norm uses the batch's
/// statistics in training and the running ones otherwise (sampling and likelihood).
public final class CouplingNetwork: Module {
    /// One pre-activation residual block.
    public final class Block: Module {
        public let norm1: BatchNorm, conv1: Conv2d, norm2: BatchNorm, conv2: Conv2d

        init(_ channels: Int, generator: RandomGenerator) {
            norm1 = BatchNorm(channels)
            conv1 = Conv2d(channels, channels, kernelSize: 3, padding: 1, bias: false, generator: generator)
            norm2 = BatchNorm(channels)
            conv2 = Conv2d(channels, channels, kernelSize: 3, padding: 1, generator: generator)
        }

        public var namedParameters: [(String, Parameter)] {
            prefixed("norm1", norm1.namedParameters) + prefixed("conv1", conv1.namedParameters)
                + prefixed("norm2", norm2.namedParameters) + prefixed("conv2", conv2.namedParameters)
        }

        func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
            let h = conv1(norm1(x, training: training, activation: .relu))
            return x + conv2(norm2(h, training: training, activation: .relu))
        }
    }

    public let inConv: Conv2d
    public let blocks: [Block]
    public let outNorm: BatchNorm
    public let outConv: Conv2d

    public init(inChannels: Int, midChannels: Int, outChannels: Int, blocks: Int, generator: RandomGenerator) {
        inConv = Conv2d(inChannels, midChannels, kernelSize: 3, padding: 1, generator: generator)
        self.blocks = (0..<blocks).map { _ in Block(midChannels, generator: generator) }
        outNorm = BatchNorm(midChannels)
        outConv = Conv2d(midChannels, 2 * outChannels, kernelSize: 3, padding: 1, generator: generator)
        outConv.weight.assign(Tensor.zeros(outConv.weight.value.shape))
        outConv.bias?.assign(Tensor.zeros([2 * outChannels]))
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("in_conv", inConv.namedParameters)
            + blocks.enumerated().flatMap { prefixed("blocks.\($0.offset)", $0.element.namedParameters) }
            + prefixed("out_norm", outNorm.namedParameters) + prefixed("out_conv", outConv.namedParameters)
    }

    /// The raw scale and translation, split: two (N, H, W, outChannels) tensors.
    public func callAsFunction(_ x: Tensor, training: Bool) -> (scale: Tensor, translation: Tensor) {
        var h = inConv(x)
        for block in blocks { h = block(h, training: training) }
        let out = outConv(outNorm(h, training: training, activation: .relu))
        let halves = out.chunked(2, axis: 3)
        return (halves[0], halves[1])
    }
}
