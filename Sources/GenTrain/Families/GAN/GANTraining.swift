import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// A GAN as a `TrainableModel`: a generator and a discriminator (or critic), one optimizer each,
/// `discriminatorSteps` discriminator steps per generator step, and an EMA of the generator.
///
/// One `trainStep` is one generator step. Its batch holds the real data of all its discriminator
/// steps: it is split into `discriminatorSteps` consecutive parts (as equal as possible), and each
/// discriminator step sees its own real part and fresh noise, as in the papers' algorithms
/// (Goodfellow et al.'s k steps, Arjovsky et al.'s and Gulrajani et al.'s n_critic = 5 loops
/// each draw a new real batch). So with `--batch-size B` the training loop's batch is
/// `B * discriminatorSteps` (`loopBatchSize(_:)`), and an epoch counts real images seen by the
/// discriminator.
///
/// The generator step:
/// - with one discriminator step (gan, dcgan, lsgan, sngan, cgan), reuses that step's noise and fake batch and
///   scores it with the just-updated discriminator (PyTorch's DCGAN example: one D step, then one
///   G step on the same fake batch);
/// - with several (wgan, wgan-gp), draws fresh noise of one part's size (Arjovsky et al., Gulrajani
///   et al.).
///
/// Real images arrive in [0, 1] and are scaled to [-1, 1] (the generator's tanh range); generated
/// images are mapped back with (x + 1) / 2, clamped to [0, 1]. The discriminator scores real and
/// fake batches in two separate train-mode forwards (separate BatchNorm statistics, as the
/// reference). All noise comes from the loop's checkpointed generator, so resume is exact.
///
/// Checkpoint keys: `generator.*`, `discriminator.*` (PyTorch names), `ema.generator.*`,
/// `optim.generator.*`, `optim.discriminator.*`; metadata `gan_config` (JSON) and `variant`.
public final class GANTraining: TrainableModel {
    public static let kind = "gan"
    public let config: GANConfiguration
    public let generator: any GANGenerator
    public let discriminator: any GANDiscriminator
    public let generatorOptimizer: any Optimizer
    public let discriminatorOptimizer: any Optimizer
    /// The step log's optimisers: the generator's (`lr_g`, `grad_norm_g`) and the discriminator's
    /// (`lr_d`, `grad_norm_d`, of its last step).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("g", generatorOptimizer), ("d", discriminatorOptimizer)] }
    /// BatchNorm's running statistics and spectral normalisation's vectors, which data-parallel
    /// replicas average after every step.
    public var replicatedBuffers: [Parameter] { (generator.namedParameters + discriminator.namedParameters).map(\.1).filter { !$0.isTrainable } }
    /// The generator's EMA (all of its parameters; buffers such as BatchNorm running statistics are
    /// copied, not averaged).
    public let ema: ExponentialMovingAverage
    /// A generator of the same architecture that holds the EMA weights when sampling.
    let emaGenerator: any GANGenerator

    /// Builds the variant's networks (initialised from `seed`) and optimizers.
    /// `ema.updates` when `emaGenerator` last received the shadows (nil: never, or since a restore).
    var emaGeneratorSyncedAt: Int?

    public init(config: GANConfiguration, seed: UInt64) {
        precondition(config.problem == nil, "GANTraining: \(config.problem ?? "")")
        self.config = config
        let rng = RandomGenerator(seed: seed)
        generator = Self.makeGenerator(config, rng)
        discriminator = Self.makeDiscriminator(config, rng)
        emaGenerator = Self.makeGenerator(config, RandomGenerator(seed: seed &+ 1))
        generatorOptimizer = Self.makeOptimizer(config, generator.trainableParameters, config.generatorLearningRate)
        discriminatorOptimizer = Self.makeOptimizer(config, discriminator.trainableParameters,
                                                    config.discriminatorLearningRate)
        if config.initialization == .dcgan {
            Self.applyDCGANInitialization(generator, rng)
            Self.applyDCGANInitialization(discriminator, rng)
        }
        ema = ExponentialMovingAverage(generator.namedParameters.map { $0.1 }, decay: config.emaDecay)
        // Arjovsky et al. clamp before every critic forward; clipping at creation and after every
        // critic update keeps the critic inside the box at all times.
        if config.variant == .wgan { clipWeights(of: discriminator, to: config.clipValue) }
    }

