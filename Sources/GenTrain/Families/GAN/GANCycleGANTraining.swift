import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The settings of a CycleGAN run, stored in its checkpoints (metadata `cyclegan_config`).
public struct CycleGANConfiguration: Codable, Equatable, Sendable {
    /// Generator width ch (c7s1-ch, d2ch, d4ch).
    public var generatorChannels: Int
    /// Residual blocks at 7x7.
    public var residualBlocks: Int
    /// Discriminator width.
    public var discriminatorChannels: Int
    public var learningRate: Double
    public var beta1: Double, beta2: Double
    /// lambda of the cycle-consistency loss (10 in the paper).
    public var cycleWeight: Double
    /// Weight of the identity loss (5 = 0.5 lambda in the paper).
    public var identityWeight: Double
    public var emaDecay: Double
    /// Names of the two domains, for logs (e.g. "Sneaker" and "Ankle boot").
    public var domainA: String, domainB: String

    /// The paper's settings: Adam 2e-4 (0.5, 0.999), lambda 10, identity 5.
    public init(generatorChannels: Int = 32, residualBlocks: Int = 3, discriminatorChannels: Int = 64,
                learningRate: Double = 2e-4, beta1: Double = 0.5, beta2: Double = 0.999, cycleWeight: Double = 10,
                identityWeight: Double = 5, emaDecay: Double = 0.999, domainA: String = "A", domainB: String = "B") {
        self.generatorChannels = generatorChannels
        self.residualBlocks = residualBlocks
        self.discriminatorChannels = discriminatorChannels
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2
        self.cycleWeight = cycleWeight
        self.identityWeight = identityWeight
        self.emaDecay = emaDecay
        self.domainA = domainA; self.domainB = domainB
    }

    /// A problem with the settings, in words, or nil.
    public var problem: String? {
        if generatorChannels < 1 || discriminatorChannels < 1 { return "the channel widths must be at least 1" }
        if residualBlocks < 0 { return "the residual block count must not be negative" }
        if !(learningRate > 0 && learningRate.isFinite) { return "the learning rate must be positive" }
        if !(0..<1).contains(beta1) || !(0..<1).contains(beta2) { return "Adam's betas must lie in [0, 1)" }
        if !(cycleWeight >= 0 && identityWeight >= 0) { return "the loss weights must not be negative" }
        if !(0..<1).contains(emaDecay) { return "the EMA decay must lie in [0, 1)" }
        return nil
    }
}

/// Which way to translate.
public enum TranslationDirection: String, Sendable, CaseIterable, Codable {
    /// Domain A to domain B (the generator G_AB).
    case aToB = "a2b"
    /// Domain B to domain A (the generator G_BA).
    case bToA = "b2a"
}

/// CycleGAN (Zhu et al. 2017) as a `TrainableModel`: generators G_AB and G_BA, PatchGAN
/// discriminators D_A and D_B, least-squares adversarial losses, cycle-consistency (lambda 10) and
/// identity (5) L1 losses, Adam 2e-4 (0.5, 0.999), and an EMA of each generator.
///
/// Data: unpaired domains packed as pairs of channels, (N, 28, 28, 2): channel 0 an image of A,
/// channel 1 an image of B (`pairDomains`), so every training-loop batch holds as many images of
/// each domain. The pairing is random and never used by the losses.
///
/// One step (the paper's order): the generators' step on
/// L_G = LS(D_B(G_AB(a)), 1) + LS(D_A(G_BA(b)), 1) + lambda (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|)
///     + identity (|G_AB(b) - b| + |G_BA(a) - a|)
/// (LS = mean squared error, |.| = mean absolute error), then each discriminator's step on
/// 1/2 (LS(D(real), 1) + LS(D(fake), 0)) with the fakes of the generators' step, detached. The
/// paper's pool of 50 past fakes is not used (so resume stays exact with no extra state).
///
/// Checkpoint keys: `generator_ab.*`, `generator_ba.*`, `discriminator_a.*`, `discriminator_b.*`,
/// `ema.generator_ab.*`, `ema.generator_ba.*`, `optim.<network>.*` (one Adam per network, which is
/// the same update as the paper's one Adam over both), and the fixed preview images `preview.a`,
/// `preview.b` of the sample grids.
public final class CycleGANTraining: TrainableModel {
    public static let kind = "cyclegan"
    public let config: CycleGANConfiguration
    public let generatorAB: CycleGANGenerator, generatorBA: CycleGANGenerator
    public let discriminatorA: PatchDiscriminator, discriminatorB: PatchDiscriminator
    public let optimizers: [(name: String, module: Module, optimizer: Adam)]
    /// The networks, by their checkpoint prefixes: the two generators, then the two discriminators.
    public var networkNames: [String] { optimizers.map(\.name) }
    /// The step log's optimisers, by the names of `optimizers` (`lr_generator_ab`, `grad_norm_discriminator_a`, ...).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { optimizers.map { ($0.name, $0.optimizer) } }
    public let emaAB: ExponentialMovingAverage, emaBA: ExponentialMovingAverage
    let emaGeneratorAB: CycleGANGenerator, emaGeneratorBA: CycleGANGenerator
    /// Up to 8 images of each domain, (n, 28, 28, 1) in [0, 1], translated in every sample grid;
    /// taken from the first batch when not set.
    public var preview: (a: Tensor, b: Tensor)?

