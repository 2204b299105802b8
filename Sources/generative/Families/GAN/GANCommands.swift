import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The GANs' defaults for the shared training flags: 5 epochs of 64 real images per discriminator
/// step, the variant's learning rate.
enum GANTrainingDefaults: TrainingDefaults {
    static let epochs = 5, batchSize = 64, saveEvery = 0
    static let learningRate: Double? = nil
    static let learningRateHelp = "the variant's: 2e-4 gan/dcgan/lsgan/sngan/cgan/cyclegan, 5e-5 wgan, 1e-4 wgan-gp; both networks"
}

/// Flags of every `train` GAN command: the shared training flags (an epoch is one pass of the
/// discriminator over the data, a step one generator step), the EMA, and the GAN's own settings.
struct GANTrainFlags: ParsableArguments {
    @OptionGroup var common: TrainingFlags<GANTrainingDefaults>
    @OptionGroup var emaFlags: EMAFlags

    @Option(help: "The discriminator's (critic's) learning rate, if it should differ from --lr.")
    var dLr: Double?

    @Option(help: "Adam's beta1 (default: the variant's: 0.5, or 0 for wgan-gp).")
    var beta1: Double?

    @Option(help: "Adam's beta2 (default: the variant's: 0.999, or 0.9 for wgan-gp).")
    var beta2: Double?

    @Option(help: "Discriminator (critic) steps per generator step (default: 1, or 5 for wgan and wgan-gp).")
    var dSteps: Int?

    @Option(help: "Latent size (default: 128 for the standard-CNN generator, 100 for the others).")
    var zDim: Int?

    @Option(name: .customLong("init"), help: .hidden)
    var deprecatedInit: GANInitialization?

    /// `--init-scheme` (or its older spelling `--init`).
    var initialization: GANInitialization? { DeprecatedFlag.merge(initScheme, deprecatedInit) }

    @Option(name: .customLong("init-scheme"), help: "Initialisation: dcgan (weights N(0, 0.02), Radford et al.) or pytorch (each layer's PyTorch default, as the reference modules). Default: dcgan, or pytorch for the MLP gan.")
    var initScheme: GANInitialization?

    var lr: Double? { common.optimisation.lr }
    var emaDecay: Double? { emaFlags.emaDecay }

    func validate() throws {
        try DeprecatedFlag.check(initScheme, "--init-scheme", old: deprecatedInit, "--init")
        if let dLr, !(dLr > 0 && dLr.isFinite) { throw ValidationError("--d-lr must be a positive number") }
        for (name, value) in [("--beta1", beta1), ("--beta2", beta2)] {
            if let value, !(0..<1).contains(value) { throw ValidationError("\(name) must lie in [0, 1)") }
        }
        if let dSteps, dSteps < 1 { throw ValidationError("--d-steps must be at least 1") }
        if let zDim, zDim < 1 { throw ValidationError("--z-dim must be at least 1") }
    }

    /// The variant's defaults overridden by these flags.
    func configuration(_ variant: GANVariant) throws -> GANConfiguration {
        var c = GANConfiguration(variant: variant)
        if let lr { c.generatorLearningRate = lr; c.discriminatorLearningRate = lr }
        if let dLr { c.discriminatorLearningRate = dLr }
        if beta1 != nil || beta2 != nil, c.optimizer != .adam {
            throw ValidationError("--beta1 and --beta2 are Adam's; \(variant.rawValue) uses \(c.optimizer.rawValue)")
        }
        if let beta1 { c.beta1 = beta1 }
        if let beta2 { c.beta2 = beta2 }
        if let dSteps { c.discriminatorSteps = dSteps }
        if let zDim { c.zDim = zDim }
        if let emaDecay { c.emaDecay = emaDecay }
        if let initialization { c.initialization = initialization }
        return c
    }
}

/// `--generator` and `--critic`, for the variants that pick their networks (sngan, wgan-gp, wgan).
struct GANNetworkFlags: ParsableArguments {
    @Option(help: "The generator: sn-cnn (Miyato et al.'s standard CNN, adapted to 28x28), resnet (their ResNet, adapted) or dcgan (the reference DCGAN generator, the default).")
    var generator: GANGeneratorArchitecture?

    @Option(help: "The critic: sn-cnn (Miyato et al.'s standard CNN, adapted to 28x28), resnet (their ResNet, adapted), both spectrally normalised for sngan, or reference (the three-convolution WGAN critic, the default).")
    var critic: GANCriticArchitecture?