    /// Radford et al.'s initialisation (their section 4 and PyTorch's DCGAN example) of `module`:
    /// every convolution weight (rank 4, spectrally normalised ones included) from N(0, 0.02),
    /// BatchNorm scales from N(1, 0.02) and shifts 0. The standard-CNN and ResNet networks' linear weights
    /// (rank 2) too, as Miyato et al.'s code draws all its weights from N(0, 0.02); the other
    /// networks' linear layers, biases and embeddings keep their values.
    static func applyDCGANInitialization(_ module: Module, _ rng: RandomGenerator) {
        let named = module.namedParameters
        let byName = Dictionary(named, uniquingKeysWith: { first, _ in first })
        let linearToo = module is StandardCNNGenerator || module is StandardCNNCritic || module is ResNetGenerator
            || module is ResNetCritic
        for (name, p) in named where p.isTrainable {
            let weightRank = linearToo ? [2, 4] : [4]
            if weightRank.contains(p.value.rank) && (name.hasSuffix("weight") || name.hasSuffix("weight_orig")) {
                p.assign(Tensor.normal(p.value.shape, std: 0.02, generator: rng))
            } else if name.hasSuffix("weight"), byName[name.dropLast(6) + "running_mean"] != nil {
                p.assign(Tensor.normal(p.value.shape, mean: 1, std: 0.02, generator: rng))
                byName[name.dropLast(6) + "bias"]?.assign(Tensor.zeros(p.value.shape))
            }
        }
    }

    /// The default configuration of `variant`.
    public convenience init(variant: GANVariant, seed: UInt64) {
        self.init(config: GANConfiguration(variant: variant), seed: seed)
    }

    static func makeGenerator(_ c: GANConfiguration, _ rng: RandomGenerator) -> any GANGenerator {
        switch c.variant {
        case .gan: return MLPGenerator(zDim: c.zDim, generator: rng)
        case _ where c.generatorArchitecture == .snCNN:
            return StandardCNNGenerator(zDim: c.zDim, channels: c.channels, generator: rng)
        case _ where c.generatorArchitecture == .resnet:
            return ResNetGenerator(zDim: c.zDim, width: 2 * c.channels, generator: rng)
        case .dcgan, .wgan, .wganGP, .lsgan, .sngan: return DCGANGenerator(zDim: c.zDim, channels: c.channels, generator: rng)
        case .cgan:
            return ConditionalDCGANGenerator(zDim: c.zDim, classCount: c.classCount, embeddingDim: c.classCount,
                                             channels: c.channels, generator: rng)
        }
    }

    static func makeDiscriminator(_ c: GANConfiguration, _ rng: RandomGenerator) -> any GANDiscriminator {
        switch c.variant {
        case .gan: return MLPDiscriminator(generator: rng)
        case .dcgan, .lsgan:
            return DCGANDiscriminator(channels: c.channels, batchNorm: c.discriminatorBatchNorm, generator: rng)
        case _ where c.criticArchitecture == .snCNN:
            return StandardCNNCritic(channels: c.channels, spectralNorm: c.variant == .sngan, generator: rng)
        case _ where c.criticArchitecture == .resnet:
            return ResNetCritic(width: 2 * c.channels, spectralNorm: c.variant == .sngan, generator: rng)
        case .wgan, .wganGP: return WGANCritic(channels: c.channels, generator: rng)
        case .sngan: return SNGANCritic(channels: c.channels, generator: rng)
        case .cgan: return ProjectionDiscriminator(classCount: c.classCount, channels: c.channels, generator: rng)
        }
    }

    static func makeOptimizer(_ c: GANConfiguration, _ parameters: [Parameter], _ lr: Double) -> any Optimizer {
        switch c.optimizer {
        case .adam: return Adam(parameters, learningRate: lr, betas: (c.beta1, c.beta2))
        case .rmsprop: return RMSprop(parameters, learningRate: lr)
        }
    }

    /// The training loop's batch size for `batchSize` real images per discriminator step.
    public func loopBatchSize(_ batchSize: Int) -> Int { batchSize * config.discriminatorSteps }

