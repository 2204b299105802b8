import GenTensor
import GenFormats
import GenNN
/// The networks and losses of the GAN family beyond `DCGAN.swift`: the MLP GAN of Goodfellow et
/// al. (2014), the least-squares losses of LSGAN (Mao et al. 2017), the minimax generator loss,
/// the hinge loss of SNGAN (Miyato et al. 2018) and WGAN weight clipping (Arjovsky et al. 2017).
/// Images are channels-last (N, 28, 28, 1) in [-1, 1].

/// A GAN generator: latent codes (N, zDim) to images (N, 28, 28, 1) in (-1, 1).
public protocol GANGenerator: Module {
    /// The latent size.
    var zDim: Int { get }
    /// Generates images; `training` selects batch statistics (and running-statistic updates) for
    /// networks with BatchNorm, and is ignored by the others.
    func callAsFunction(_ z: Tensor, training: Bool) -> Tensor
    /// The generator's BatchNorm layers, in forward order (none by default).
    var batchNorms: [BatchNorm] { get }
    /// One generated image's shape [H, W, C].
    var imageShape: [Int] { get }
}

extension GANGenerator {
    public var batchNorms: [BatchNorm] { [] }
    /// Every generator here makes Fashion-MNIST's 28 x 28 x 1 (the MLP's 784 outputs, the
    /// transposed convolutions' 7 -> 14 -> 28).
    public var imageShape: [Int] { [28, 28, 1] }
}

/// A GAN discriminator or critic: images (N, 28, 28, 1) to one raw score (a logit, or a critic
/// value) per image, (N).
public protocol GANDiscriminator: Module {
    /// Scores images; `training` as for `GANGenerator`.
    func callAsFunction(_ x: Tensor, training: Bool) -> Tensor
}

extension DCGANGenerator: GANGenerator {}
extension DCGANDiscriminator: GANDiscriminator {}
extension WGANCritic: GANDiscriminator {
    /// The critic has no BatchNorm: training and evaluation are the same.
    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor { self(x) }
}

/// The MLP generator of the original GAN for 28x28 images: z -> 256 -> 512 -> 1024 -> 784, ReLU
/// between layers, tanh at the end.
///
/// - Input: z (N, zDim). Output: images (N, 28, 28, 1) in (-1, 1).
/// - Parameters (PyTorch `nn.Sequential` names): `net.0`, `net.2`, `net.4`, `net.6`, each a Linear
///   with bias (weight (out, in)); PyTorch's default initialisation.
public final class MLPGenerator: GANGenerator {
    public let zDim: Int
    public let layers: [Linear]

    public init(zDim: Int = 100, hidden: [Int] = [256, 512, 1024], generator: RandomGenerator) {
        self.zDim = zDim
        let sizes = [zDim] + hidden + [784]
        layers = (0..<(sizes.count - 1)).map { Linear(sizes[$0], sizes[$0 + 1], generator: generator) }
    }

    public var namedParameters: [(String, Parameter)] {
        layers.enumerated().flatMap { prefixed("net.\(2 * $0.offset)", $0.element.namedParameters) }
    }

    public func callAsFunction(_ z: Tensor, training: Bool) -> Tensor {
        precondition(z.rank == 2 && z.shape[1] == zDim, "MLPGenerator: z \(z.shape) should be (N, \(zDim))")
        var h = z
        for (i, layer) in layers.enumerated() {
            h = layer(h, activation: i == layers.count - 1 ? .tanh : .relu)
        }
        return h.reshaped([z.shape[0]] + imageShape)
    }
}

/// The MLP discriminator of the original GAN for 28x28 images: 784 -> 512 -> 256 -> 1, LeakyReLU
/// 0.2 between layers, a raw logit at the end (the sigmoid lives in the loss).
///
/// - Input: images (N, 28, 28, 1). Output: logits (N).
/// - Parameters: `net.0`, `net.2`, `net.4`, Linears with bias. A single channel makes the
///   channels-last flatten identical to PyTorch's.
public final class MLPDiscriminator: GANDiscriminator {
    public let layers: [Linear]

