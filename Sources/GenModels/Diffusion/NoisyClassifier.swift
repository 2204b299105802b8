import GenTensor
import GenFormats
import GenNN
/// A noise-aware classifier p(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021): the
/// evaluator CNN's shape with SiLU and average pooling (smooth, so its input gradient is useful) and
/// the U-Net's sinusoidal time embedding added after each convolution.
///
/// - Input: x_t (N, 28, 28, 1) in the diffusion's [-1, 1] scale, t int64 (N). Output: logits (N, classes).
/// - Parameters: `time_mlp.0`, `time_mlp.2` (32 -> 128 -> 128), `conv1..3` (3x3, 1 -> 32 -> 64 -> 128),
///   `temb1..3` (128 -> each conv's channels), `fc1` (1152 -> 128, channels-last flatten order),
///   `fc2` (128 -> classes).
public final class NoisyClassifier: Module {
    public let classes: Int
    let timeIn: Linear, timeOut: Linear
    let convs: [Conv2d], tembs: [Linear]
    let fc1: Linear, fc2: Linear

    public init(classes: Int = 10, generator: RandomGenerator) {
        self.classes = classes
        timeIn = Linear(32, 128, generator: generator)
        timeOut = Linear(128, 128, generator: generator)
        let widths = [1, 32, 64, 128]
        convs = (0..<3).map { Conv2d(widths[$0], widths[$0 + 1], kernelSize: 3, padding: 1, generator: generator) }
        tembs = (0..<3).map { Linear(128, widths[$0 + 1], generator: generator) }
        fc1 = Linear(128 * 3 * 3, 128, layout: .linearAfterFlatten(channels: 128, height: 3, width: 3), generator: generator)
        fc2 = Linear(128, classes, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        var out = prefixed("time_mlp.0", timeIn.namedParameters) + prefixed("time_mlp.2", timeOut.namedParameters)
        for i in 0..<3 {
            out += prefixed("conv\(i + 1)", convs[i].namedParameters) + prefixed("temb\(i + 1)", tembs[i].namedParameters)
        }
        return out + prefixed("fc1", fc1.namedParameters) + prefixed("fc2", fc2.namedParameters)
    }

    public func callAsFunction(_ x: Tensor, t: Tensor) -> Tensor {
        let e = timeOut(timeIn(timestepEmbedding(t, dim: 32), activation: .silu), activation: .silu)
        var h = x
        for i in 0..<3 {
            let shift = tembs[i](e).reshaped([x.shape[0], 1, 1, -1])
            h = (convs[i](h) + shift).silu().avgPool2d(kernel: 2)
        }
        return fc2(fc1(h.flattened(from: 1), activation: .silu))
    }
}
