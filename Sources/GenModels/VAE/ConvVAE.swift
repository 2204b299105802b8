import GenTensor
import GenFormats
import GenNN
/// An encoder-decoder over 28x28 grey images: what the VAE training, sampling, reconstruction and
/// interpolation code needs from a model.
public protocol Autoencoder: Module {
    /// Latent dimensions.
    var latentDim: Int { get }
    /// One image's shape [H, W, C], fixed by the architecture.
    var imageShape: [Int] { get }
    /// Whether the encoder is stochastic (a VAE: KL term, reparameterisation) or deterministic.
    var isVariational: Bool { get }
    /// q(z | x): `mu` and `logvar`, each (N, latentDim) (logvar unused when deterministic).
    func encode(_ x: Tensor) -> (mu: Tensor, logvar: Tensor)
    /// Bernoulli logits of the pixels, (N, 784).
    func decode(_ z: Tensor) -> Tensor
    /// Pixel probabilities sigmoid(decode(z)), (N, 784); a model may fuse the sigmoid into its last layer.
    func decodeProbabilities(_ z: Tensor) -> Tensor
}

extension Autoencoder {
    public func decodeProbabilities(_ z: Tensor) -> Tensor { decode(z).sigmoid() }
}

extension MLPVAE: Autoencoder {
    public var isVariational: Bool { true }
    /// Fashion-MNIST's shape when the input size is 28 x 28 x 1, else a flat (inputDim, 1, 1).
    public var imageShape: [Int] { inputDim == 28 * 28 ? [28, 28, 1] : [inputDim, 1, 1] }
}

/// A convolutional VAE for 28x28 grey images.
///
/// - Encoder: conv 1→32 (4, stride 2, pad 1) 28→14, LeakyReLU 0.2; conv 32→64 (4, 2, 1) 14→7,
///   LeakyReLU; flatten (7·7·64) → `fc_mu`, `fc_logvar` (latentDim).
/// - Decoder: `fc_dec` latentDim → 7·7·64, ReLU; transposed conv 64→32 (4, 2, 1) 7→14, ReLU;
///   transposed conv 32→1 (4, 2, 1) 14→28: Bernoulli logits (N, 784).
/// - Input (N, 28, 28, 1) channels-last. Parameter names: `enc1`, `enc2`, `fc_mu`, `fc_logvar`,
///   `fc_dec`, `dec1`, `dec2`. The linears next to the convolutions use the channels-last flatten
///   order, converted to PyTorch's (C, H, W) order on export.
public final class ConvVAE: Autoencoder {
    public let latentDim: Int
    public let enc1: Conv2d, enc2: Conv2d, fcMu: Linear, fcLogvar: Linear, fcDec: Linear
    public let dec1: ConvTranspose2d, dec2: ConvTranspose2d
    public var isVariational: Bool { true }
    /// The input the two stride-2 convolutions are laid out for.
    public let imageShape = [28, 28, 1]

    public init(latentDim: Int = 20, generator: RandomGenerator) {
        self.latentDim = latentDim
        enc1 = Conv2d(1, 32, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        enc2 = Conv2d(32, 64, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        let flat = ParameterLayout.linearAfterFlatten(channels: 64, height: 7, width: 7)
        fcMu = Linear(7 * 7 * 64, latentDim, layout: flat, generator: generator)
        fcLogvar = Linear(7 * 7 * 64, latentDim, layout: flat, generator: generator)
        fcDec = Linear(latentDim, 7 * 7 * 64, generator: generator)
        dec1 = ConvTranspose2d(64, 32, kernelSize: 4, stride: 2, padding: 1, generator: generator)
        dec2 = ConvTranspose2d(32, 1, kernelSize: 4, stride: 2, padding: 1, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("enc1", enc1.namedParameters) + prefixed("enc2", enc2.namedParameters)
            + prefixed("fc_mu", fcMu.namedParameters) + prefixed("fc_logvar", fcLogvar.namedParameters)
            + prefixed("fc_dec", fcDec.namedParameters) + prefixed("dec1", dec1.namedParameters)
            + prefixed("dec2", dec2.namedParameters)
    }

    public func encode(_ x: Tensor) -> (mu: Tensor, logvar: Tensor) {
        let images = x.rank == 2 ? x.reshaped([x.shape[0]] + imageShape) : x
        let h = enc2(enc1(images).leakyRelu(0.2)).leakyRelu(0.2).flattened(from: 1)
        return (fcMu(h), fcLogvar(h))
    }

    public func decode(_ z: Tensor) -> Tensor {
        // fc_dec's rows are in channels-last (H, W, C) order here; PyTorch users reshape (C, H, W).
        let h = fcDec(z, activation: .relu).reshaped([z.shape[0], 7, 7, 64])
        return dec2(dec1(h).relu()).flattened(from: 1)
    }
}

/// A deterministic autoencoder with the MLP VAE's architecture (784-400-latent-400-784): the
/// encoder's mean is the code, and training minimises the reconstruction term alone.
public final class MLPAutoencoder: Autoencoder {
    public let vae: MLPVAE
    public var latentDim: Int { vae.latentDim }
    public var isVariational: Bool { false }
    public var imageShape: [Int] { vae.imageShape }

    public init(latentDim: Int = 20, generator: RandomGenerator) {
        vae = MLPVAE(latentDim: latentDim, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        // No fc_logvar: a deterministic encoder has no variance head.
        vae.namedParameters.filter { !$0.0.hasPrefix("fc_logvar") }
    }

    public func encode(_ x: Tensor) -> (mu: Tensor, logvar: Tensor) {
        let (mu, logvar) = vae.encode(x)
        return (mu, logvar.detached())
    }

    public func decode(_ z: Tensor) -> Tensor { vae.decode(z) }

    public func decodeProbabilities(_ z: Tensor) -> Tensor { vae.decodeProbabilities(z) }
}

/// The training objective of an `Autoencoder` per example: reconstruction + KL(q(z|x) || N(0, I))
/// for a VAE with z = mu + exp(logvar / 2) eps; reconstruction of decode(mu) alone for a
/// deterministic autoencoder. Sums over pixels and latents, mean over the batch.
public func autoencoderLoss(_ model: Autoencoder, _ x: Tensor, eps: Tensor, reconstruction term: ReconstructionLoss) -> Tensor {
    let target = x.reshaped([x.shape[0], -1])
    let (mu, logvar) = model.encode(x)
    let z = model.isVariational ? mu + (logvar * 0.5).exp() * eps : mu
    let logits = model.decode(z)
    var loss: Tensor
    switch term {
    case .bernoulli: loss = binaryCrossEntropyWithLogits(logits, target, reduction: .sum)
    case .gaussian: loss = meanSquaredError(logits.sigmoid(), target, reduction: .sum)
    }
    if model.isVariational {
        loss = loss + (1 + logvar - mu.square() - logvar.exp()).sum() * -0.5
    }
    return loss / Double(x.shape[0])
}
