import Foundation
import GenTestSupport
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// Flow training: the loss goes down on real images, a non-finite log-determinant names its layer
/// and stops the run, resuming is bit-exact (Glow's data-dependent initialisation included), and a
/// checkpoint reloads to the same likelihood.
final class FlowTrainingTests: XCTestCase {
    static let images: Tensor = {
        let data = try! ImageDataset.fashionMNIST(split: .train)
        return data.images.rows(Array(0..<96))
    }()

    static func tinyConfig(_ architecture: FlowArchitecture) -> FlowConfiguration {
        var config = FlowConfiguration()
        config.architecture = architecture
        config.channels = 4
        config.blocks = 1
        config.steps = 1
        return config
    }

    func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-flow-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testLossFallsOnRealImages() {
        let model = FlowTraining(config: Self.tinyConfig(.realnvp), learningRate: 1e-3, seed: 1)
        let batch = Self.images.rows(Array(0..<32))
        let first = model.trainStep(images: batch, labels: nil, rng: RandomGenerator(seed: 1), step: 0)[0].1
        var last = first
        for step in 1..<12 { last = model.trainStep(images: batch, labels: nil, rng: RandomGenerator(seed: UInt64(step)), step: step)[0].1 }
        XCTAssertLessThan(last, first - 0.3, "bits/dim \(first) -> \(last)")
    }

    func testNonFiniteLogDeterminantNamesTheLayerAndStops() throws {
        let model = FlowTraining(config: Self.tinyConfig(.realnvp), learningRate: 1e-3, seed: 1)
        let coupling = try XCTUnwrap(model.model.layers[2] as? CouplingLayer)
        coupling.scale?.assign(Tensor([Float.nan], shape: [1]))
        let losses = model.trainStep(images: Self.images.rows([0, 1]), labels: nil, rng: RandomGenerator(seed: 1), step: 0)
        XCTAssertEqual(losses.first?.0, "log-determinant of layers.2 (affine checkerboard coupling)")
        XCTAssertTrue(losses.first?.1.isNaN ?? false)
        let loop = TrainingLoop(model: model, options: TrainingOptions(epochs: 1, batchSize: 32), run: RunDirectory(tempDir()),
                                config: ["model": FlowTraining.kind])
        loop.log = { _ in }
        XCTAssertThrowsError(try loop.train(images: Self.images, labels: nil, resume: false)) { error in
            XCTAssertTrue("\(error)".hasPrefix("step 1: log-determinant of layers.2 (affine checkerboard coupling) is nan; stopped"), "\(error)")
        }
    }

    func train(_ dir: URL, _ architecture: FlowArchitecture, maxSteps: Int, resume: Bool) throws -> FlowTraining {
        let model = FlowTraining(config: Self.tinyConfig(architecture), learningRate: 1e-3, seed: 3)
        let loop = TrainingLoop(model: model, options: TrainingOptions(epochs: 2, batchSize: 32, seed: 3, maxSteps: maxSteps),
                                run: RunDirectory(dir), config: ["model": FlowTraining.kind])
        loop.log = { _ in }
        try loop.train(images: Self.images, labels: nil, resume: resume)
        return model
    }

    func testResumeIsBitExact() throws {
        for architecture in FlowArchitecture.allCases {
            let whole = try train(tempDir(), architecture, maxSteps: 4, resume: false)
            let dir = tempDir()
            _ = try train(dir, architecture, maxSteps: 2, resume: false)
            let resumed = try train(dir, architecture, maxSteps: 4, resume: true)
            for ((name, a), (_, b)) in zip(whole.model.namedParameters, resumed.model.namedParameters) {
                XCTAssertEqual(a.value.doubleScalars(), b.value.doubleScalars(), "\(architecture) \(name)")
            }
            var checkpoint = Checkpoint()
            checkpoint.metadata["model"] = FlowTraining.kind
            whole.store(into: &checkpoint)
            let url = dir.appendingPathComponent("c.safetensors")
            try checkpoint.write(to: url)
            let loaded = try FlowTraining.load(try Checkpoint(contentsOf: url))
            let x = Self.images.rows([0, 1, 2])
            XCTAssertEqual(try loaded.bitsPerDimension(x, startIndex: 0, method: .exact, options: LikelihoodOptions(), seed: 0),
                           try whole.bitsPerDimension(x, startIndex: 0, method: .exact, options: LikelihoodOptions(), seed: 0))
        }
    }
}