    /// `config` with the networks these flags pick; a generator whose latent size the user did not
    /// set gets its own default (128 for sn-cnn and resnet, 100 for dcgan).
    func apply(to config: inout GANConfiguration, zDimGiven: Bool) {
        if let generator {
            config.generatorArchitecture = generator
            if !zDimGiven { config.zDim = generator == .dcgan ? 100 : 128 }
        }
        if let critic { config.criticArchitecture = critic }
    }
}

extension GANGeneratorArchitecture: ExpressibleByArgument {}
extension GANCriticArchitecture: ExpressibleByArgument {}

/// Trains `variant` with `config` as the flags say, and prints where the results went.
func trainGAN(_ variant: GANVariant, config: GANConfiguration, flags: GANTrainFlags) throws {
    if let problem = config.problem { throw ValidationError(problem) }
    let flags = flags.common
    let (run, lock) = try flags.start(variant.rawValue)
    defer { lock.release() }
    let data = try flags.loadTraining()
    var config = config
    if variant == .cgan {
        guard let labels = data.labels else {
            throw ValidationError("cgan needs labelled data: \(data.source) has no labels (use IDX files with labels, or a PNG folder with one sub-folder per class)")
        }
        config.classCount = data.classNames?.count ?? Int(labels.doubleScalars().max() ?? 0) + 1
    }
    let gan = GANTraining(config: config, seed: flags.seed)
    let options = flags.options(learningRate: config.generatorLearningRate, batchSize: gan.loopBatchSize(flags.batchSize))
    var summary = ["model": variant.rawValue, "batch_size": String(flags.batchSize), "seed": String(flags.seed)]
    if let data = try? JSONEncoder().encode(config) { summary["gan_config"] = String(decoding: data, as: UTF8.self) }
    let loop = TrainingLoop(model: gan, options: options, run: run, config: summary)
    flags.configure(loop) { [config] in GANTraining(config: config, seed: flags.seed) }
    let optimizer = config.optimizer == .adam
        ? String(format: "Adam lr %g/%g betas (%g, %g)", config.generatorLearningRate, config.discriminatorLearningRate,
                 config.beta1, config.beta2)
        : String(format: "RMSprop lr %g/%g", config.generatorLearningRate, config.discriminatorLearningRate)
    logLine("training \(variant.rawValue) on \(data.count) images (\(data.source)) for \(flags.epochs) epochs, batch \(flags.batchSize), "
          + "\(config.discriminatorSteps) discriminator step(s) per generator step, \(optimizer)"
          + (config.discriminatorBatchNorm ? "" : ", discriminator without BatchNorm")
          + (GANConfiguration.picksNetworks(variant)
             ? ", generator \(config.generatorArchitecture.rawValue) (z \(config.zDim)), critic \(config.criticArchitecture.rawValue)" : ""))
    let start = Date()
    try loop.train(images: data.images, labels: data.labels, resume: flags.resume)
    print(String(format: "done in %.1f s.\n  checkpoint: %@\n  metrics: %@\n  loss plot: %@\n  samples (EMA generator): %@",
                 Date().timeIntervalSince(start), run.checkpoint.path, run.metrics.path, run.lossPlot.path,
                 run.latestSamples.path))
}

/// `generative train gan`.
struct TrainGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "gan",
        abstract: "Train the original GAN (MLP G 100-256-512-1024-784, MLP D 784-512-256-1) with Adam 2e-4 (0.5, 0.999).")

    @OptionGroup var flags: GANTrainFlags

    @Option(help: "The generator's loss: non-saturating (-log D(G(z))) or minimax (log(1 - D(G(z)))).")
    var loss: GANGeneratorLossKind = .nonSaturating

    func run() throws {
        var config = try flags.configuration(.gan)
        config.generatorLoss = loss
        try trainGAN(.gan, config: config, flags: flags)
    }
}

/// `generative train dcgan`.
struct TrainDCGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "dcgan",
        abstract: "Train the reference DCGAN (transposed convolutions, BatchNorm) with Adam 2e-4 (0.5, 0.999) and BCE losses.")

    @OptionGroup var flags: GANTrainFlags

    @Option(help: "The generator's loss: non-saturating (-log D(G(z))) or minimax (log(1 - D(G(z)))).")
    var loss: GANGeneratorLossKind = .nonSaturating

    @Option(help: "Base channel width of both networks.")
    var channels: Int = 64

    @Flag(help: "Leave the BatchNorm out of the discriminator (an ablation: the WGAN critic's layout with the DCGAN losses).")
    var noDBatchnorm = false

    func run() throws {
        var config = try flags.configuration(.dcgan)
        config.generatorLoss = loss
        config.channels = channels
        config.discriminatorBatchNorm = !noDBatchnorm
        try trainGAN(.dcgan, config: config, flags: flags)
    }
}