    // MARK: training

    /// Consecutive parts of `x` along axis 0, as equal as possible, at most `count` of them.
    static func parts(_ x: Tensor, _ count: Int) -> [Tensor] {
        let n = x.shape[0], k = max(1, min(count, n))
        var out: [Tensor] = []
        var start = 0
        for i in 0..<k {
            let size = n / k + (i < n % k ? 1 : 0)
            out.append(x.sliced(axis: 0, start..<(start + size)))
            start += size
        }
        return out
    }

    /// Whether the networks take class labels (cgan).
    public var isConditional: Bool { generator is ConditionalDCGANGenerator }

    /// G(z) or G(z, y).
    func generate(_ z: Tensor, _ labels: Tensor?, training: Bool) -> Tensor {
        if let labels, let g = generator as? ConditionalDCGANGenerator { return g(z, labels: labels, training: training) }
        return generator(z, training: training)
    }

    /// D(x) or D(x, y).
    func score(_ x: Tensor, _ labels: Tensor?, training: Bool) -> Tensor {
        if let labels, let d = discriminator as? ProjectionDiscriminator { return d(x, labels: labels, training: training) }
        return discriminator(x, training: training)
    }

    /// One discriminator loss on a real and a (detached) fake batch, with the statistics to report.
    func discriminatorLoss(real: Tensor, fake: Tensor, realLabels: Tensor? = nil, fakeLabels: Tensor? = nil,
                           rng: RandomGenerator) -> (loss: Tensor, stats: [(String, Double)]) {
        let dReal = score(real, realLabels, training: true)
        let dFake = score(fake, fakeLabels, training: true)
        switch config.variant {
        case .gan, .dcgan, .cgan:
            return (ganDiscriminatorLoss(realLogits: dReal, fakeLogits: dFake), [])
        case .lsgan:
            return (lsganDiscriminatorLoss(realScores: dReal, fakeScores: dFake), [])
        case .sngan:
            return (hingeDiscriminatorLoss(realScores: dReal, fakeScores: dFake), [])
        case .wgan:
            let loss = wganCriticLoss(realScores: dReal, fakeScores: dFake)
            return (loss, [("wasserstein", -loss.item)])
        case .wganGP:
            let alpha = Tensor.uniform([real.shape[0], 1, 1, 1], generator: rng)
            let gp = gradientPenalty(critic: { [discriminator] in discriminator($0, training: true) },
                                     real: real, fake: fake, alpha: alpha).penalty
            let loss = wganCriticLoss(realScores: dReal, fakeScores: dFake, penalty: gp, penaltyWeight: config.penaltyWeight)
            return (loss, [("wasserstein", dReal.mean().item - dFake.mean().item), ("gp", gp.item)])
        }
    }

    /// The generator's loss on the discriminator's scores of its images.
    func generatorLoss(fakeScores: Tensor) -> Tensor {
        switch config.variant {
        case .gan, .dcgan, .cgan:
            return config.generatorLoss == .minimax ? ganMinimaxGeneratorLoss(fakeLogits: fakeScores)
                : ganGeneratorLoss(fakeLogits: fakeScores)
        case .lsgan: return lsganGeneratorLoss(fakeScores: fakeScores)
        case .wgan, .wganGP, .sngan: return wganGeneratorLoss(fakeScores: fakeScores)
        }
    }

