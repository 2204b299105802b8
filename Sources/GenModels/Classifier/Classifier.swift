import GenTensor
import GenFormats
import GenNN
/// The small Fashion-MNIST CNN of `scripts/torch_reference/models.py` whose 128-d penultimate features feed FID and whose
/// softmax feeds the Inception Score.
///
/// - Input: images (N, 28, 28, 1) channels-last in [-1, 1] (x * 2 - 1 for images in [0, 1]).
/// - Output: `features` (N, 128) after fc1 and ReLU; `callAsFunction` logits (N, 10).
/// - Parameters (PyTorch names): `conv1` (32, 1, 3, 3), `conv2` (64, 32, 3, 3), `conv3` (128, 64, 3, 3),
///   all padding 1 with biases; `fc1` (128 x 1152), `fc2` (10 x 128). PyTorch's fc1 columns are in
///   (C, H, W) order; the engine flattens (3, 3, 128) channels-last activations, so fc1 is stored as
///   `ParameterLayout.linearAfterFlatten(channels: 128, height: 3, width: 3)` and converted at load.
public final class Classifier: Module {
    /// The input its layers are laid out for [H, W, C]: 28 x 28 grey images.
    public static let imageShape = [28, 28, 1]
    public let conv1: Conv2d, conv2: Conv2d, conv3: Conv2d
    public let fc1: Linear, fc2: Linear

    public init(classes: Int = 10, generator: RandomGenerator) {
        conv1 = Conv2d(1, 32, kernelSize: 3, padding: 1, generator: generator)
        conv2 = Conv2d(32, 64, kernelSize: 3, padding: 1, generator: generator)
        conv3 = Conv2d(64, 128, kernelSize: 3, padding: 1, generator: generator)
        fc1 = Linear(128 * 3 * 3, 128, layout: .linearAfterFlatten(channels: 128, height: 3, width: 3),
                     generator: generator)
        fc2 = Linear(128, classes, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("conv1", conv1.namedParameters) + prefixed("conv2", conv2.namedParameters)
            + prefixed("conv3", conv3.namedParameters) + prefixed("fc1", fc1.namedParameters)
            + prefixed("fc2", fc2.namedParameters)
    }

    /// The penultimate features.
    ///
    /// - Parameter x: (N, 28, 28, 1).
    /// - Returns: (N, 128), after fc1 and ReLU.
    public func features(_ x: Tensor) -> Tensor {
        var h = conv1(x).relu().maxPool2d(kernel: 2)  // 14x14
        h = conv2(h).relu().maxPool2d(kernel: 2)  // 7x7
        h = conv3(h).relu().maxPool2d(kernel: 2)  // 3x3 (floor)
        return fc1(h.flattened(from: 1), activation: .relu)
    }

    /// The class logits.
    ///
    /// - Parameter x: (N, 28, 28, 1).
    /// - Returns: (N, classes).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        fc2(features(x))
    }
}
