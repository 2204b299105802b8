import ArgumentParser
import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// A family that no command knows: a diagonal Gaussian over images, fit by Adam on its negative
/// log-likelihood. It is registered here, then trained, sampled, evaluated and exported through the
/// real commands, which shows that a family is a folder of its own and one registration.
final class GaussianImageModel: GenerativeModel {
    static let kind = "test-gaussian"

    /// The mean and log standard deviation of every pixel, each (H, W, C).
    final class Network: Module {
        let mean: Parameter, logStd: Parameter
        init(imageShape: [Int]) {
            mean = Parameter(Tensor.zeros(imageShape))
            logStd = Parameter(Tensor.zeros(imageShape))
        }
        var namedParameters: [(String, Parameter)] { [("mean", mean), ("log_std", logStd)] }
    }

    let network: Network
    let optimizer: Adam
    let imageShape: [Int]

    init(imageShape: [Int], learningRate: Double) {
        self.imageShape = imageShape
        network = Network(imageShape: imageShape)
        optimizer = Adam(network.trainableParameters, learningRate: learningRate)
    }

    func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        let mean = network.mean.value, logStd = network.logStd.value
        let z = (images - mean) * (logStd * -1).exp()
        let nll = (z.square() * 0.5 + logStd).mean()
        optimizer.step(gradients(of: nll, wrt: optimizer.parameters.map { $0.value }))
        return [("nll", nll.item)]
    }

    func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(network, as: "model")
        checkpoint.store(optimizer, of: network, as: "model")
        checkpoint.metadata["image_shape"] = imageShape.map(String.init).joined(separator: ",")
    }

    func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(network, from: "model")
        try checkpoint.restore(optimizer, of: network, from: "model")
    }

    static func load(_ checkpoint: Checkpoint) throws -> GaussianImageModel {
        let shape = (checkpoint.metadata["image_shape"] ?? "").split(separator: ",").compactMap { Int($0) }
        guard shape.count == 3 else { throw ModelError("\(checkpoint.path): no image_shape in its metadata") }
        let model = GaussianImageModel(imageShape: shape, learningRate: 1e-2)
        try model.restore(from: checkpoint)
        return model
    }

    /// Image i is mean + std * z_i with z_i drawn from the seed's stream at offset i: the same
    /// whatever the count and batch size.
    func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                progress: ((Int, Int) -> Void)?) throws -> Tensor {
        let size = imageShape.reduce(1, *)
        let images = (startIndex..<(startIndex + count)).map { i -> Tensor in
            let z = Tensor.normal([1] + imageShape, generator: RandomGenerator(seed: seed, counter: UInt64(2 * size * i)))
            return withoutGradients { (network.mean.value + network.logStd.value.exp() * z).clamped(min: 0, max: 1) }
        }
        progress?(count, count)
        return Tensor.concatenate(images, axis: 0)
    }

    func samplingSummary(_ options: SamplingOptions) -> String { "test-gaussian" }

    func sampleGrid(seed: UInt64) -> Tensor {
        imageGrid(try! sample(count: 16, seed: seed, labels: nil, options: SamplingOptions(), progress: nil), columns: 4)
    }
}

/// `generative train test-gaussian`, built from the shared training flags only.
struct TrainGaussianImageModel: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "test-gaussian", abstract: "Fit a Gaussian per pixel (a test family).")
    @OptionGroup var flags: TrainingFlags<StandardTrainingDefaults>

    func run() throws {
        let (run, lock) = try flags.start(GaussianImageModel.kind)
        defer { lock.release() }
        let data = try flags.loadTraining()
        let model = GaussianImageModel(imageShape: Array(data.images.shape.dropFirst()), learningRate: flags.lr)
        let loop = TrainingLoop(model: model, options: flags.options(), run: run,
                                config: ["model": GaussianImageModel.kind, "lr": String(flags.lr), "seed": String(flags.seed)])
        loop.log = { _ in }
        try loop.train(images: data.images, labels: nil, resume: flags.resume)
    }
}

/// `generative test-gaussian mean`: a verb of the family's own, writing its mean image.
struct GaussianMeanImage: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mean", abstract: "Write the mean image of a test-gaussian checkpoint.")
    @Option var checkpoint: String
    @Option var out: String

    func run() throws {
        let model = try GaussianImageModel.load(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)))
        try NPY.write(model.network.mean.value.reshaped([1] + model.imageShape), to: URL(fileURLWithPath: out))
    }
}

/// `generative test-gaussian VERB`: the family's verbs, under its name.
struct GaussianVerbs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "test-gaussian", abstract: "Use a test-gaussian checkpoint.",
                                                    subcommands: [GaussianMeanImage.self])
}

/// `generative bench --workload test-gaussian`: one Adam step of the Gaussian on a batch.
let gaussianWorkload = WorkloadBenchmark.Suite(name: "test-gaussian") { override, rng in
    let model = GaussianImageModel(imageShape: WorkloadBenchmark.referenceImageShape, learningRate: 1e-2)
    let images = Tensor.uniform([WorkloadBenchmark.batchSize(32, override: override)] + model.imageShape, generator: rng)
    return [WorkloadBenchmark.Workload(name: "test-gaussian", phase: "train", batch: images.shape[0], flopsPerItem: 0) {
        _ = model.trainStep(images: images, labels: nil, rng: rng, step: 0)
    }]
}

