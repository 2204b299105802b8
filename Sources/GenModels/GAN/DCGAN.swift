import GenTensor
import GenFormats
import GenNN
/// The DCGAN and WGAN-GP networks of `scripts/torch_reference/models.py` for 28x28 grey images, their losses and the
/// gradient penalty. Parameter names are PyTorch's `nn.Sequential` indices (`net.0.weight`, ...);
/// activations are channels-last.

/// The DCGAN generator: z -> 7x7 -> 14x14 -> 28x28 with transposed convolutions, BatchNorm, ReLU
/// and a final tanh.
///
/// - Input: z (N, zDim). Output: images (N, 28, 28, 1) in (-1, 1).
/// - Parameters (PyTorch names): `net.0.weight` (zDim, 4ch, 7, 7), `net.1.*` BatchNorm(4ch),
///   `net.3.weight` (4ch, 2ch, 4, 4), `net.4.*` BatchNorm(2ch), `net.6.weight` (2ch, 1, 4, 4); no biases.
/// - Training mode normalises with batch statistics and updates the BatchNorm running statistics;
///   evaluation mode uses the running statistics.
public final class DCGANGenerator: Module {
    public let zDim: Int
    /// `net.0`: ConvTranspose2d(zDim, 4ch, 7, 1, 0), 1x1 -> 7x7.
    public let deconv1: ConvTranspose2d
    /// `net.1`.
    public let bn1: BatchNorm
    /// `net.3`: ConvTranspose2d(4ch, 2ch, 4, 2, 1), 7x7 -> 14x14.
    public let deconv2: ConvTranspose2d
    /// `net.4`.
    public let bn2: BatchNorm
    /// `net.6`: ConvTranspose2d(2ch, 1, 4, 2, 1), 14x14 -> 28x28.
    public let deconv3: ConvTranspose2d

    public init(zDim: Int = 100, channels ch: Int = 64, generator: RandomGenerator) {
        self.zDim = zDim
        deconv1 = ConvTranspose2d(zDim, ch * 4, kernelSize: 7, stride: 1, padding: 0, bias: false, generator: generator)
        bn1 = BatchNorm(ch * 4)
        deconv2 = ConvTranspose2d(ch * 4, ch * 2, kernelSize: 4, stride: 2, padding: 1, bias: false, generator: generator)
        bn2 = BatchNorm(ch * 2)
        deconv3 = ConvTranspose2d(ch * 2, 1, kernelSize: 4, stride: 2, padding: 1, bias: false, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("net.0", deconv1.namedParameters) + prefixed("net.1", bn1.namedParameters)
            + prefixed("net.3", deconv2.namedParameters) + prefixed("net.4", bn2.namedParameters)
            + prefixed("net.6", deconv3.namedParameters)
    }

    public var batchNorms: [BatchNorm] { [bn1, bn2] }

    /// Generates images from latent codes.
    ///
    /// - Parameters:
    ///   - z: (N, zDim).
    ///   - training: batch statistics (and running-statistics updates) when true, running statistics when false.
    /// - Returns: (N, 28, 28, 1).
    public func callAsFunction(_ z: Tensor, training: Bool) -> Tensor {
        precondition(z.rank == 2 && z.shape[1] == zDim, "DCGANGenerator: z \(z.shape) should be (N, \(zDim))")
        var h = z.reshaped([z.shape[0], 1, 1, zDim])
        h = bn1(deconv1(h), training: training, activation: .relu)
        h = bn2(deconv2(h), training: training, activation: .relu)
        return deconv3(h).tanh()
    }
}

/// The DCGAN discriminator: 28x28 -> 14x14 -> 7x7 -> one logit per image.
///
/// - Input: images (N, 28, 28, 1). Output: logits (N).
/// - Parameters (PyTorch names): `net.0.weight` (ch, 1, 4, 4), `net.2.weight` (2ch, ch, 4, 4),
///   `net.3.*` BatchNorm(2ch), `net.5.weight` (1, 2ch, 7, 7); no biases. LeakyReLU slope 0.2.
/// - Training mode uses batch statistics and updates the running statistics.
public final class DCGANDiscriminator: Module {
    /// `net.0`: Conv2d(1, ch, 4, 2, 1).
    public let conv1: Conv2d
    /// `net.2`: Conv2d(ch, 2ch, 4, 2, 1).
    public let conv2: Conv2d
    /// `net.3`; nil in the ablation without BatchNorm.
    public let bn: BatchNorm?
    /// `net.5`: Conv2d(2ch, 1, 7, 1, 0).
    public let conv3: Conv2d

