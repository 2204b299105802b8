import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Which GAN `GANTraining` builds: its networks, losses and optimizers (defaults from the papers).
public enum GANVariant: String, Sendable, CaseIterable, Codable {
    /// Goodfellow et al. (2014): MLP G 100-256-512-1024-784 (ReLU, tanh) and MLP D 784-512-256-1
    /// (LeakyReLU 0.2), BCE losses (generator: non-saturating by default, or minimax).
    case gan
    /// Radford et al. (2016): the reference DCGAN generator and discriminator, BCE losses.
    case dcgan
    /// Arjovsky et al. (2017): the DCGAN generator and the WGAN critic, critic weights clipped to
    /// [-c, c], RMSprop, 5 critic steps per generator step.
    case wgan
    /// Gulrajani et al. (2017): the DCGAN generator and the WGAN critic with a gradient penalty
    /// (lambda 10) on random interpolates, Adam (0, 0.9), 5 critic steps.
    case wganGP = "wgan-gp"
    /// Mao et al. (2017): the DCGAN generator and discriminator, least-squares losses (a = 0, b = c = 1).
    case lsgan
    /// Miyato et al. (2018): the DCGAN generator and the WGAN critic architecture with spectral
    /// normalisation on every layer (no BatchNorm), hinge loss, Adam 2e-4 (0.5, 0.999), one power
    /// iteration per discriminator step.
    case sngan
    /// A class-conditional DCGAN (Mirza & Osindero 2014): a label embedding concatenated to z in the
    /// generator, a projection discriminator (Miyato & Koyama 2018), BCE losses, Adam 2e-4
    /// (0.5, 0.999). Trains on labelled data; fake batches get uniformly drawn labels.
    case cgan

    /// Whether the discriminator is a critic with a Wasserstein estimate.
    public var isWasserstein: Bool { self == .wgan || self == .wganGP }
}

/// The generator loss of the BCE GANs (gan, dcgan).
public enum GANGeneratorLossKind: String, Sendable, CaseIterable, Codable {
    /// -log D(G(z)) (BCE against "real"): strong gradients early in training. The default.
    case nonSaturating = "non-saturating"
    /// log(1 - D(G(z))): the original minimax objective, which saturates when D wins.
    case minimax
}

/// How a GAN's networks start.
public enum GANInitialization: String, Sendable, CaseIterable, Codable {
    /// Radford et al.'s (DCGAN, section 4; PyTorch's DCGAN example): convolution and linear
    /// weights from N(0, 0.02), BatchNorm scales from N(1, 0.02) and shifts 0. The default of the
    /// convolutional variants: with PyTorch's default initialisation the reference discriminator
    /// wins outright early in training while the generator emits noise; from N(0, 0.02) both play
    /// from the first step (the observed runs: docs/architecture.md, Measurements and history).
    case dcgan
    /// Each layer's PyTorch default (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as the reference modules
    /// (scripts/torch_reference/models.py) are built.
    case pytorch
}

/// The generator network of the critic variants (sngan, wgan-gp, wgan).
public enum GANGeneratorArchitecture: String, Sendable, CaseIterable, Codable {
    /// The reference DCGAN generator (`DCGANGenerator`): the only one of the other variants.
    case dcgan
    /// Miyato et al.'s standard CNN adapted to 28x28 (`StandardCNNGenerator`).
    case snCNN = "sn-cnn"
    /// Miyato et al.'s ResNet adapted to 28x28 (`ResNetGenerator`, width 2 * channels).
    case resnet
}

/// The discriminator (critic) network of the critic variants (sngan, wgan-gp, wgan).
public enum GANCriticArchitecture: String, Sendable, CaseIterable, Codable {
    /// The variant's reference network: the three-convolution `WGANCritic` (spectrally normalised
    /// for sngan: `SNGANCritic`); the other variants' own discriminators.
    case reference
    /// Miyato et al.'s standard CNN adapted to 28x28 (`StandardCNNCritic`), spectrally normalised
    /// for sngan only.
    case snCNN = "sn-cnn"
    /// Miyato et al.'s ResNet adapted to 28x28 (`ResNetCritic`, width 2 * channels), spectrally
    /// normalised for sngan only.
    case resnet
}

