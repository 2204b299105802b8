import Foundation
import GenTestSupport
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The GAN family's training core: one step of each variant against losses computed by hand,
/// weight clipping, the WGAN-GP penalty, EMA sampling, and exact checkpoint round trips and resume.
/// Networks are narrowed (`channels` 4) and batches tiny, to keep the tests fast.
final class GANTrainingTests: XCTestCase {
    /// 48 Fashion-MNIST training images in [0, 1].
    static let data: ImageDataset = {
        let data = try! ImageDataset.fashionMNIST(split: .train)
        return data.subset(Array(0..<48))
    }()
    static var images: Tensor { data.images }
    static var labels: Tensor { data.labels! }

    func config(_ variant: GANVariant, _ edit: (inout GANConfiguration) -> Void = { _ in }) -> GANConfiguration {
        var c = GANConfiguration(variant: variant)
        c.channels = 4
        edit(&c)
        return c
    }

    /// Miyato et al.'s standard-CNN generator and critic (latent 128).
    func standardCNN(_ c: inout GANConfiguration) {
        c.generatorArchitecture = .snCNN
        c.criticArchitecture = .snCNN
        c.zDim = 128
    }

    func tempDir(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-gan-\(name)-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func values(_ m: Module) -> [String: [Double]] {
        Dictionary(uniqueKeysWithValues: m.namedParameters.map { ($0.0, $0.1.value.doubleScalars()) })
    }

    // MARK: one step against a hand-written step

    /// The variant's losses written out from their definitions (softplus forms of the BCE terms).
    func handLosses(_ c: GANConfiguration) -> (d: (Tensor, Tensor) -> Tensor, g: (Tensor) -> Tensor) {
        switch c.variant {
        case .gan, .dcgan, .cgan:
            // -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f).
            return ({ r, f in (-r).softplus().mean() + f.softplus().mean() },
                    { f in c.generatorLoss == .minimax ? -f.softplus().mean() : (-f).softplus().mean() })
        case .lsgan:
            return ({ r, f in ((r - 1).square().mean() + f.square().mean()) * 0.5 }, { f in (f - 1).square().mean() * 0.5 })
        case .wgan, .wganGP:
            return ({ r, f in f.mean() - r.mean() }, { f in -f.mean() })
        case .sngan:
            return ({ r, f in (1 - r).relu().mean() + (1 + f).relu().mean() }, { f in -f.mean() })
        }
    }

    /// One generator step done by hand on `gan`'s own networks and optimizers, drawing noise in the
    /// documented order (per discriminator part: z, then alpha for wgan-gp; then the generator's z
    /// when there are several parts). Returns loss_d (mean over parts) and loss_g.
    func handStep(_ gan: GANTraining, _ images: Tensor, _ labels: Tensor?, _ rng: RandomGenerator) -> (Double, Double) {
        let c = gan.config
        let cg = gan.generator as? ConditionalDCGANGenerator, cd = gan.discriminator as? ProjectionDiscriminator
        func G(_ z: Tensor, _ y: Tensor?) -> Tensor { cg.map { $0(z, labels: y!, training: true) } ?? gan.generator(z, training: true) }
        func D(_ x: Tensor, _ y: Tensor?) -> Tensor { cd.map { $0(x, labels: y!, training: true) } ?? gan.discriminator(x, training: true) }
        let (dLoss, gLoss) = handLosses(c)
        let x = images * 2 - 1
        let k = c.discriminatorSteps, n = x.shape[0] / k
        var lossD = 0.0
        var kept: (Tensor, Tensor?)?
        for i in 0..<k {
            let real = x.sliced(axis: 0, (i * n)..<((i + 1) * n))
            let realLabels = labels?.sliced(axis: 0, (i * n)..<((i + 1) * n))
            let z = Tensor.normal([n, c.zDim], generator: rng)
            let fakeLabels = cg == nil ? nil : Tensor.randomIntegers([n], low: 0, high: c.classCount, generator: rng)
            let fake = G(z, fakeLabels)
            if k == 1 { kept = (fake, fakeLabels) }
            (gan.discriminator as? PowerIterating)?.powerIterate(1)
            let r = D(real, realLabels), f = D(fake.detached(), fakeLabels)
            var loss = dLoss(r, f)
            if c.variant == .wganGP {
                let alpha = Tensor.uniform([n, 1, 1, 1], generator: rng)
                let xHat = (alpha * real + (1 - alpha) * fake.detached()).requiringGrad()
                let g = gradients(of: gan.discriminator(xHat, training: true).sum(), wrt: [xHat], createGraph: true)[0]
                let norms = (g.square().sum(axes: [1, 2, 3]) + 0).sqrt()
                loss = loss + (norms - 1).square().mean() * c.penaltyWeight
            }
            gan.discriminatorOptimizer.step(gradients(of: loss, wrt: gan.discriminator.trainableParameters.map { $0.value }))
            if c.variant == .wgan {
                for p in gan.discriminator.trainableParameters {
                    p.value.assign(p.value.detached().clamped(min: -c.clipValue, max: c.clipValue))
                }
            }
            lossD += loss.item
        }
        let (fake, fakeLabels) = kept ?? (gan.generator(Tensor.normal([n, c.zDim], generator: rng), training: true), nil)
        let lg = gLoss(D(fake, fakeLabels))
        gan.generatorOptimizer.step(gradients(of: lg, wrt: gan.generator.trainableParameters.map { $0.value }))
        return (lossD / Double(k), lg.item)
    }

    func checkStepMatchesHand(_ c: GANConfiguration, file: StaticString = #filePath, line: UInt = #line) {
        let rows = Array(0..<(4 * c.discriminatorSteps))
        let batch = Self.images.rows(rows), labels = c.variant == .cgan ? Self.labels.rows(rows) : nil
        let a = GANTraining(config: c, seed: 11), b = GANTraining(config: c, seed: 11)
        let before = values(a.generator), beforeD = values(a.discriminator)
        let losses = Dictionary(uniqueKeysWithValues: a.trainStep(images: batch, labels: labels, rng: RandomGenerator(seed: 5), step: 0))
        let (lossD, lossG) = handStep(b, batch, labels, RandomGenerator(seed: 5))
        let label = c.variant.rawValue + (c.generatorLoss == .minimax ? " minimax" : "")
        for (name, value) in losses { XCTAssertTrue(value.isFinite, "\(label) \(name) = \(value)", file: file, line: line) }
        assertClose([losses["loss_d"] ?? .nan, losses["loss_g"] ?? .nan], [lossD, lossG], relative: 1e-5, floor: 1e-6,
                    label + " losses", file: file, line: line)
        XCTAssertNotEqual(values(a.generator), before, "\(label): the generator did not change", file: file, line: line)
        XCTAssertNotEqual(values(a.discriminator), beforeD, "\(label): the discriminator did not change", file: file, line: line)
        for (name, w) in values(b.generator) {
            assertClose(a.generator.namedParameters.first { $0.0 == name }!.1.value.doubleScalars(), w, relative: 1e-4,
                        floor: 1e-6, "\(label) generator \(name)", file: file, line: line)
        }
        for (name, w) in values(b.discriminator) {
            assertClose(a.discriminator.namedParameters.first { $0.0 == name }!.1.value.doubleScalars(), w, relative: 1e-4,
                        floor: 1e-6, "\(label) discriminator \(name)", file: file, line: line)
        }
        XCTAssertEqual(a.ema.updates, 1, label, file: file, line: line)
        if c.variant.isWasserstein { XCTAssertNotNil(losses["wasserstein"], label, file: file, line: line) }
    }

    func testGANStepMatchesHandComputedLosses() {
        checkStepMatchesHand(config(.gan))
        checkStepMatchesHand(config(.gan) { $0.generatorLoss = .minimax })
    }

    func testDCGANAndLSGANStepsMatchHandComputedLosses() {
        checkStepMatchesHand(config(.dcgan))
        checkStepMatchesHand(config(.lsgan))
        checkStepMatchesHand(config(.sngan))
        checkStepMatchesHand(config(.sngan, standardCNN))
        checkStepMatchesHand(config(.cgan))
    }

    func testWGANStepsMatchHandComputedLosses() {
        checkStepMatchesHand(config(.wgan) { $0.discriminatorSteps = 2 })
        checkStepMatchesHand(config(.wganGP) { $0.discriminatorSteps = 2 })
        checkStepMatchesHand(config(.wganGP) { standardCNN(&$0); $0.discriminatorSteps = 2 })
        checkStepMatchesHand(config(.wgan) { $0.criticArchitecture = .snCNN; $0.generatorArchitecture = .snCNN })
        checkStepMatchesHand(config(.wganGP) { $0.criticArchitecture = .resnet; $0.generatorArchitecture = .resnet; $0.discriminatorSteps = 2 })
        checkStepMatchesHand(config(.sngan) { $0.criticArchitecture = .resnet; $0.generatorArchitecture = .resnet })
    }

    /// `--d-steps k` on a BCE GAN: k discriminator updates, each on its own part of the batch.
    func testSeveralDiscriminatorStepsSplitTheBatch() {
        checkStepMatchesHand(config(.gan) { $0.discriminatorSteps = 3 })
        let parts = GANTraining.parts(Self.images.rows(Array(0..<7)), 3)
        XCTAssertEqual(parts.map { $0.shape[0] }, [3, 2, 2])
        XCTAssertEqual(GANTraining.parts(Self.images.rows([0]), 5).map { $0.shape[0] }, [1])
        let gan = GANTraining(config: config(.wgan), seed: 1)
        XCTAssertEqual(gan.loopBatchSize(64), 320)
        if let adam = gan.discriminatorOptimizer as? Adam { XCTFail("wgan should use RMSprop, got \(adam)") }
        let wgan = GANTraining(config: config(.wgan), seed: 1)
        _ = wgan.trainStep(images: Self.images.rows(Array(0..<10)), labels: nil, rng: RandomGenerator(seed: 2), step: 0)
        XCTAssertEqual((wgan.discriminatorOptimizer as? RMSprop).map { _ in true }, true)
    }

    // MARK: WGAN clipping and WGAN-GP penalty

    func testWeightClippingKeepsEveryCriticWeightInBounds() {
        let gan = GANTraining(config: config(.wgan) { $0.channels = 8 }, seed: 3)
        func check(_ when: String) {
            var largest: Float = 0
            for (name, p) in gan.discriminator.namedTrainableParameters {
                let v = p.value.scalars(as: Float.self)
                XCTAssertTrue(v.allSatisfy { abs($0) <= 0.01 }, "\(when): \(name) leaves [-0.01, 0.01]")
                largest = max(largest, v.map { abs($0) }.max() ?? 0)
            }
            XCTAssertEqual(largest, 0.01, "\(when): some weight should sit on the bound")
        }
        check("at creation")
        for step in 0..<2 {
            let losses = gan.trainStep(images: Self.images.rows(Array(0..<20)), labels: nil, rng: RandomGenerator(seed: UInt64(step)), step: step)
            XCTAssertTrue(losses.allSatisfy { $0.1.isFinite }, "\(losses)")
            check("after step \(step + 1)")
        }
    }

    /// The penalty is part of the critic's loss, and its gradient with respect to the critic's
    /// weights (a second-order gradient) is not zero.
    func testGradientPenaltyIsIncludedWithItsSecondOrderGradient() {
        let c = config(.wganGP)
        let gan = GANTraining(config: c, seed: 4)
        let real = Self.images.rows(Array(0..<4)) * 2 - 1
        let fake = withoutGradients { gan.generator(Tensor.normal([4, c.zDim], generator: RandomGenerator(seed: 1)), training: true) }
        let params = gan.discriminator.trainableParameters.map { $0.value }
        let (loss, stats) = gan.discriminatorLoss(real: real, fake: fake, rng: RandomGenerator(seed: 9))
        let alpha = Tensor.uniform([4, 1, 1, 1], generator: RandomGenerator(seed: 9))
        let gp = gradientPenalty(critic: { gan.discriminator($0, training: true) }, real: real, fake: fake, alpha: alpha).penalty
        let plain = wganCriticLoss(realScores: gan.discriminator(real, training: true),
                                   fakeScores: gan.discriminator(fake, training: true))
        XCTAssertGreaterThan(gp.item, 0)
        XCTAssertEqual(loss.item, plain.item + 10 * gp.item, accuracy: 1e-5 * max(1, abs(loss.item)))
        XCTAssertEqual(stats.first { $0.0 == "gp" }?.1 ?? .nan, gp.item, accuracy: 1e-6)
        let gpGrads = gradients(of: gp, wrt: params)
        XCTAssertTrue(gpGrads.contains { g in g.doubleScalars().contains { $0 != 0 } }, "d penalty / d critic weights is zero")
        // The loss's gradient is the plain loss's plus 10 times the penalty's.
        let total = gradients(of: loss, wrt: params), first = gradients(of: plain, wrt: params)
        for i in params.indices {
            assertClose(total[i], first[i] + gpGrads[i] * 10, relative: 1e-4, floor: 1e-6, "grad \(i)")
        }
    }

    // MARK: initialisation

    /// `dcgan` initialisation: convolution weights N(0, 0.02), BatchNorm scales N(1, 0.02) and
    /// shifts 0, for the generator and the discriminator; `pytorch` keeps each layer's default
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the last transposed convolution: fan_in 1 * 4 * 4, bound 0.25).
    func testDCGANInitialisationDrawsFromTheDCGANPaperDistributions() {
        func moments(_ t: Tensor) -> (mean: Double, std: Double) {
            let v = t.doubleScalars()
            let mean = v.reduce(0, +) / Double(v.count)
            return (mean, (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)).squareRoot())
        }
        XCTAssertEqual(GANConfiguration(variant: .dcgan).initialization, .dcgan)
        XCTAssertEqual(GANConfiguration(variant: .gan).initialization, .pytorch)
        let gan = GANTraining(variant: .dcgan, seed: 3)
        for network in [gan.generator as Module, gan.discriminator as Module] {
            let named = Dictionary(uniqueKeysWithValues: network.namedParameters)
            for (name, p) in network.namedParameters where p.isTrainable {
                let (mean, std) = moments(p.value)
                if p.value.rank == 4 {
                    XCTAssertEqual(mean, 0, accuracy: 0.003, name)
                    XCTAssertEqual(std, 0.02, accuracy: 0.002, name)
                } else if name.hasSuffix("weight"), named[String(name.dropLast(6)) + "running_mean"] != nil {
                    XCTAssertEqual(mean, 1, accuracy: 0.01, name)
                    XCTAssertEqual(std, 0.02, accuracy: 0.01, name)
                    XCTAssertEqual(named[String(name.dropLast(6)) + "bias"]?.value.doubleScalars().allSatisfy { $0 == 0 }, true)
                }
            }
        }
        var c = GANConfiguration(variant: .dcgan)
        c.initialization = .pytorch
        let last = GANTraining(config: c, seed: 3).generator.namedParameters.first { $0.0 == "net.6.weight" }!.1
        let values = last.value.doubleScalars()
        XCTAssertLessThanOrEqual(values.map(abs).max()!, 0.25)
        XCTAssertGreaterThan(values.map(abs).max()!, 0.2, "PyTorch's default bound is 1/sqrt(16)")
    }

    /// Configurations stored before `initialization` existed decode as PyTorch-initialised runs.
    func testOldConfigurationsDecodeWithPyTorchInitialisation() throws {
        let json = #"{"variant":"dcgan","zDim":100,"channels":64}"#
        let c = try JSONDecoder().decode(GANConfiguration.self, from: Data(json.utf8))
        XCTAssertEqual(c.initialization, .pytorch)
        XCTAssertEqual(c.variant, .dcgan)
        let roundTrip = try JSONDecoder().decode(GANConfiguration.self, from: JSONEncoder().encode(GANConfiguration(variant: .lsgan)))
        XCTAssertEqual(roundTrip.initialization, .dcgan)
        // The EMA decay a run was trained with survives a resume, whatever the current default.
        XCTAssertEqual(GANConfiguration(variant: .dcgan).emaDecay, 0.99)
        XCTAssertEqual(GANConfiguration(variant: .gan).emaDecay, 0.999)
        let stored = #"{"variant":"dcgan","zDim":100,"channels":64,"emaDecay":0.999}"#
        XCTAssertEqual(try JSONDecoder().decode(GANConfiguration.self, from: Data(stored.utf8)).emaDecay, 0.999)
    }

    /// The standard-CNN networks are picked by configuration (spectral norm for sngan only); every
    /// variant defaults to the reference networks, and configurations stored before the networks
    /// could be picked decode with them.
    func testCriticVariantsPickTheStandardCNNAndOldOnesKeepTheReference() throws {
        for variant in [GANVariant.sngan, .wganGP] {
            let c = GANConfiguration(variant: variant)
            XCTAssertEqual([c.generatorArchitecture.rawValue, c.criticArchitecture.rawValue, String(c.zDim)], ["dcgan", "reference", "100"])
            let gan = GANTraining(config: config(variant, standardCNN), seed: 0)
            XCTAssertTrue(gan.generator is StandardCNNGenerator && gan.discriminator is StandardCNNCritic)
            XCTAssertEqual((gan.discriminator as! StandardCNNCritic).spectralNorm, variant == .sngan)
            let old = #"{"variant":"\#(variant.rawValue)","zDim":16,"channels":8}"#
            let decoded = try JSONDecoder().decode(GANConfiguration.self, from: Data(old.utf8))
            XCTAssertEqual(decoded.generatorArchitecture, .dcgan)
            XCTAssertEqual(decoded.criticArchitecture, .reference)
            let picked = config(variant, standardCNN)
            XCTAssertEqual(try JSONDecoder().decode(GANConfiguration.self, from: JSONEncoder().encode(picked)), picked)
        }
        XCTAssertEqual(GANConfiguration(variant: .wgan).criticArchitecture, .reference)
        var dcgan = GANConfiguration(variant: .dcgan)
        dcgan.criticArchitecture = .snCNN
        XCTAssertEqual(dcgan.problem, "only sngan, wgan-gp and wgan pick their generator and critic networks")
    }

    /// The EMA generator's BatchNorm statistics are re-measured on its own weights: they differ
    /// from the raw generator's, and sampling twice gives the same images.
    func testEMAGeneratorRecalibratesItsBatchNormStatistics() {
        let gan = GANTraining(config: config(.dcgan), seed: 6)
        for step in 0..<3 {
            _ = gan.trainStep(images: Self.images.rows(Array((8 * step)..<(8 * step + 8))), labels: nil,
                              rng: RandomGenerator(seed: UInt64(step)), step: step)
        }
        let emaGenerator = gan.samplingGenerator(ema: true)
        let raw = gan.generator.batchNorms.map { $0.runningMean.value.doubleScalars() }
        let averaged = emaGenerator.batchNorms.map { $0.runningMean.value.doubleScalars() }
        XCTAssertEqual(averaged.count, 2)
        XCTAssertNotEqual(raw, averaged)
        XCTAssertEqual(emaGenerator.batchNorms.map(\.momentum), [0.1, 0.1])
        let first = gan.sample(count: 4, generator: RandomGenerator(seed: 2)).scalars(as: Float.self)
        XCTAssertEqual(gan.sample(count: 4, generator: RandomGenerator(seed: 2)).scalars(as: Float.self), first)
        // Synced once per EMA state: another training step makes the next sampling call re-sync.
        XCTAssertEqual(gan.emaGeneratorSyncedAt, 3)
        _ = gan.trainStep(images: Self.images.rows(Array(24..<32)), labels: nil, rng: RandomGenerator(seed: 9), step: 3)
        XCTAssertEqual(gan.emaGeneratorSyncedAt, 3)
        XCTAssertNotEqual(gan.sample(count: 4, generator: RandomGenerator(seed: 2)).scalars(as: Float.self), first)
        XCTAssertEqual(gan.emaGeneratorSyncedAt, 4)
    }

    // MARK: EMA and sampling

    func testEMASamplesAreInRangeAndDifferFromTheRawGenerator() {
        let gan = GANTraining(config: config(.dcgan), seed: 6)
        for step in 0..<3 {
            _ = gan.trainStep(images: Self.images.rows(Array((8 * step)..<(8 * step + 8))), labels: nil,
                              rng: RandomGenerator(seed: UInt64(step)), step: step)
        }
        XCTAssertEqual(gan.ema.updates, 3)
        let withEMA = gan.sample(count: 5, generator: RandomGenerator(seed: 1))
        let raw = gan.sample(count: 5, generator: RandomGenerator(seed: 1), ema: false)
        XCTAssertEqual(withEMA.shape, [5, 28, 28, 1])
        for s in [withEMA, raw] { XCTAssertTrue(s.scalars(as: Float.self).allSatisfy { $0 >= 0 && $0 <= 1 }) }
        XCTAssertNotEqual(withEMA.scalars(as: Float.self), raw.scalars(as: Float.self))
        // Eval mode: sampling twice gives the same images and leaves the running statistics alone.
        let stats = values(gan.generator)
        XCTAssertEqual(gan.sample(count: 5, generator: RandomGenerator(seed: 1)).scalars(as: Float.self),
                       withEMA.scalars(as: Float.self))
        XCTAssertEqual(values(gan.generator), stats)
        XCTAssertEqual(gan.sampleGrid(seed: 0).shape, [8 * 30 + 2, 8 * 30 + 2, 1])
    }

    // MARK: checkpoints and resume

    func train(_ c: GANConfiguration, _ dir: URL, maxSteps: Int, resume: Bool) throws -> GANTraining {
        let gan = GANTraining(config: c, seed: 7)
        let options = TrainingOptions(epochs: 1, batchSize: gan.loopBatchSize(4), learningRate: c.generatorLearningRate,
                                      seed: 7, maxSteps: maxSteps)
        let loop = TrainingLoop(model: gan, options: options, run: RunDirectory(dir), config: ["model": c.variant.rawValue])
        loop.log = { _ in }
        try loop.train(images: Self.images, labels: Self.labels, resume: resume)
        return gan
    }

    func checkResumeIsBitExact(_ c: GANConfiguration, file: StaticString = #filePath, line: UInt = #line) throws {
        let straightDir = tempDir("straight"), dir = tempDir("resumed")
        _ = try train(c, straightDir, maxSteps: 2, resume: false)
        _ = try train(c, dir, maxSteps: 1, resume: false)
        let resumed = try train(c, dir, maxSteps: 2, resume: true)
        let a = try Checkpoint(contentsOf: RunDirectory(straightDir).checkpoint)
        let b = try Checkpoint(contentsOf: RunDirectory(dir).checkpoint)
        XCTAssertEqual(Set(a.tensors.keys), Set(b.tensors.keys), file: file, line: line)
        for (key, t) in a.tensors {
            XCTAssertEqual(t.doubleScalars(), b.tensors[key]?.doubleScalars(), "\(c.variant.rawValue): \(key)", file: file, line: line)
        }
        for prefix in ["generator.", "discriminator.", "ema.generator.", "optim.generator.", "optim.discriminator."] {
            XCTAssertTrue(a.tensors.keys.contains { $0.hasPrefix(prefix) }, "no \(prefix)* keys", file: file, line: line)
        }
        XCTAssertEqual(a.metadata["ema.generator.updates"], "2", file: file, line: line)
        // Round trip: a fresh model restored from the checkpoint holds exactly the trained state.
        let copy = try GANTraining.load(b)
        XCTAssertEqual(copy.config, c, file: file, line: line)
        XCTAssertEqual(values(copy.generator), values(resumed.generator), file: file, line: line)
        XCTAssertEqual(values(copy.discriminator), values(resumed.discriminator), file: file, line: line)
        XCTAssertEqual(copy.ema.shadows.map { $0.doubleScalars() }, resumed.ema.shadows.map { $0.doubleScalars() },
                       file: file, line: line)
        XCTAssertEqual(copy.ema.updates, 2, file: file, line: line)
        for (x, y) in zip(copy.generatorOptimizer.namedState + copy.discriminatorOptimizer.namedState,
                          resumed.generatorOptimizer.namedState + resumed.discriminatorOptimizer.namedState) {
            XCTAssertEqual(x.1.doubleScalars(), y.1.doubleScalars(), x.0, file: file, line: line)
        }
    }

    func testResumeIsBitExactForEveryVariant() throws {
        try checkResumeIsBitExact(config(.gan))
        try checkResumeIsBitExact(config(.dcgan))
        try checkResumeIsBitExact(config(.wgan) { $0.discriminatorSteps = 2 })
        try checkResumeIsBitExact(config(.wganGP) { $0.discriminatorSteps = 2 })
        try checkResumeIsBitExact(config(.lsgan))
        try checkResumeIsBitExact(config(.sngan))
        try checkResumeIsBitExact(config(.sngan, standardCNN))
        try checkResumeIsBitExact(config(.sngan) { $0.criticArchitecture = .resnet; $0.generatorArchitecture = .resnet })
        try checkResumeIsBitExact(config(.cgan))
    }

    func testRestoringAnotherVariantFails() throws {
        var c = Checkpoint()
        GANTraining(config: config(.wgan), seed: 1).store(into: &c)
        XCTAssertThrowsError(try GANTraining(config: config(.wganGP), seed: 1).restore(from: c)) { error in
            XCTAssertTrue("\(error)".contains("wgan"), "\(error)")
        }
        XCTAssertEqual(try GANTraining.configuration(in: c), config(.wgan))
        XCTAssertNil(GANConfiguration(variant: .dcgan).problem)
        var bad = GANConfiguration(variant: .dcgan)
        bad.discriminatorSteps = 0
        XCTAssertNotNil(bad.problem)
    }

    // MARK: the conditional GAN

    func testConditionalGANUsesItsLabels() {
        let gan = GANTraining(config: config(.cgan), seed: 8)
        XCTAssertTrue(gan.isConditional)
        _ = gan.trainStep(images: Self.images.rows(Array(0..<8)), labels: Self.labels.rows(Array(0..<8)),
                          rng: RandomGenerator(seed: 1), step: 0)
        let g = gan.generator as! ConditionalDCGANGenerator, d = gan.discriminator as! ProjectionDiscriminator
        let z = Tensor.normal([3, 100], generator: RandomGenerator(seed: 2))
        let three = Tensor([Int64](repeating: 3, count: 3), shape: [3]), seven = Tensor([Int64](repeating: 7, count: 3), shape: [3])
        withoutGradients {
            XCTAssertNotEqual(g(z, labels: three, training: false).scalars(as: Float.self),
                              g(z, labels: seven, training: false).scalars(as: Float.self))
            let x = Self.images.rows([0, 1, 2]) * 2 - 1
            XCTAssertNotEqual(d(x, labels: three, training: false).scalars(as: Float.self),
                              d(x, labels: seven, training: false).scalars(as: Float.self))
        }
        // sample(label:) is G(z, K) on the same noise.
        let sampled = gan.sample(count: 3, generator: RandomGenerator(seed: 2), ema: false, label: 7)
        let direct = withoutGradients { ((g(z, labels: seven, training: false) + 1) * 0.5).clamped(min: 0, max: 1) }
        XCTAssertEqual(sampled.scalars(as: Float.self), direct.scalars(as: Float.self))
        XCTAssertEqual(gan.sampleGrid(seed: 0).shape, [10 * 30 + 2, 10 * 30 + 2, 1], "one column per class")
        let names = Set(gan.generator.namedParameters.map { $0.0 } + gan.discriminator.namedParameters.map { $0.0 })
        XCTAssertTrue(names.isSuperset(of: ["label_emb.weight", "net.0.weight", "embed.weight", "net.5.weight"]), "\(names)")
    }
}
