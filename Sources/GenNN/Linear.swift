import GenTensor
/// A fully connected layer: y = x Wᵀ + b (PyTorch's `nn.Linear`).
///
/// - Input: (..., inFeatures). Output: (..., outFeatures).
/// - Parameters: `weight` (outFeatures, inFeatures), `bias` (outFeatures).
/// - Initialisation: PyTorch's, U(-1/sqrt(in), 1/sqrt(in)) for both.
public final class Linear: Module {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, layout: ParameterLayout = .pytorch,
                generator: RandomGenerator) {
        weight = Parameter(Initializers.pytorchDefault([outFeatures, inFeatures], fanIn: inFeatures, generator: generator),
                           layout: layout)
        self.bias = bias ? Parameter(Initializers.pytorchDefault([outFeatures], fanIn: inFeatures, generator: generator)) : nil
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// activation(x Wᵀ + b); without gradient recording the bias and activation run fused into the
    /// product (see `Tensor.linear`), with it this is the layer followed by the activation op.
    public func callAsFunction(_ x: Tensor, activation: LinearActivation = .none) -> Tensor {
        Tensor.linear(x, weight.value, bias: bias?.value, activation: activation)
    }
}
