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

/// CycleGAN: data packing, one step against losses computed by hand, exact resume, and that a
/// short training run learns to translate to the other domain and back better than chance.
final class GANCycleGANTests: XCTestCase {
    /// Sneakers (class 7) and ankle boots (class 9) from the first 2,000 training images.
    static let domains: (a: Tensor, b: Tensor) = {
        let data = try! ImageDataset.fashionMNIST(split: .train).subset(Array(0..<2000))
        let labels = data.labels!.scalars(as: Int64.self)
        func rows(_ k: Int64) -> [Int] { labels.enumerated().filter { $0.element == k }.map { $0.offset } }
        return (data.images.rows(rows(7)), data.images.rows(rows(9)))
    }()

    let tiny = CycleGANConfiguration(generatorChannels: 4, residualBlocks: 1, discriminatorChannels: 4)

    func testPairingPacksEveryImageOfTheLargerDomain() {
        let a = Tensor.uniform([5, 28, 28, 1], generator: RandomGenerator(seed: 1))
        let b = Tensor.uniform([3, 28, 28, 1], generator: RandomGenerator(seed: 2))
        let pairs = CycleGANTraining.pairDomains(a: a, b: b, seed: 0)
        XCTAssertEqual(pairs.shape, [5, 28, 28, 2])
        let (ua, ub) = CycleGANTraining.unpack(pairs)
        XCTAssertEqual(ua.scalars(as: Float.self), a.scalars(as: Float.self))
        // Each B image appears, and the first 3 B slots are a permutation of B.
        let bRows = (0..<3).map { b.sliced(axis: 0, $0..<($0 + 1)).scalars(as: Float.self) }
        let firstThree = (0..<3).map { ub.sliced(axis: 0, $0..<($0 + 1)).scalars(as: Float.self) }
        XCTAssertEqual(Set(firstThree.map { $0.description }), Set(bRows.map { $0.description }))
    }

    func testOneStepMatchesHandComputedLosses() {
        let (a01, b01) = (Self.domains.a.rows(Array(0..<4)), Self.domains.b.rows(Array(0..<4)))
        let pairs = CycleGANTraining.pairDomains(a: a01, b: b01, seed: 0)
        let model = CycleGANTraining(config: tiny, seed: 3), twin = CycleGANTraining(config: tiny, seed: 3)
        let before = model.generatorAB.stateDict().mapValues { $0.doubleScalars() }
        let losses = Dictionary(uniqueKeysWithValues: model.trainStep(images: pairs, labels: nil, rng: RandomGenerator(seed: 0), step: 0))
        let a = a01 * 2 - 1, b = b01 * 2 - 1
        func ls(_ s: Tensor, _ t: Double) -> Double { s.doubleScalars().map { ($0 - t) * ($0 - t) }.reduce(0, +) / Double(s.elementCount) }
        func l1(_ x: Tensor, _ y: Tensor) -> Double {
            zip(x.doubleScalars(), y.doubleScalars()).map { abs($0 - $1) }.reduce(0, +) / Double(x.elementCount)
        }
        withoutGradients {
            let fakeB = twin.generatorAB(a), fakeA = twin.generatorBA(b)
            let adversarial = ls(twin.discriminatorB(fakeB), 1) + ls(twin.discriminatorA(fakeA), 1)
            let cycle = l1(twin.generatorBA(fakeB), a) + l1(twin.generatorAB(fakeA), b)
            let identity = l1(twin.generatorAB(b), b) + l1(twin.generatorBA(a), a)
            let lossD = 0.5 * (ls(twin.discriminatorA(a), 1) + ls(twin.discriminatorA(fakeA), 0))
                + 0.5 * (ls(twin.discriminatorB(b), 1) + ls(twin.discriminatorB(fakeB), 0))
            assertClose([losses["adversarial"]!, losses["cycle"]!, losses["identity"]!, losses["loss_g"]!, losses["loss_d"]!],
                        [adversarial, cycle, identity, adversarial + 10 * cycle + 5 * identity, lossD],
                        relative: 1e-5, floor: 1e-6, "cyclegan losses")
        }
        XCTAssertNotEqual(model.generatorAB.stateDict()["out.conv.weight"]?.doubleScalars(), before["out.conv.weight"])
        XCTAssertEqual(model.emaAB.updates, 1)
        XCTAssertEqual(model.preview?.a.shape, [4, 28, 28, 1])
    }

