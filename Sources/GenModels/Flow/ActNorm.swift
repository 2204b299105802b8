import GenTensor
import GenNN

/// Activation normalisation (Glow, Kingma & Dhariwal 2018): y = (x + bias) exp(log_scale) per
/// channel, initialised from the first training batch so that its output has zero mean and unit
/// variance per channel.
///
/// - Input and output: (N, H, W, C); log-determinant H W sum(log_scale) per image.
/// - Parameters: `bias` (C), `log_scale` (C); buffer `initialized` (a scalar, 1 once set from data).
public final class ActNorm: FlowLayer {
    public let bias: Parameter, logScale: Parameter, initialized: Parameter

    public init(channels: Int) {
        bias = Parameter(Tensor.zeros([channels]))
        logScale = Parameter(Tensor.zeros([channels]))
        initialized = Parameter(Tensor(scalar: Float(0)), trainable: false)
    }

    public var namedParameters: [(String, Parameter)] {
        [("bias", bias), ("log_scale", logScale), ("initialized", initialized)]
    }

    /// Whether the data-dependent initialisation has run.
    public var isInitialized: Bool { initialized.value.item != 0 }

    public func forward(_ x: Tensor, training: Bool) -> (y: Tensor, logDeterminant: Tensor) {
        if training && !isInitialized {
            withoutGradients {
                let mean = x.mean(axes: [0, 1, 2])
                let std = (x.variance(axes: [0, 1, 2]) + 1e-12).sqrt()
                bias.assign(mean * -1)
                logScale.assign((std + 1e-6).log() * -1)
                initialized.assign(Tensor(scalar: Float(1)))
            }
        }
        let y = (x + bias.value) * logScale.value.exp()
        let pixels = Double(x.shape[1] * x.shape[2])
        return (y, Tensor.ones([x.shape[0]], dtype: x.dtype) * (logScale.value.sum() * pixels))
    }

    public func inverse(_ y: Tensor) -> Tensor {
        y * (logScale.value * -1).exp() - bias.value
    }
}