    /// `batchNorm: false` drops the BatchNorm after the second convolution (an ablation: the WGAN
    /// critic's layout without its biases, scored by the DCGAN losses); the other names stay.
    public init(channels ch: Int = 64, batchNorm: Bool = true, generator: RandomGenerator) {
        conv1 = Conv2d(1, ch, kernelSize: 4, stride: 2, padding: 1, bias: false, generator: generator)
        conv2 = Conv2d(ch, ch * 2, kernelSize: 4, stride: 2, padding: 1, bias: false, generator: generator)
        bn = batchNorm ? BatchNorm(ch * 2) : nil
        conv3 = Conv2d(ch * 2, 1, kernelSize: 7, stride: 1, padding: 0, bias: false, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("net.0", conv1.namedParameters) + prefixed("net.2", conv2.namedParameters)
            + (bn.map { prefixed("net.3", $0.namedParameters) } ?? []) + prefixed("net.5", conv3.namedParameters)
    }

    /// The (N, 7, 7, 2ch) features that the last convolution scores.
    public func features(_ x: Tensor, training: Bool) -> Tensor {
        let h = conv1(x).leakyRelu(0.2)
        guard let bn else { return conv2(h).leakyRelu(0.2) }
        return bn(conv2(h), training: training, activation: .leakyRelu(slope: 0.2))
    }

    /// Scores images.
    ///
    /// - Parameters:
    ///   - x: (N, 28, 28, 1).
    ///   - training: batch statistics (and running-statistics updates) when true.
    /// - Returns: logits (N); sigmoid gives the probability that an image is real.
    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        conv3(features(x, training: training)).reshaped([-1])
    }
}

/// The WGAN / WGAN-GP critic: like the DCGAN discriminator but with biases, no BatchNorm (the
/// gradient penalty is per sample) and no sigmoid.
///
/// - Input: images (N, 28, 28, 1). Output: scores (N).
/// - Parameters (PyTorch names): `net.0.{weight (ch, 1, 4, 4), bias}`, `net.2.{weight (2ch, ch, 4, 4),
///   bias}`, `net.4.{weight (1, 2ch, 7, 7), bias}`. LeakyReLU slope 0.2.
public final class WGANCritic: Module {
    /// `net.0`: Conv2d(1, ch, 4, 2, 1).
    public let conv1: Conv2d
    /// `net.2`: Conv2d(ch, 2ch, 4, 2, 1).
    public let conv2: Conv2d
    /// `net.4`: Conv2d(2ch, 1, 7, 1, 0).
    public let conv3: Conv2d

