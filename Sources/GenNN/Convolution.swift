import GenTensor
/// A 2-D convolution (PyTorch's `nn.Conv2d`, groups = 1) on channels-last activations.
///
/// - Input: (N, H, W, inChannels). Output: (N, OH, OW, outChannels),
///   OH = (H + 2 padding - dilation (kernel - 1) - 1) / stride + 1.
/// - Parameters: `weight` (out, in, KH, KW) as PyTorch stores it, `bias` (out).
/// - Initialisation: PyTorch's, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in * KH * KW.
public final class Conv2d: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, bias: Bool = true, generator: RandomGenerator) {
        let fanIn = inChannels * kernelSize * kernelSize
        weight = Parameter(Initializers.pytorchDefault([outChannels, inChannels, kernelSize, kernelSize], fanIn: fanIn,
                                                       generator: generator))
        self.bias = bias ? Parameter(Initializers.pytorchDefault([outChannels], fanIn: fanIn, generator: generator)) : nil
        self.stride = (stride, stride); self.padding = (padding, padding); self.dilation = (dilation, dilation)
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let bias {
            return Tensor.conv2d(x, weight.value, bias: bias.value, stride: stride, padding: padding, dilation: dilation)
        }
        return Tensor.conv2d(x, weight.value, stride: stride, padding: padding, dilation: dilation)
    }
}

/// A transposed 2-D convolution (PyTorch's `nn.ConvTranspose2d`, groups = 1) on channels-last
/// activations.
///
/// - Input: (N, H, W, inChannels). Output: (N, OH, OW, outChannels),
///   OH = (H - 1) stride - 2 padding + dilation (kernel - 1) + outputPadding + 1.
/// - Parameters: `weight` (in, out, KH, KW) as PyTorch stores it, `bias` (out).
/// - Initialisation: PyTorch's, with fan_in computed from weight axis 1: out * KH * KW.
public final class ConvTranspose2d: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: (Int, Int), padding: (Int, Int), outputPadding: (Int, Int), dilation: (Int, Int)

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, dilation: Int = 1, bias: Bool = true, generator: RandomGenerator) {
        let fanIn = outChannels * kernelSize * kernelSize
        weight = Parameter(Initializers.pytorchDefault([inChannels, outChannels, kernelSize, kernelSize], fanIn: fanIn,
                                                       generator: generator))
        self.bias = bias ? Parameter(Initializers.pytorchDefault([outChannels], fanIn: fanIn, generator: generator)) : nil
        self.stride = (stride, stride); self.padding = (padding, padding)
        self.outputPadding = (outputPadding, outputPadding); self.dilation = (dilation, dilation)
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = Tensor.convTranspose2d(x, weight.value, stride: stride, padding: padding, outputPadding: outputPadding,
                                       dilation: dilation)
        return bias.map { y + $0.value } ?? y
    }
}