/// `generative train wgan`.
struct TrainWGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "wgan",
        abstract: "Train a WGAN (DCGAN generator, WGAN critic with weights clipped to ±c) with RMSprop 5e-5 and 5 critic steps.")

    @OptionGroup var flags: GANTrainFlags

    @OptionGroup var networks: GANNetworkFlags

    @Option(help: "Clip every critic weight to [-c, c].")
    var clip: Double = 0.01

    @Option(help: "Base channel width of both networks.")
    var channels: Int = 64

    func run() throws {
        var config = try flags.configuration(.wgan)
        networks.apply(to: &config, zDimGiven: flags.zDim != nil)
        config.clipValue = clip
        config.channels = channels
        try trainGAN(.wgan, config: config, flags: flags)
    }
}

/// `generative train wgan-gp`.
struct TrainWGANGP: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "wgan-gp",
        abstract: "Train a WGAN-GP (DCGAN generator, WGAN critic, gradient penalty; --generator/--critic pick others) with Adam 1e-4 (0, 0.9) and 5 critic steps.")

    @OptionGroup var flags: GANTrainFlags

    @OptionGroup var networks: GANNetworkFlags

    @Option(help: "Weight lambda of the gradient penalty.")
    var gpWeight: Double = 10

    @Option(help: "Base channel width of both networks.")
    var channels: Int = 64

    func run() throws {
        var config = try flags.configuration(.wganGP)
        networks.apply(to: &config, zDimGiven: flags.zDim != nil)
        config.penaltyWeight = gpWeight
        config.channels = channels
        try trainGAN(.wganGP, config: config, flags: flags)
    }
}

/// `generative train lsgan`.
struct TrainLSGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "lsgan",
        abstract: "Train an LSGAN (the reference DCGAN networks, least-squares losses a = 0, b = c = 1) with Adam 2e-4 (0.5, 0.999).")

    @OptionGroup var flags: GANTrainFlags

    @Option(help: "Base channel width of both networks.")
    var channels: Int = 64

    @Flag(help: "Leave the BatchNorm out of the discriminator (an ablation: the WGAN critic's layout with the least-squares losses).")
    var noDBatchnorm = false

    func run() throws {
        var config = try flags.configuration(.lsgan)
        config.channels = channels
        config.discriminatorBatchNorm = !noDBatchnorm
        try trainGAN(.lsgan, config: config, flags: flags)
    }
}

/// `generative train sngan`.
struct TrainSNGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "sngan",
        abstract: "Train an SNGAN (DCGAN generator, spectrally normalised critic, hinge loss; --generator/--critic pick others) with Adam 2e-4 (0.5, 0.999) and one critic step.")

    @OptionGroup var flags: GANTrainFlags

    @OptionGroup var networks: GANNetworkFlags

    @Option(help: "Base channel width of both networks.")
    var channels: Int = 64

    func run() throws {
        var config = try flags.configuration(.sngan)
        networks.apply(to: &config, zDimGiven: flags.zDim != nil)
        config.channels = channels
        try trainGAN(.sngan, config: config, flags: flags)
    }
}

/// `generative train cgan`.
struct TrainCGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "cgan",
        abstract: "Train a class-conditional DCGAN (label embedding concatenated to z, projection discriminator) with Adam 2e-4 (0.5, 0.999).")

    @OptionGroup var flags: GANTrainFlags

    @Option(help: "The generator's loss: non-saturating (-log D(G(z, y))) or minimax (log(1 - D(G(z, y)))).")
    var loss: GANGeneratorLossKind = .nonSaturating

    @Option(help: "Base channel width of both networks.")
    var channels: Int = 64

    func run() throws {
        var config = try flags.configuration(.cgan)
        config.generatorLoss = loss
        config.channels = channels
        try trainGAN(.cgan, config: config, flags: flags)
    }
}

extension GANGeneratorLossKind: ExpressibleByArgument {}
extension GANInitialization: ExpressibleByArgument {}