    public init(config: CycleGANConfiguration = CycleGANConfiguration(), seed: UInt64) {
        precondition(config.problem == nil, "CycleGANTraining: \(config.problem ?? "")")
        self.config = config
        let rng = RandomGenerator(seed: seed)
        func g(_ r: RandomGenerator) -> CycleGANGenerator {
            CycleGANGenerator(channels: config.generatorChannels, residualBlocks: config.residualBlocks, generator: r)
        }
        generatorAB = g(rng); generatorBA = g(rng)
        discriminatorA = PatchDiscriminator(channels: config.discriminatorChannels, generator: rng)
        discriminatorB = PatchDiscriminator(channels: config.discriminatorChannels, generator: rng)
        let spare = RandomGenerator(seed: seed &+ 1)
        emaGeneratorAB = g(spare); emaGeneratorBA = g(spare)
        func adam(_ m: Module) -> Adam {
            Adam(m.trainableParameters, learningRate: config.learningRate, betas: (config.beta1, config.beta2))
        }
        optimizers = [("generator_ab", generatorAB, adam(generatorAB)), ("generator_ba", generatorBA, adam(generatorBA)),
                      ("discriminator_a", discriminatorA, adam(discriminatorA)),
                      ("discriminator_b", discriminatorB, adam(discriminatorB))]
        emaAB = ExponentialMovingAverage(generatorAB.namedParameters.map { $0.1 }, decay: config.emaDecay)
        emaBA = ExponentialMovingAverage(generatorBA.namedParameters.map { $0.1 }, decay: config.emaDecay)
    }

    /// Packs two unpaired domains (each (n, 28, 28, 1)) as (max(nA, nB), 28, 28, 2): every image of
    /// the larger domain once, the smaller domain's cycled through a random order from `seed`.
    public static func pairDomains(a: Tensor, b: Tensor, seed: UInt64) -> Tensor {
        precondition(a.shape[0] > 0 && b.shape[0] > 0, "pairDomains: an empty domain")
        let n = max(a.shape[0], b.shape[0])
        let rng = RandomGenerator(seed: seed)
        func indices(_ count: Int) -> [Int] {
            if count == n { return Array(0..<n) }
            var out: [Int] = []
            while out.count < n { out += rng.permutation(count) }
            return Array(out.prefix(n))
        }
        return Tensor.concatenate([a.rows(indices(a.shape[0])), b.rows(indices(b.shape[0]))], axis: 3)
    }

    /// Splits a packed batch into its two domains, each (N, 28, 28, 1).
    static func unpack(_ images: Tensor) -> (Tensor, Tensor) {
        precondition(images.rank == 4 && images.shape[3] == 2,
                     "CycleGANTraining: expected paired domains (N, H, W, 2), got \(images.shape)")
        let n = images.shape[0], hw = images.shape[1] * images.shape[2]
        let flat = images.reshaped([n * hw, 2])
        let a = flat.sliced(axis: 1, 0..<1).reshaped([n, images.shape[1], images.shape[2], 1])
        let b = flat.sliced(axis: 1, 1..<2).reshaped([n, images.shape[1], images.shape[2], 1])
        return (a, b)
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let (a01, b01) = Self.unpack(images)
        if preview == nil {
            let k = min(8, a01.shape[0])
            preview = (a01.sliced(axis: 0, 0..<k).copied(), b01.sliced(axis: 0, 0..<k).copied())
        }
        let a = a01 * 2 - 1, b = b01 * 2 - 1
        func ls(_ scores: Tensor, _ target: Double) -> Tensor { (scores - target).square().mean() }

        // Generators.
        let fakeB = generatorAB(a), fakeA = generatorBA(b)
        let adversarial = ls(discriminatorB(fakeB), 1) + ls(discriminatorA(fakeA), 1)
        let cycle = meanAbsoluteError(generatorBA(fakeB), a) + meanAbsoluteError(generatorAB(fakeA), b)
        var lossG = adversarial + cycle * config.cycleWeight
        var identity = 0.0
        if config.identityWeight > 0 {
            let id = meanAbsoluteError(generatorAB(b), b) + meanAbsoluteError(generatorBA(a), a)
            lossG = lossG + id * config.identityWeight
            identity = id.item
        }
        let gParams = generatorAB.trainableParameters + generatorBA.trainableParameters
        let gGrads = gradients(of: lossG, wrt: gParams.map { $0.value })
        let nAB = generatorAB.trainableParameters.count
        optimizers[0].optimizer.step(Array(gGrads[..<nAB]))
        optimizers[1].optimizer.step(Array(gGrads[nAB...]))

        // Discriminators, on the generators' fakes (detached).
        let lossDA = (ls(discriminatorA(a), 1) + ls(discriminatorA(fakeA.detached()), 0)) * 0.5
        optimizers[2].optimizer.step(gradients(of: lossDA, wrt: discriminatorA.trainableParameters.map { $0.value }))
        let lossDB = (ls(discriminatorB(b), 1) + ls(discriminatorB(fakeB.detached()), 0)) * 0.5
        optimizers[3].optimizer.step(gradients(of: lossDB, wrt: discriminatorB.trainableParameters.map { $0.value }))
        emaAB.update()
        emaBA.update()
        return [("loss_d", lossDA.item + lossDB.item), ("loss_g", lossG.item), ("adversarial", adversarial.item),
                ("cycle", cycle.item), ("identity", identity)]
    }