/// `generative sample test-gaussian`: the shared sampling command.
enum GaussianSampleSpec: SampleCommandSpec {
    static let commandName = "test-gaussian"
    static let abstract = "Sample the per-pixel Gaussian (a test family)."
    static func accept(_ model: any GenerativeModel, path: String) throws {
        guard model is GaussianImageModel else { throw ValidationError("\(path) is not a test-gaussian checkpoint") }
    }
}

final class ToyFamilyTests: CommandTestCase {
    override func setUp() {
        super.setUp()
        CommandRegistry.register(FamilyCommands(name: "test-gaussian", train: [TrainGaussianImageModel.self],
                                                sample: [SampleCommand<GaussianSampleSpec>.self], verbs: [GaussianVerbs.self],
                                                models: [GaussianImageModel.self], benchmarks: [gaussianWorkload]))
    }

    /// The models of every built-in family load through the registry that eval, export, table and
    /// report use (an ldm checkpoint once did not).
    func testEveryBuiltInFamilysModelsLoadThroughTheRegistry() {
        for family in CommandRegistry.builtIn {
            for model in family.models {
                XCTAssertNotNil(ModelRegistry.model(kind: model.kind), "\(family.name): \(model.kind)")
            }
        }
    }

    func testARegisteredFamilyTrainsSamplesEvaluatesAndExportsThroughTheCommands() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        try self.run(["train", "test-gaussian", "--epochs", "1", "--max-steps", "30", "--batch-size", "256", "--lr", "0.05", "--out", run])
        let checkpoint = run + "/checkpoint.safetensors"
        let model = try GaussianImageModel.load(try Checkpoint(contentsOf: URL(fileURLWithPath: checkpoint)))
        // It learned: the mean image moved from 0 toward the data's mean (about 0.29 on average).
        XCTAssertGreaterThan(model.network.mean.value.mean().item, 0.1)

        // Sampled by `generative sample`, in any batch size: image i is the same.
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        try self.run(["sample", "test-gaussian", "--checkpoint", checkpoint, "--count", "6", "--seed", "4", "--out", a.path])
        try self.run(["sample", "test-gaussian", "--checkpoint", checkpoint, "--count", "3", "--seed", "4", "--batch-size", "2",
                      "--out", b.path])
        let six = try NPY.readImages(a), three = try NPY.readImages(b)
        XCTAssertEqual(six.shape, [6, 28, 28, 1])
        XCTAssertEqual(six.sliced(axis: 0, 0..<3).scalars(as: Float.self), three.scalars(as: Float.self))
        XCTAssertTrue(errorMessage(["sample", "dcgan", "--checkpoint", checkpoint])?.contains("test-gaussian") ?? false,
                      "another family's sample command names what the checkpoint holds")

        // Evaluated by `generative eval` through the registry, with its speed.
        let parsed = try Generative.parseAsRoot(["eval", checkpoint, "--count", "50", "--reference", "test", "--kid-subsets", "2", "--json"])
        let report = try XCTUnwrap(parsed as? Eval).evaluate(log: { _ in })
        XCTAssertEqual(report.sampleCount, 50)
        XCTAssertEqual(report.sampling?.model, "test-gaussian")
        XCTAssertTrue(report.fid.isFinite)

        // Exported by `generative export`.
        let exported = dir.appendingPathComponent("w.safetensors")
        try self.run(["export", "--checkpoint", checkpoint, "--out", exported.path])
        XCTAssertEqual(try SafeTensorsFile(contentsOf: exported).names, ["log_std", "mean"])

        // Its own verb, under its name at the top level (and listed in --help).
        let mean = dir.appendingPathComponent("mean.npy")
        try self.run(["test-gaussian", "mean", "--checkpoint", checkpoint, "--out", mean.path])
        XCTAssertEqual(try NPY.readImages(mean).scalars(as: Float.self), model.network.mean.value.scalars(as: Float.self))
        XCTAssertTrue(Generative.helpMessage().contains("test-gaussian"))

        // Timed by `generative bench` through the registry, and selectable by name.
        let bench = try XCTUnwrap(try Generative.parseAsRoot(["bench", "--workload", "test-gaussian", "--seconds", "0.01",
                                                              "--batch-size", "8"]) as? Bench)
        var results: [WorkloadBenchmark.Result] = []
        bench.timeWorkloads { results.append($0) }
        XCTAssertEqual(results.map { "\($0.workload) \($0.phase) \($0.batch)" }, ["test-gaussian train 8"])

        // Sampler and guidance flags belong to the diffusion family: eval refuses them here.
        XCTAssertThrowsError(try (Generative.parseAsRoot(["eval", checkpoint, "--count", "5", "--guidance", "2"]) as! Eval)
            .evaluate(log: { _ in }))
    }
}