    public init(channels ch: Int = 64, generator: RandomGenerator) {
        conv1 = Conv2d(1, ch, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        conv2 = Conv2d(ch, ch * 2, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        conv3 = Conv2d(ch * 2, 1, kernelSize: 7, stride: 1, padding: 0, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("net.0", conv1.namedParameters) + prefixed("net.2", conv2.namedParameters)
            + prefixed("net.4", conv3.namedParameters)
    }

    /// Scores images.
    ///
    /// - Parameter x: (N, 28, 28, 1).
    /// - Returns: scores (N).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = conv2(conv1(x).leakyRelu(0.2)).leakyRelu(0.2)
        return conv3(h).reshaped([-1])
    }
}

/// The WGAN-GP gradient penalty (Gulrajani et al.): on x_hat = alpha real + (1 - alpha) fake,
/// g = d(sum of critic(x_hat)) / d x_hat, penalty = mean over the batch of (||g||_2 - 1)^2 with the
/// norm over all pixels of one image.
///
/// The gradient is taken with `createGraph: true`, so the penalty is differentiable with respect to
/// the critic's parameters (a second-order gradient) and, when `real` or `fake` track gradients
/// (an undetached generator output), with respect to those too.
///
/// - Parameters:
///   - critic: any function from images (N, H, W, C) to scores (N).
///   - real, fake: (N, H, W, C).
///   - alpha: mixing weights, (N, 1, 1, 1) (or anything broadcastable to the images).
/// - Returns: `penalty` (rank 0) and `gradient` (N, H, W, C), d critic / d x_hat.
public func gradientPenalty(critic: (Tensor) -> Tensor, real: Tensor, fake: Tensor, alpha: Tensor)
    -> (penalty: Tensor, gradient: Tensor) {
    precondition(real.shape == fake.shape, "gradientPenalty: real \(real.shape) and fake \(fake.shape) differ")
    let mixed = alpha * real + (1 - alpha) * fake
    // PyTorch's x_hat.requires_grad_(True): a fresh leaf unless it is already part of a graph.
    let xHat = mixed.tracksGradient ? mixed : mixed.requiringGrad()
    let scores = critic(xHat)
    let g = gradients(of: scores.sum(), wrt: [xHat], createGraph: true)[0]
    let norms = g.reshaped([g.shape[0], -1]).norm(axes: [1])
    return ((norms - 1).square().mean(), g)
}

/// `gradientPenalty(critic:real:fake:alpha:)` for a `WGANCritic`.
public func gradientPenalty(critic: WGANCritic, real: Tensor, fake: Tensor, alpha: Tensor)
    -> (penalty: Tensor, gradient: Tensor) {
    gradientPenalty(critic: { critic($0) }, real: real, fake: fake, alpha: alpha)
}

/// The standard GAN discriminator loss on logits: BCE(D(real), 1) + BCE(D(fake), 0), each the mean
/// over its batch (their sum, as `scripts/make-fixtures.py`'s `bce(d_real, 1) + bce(d_fake, 0)`).
///
/// - Parameters: `realLogits` (N), `fakeLogits` (M). Returns: rank 0.
public func ganDiscriminatorLoss(realLogits: Tensor, fakeLogits: Tensor) -> Tensor {
    binaryCrossEntropyWithLogits(realLogits, Tensor.ones(realLogits.shape, dtype: realLogits.dtype), reduction: .mean)
        + binaryCrossEntropyWithLogits(fakeLogits, Tensor.zeros(fakeLogits.shape, dtype: fakeLogits.dtype), reduction: .mean)
}

/// The non-saturating GAN generator loss on logits: BCE(D(G(z)), 1), the mean over the batch.
///
/// - Parameter fakeLogits: (N). Returns: rank 0.
public func ganGeneratorLoss(fakeLogits: Tensor) -> Tensor {
    binaryCrossEntropyWithLogits(fakeLogits, Tensor.ones(fakeLogits.shape, dtype: fakeLogits.dtype), reduction: .mean)
}

/// The WGAN-GP critic loss: mean critic(fake) - mean critic(real) + penaltyWeight * penalty.
///
/// - Parameters: `realScores` (N), `fakeScores` (M), `penalty` rank 0 (from `gradientPenalty`).
/// - Returns: rank 0.
public func wganCriticLoss(realScores: Tensor, fakeScores: Tensor, penalty: Tensor, penaltyWeight: Double = 10)
    -> Tensor {
    fakeScores.mean() - realScores.mean() + penalty * penaltyWeight
}

/// The WGAN generator loss: -mean critic(G(z)).
///
/// - Parameter fakeScores: (N). Returns: rank 0.
public func wganGeneratorLoss(fakeScores: Tensor) -> Tensor {
    -fakeScores.mean()
}