    // MARK: checkpoints

    public func store(into checkpoint: inout Checkpoint) {
        for (name, module, optimizer) in optimizers {
            checkpoint.store(module, as: name)
            checkpoint.store(optimizer, of: module, as: name)
        }
        checkpoint.store(emaAB, of: generatorAB, as: "ema.generator_ab")
        checkpoint.store(emaBA, of: generatorBA, as: "ema.generator_ba")
        if let preview {
            checkpoint.tensors["preview.a"] = preview.a.copied()
            checkpoint.tensors["preview.b"] = preview.b.copied()
        }
        if let data = try? JSONEncoder().encode(config) { checkpoint.metadata["cyclegan_config"] = String(decoding: data, as: UTF8.self) }
    }

    public func restore(from checkpoint: Checkpoint) throws {
        for (name, module, optimizer) in optimizers {
            try checkpoint.restore(module, from: name)
            try checkpoint.restore(optimizer, of: module, from: name)
        }
        try checkpoint.restore(emaAB, of: generatorAB, from: "ema.generator_ab")
        try checkpoint.restore(emaBA, of: generatorBA, from: "ema.generator_ba")
        if let a = checkpoint.tensors["preview.a"], let b = checkpoint.tensors["preview.b"] { preview = (a, b) }
    }

    /// Rebuilds a CycleGAN from its checkpoint.
    public static func load(_ checkpoint: Checkpoint) throws -> CycleGANTraining {
        guard let text = checkpoint.metadata["cyclegan_config"],
              let config = try? JSONDecoder().decode(CycleGANConfiguration.self, from: Data(text.utf8)) else {
            // A noise-to-image GAN's checkpoint names its variant (dcgan, sngan, ...) in its configuration.
            let variant = (try? GANTraining.configuration(in: checkpoint))?.variant.rawValue
            let kind = variant ?? checkpoint.metadata["model"] ?? "unknown"
            let hint = variant.map { " (sample it with `generative sample \($0)`)" } ?? ""
            throw GANCheckpointError(description: "\(checkpoint.path) is a '\(kind)' checkpoint, not a cyclegan one\(hint)")
        }
        let model = CycleGANTraining(config: config, seed: 0)
        try model.restore(from: checkpoint)
        return model
    }

    // MARK: translation

    /// The generator for `direction`, with its EMA weights (default) or the raw ones.
    public func translator(_ direction: TranslationDirection, ema useEMA: Bool = true) -> CycleGANGenerator {
        let (raw, copy, ema) = direction == .aToB ? (generatorAB, emaGeneratorAB, emaAB) : (generatorBA, emaGeneratorBA, emaBA)
        guard useEMA else { return raw }
        for ((_, target), shadow) in zip(copy.namedParameters, ema.shadows) { target.assign(shadow.copied()) }
        return copy
    }

    /// Translates images (N, 28, 28, 1) in [0, 1] to the other domain, in [0, 1].
    public func translate(_ images: Tensor, _ direction: TranslationDirection, ema useEMA: Bool = true) -> Tensor {
        let g = translator(direction, ema: useEMA)
        return withoutGradients {
            var parts: [Tensor] = []
            for start in stride(from: 0, to: images.shape[0], by: 256) {
                let x = images.sliced(axis: 0, start..<min(images.shape[0], start + 256))
                parts.append(((g(x * 2 - 1) + 1) * 0.5).clamped(min: 0, max: 1))
            }
            return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        }
    }

    /// Rows: preview images of A, their translations to B, preview images of B, their translations
    /// to A (EMA generators).
    public func sampleGrid(seed: UInt64) -> Tensor {
        guard let preview else { return Tensor(repeating: 1, shape: [30, 30, 1]) }
        let rows = [preview.a, translate(preview.a, .aToB), preview.b, translate(preview.b, .bToA)]
        return imageGrid(Tensor.concatenate(rows, axis: 0), columns: preview.a.shape[0])
    }
}