/// Which optimizer both networks use.
public enum GANOptimizerKind: String, Sendable, CaseIterable, Codable {
    case adam
    case rmsprop
}

/// Everything that defines a GAN run besides the shared training options; stored in checkpoints
/// (metadata `gan_config`, JSON) so that sampling and resuming rebuild the same networks.
public struct GANConfiguration: Codable, Equatable, Sendable {
    public var variant: GANVariant
    /// Latent size (100 in all the papers' Fashion-MNIST/MNIST settings).
    public var zDim: Int
    /// Base width `ch` of the convolutional networks (64 in the reference); unused by `gan`.
    public var channels: Int
    public var generatorLearningRate: Double
    public var discriminatorLearningRate: Double
    public var optimizer: GANOptimizerKind
    /// Adam's betas (unused by RMSprop).
    public var beta1: Double, beta2: Double
    /// Discriminator (critic) steps per generator step, each on its own real batch and noise.
    public var discriminatorSteps: Int
    /// The BCE generator loss (gan, dcgan).
    public var generatorLoss: GANGeneratorLossKind
    /// WGAN's weight-clipping bound c.
    public var clipValue: Double
    /// WGAN-GP's penalty weight lambda.
    public var penaltyWeight: Double
    /// Decay of the generator's EMA (with warm-up min(decay, (1 + n) / (10 + n))).
    public var emaDecay: Double
    /// Classes of the conditional variant (cgan); unused by the others.
    public var classCount: Int
    /// How the networks are initialised.
    public var initialization: GANInitialization
    /// Whether the DCGAN discriminator (dcgan, lsgan) has its BatchNorm; false is an ablation that
    /// leaves it the layout of the WGAN critic.
    public var discriminatorBatchNorm = true
    /// The generator network (sngan, wgan-gp and wgan may pick; the others keep `.dcgan`, which
    /// for them means their own generator).
    public var generatorArchitecture: GANGeneratorArchitecture
    /// The critic network (sngan, wgan-gp and wgan may pick; the others keep `.reference`).
    public var criticArchitecture: GANCriticArchitecture

    /// Whether `variant` can pick its generator and critic networks.
    public static func picksNetworks(_ variant: GANVariant) -> Bool {
        variant == .sngan || variant == .wganGP || variant == .wgan
    }

    /// The papers' defaults for `variant` (and the issue's: Adam 2e-4 (0.5, 0.999) for gan, dcgan
    /// and lsgan; RMSprop 5e-5, c = 0.01, 5 critic steps for wgan; Adam 1e-4 (0, 0.9), lambda = 10,
    /// 5 critic steps for wgan-gp). Every variant starts from the reference networks and a
    /// 100-dimensional latent: with Miyato et al.'s standard-CNN generator and critic together
    /// (`--generator sn-cnn --critic sn-cnn`, latent 128) sngan dropped the footwear classes in two
    /// seeds (docs/gans.md), so they are not the default until a recipe with them beats dcgan.
    public init(variant: GANVariant) {
        self.variant = variant
        generatorArchitecture = .dcgan
        criticArchitecture = .reference
        zDim = 100
        channels = 64
        generatorLoss = .nonSaturating
        clipValue = 0.01
        penaltyWeight = 10
        // A ~100-step average for the convolutional variants: at 0.999 the EMA lags the raw weights
        // over short runs (the paired runs: docs/architecture.md, Measurements and history).
        emaDecay = variant == .gan ? 0.999 : 0.99
        classCount = 10
        initialization = variant == .gan ? .pytorch : .dcgan
        switch variant {
        case .gan, .dcgan, .lsgan, .sngan, .cgan:
            generatorLearningRate = 2e-4; discriminatorLearningRate = 2e-4
            optimizer = .adam; beta1 = 0.5; beta2 = 0.999
            discriminatorSteps = 1
        case .wgan:
            generatorLearningRate = 5e-5; discriminatorLearningRate = 5e-5
            optimizer = .rmsprop; beta1 = 0.5; beta2 = 0.999
            discriminatorSteps = 5
        case .wganGP:
            generatorLearningRate = 1e-4; discriminatorLearningRate = 1e-4
            optimizer = .adam; beta1 = 0; beta2 = 0.9
            discriminatorSteps = 5
        }
    }