    public init(hidden: [Int] = [512, 256], generator: RandomGenerator) {
        let sizes = [784] + hidden + [1]
        layers = (0..<(sizes.count - 1)).map { Linear(sizes[$0], sizes[$0 + 1], generator: generator) }
    }

    public var namedParameters: [(String, Parameter)] {
        layers.enumerated().flatMap { prefixed("net.\(2 * $0.offset)", $0.element.namedParameters) }
    }

    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        var h = x.reshaped([x.shape[0], -1])
        for (i, layer) in layers.enumerated() {
            h = layer(h)
            if i < layers.count - 1 { h = h.leakyRelu(0.2) }
        }
        return h.reshaped([-1])
    }
}

/// The original (saturating) minimax generator loss on logits: mean log(1 - D(G(z))) = -BCE(D(G(z)), 0),
/// which the generator minimises.
///
/// - Parameter fakeLogits: (N). Returns: rank 0.
public func ganMinimaxGeneratorLoss(fakeLogits: Tensor) -> Tensor {
    -binaryCrossEntropyWithLogits(fakeLogits, Tensor.zeros(fakeLogits.shape, dtype: fakeLogits.dtype), reduction: .mean)
}

/// The LSGAN discriminator loss with targets a (fake) and b (real):
/// 1/2 mean (D(x) - b)^2 + 1/2 mean (D(G(z)) - a)^2 on the raw outputs.
///
/// - Parameters: `realScores` (N), `fakeScores` (M), targets `a` = 0 and `b` = 1 by default.
/// - Returns: rank 0.
public func lsganDiscriminatorLoss(realScores: Tensor, fakeScores: Tensor, a: Double = 0, b: Double = 1) -> Tensor {
    (realScores - b).square().mean() * 0.5 + (fakeScores - a).square().mean() * 0.5
}

/// The LSGAN generator loss with target c: 1/2 mean (D(G(z)) - c)^2.
///
/// - Parameters: `fakeScores` (N), `c` = 1 by default. Returns: rank 0.
public func lsganGeneratorLoss(fakeScores: Tensor, c: Double = 1) -> Tensor {
    (fakeScores - c).square().mean() * 0.5
}

/// The hinge discriminator loss (SNGAN, Miyato et al. 2018): mean relu(1 - D(x)) + mean relu(1 + D(G(z))).
///
/// - Parameters: `realScores` (N), `fakeScores` (M). Returns: rank 0.
public func hingeDiscriminatorLoss(realScores: Tensor, fakeScores: Tensor) -> Tensor {
    (1 - realScores).relu().mean() + (1 + fakeScores).relu().mean()
}

/// The WGAN critic loss without a penalty: mean critic(fake) - mean critic(real).
///
/// - Parameters: `realScores` (N), `fakeScores` (M). Returns: rank 0.
public func wganCriticLoss(realScores: Tensor, fakeScores: Tensor) -> Tensor {
    fakeScores.mean() - realScores.mean()
}

/// WGAN weight clipping: clamps every trainable parameter of `module` to [-bound, bound] in place
/// (Arjovsky et al.'s `p.data.clamp_(-c, c)` over all critic parameters, biases included).
public func clipWeights(of module: Module, to bound: Double) {
    precondition(bound > 0, "clipWeights: bound \(bound) must be positive")
    for p in module.trainableParameters where p.value.dtype == .float32 {
        p.value.assign(p.value.detached().clamped(min: -bound, max: bound))
    }
}

// MARK: class-conditional networks

/// A class-conditional GAN network: it also takes int64 class labels (N) in 0..<classCount.
public protocol ConditionalGANNetwork: AnyObject {
    var classCount: Int { get }
}