/// `generative train cyclegan`.
struct TrainCycleGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "cyclegan",
        abstract: "Train a CycleGAN between two domains (default: Fashion-MNIST sneakers and ankle boots) with least-squares, cycle (10) and identity (5) losses, Adam 2e-4 (0.5, 0.999).")

    @OptionGroup var flags: GANTrainFlags

    @Option(help: "Domain A as a class of --data (default data: Fashion-MNIST; 7 is Sneaker).")
    var domainA: Int = 7

    @Option(help: "Domain B as a class of --data (9 is Ankle boot).")
    var domainB: Int = 9

    @Option(help: "Domain A as a folder of images (IDX or PNG), instead of a class.")
    var dataA: String?

    @Option(help: "Domain B as a folder of images (IDX or PNG), instead of a class.")
    var dataB: String?

    @Option(help: "Weight lambda of the cycle-consistency loss.")
    var cycleWeight: Double = 10

    @Option(help: "Weight of the identity loss.")
    var identityWeight: Double = 5

    @Option(help: "Generator width (c7s1-ch, d2ch, d4ch).")
    var channels: Int = 32

    @Option(help: "Residual blocks of the generators.")
    var residualBlocks: Int = 3

    func validate() throws {
        guard (dataA == nil) == (dataB == nil) else { throw ValidationError("--data-a and --data-b go together") }
        guard domainA != domainB || dataA != nil else { throw ValidationError("--domain-a and --domain-b must differ") }
        guard flags.dSteps == nil, flags.dLr == nil else { throw ValidationError("--d-steps and --d-lr do not apply to cyclegan") }
    }

    /// The images of class `label` in a split of --data (with their class name), or a folder's images.
    func domain(_ label: Int, folder: String?, split: DatasetSplit) throws -> (images: Tensor, name: String)? {
        if let folder {
            let data = try ImageDataset.load(directory: URL(fileURLWithPath: folder), split: split)
            return (data.images, URL(fileURLWithPath: folder).lastPathComponent)
        }
        let data = try flags.common.dataFlags.load(split)
        guard let labels = data.labels else {
            throw ValidationError("\(data.source) has no labels to pick domains by: use --data-a and --data-b")
        }
        let rows = labels.scalars(as: Int64.self).enumerated().filter { $0.element == Int64(label) }.map { $0.offset }
        guard !rows.isEmpty else { return nil }
        return (data.images.rows(rows), data.classNames.flatMap { label < $0.count ? $0[label] : nil } ?? "class \(label)")
    }

    func run() throws {
        var config = CycleGANConfiguration(generatorChannels: channels, residualBlocks: residualBlocks,
                                           learningRate: flags.lr ?? 2e-4, beta1: flags.beta1 ?? 0.5, beta2: flags.beta2 ?? 0.999,
                                           cycleWeight: cycleWeight, identityWeight: identityWeight, emaDecay: flags.emaDecay ?? 0.999)
        if let problem = config.problem { throw ValidationError(problem) }
        let (run, lock) = try flags.common.start("cyclegan")
        defer { lock.release() }
        guard let a = try domain(domainA, folder: dataA, split: .train) else { throw ValidationError("--domain-a \(domainA): no images of that class") }
        guard let b = try domain(domainB, folder: dataB, split: .train) else { throw ValidationError("--domain-b \(domainB): no images of that class") }
        config.domainA = a.name
        config.domainB = b.name
        let model = CycleGANTraining(config: config, seed: flags.common.seed)
        // Preview: the first test images of each domain, when the data has a test split.
        if let testA = try? domain(domainA, folder: dataA, split: .test), let testB = try? domain(domainB, folder: dataB, split: .test) {
            model.preview = (testA.images.rows(Array(0..<min(8, testA.images.shape[0]))),
                             testB.images.rows(Array(0..<min(8, testB.images.shape[0]))))
        }
        let pairs = CycleGANTraining.pairDomains(a: a.images, b: b.images, seed: flags.common.seed)
        let common = flags.common
        let options = common.options(learningRate: config.learningRate)
        var summary = ["model": "cyclegan", "domain_a": a.name, "domain_b": b.name,
                       "batch_size": String(common.batchSize), "seed": String(common.seed)]
        if let data = try? JSONEncoder().encode(config) { summary["cyclegan_config"] = String(decoding: data, as: UTF8.self) }
        let loop = TrainingLoop(model: model, options: options, run: run, config: summary)
        common.configure(loop) { [config, preview = model.preview] in
            let replica = CycleGANTraining(config: config, seed: common.seed)
            replica.preview = preview
            return replica
        }
        logLine("training cyclegan between \(a.name) (\(a.images.shape[0]) images) and \(b.name) (\(b.images.shape[0])) for \(common.epochs) epochs, batch \(common.batchSize)")
        let start = Date()
        try loop.train(images: pairs, labels: nil, resume: common.resume)
        print(String(format: "done in %.1f s.\n  checkpoint: %@\n  metrics: %@\n  samples (rows: A, A->B, B, B->A): %@",
                     Date().timeIntervalSince(start), run.checkpoint.path, run.metrics.path, run.latestSamples.path))
    }
}