    /// One generator step and its discriminator steps (see the type's documentation).
    ///
    /// - Parameter images: (N, 28, 28, 1) in [0, 1], the real data of all discriminator steps.
    /// - Returns: `loss_d` (mean over the discriminator steps), `loss_g`, and for the WGANs
    ///   `wasserstein` (mean critic(real) - mean critic(fake), averaged over the critic steps) and
    ///   for wgan-gp `gp`.
    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let conditional = isConditional
        precondition(!conditional || labels != nil, "GANTraining: the conditional GAN needs labelled data")
        let real = images * 2 - 1
        let chunks = Self.parts(real, config.discriminatorSteps)
        let labelChunks = conditional ? Self.parts(labels!, config.discriminatorSteps) : []
        let reuseFake = chunks.count == 1
        var lossD = 0.0
        var stats: [(String, Double)] = []
        var reused: (Tensor, Tensor?)?
        let dParams = discriminatorOptimizer.parameters.map { $0.value }
        for (i, part) in chunks.enumerated() {
            let z = Tensor.normal([part.shape[0], config.zDim], generator: rng)
            let fakeLabels = conditional
                ? Tensor.randomIntegers([part.shape[0]], low: 0, high: config.classCount, generator: rng) : nil
            let fake = reuseFake ? generate(z, fakeLabels, training: true)
                : withoutGradients { generate(z, fakeLabels, training: true) }
            if reuseFake { reused = (fake, fakeLabels) }
            // SNGAN: one power iteration per discriminator step, before its forwards.
            (discriminator as? PowerIterating)?.powerIterate(1)
            let (loss, s) = discriminatorLoss(real: part, fake: fake.detached(), realLabels: conditional ? labelChunks[i] : nil,
                                              fakeLabels: fakeLabels, rng: rng)
            discriminatorOptimizer.step(gradients(of: loss, wrt: dParams))
            if config.variant == .wgan { clipWeights(of: discriminator, to: config.clipValue) }
            lossD += loss.item
            if stats.isEmpty { stats = s } else { for i in stats.indices { stats[i].1 += s[i].1 } }
        }
        let k = Double(chunks.count)
        let (fake, fakeLabels) = reused ?? {
            let n = chunks[0].shape[0]
            let z = Tensor.normal([n, config.zDim], generator: rng)
            let y = conditional ? Tensor.randomIntegers([n], low: 0, high: config.classCount, generator: rng) : nil
            return (generate(z, y, training: true), y)
        }()
        let lossG = generatorLoss(fakeScores: score(fake, fakeLabels, training: true))
        generatorOptimizer.step(gradients(of: lossG, wrt: generatorOptimizer.parameters.map { $0.value }))
        ema.update()
        return [("loss_d", lossD / k), ("loss_g", lossG.item)] + stats.map { ($0.0, $0.1 / k) }
    }

    // MARK: checkpoints

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(generator, as: "generator")
        checkpoint.store(discriminator, as: "discriminator")
        checkpoint.store(ema, of: generator, as: "ema.generator")
        checkpoint.store(generatorOptimizer, of: generator, as: "generator")
        checkpoint.store(discriminatorOptimizer, of: discriminator, as: "discriminator")
        checkpoint.metadata["variant"] = config.variant.rawValue
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["gan_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws {
        let stored = checkpoint.metadata["variant"] ?? "none"
        guard stored == config.variant.rawValue else {
            throw GANCheckpointError(description: "\(checkpoint.path) holds a '\(stored)' model, not a \(config.variant.rawValue) one")
        }
        try checkpoint.restore(generator, from: "generator")
        try checkpoint.restore(discriminator, from: "discriminator")
        try checkpoint.restore(ema, of: generator, from: "ema.generator")
        try checkpoint.restore(generatorOptimizer, of: generator, from: "generator")
        try checkpoint.restore(discriminatorOptimizer, of: discriminator, from: "discriminator")
        emaGeneratorSyncedAt = nil
    }

    /// The configuration stored in a GAN checkpoint.
    public static func configuration(in checkpoint: Checkpoint) throws -> GANConfiguration {
        guard checkpoint.metadata["model"] == kind || checkpoint.metadata["gan_config"] != nil else {
            throw GANCheckpointError(description: "\(checkpoint.path) is a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a GAN one")
        }
        guard let text = checkpoint.metadata["gan_config"],
              let config = try? JSONDecoder().decode(GANConfiguration.self, from: Data(text.utf8)) else {
            throw GANCheckpointError(description: "\(checkpoint.path) has no readable GAN configuration (metadata 'gan_config')")
        }
        return config
    }

    /// Rebuilds a GAN from a checkpoint: its configuration, networks, EMA and optimizers.
    public static func load(_ checkpoint: Checkpoint) throws -> GANTraining {
        let gan = GANTraining(config: try configuration(in: checkpoint), seed: 0)
        try gan.restore(from: checkpoint)
        return gan
    }
}

/// A checkpoint that does not hold the GAN asked for.
public struct GANCheckpointError: Error, CustomStringConvertible {
    public let description: String
}
