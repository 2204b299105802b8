import Foundation
import GenTensor
import GenNN

/// The pieces of a flow's density on 8-bit images (dequantised by `Dequantization`): the logit
/// pre-processing and the standard normal prior, in nats and bits per dimension.
///
/// With k in 0...255 a pixel, u ~ U[0, 1) and y = (k + u) / 256, the flow models the density of y on
/// [0, 1]^D through x0 = logit(alpha + (1 - 2 alpha) y). Then -log2 P(k) <= E_u[-log2 p(y)] + D * 8,
/// so bits/dim = (-log p(y) + D log 256) / (D log 2), and
/// log p(y) = log N(z; 0, I) + sum of the flow's log-determinants + the logit's.
public enum FlowDensity {
    /// x0 = logit(alpha + (1 - 2 alpha) y) and its log-determinant per image, (N).
    public static func logit(_ y: Tensor, alpha: Double) -> (x: Tensor, logDeterminant: Tensor) {
        let p = y * (1 - 2 * alpha) + alpha
        let logP = p.log(), log1mP = (p * -1).log1p()
        let perElement = (logP + log1mP) * -1 + Foundation.log(1 - 2 * alpha)
        return (logP - log1mP, perImageSum(perElement))
    }

    /// The inverse pre-processing: y = (sigmoid(x0) - alpha) / (1 - 2 alpha), then the pixel value
    /// of the dequantisation bin's centre, k / 255 with k = 256 y - 1/2, clamped to [0, 1].
    public static func images(fromLogits x: Tensor, alpha: Double) -> Tensor {
        let y = (x.sigmoid() - alpha) * (1 / (1 - 2 * alpha))
        return ((y * 256 - 0.5) * (1.0 / 255)).clamped(min: 0, max: 1)
    }

    /// log N(z; 0, I) per image, (N), for latents (N, D).
    public static func priorLogDensity(_ z: Tensor) -> Tensor {
        let d = Double(z.shape[1])
        return z.square().sum(axis: 1) * -0.5 - 0.5 * d * Foundation.log(2 * Double.pi)
    }

    /// Bits per dimension of 8-bit data from log p(y) (N) over `dimensions` dimensions.
    public static func bitsPerDimension(logDensity: Tensor, dimensions: Int) -> Tensor {
        let d = Double(dimensions)
        return (logDensity * -1 + d * Foundation.log(256.0)) * (1 / (d * Foundation.log(2.0)))
    }
}

extension NormalizingFlow {
    /// Bits/dim (N) of images (N, H, W, C) in [0, 1] dequantised by `uniform` (same shape,
    /// U[0, 1)), with each flow layer's log-determinant (N) for diagnosis.
    public func bitsPerDimension(_ images: Tensor, uniform: Tensor, training: Bool) -> (bits: Tensor, layerLogDeterminants: [Tensor]) {
        bitsPerDimension(dequantized: Dequantization.dequantize(images, uniform: uniform), training: training)
    }

    /// Bits/dim (N) of dequantised images y (N, H, W, C) in [0, 1), with each flow layer's
    /// log-determinant (N).
    public func bitsPerDimension(dequantized y: Tensor, training: Bool) -> (bits: Tensor, layerLogDeterminants: [Tensor]) {
        let (x0, logitLogDet) = FlowDensity.logit(y, alpha: config.alpha)
        let (z, logDets) = forward(x0, training: training)
        let logDensity = logDets.reduce(FlowDensity.priorLogDensity(z) + logitLogDet, +)
        return (FlowDensity.bitsPerDimension(logDensity: logDensity, dimensions: dimensions), logDets)
    }

    /// Images (N, H, W, C) in [0, 1] for latents (N, D).
    public func images(fromLatents z: Tensor) -> Tensor {
        FlowDensity.images(fromLogits: inverse(z), alpha: config.alpha)
    }

    /// Latents (N, D) of images (N, H, W, C) in [0, 1], dequantised at bin centres (u = 1/2).
    public func latents(of images: Tensor) -> Tensor {
        let y = Dequantization.dequantize(images, uniform: Tensor(repeating: 0.5, shape: images.shape))
        return forward(FlowDensity.logit(y, alpha: config.alpha).x, training: false).z
    }
}
