import Foundation
import GenTensor
import GenFormats
import GenNN

/// The first stage of latent diffusion (Rombach et al. 2022): a KL-regularised convolutional
/// autoencoder from 28x28x1 images to 7x7xC latents, with the layout of the LDM paper's
/// `AutoencoderKL` scaled down (residual blocks with GroupNorm and SiLU, stride-2 convolutions
/// down, nearest upsampling and a convolution up, no attention at 7x7).

/// The autoencoder's shape; stored in checkpoints (metadata `autoencoder_config`, JSON).
public struct AutoencoderKLConfiguration: Codable, Equatable, Sendable {
    /// Latent channels C of the 7x7xC latent.
    public var latentChannels = 4
    /// Base width w: w channels at 28x28, 2w at 14x14 and 7x7.
    public var width = 32
    /// GroupNorm groups (they must divide w).
    public var groups = 8
    /// One image's shape [H, W, C]; H and W divisible by 4 (two halvings).
    public var imageShape = [28, 28, 1]

    public init() {}

    /// The latent's shape [H / 4, W / 4, C].
    public var latentShape: [Int] { [imageShape[0] / 4, imageShape[1] / 4, latentChannels] }

    /// A problem with the settings, in words, or nil.
    public var problem: String? {
        if latentChannels < 1 { return "the latent needs at least one channel" }
        if width < 1 || groups < 1 || width % groups != 0 { return "the width \(width) must be a positive multiple of the groups (\(groups))" }
        if imageShape.count != 3 || imageShape[0] % 4 != 0 || imageShape[1] % 4 != 0 || imageShape[0] < 4 || imageShape[1] < 4 {
            return "images \(imageShape) must be H x W x C with H and W multiples of 4"
        }
        return nil
    }
}

/// GroupNorm, SiLU, 3x3 convolution, twice, plus a 1x1 skip when the width changes:
/// (N, H, W, in) -> (N, H, W, out). Names: `norm1`, `conv1`, `norm2`, `conv2`, `skip`.
public final class PlainResBlock: Module {
    let norm1: GroupNorm, conv1: Conv2d, norm2: GroupNorm, conv2: Conv2d
    let skip: Conv2d?

    public init(_ inChannels: Int, _ outChannels: Int, groups: Int, generator: RandomGenerator) {
        norm1 = GroupNorm(groups: groups, channels: inChannels)
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        norm2 = GroupNorm(groups: groups, channels: outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        skip = inChannels != outChannels ? Conv2d(inChannels, outChannels, kernelSize: 1, generator: generator) : nil
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("norm1", norm1.namedParameters) + prefixed("conv1", conv1.namedParameters)
            + prefixed("norm2", norm2.namedParameters) + prefixed("conv2", conv2.namedParameters)
            + (skip.map { prefixed("skip", $0.namedParameters) } ?? [])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2(norm2.withSiLU(conv1(norm1.withSiLU(x)))) + (skip.map { $0(x) } ?? x)
    }
}

/// A diagonal Gaussian posterior q(z | x) = N(mean, exp(logVariance)), each (N, h, w, C).
public struct DiagonalGaussian {
    public let mean: Tensor
    /// log sigma^2, clamped to [-30, 20] as the LDM code does.
    public let logVariance: Tensor

    public init(mean: Tensor, logVariance: Tensor) {
        self.mean = mean
        self.logVariance = logVariance.clamped(min: -30, max: 20)
    }

    /// mean + sigma * noise, noise (N, h, w, C) standard normal.
    public func sample(noise: Tensor) -> Tensor { mean + (logVariance * 0.5).exp() * noise }

    /// KL(q || N(0, I)) of each item, summed over its latent elements:
    /// 1/2 sum (mean^2 + sigma^2 - 1 - log sigma^2), shape (N).
    public var kl: Tensor {
        ((mean.square() + logVariance.exp() - 1 - logVariance) * 0.5).sum(axes: [1, 2, 3])
    }
}

/// The KL autoencoder: images (N, H, W, 1) in [-1, 1] to a posterior over (N, H/4, W/4, C)
/// latents, and latents back to images (unbounded; clamp to [-1, 1] for display).
///
/// Encoder: `encoder.conv_in` (3x3, w), `encoder.down.0` (res block w), `encoder.down.1` (3x3 stride 2),
/// `encoder.down.2` (res block w -> 2w), `encoder.down.3` (3x3 stride 2), `encoder.mid` (res block 2w),
/// `encoder.norm_out`, SiLU, `encoder.conv_out` (3x3, 2C: mean and log-variance).
/// Decoder: `decoder.conv_in` (3x3, 2w), `decoder.mid` (res block 2w), `decoder.up.0` (res block 2w),
/// `decoder.up.1` (upsample, 3x3), `decoder.up.2` (res block 2w -> w), `decoder.up.3` (upsample, 3x3),
/// `decoder.up.4` (res block w), `decoder.norm_out`, SiLU, `decoder.conv_out` (3x3, 1).
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfiguration
    let encoderIn: Conv2d, encoderBlock1: PlainResBlock, encoderDown1: Conv2d, encoderBlock2: PlainResBlock
    let encoderDown2: Conv2d, encoderMid: PlainResBlock, encoderNorm: GroupNorm, encoderOut: Conv2d
    let decoderIn: Conv2d, decoderMid: PlainResBlock, decoderBlock1: PlainResBlock, decoderUp1: Conv2d
    let decoderBlock2: PlainResBlock, decoderUp2: Conv2d, decoderBlock3: PlainResBlock, decoderNorm: GroupNorm, decoderOut: Conv2d