    enum CodingKeys: String, CodingKey {
        case variant, zDim, channels, generatorLearningRate, discriminatorLearningRate, optimizer, beta1, beta2
        case discriminatorSteps, generatorLoss, clipValue, penaltyWeight, emaDecay, classCount, initialization
        case discriminatorBatchNorm, generatorArchitecture, criticArchitecture
    }

    /// Decodes a stored configuration; a setting missing from it (a checkpoint written before the
    /// setting existed) takes the variant's default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(variant: try c.decode(GANVariant.self, forKey: .variant))
        func read<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try read(.zDim, &zDim); try read(.channels, &channels)
        try read(.generatorLearningRate, &generatorLearningRate)
        try read(.discriminatorLearningRate, &discriminatorLearningRate)
        try read(.optimizer, &optimizer); try read(.beta1, &beta1); try read(.beta2, &beta2)
        try read(.discriminatorSteps, &discriminatorSteps); try read(.generatorLoss, &generatorLoss)
        try read(.clipValue, &clipValue); try read(.penaltyWeight, &penaltyWeight); try read(.emaDecay, &emaDecay)
        try read(.classCount, &classCount); try read(.discriminatorBatchNorm, &discriminatorBatchNorm)
        // Checkpoints from before the networks could be picked all used the reference ones.
        generatorArchitecture = try c.decodeIfPresent(GANGeneratorArchitecture.self, forKey: .generatorArchitecture) ?? .dcgan
        criticArchitecture = try c.decodeIfPresent(GANCriticArchitecture.self, forKey: .criticArchitecture) ?? .reference
        // Checkpoints from before the setting existed were all initialised PyTorch's way.
        initialization = try c.decodeIfPresent(GANInitialization.self, forKey: .initialization) ?? .pytorch
    }

    /// A problem with the settings, in words, or nil.
    public var problem: String? {
        if zDim < 1 { return "the latent size must be at least 1" }
        if channels < 1 { return "the channel width must be at least 1" }
        if !(generatorLearningRate > 0 && generatorLearningRate.isFinite) { return "the generator's learning rate must be positive" }
        if !(discriminatorLearningRate > 0 && discriminatorLearningRate.isFinite) {
            return "the discriminator's learning rate must be positive"
        }
        if !(0..<1).contains(beta1) || !(0..<1).contains(beta2) { return "Adam's betas must lie in [0, 1)" }
        if discriminatorSteps < 1 { return "the discriminator steps per generator step must be at least 1" }
        if !(clipValue > 0 && clipValue.isFinite) { return "the clipping bound must be positive" }
        if !(penaltyWeight >= 0 && penaltyWeight.isFinite) { return "the penalty weight must not be negative" }
        if !(0..<1).contains(emaDecay) { return "the EMA decay must lie in [0, 1)" }
        if classCount < 1 { return "the class count must be at least 1" }
        if !discriminatorBatchNorm && variant != .dcgan && variant != .lsgan {
            return "only the DCGAN discriminator (dcgan, lsgan) has a BatchNorm to leave out"
        }
        if !Self.picksNetworks(variant) && (generatorArchitecture != .dcgan || criticArchitecture != .reference) {
            return "only sngan, wgan-gp and wgan pick their generator and critic networks"
        }
        return nil
    }
}