/// The conditional DCGAN generator: a learned class embedding concatenated to z, then the
/// reference DCGAN generator on (zDim + embeddingDim) inputs.
///
/// - Input: z (N, zDim), labels int64 (N). Output: images (N, 28, 28, 1) in (-1, 1).
/// - Parameters: `label_emb.weight` (classCount, embeddingDim) (`nn.Embedding`, N(0, 1)) and the
///   DCGAN generator's `net.*`, whose first layer has zDim + embeddingDim input channels.
public final class ConditionalDCGANGenerator: GANGenerator, ConditionalGANNetwork {
    public let zDim: Int
    public let classCount: Int
    public let labelEmbedding: Embedding
    public let net: DCGANGenerator

    public init(zDim: Int = 100, classCount: Int = 10, embeddingDim: Int = 10, channels: Int = 64,
                generator: RandomGenerator) {
        self.zDim = zDim
        self.classCount = classCount
        labelEmbedding = Embedding(classCount, embeddingDim, generator: generator)
        net = DCGANGenerator(zDim: zDim + embeddingDim, channels: channels, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("label_emb", labelEmbedding.namedParameters) + net.namedParameters
    }

    /// Images of the given classes.
    public func callAsFunction(_ z: Tensor, labels: Tensor, training: Bool) -> Tensor {
        precondition(labels.dtype == .int64 && labels.shape == [z.shape[0]],
                     "ConditionalDCGANGenerator: labels \(labels.dtype) \(labels.shape) should be int64 (\(z.shape[0]))")
        return net(Tensor.concatenate([z, labelEmbedding(labels)], axis: 1), training: training)
    }

    public var batchNorms: [BatchNorm] { net.batchNorms }

    /// Images with class-balanced labels: image i gets class i mod classCount.
    public func callAsFunction(_ z: Tensor, training: Bool) -> Tensor {
        self(z, labels: balancedLabels(z.shape[0], classCount), training: training)
    }
}

/// A projection discriminator (Miyato & Koyama 2018) on the DCGAN discriminator: with h the
/// features before the last layer (N, 7, 7, 2ch), D(x, y) = psi(h) + <embed(y), mean over
/// positions of h>, psi being the DCGAN discriminator's last 7x7 convolution.
///
/// - Input: images (N, 28, 28, 1), labels int64 (N). Output: logits (N).
/// - Parameters: the DCGAN discriminator's `net.*` and `embed.weight` (classCount, 2ch),
///   initialised U(-1/sqrt(2ch), 1/sqrt(2ch)) like a Linear layer's weight.
public final class ProjectionDiscriminator: GANDiscriminator, ConditionalGANNetwork {
    public let classCount: Int
    public let net: DCGANDiscriminator
    public let embed: Parameter

    public init(classCount: Int = 10, channels ch: Int = 64, generator: RandomGenerator) {
        self.classCount = classCount
        net = DCGANDiscriminator(channels: ch, generator: generator)
        embed = Parameter(Initializers.pytorchDefault([classCount, ch * 2], fanIn: ch * 2, generator: generator))
    }

    public var namedParameters: [(String, Parameter)] { net.namedParameters + [("embed.weight", embed)] }

    /// Scores images as members of the given classes.
    public func callAsFunction(_ x: Tensor, labels: Tensor, training: Bool) -> Tensor {
        precondition(labels.dtype == .int64 && labels.shape == [x.shape[0]],
                     "ProjectionDiscriminator: labels \(labels.dtype) \(labels.shape) should be int64 (\(x.shape[0]))")
        let h = net.features(x, training: training)
        let psi = net.conv3(h).reshaped([-1])
        let pooled = h.mean(axes: [1, 2])  // (N, 2ch)
        let projection = (Tensor.embedding(embed.value, indices: labels) * pooled).sum(axes: [1])
        return psi + projection
    }

    /// Scores with class-balanced labels (image i as class i mod classCount).
    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        self(x, labels: balancedLabels(x.shape[0], classCount), training: training)
    }
}

/// Labels 0, 1, ..., classCount - 1, 0, 1, ... (int64, (n)).
public func balancedLabels(_ n: Int, _ classCount: Int) -> Tensor {
    Tensor((0..<n).map { Int64($0 % max(classCount, 1)) }, shape: [n])
}