    public init(_ config: AutoencoderKLConfiguration, generator g: RandomGenerator) {
        precondition(config.problem == nil, "AutoencoderKL: \(config.problem ?? "")")
        self.config = config
        let w = config.width, groups = config.groups, c = config.latentChannels, channels = config.imageShape[2]
        encoderIn = Conv2d(channels, w, kernelSize: 3, padding: 1, generator: g)
        encoderBlock1 = PlainResBlock(w, w, groups: groups, generator: g)
        encoderDown1 = Conv2d(w, w, kernelSize: 3, stride: 2, padding: 1, generator: g)
        encoderBlock2 = PlainResBlock(w, 2 * w, groups: groups, generator: g)
        encoderDown2 = Conv2d(2 * w, 2 * w, kernelSize: 3, stride: 2, padding: 1, generator: g)
        encoderMid = PlainResBlock(2 * w, 2 * w, groups: groups, generator: g)
        encoderNorm = GroupNorm(groups: groups, channels: 2 * w)
        encoderOut = Conv2d(2 * w, 2 * c, kernelSize: 3, padding: 1, generator: g)
        decoderIn = Conv2d(c, 2 * w, kernelSize: 3, padding: 1, generator: g)
        decoderMid = PlainResBlock(2 * w, 2 * w, groups: groups, generator: g)
        decoderBlock1 = PlainResBlock(2 * w, 2 * w, groups: groups, generator: g)
        decoderUp1 = Conv2d(2 * w, 2 * w, kernelSize: 3, padding: 1, generator: g)
        decoderBlock2 = PlainResBlock(2 * w, w, groups: groups, generator: g)
        decoderUp2 = Conv2d(w, w, kernelSize: 3, padding: 1, generator: g)
        decoderBlock3 = PlainResBlock(w, w, groups: groups, generator: g)
        decoderNorm = GroupNorm(groups: groups, channels: w)
        decoderOut = Conv2d(w, channels, kernelSize: 3, padding: 1, generator: g)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("encoder.conv_in", encoderIn.namedParameters) + prefixed("encoder.down.0", encoderBlock1.namedParameters)
            + prefixed("encoder.down.1", encoderDown1.namedParameters) + prefixed("encoder.down.2", encoderBlock2.namedParameters)
            + prefixed("encoder.down.3", encoderDown2.namedParameters) + prefixed("encoder.mid", encoderMid.namedParameters)
            + prefixed("encoder.norm_out", encoderNorm.namedParameters) + prefixed("encoder.conv_out", encoderOut.namedParameters)
            + prefixed("decoder.conv_in", decoderIn.namedParameters) + prefixed("decoder.mid", decoderMid.namedParameters)
            + prefixed("decoder.up.0", decoderBlock1.namedParameters) + prefixed("decoder.up.1", decoderUp1.namedParameters)
            + prefixed("decoder.up.2", decoderBlock2.namedParameters) + prefixed("decoder.up.3", decoderUp2.namedParameters)
            + prefixed("decoder.up.4", decoderBlock3.namedParameters) + prefixed("decoder.norm_out", decoderNorm.namedParameters)
            + prefixed("decoder.conv_out", decoderOut.namedParameters)
    }

    /// q(z | x) for images x (N, H, W, channels) in [-1, 1].
    public func encode(_ x: Tensor) -> DiagonalGaussian {
        precondition(x.rank == 4 && Array(x.shape.dropFirst()) == config.imageShape,
                     "AutoencoderKL: images \(x.shape) should be (N, \(config.imageShape.map(String.init).joined(separator: ", ")))")
        var h = encoderIn(x)
        h = encoderDown1(encoderBlock1(h))
        h = encoderDown2(encoderBlock2(h))
        let moments = encoderOut(encoderNorm.withSiLU(encoderMid(h)))
        let parts = moments.chunked(2, axis: 3)
        return DiagonalGaussian(mean: parts[0], logVariance: parts[1])
    }

    /// Posterior means (N, H/4, W/4, C) of images (N, H, W, channels) in [0, 1], without gradient,
    /// in batches of `batchSize`; `progress` gets (images done, N) after each.
    public func latentMeans(_ images: Tensor, batchSize: Int = 500, progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        withoutGradients {
            var parts: [Tensor] = []
            for start in stride(from: 0, to: images.shape[0], by: batchSize) {
                let end = min(images.shape[0], start + batchSize)
                parts.append(encode(images.sliced(axis: 0, start..<end) * 2 - 1).mean)
                progress?(end, images.shape[0])
            }
            return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        }
    }

    /// Images (N, H, W, channels) in [0, 1] decoded from latents (N, H/4, W/4, C), without gradient,
    /// in batches of `batchSize`.
    public func images(fromLatents z: Tensor, batchSize: Int = 500) -> Tensor {
        withoutGradients {
            var parts: [Tensor] = []
            for start in stride(from: 0, to: z.shape[0], by: batchSize) {
                parts.append(((decode(z.sliced(axis: 0, start..<min(z.shape[0], start + batchSize))) + 1) * 0.5).clamped(min: 0, max: 1))
            }
            return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        }
    }

    /// Images (N, H, W, channels), unbounded (about [-1, 1]), from latents z (N, H/4, W/4, C).
    public func decode(_ z: Tensor) -> Tensor {
        precondition(z.rank == 4 && Array(z.shape.dropFirst()) == config.latentShape,
                     "AutoencoderKL: latents \(z.shape) should be (N, \(config.latentShape.map(String.init).joined(separator: ", ")))")
        var h = decoderMid(decoderIn(z))
        h = decoderUp1(decoderBlock1(h).upsampleNearest(scale: 2))
        h = decoderUp2(decoderBlock2(h).upsampleNearest(scale: 2))
        return decoderOut(decoderNorm.withSiLU(decoderBlock3(h)))
    }
}