    func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-cyclegan-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func train(_ dir: URL, maxSteps: Int, resume: Bool) throws -> CycleGANTraining {
        let model = CycleGANTraining(config: tiny, seed: 4)
        let pairs = CycleGANTraining.pairDomains(a: Self.domains.a.rows(Array(0..<12)), b: Self.domains.b.rows(Array(0..<10)), seed: 4)
        let loop = TrainingLoop(model: model, options: TrainingOptions(epochs: 1, batchSize: 4, seed: 4, maxSteps: maxSteps),
                                run: RunDirectory(dir), config: ["model": "cyclegan"])
        loop.log = { _ in }
        try loop.train(images: pairs, labels: nil, resume: resume)
        return model
    }

    func testResumeIsBitExactAndCheckpointsHoldEveryNetwork() throws {
        let straight = tempDir(), dir = tempDir()
        _ = try train(straight, maxSteps: 2, resume: false)
        _ = try train(dir, maxSteps: 1, resume: false)
        let resumed = try train(dir, maxSteps: 2, resume: true)
        let x = try Checkpoint(contentsOf: RunDirectory(straight).checkpoint), y = try Checkpoint(contentsOf: RunDirectory(dir).checkpoint)
        XCTAssertEqual(Set(x.tensors.keys), Set(y.tensors.keys))
        for (key, t) in x.tensors { XCTAssertEqual(t.doubleScalars(), y.tensors[key]?.doubleScalars(), key) }
        for prefix in ["generator_ab.", "generator_ba.", "discriminator_a.", "discriminator_b.", "ema.generator_ab.",
                       "ema.generator_ba.", "optim.generator_ab.", "optim.discriminator_b.", "preview.a"] {
            XCTAssertTrue(x.tensors.keys.contains { $0.hasPrefix(prefix) }, prefix)
        }
        let copy = try CycleGANTraining.load(y)
        XCTAssertEqual(copy.generatorBA.stateDict().mapValues { $0.doubleScalars() },
                       resumed.generatorBA.stateDict().mapValues { $0.doubleScalars() })
        XCTAssertEqual(copy.emaAB.updates, 2)
        XCTAssertEqual(copy.translate(Self.domains.a.rows([0, 1]), .aToB).shape, [2, 28, 28, 1])
    }

    /// After a short run, A -> B -> A reconstructs an image clearly better than it matches another
    /// image of A (chance); before training the two are alike (the round trip ignores its input).
    func testCycleReconstructsBetterThanChanceAfterShortTraining() {
        var config = tiny
        config.generatorChannels = 8
        config.learningRate = 2e-3
        let model = CycleGANTraining(config: config, seed: 5)
        let (a, b) = (Self.domains.a.rows(Array(0..<64)), Self.domains.b.rows(Array(0..<64)))
        let test = Self.domains.a.rows(Array(100..<116))
        let shuffled = test.rows(Array(1..<16) + [0])
        func cycleError(_ target: Tensor) -> Double {
            meanAbsoluteError(model.translate(model.translate(test, .aToB, ema: false), .bToA, ema: false), target).item
        }
        let untrained = cycleError(test) / cycleError(shuffled)
        let pairs = CycleGANTraining.pairDomains(a: a, b: b, seed: 5)
        for step in 0..<40 {
            let rows = Array(((step * 8) % 64)..<((step * 8) % 64 + 8))
            _ = model.trainStep(images: pairs.rows(rows), labels: nil, rng: RandomGenerator(seed: 0), step: step)
        }
        let reconstruction = cycleError(test), chance = cycleError(shuffled)
        XCTAssertLessThan(reconstruction, 0.9 * chance, "A -> B -> A error \(reconstruction), chance \(chance)")
        XCTAssertGreaterThan(untrained, 0.95, "untrained error / chance")
    }
}
