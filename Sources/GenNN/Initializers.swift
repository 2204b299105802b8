import GenTensor
import GenFormats
/// PyTorch's default initialisations (kaiming_uniform_ with a = sqrt(5) for weights, which is
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for biases).
public enum Initializers {
    /// U(-bound, bound) with bound = 1 / sqrt(fanIn).
    public static func pytorchDefault(_ shape: [Int], fanIn: Int, generator: RandomGenerator) -> Tensor {
        let bound = 1.0 / Double(max(fanIn, 1)).squareRoot()
        return Tensor.uniform(shape, low: -bound, high: bound, generator: generator)
    }
}
