import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// How a model is sampled. Every family reads the settings it uses and ignores the others.
public struct SamplingOptions {
    /// GANs, diffusion and the VAE: the EMA weights (default) or the raw ones.
    public var ema: Bool
    /// Images per network batch (the samples do not depend on it).
    public var batchSize: Int
    /// Diffusion: the sampler and its steps (nil: the family's default).
    public var sampler: Sampler?
    /// Class-conditional diffusion: the classifier-free guidance scale.
    public var guidance: Double?
    /// Diffusion on a discrete table: a noisy classifier's guidance (the table's indices).
    public var classifierGuidance: ClassifierGuidance?
    /// Flows: the latent's standard deviation (nil: the family's default).
    public var temperature: Double?

    public init(ema: Bool = true, batchSize: Int = 256, sampler: Sampler? = nil, guidance: Double? = nil,
                classifierGuidance: ClassifierGuidance? = nil, temperature: Double? = nil) {
        self.ema = ema
        self.batchSize = batchSize
        self.sampler = sampler
        self.guidance = guidance
        self.classifierGuidance = classifierGuidance
        self.temperature = temperature
    }
}

/// Why a model cannot do what was asked of it (a sampler it cannot run, a likelihood it lacks).
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The one interface every generative family implements: a `TrainableModel` (its training step and
/// checkpoint contents) that also loads from its checkpoint, samples images and describes itself.
///
/// Images are (N, H, W, C) floats in [0, 1], channels-last, with `imageShape` = [H, W, C]. Image i's
/// noise depends only on (seed, i), whatever `count`, the first index and the batch size, so that a
/// run's images can be split by index over processes (`sample(count:startIndex:...)`).
public protocol GenerativeModel: TrainableModel {
    /// Rebuilds the model from a checkpoint of its kind: typed configuration from the metadata,
    /// weights checked against the networks' shapes.
    static func load(_ checkpoint: Checkpoint) throws -> Self
    /// One image's shape [H, W, C].
    var imageShape: [Int] { get }
    /// Classes of a class-conditional model (0: unconditional).
    var classCount: Int { get }
    /// Images startIndex..<startIndex + count of the seed's (count, H, W, C) in [0, 1]: image i's
    /// noise (and, without `labels`, its class where the family picks one) is keyed by its index i,
    /// and the first network batch starts at `startIndex`, so a shard of whole batches is bit for bit
    /// those images of one call from 0. `labels` (one class per image of the shard) condition a
    /// class-conditional model; nil draws the family's unconditional samples. `progress` hears
    /// (images of the shard done, count).
    func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                progress: ((Int, Int) -> Void)?) throws -> Tensor
    /// The labels `sample` uses when given none (a conditional GAN's balanced classes); nil when
    /// unlabelled samples are unconditional.
    func unconditionalLabels(count: Int) -> [Int]?
    /// What sampling with `options` runs, for reports ("ddpm (DDIM-20, EMA weights)").
    func samplingSummary(_ options: SamplingOptions) -> String
    /// Network evaluations per image when sampling with `options`.
    func evaluationsPerImage(_ options: SamplingOptions) throws -> Int
    /// Checks `options` before any work (a sampler the model cannot run, steps beyond its table).
    func validate(_ options: SamplingOptions) throws
    /// The ways this family measures a likelihood, the default first (empty: none).
    var likelihoodMethods: [LikelihoodMethod] { get }
    /// The negative log-likelihood (exact, or a bound) of 8-bit images (N, H, W, C) in [0, 1], in
    /// bits per dimension, one per image; a method the family lacks throws `ModelError`. The images
    /// are a data set's `startIndex`, `startIndex + 1`, ...: their random draws (dequantisation,
    /// trace probes) are keyed by (seed, index), so a result does not depend on the batching.
    /// `progress`, when given, hears the fraction of this batch done (for measurements that take
    /// minutes per batch).
    func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                          seed: UInt64, progress: ((Double) -> Void)?) throws -> [Double]
    /// The networks `export` can write, by name (the first is the default).
    var exportableNetworks: [String] { get }
    /// The images per network batch that sampling with `options` runs.
    func effectiveBatchSize(_ options: SamplingOptions) -> Int
    /// `count` images made with `options` from fixed inputs: samples from noise, or, for a model
    /// that makes images from an input image, its output for fixed inputs. They show whether two
    /// versions of a model's weights make the same images (`export --ema-only` checks so).
    func fixedInputSamples(count: Int, seed: UInt64, options: SamplingOptions) throws -> Tensor
}

extension GenerativeModel {
    /// Images 0..<count (`sample(count:startIndex:...)` from 0).
    public func sample(count: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try sample(count: count, startIndex: 0, seed: seed, labels: labels, options: options, progress: progress)
    }

    public var classCount: Int { 0 }
    public func fixedInputSamples(count: Int, seed: UInt64, options: SamplingOptions) throws -> Tensor {
        try sample(count: count, seed: seed, labels: nil, options: options, progress: nil)
    }
    public func unconditionalLabels(count: Int) -> [Int]? { nil }
    public func evaluationsPerImage(_ options: SamplingOptions) throws -> Int { 1 }
    /// Refuses the diffusion settings (a sampler, guidance) and a flow's temperature, which other
    /// families do not take.
    public func validate(_ options: SamplingOptions) throws {
        if options.sampler != nil || options.guidance != nil || options.classifierGuidance != nil {
            throw ModelError("'\(Self.kind)' models take no sampler and no guidance")
        }
        try refuseTemperature(options)
    }

    /// Refuses a temperature (a flow's setting) for a family that samples without one.
    public func refuseTemperature(_ options: SamplingOptions) throws {
        if options.temperature != nil { throw ModelError("'\(Self.kind)' models take no --temperature (flows do)") }
    }
    public var likelihoodMethods: [LikelihoodMethod] { [] }
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64, progress: ((Double) -> Void)?) throws -> [Double] {
        throw ModelError("'\(Self.kind)' models have no \(method.rawValue) likelihood")
    }
    /// `bitsPerDimension` without progress.
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64) throws -> [Double] {
        try bitsPerDimension(images, startIndex: startIndex, method: method, options: options, seed: seed, progress: nil)
    }
    public var exportableNetworks: [String] { ["model"] }
    public func effectiveBatchSize(_ options: SamplingOptions) -> Int { options.batchSize }

    /// The weights that sampling uses, as a word for reports.
    static func weightsWord(_ options: SamplingOptions) -> String { options.ema ? "EMA weights" : "raw weights" }
}

/// How a likelihood is measured.
public enum LikelihoodMethod: String, CaseIterable, Codable, Sendable {
    /// The instantaneous change of variables along the probability-flow ODE (exact up to the solver
    /// and the trace estimator).
    case ode
    /// The variational bound (an upper bound on bits/dim).
    case vlb
    /// The change of variables through an invertible network (exact).
    case exact
}

/// Families sampled by a registered diffusion sampler, and the one they use when given none.
public protocol DiffusionSampling {
    static var defaultSampler: String { get }
    static var defaultSteps: Int { get }
}

extension DiffusionSampling {
    /// The sampler the options name, or the family's default.
    func chosenSampler(_ options: SamplingOptions) -> Sampler {
        options.sampler ?? (try! Sampler(named: Self.defaultSampler, options: SamplerOptions(steps: Self.defaultSteps)))
    }
}

extension Sampler {
    /// Network evaluations per image on `process` (`evaluationsPerImage(on:)`); throws for an
    /// adaptive sampler that has not sampled yet.
    func requiredEvaluationsPerImage(on process: any NoiseProcess) throws -> Int {
        guard let evaluations = evaluationsPerImage(on: process) else {
            throw ModelError("--sampler \(name) adapts its steps: its network evaluations are known once it has sampled")
        }
        return evaluations
    }

    /// The sampler in a report: "DDIM-20" (steps), "DDIM-20 eta 0.5", "ODE-RK45 rtol 1e-05, atol 1e-05".
    func reportName(on process: any NoiseProcess) -> String {
        if isAdaptive(on: process) { return "\(name.uppercased()) \(stepsDescription(on: process))" }
        return "\(name.uppercased())-\(grid(on: process).steps)" + (options.eta > 0 ? " eta \(options.eta)" : "")
    }
}

extension DiffusionSampling where Self: GenerativeModel {
    /// The null label for each of `count` images of a class-conditional network (its unconditional
    /// samples); nil for an unconditional one.
    func nullLabels(count: Int) -> [Int]? {
        classCount > 0 ? Array(repeating: classCount, count: count) : nil
    }
}

extension DDPMTraining: DiffusionSampling {}
extension ScoreModelTraining: DiffusionSampling {}

/// Image i of class i mod `classes`: balanced labels, for class agreement; images
/// startIndex..<startIndex + count of a run get that run's.
public func balancedClassLabels(count: Int, classes: Int, startIndex: Int = 0) -> [Int] {
    (startIndex..<(startIndex + count)).map { $0 % classes }
}

extension Checkpoint {
    /// Refuses a checkpoint whose metadata `model` is not `kind`, naming both.
    public func requireKind(_ kind: String) throws {
        guard metadata["model"] == kind else {
            throw ModelError("\(path) is a '\(metadata["model"] ?? "unknown")' checkpoint, not \(kind.first.map { "aeiou".contains($0) } == true ? "an" : "a") \(kind) one")
        }
    }

    /// The JSON value stored under metadata `key`, or an error naming the file and the key.
    public func decodedMetadata<T: Decodable>(_ key: String, as type: T.Type = T.self) throws -> T {
        guard let text = metadata[key], let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)) else {
            throw ModelError("\(path): no readable \(key) in its metadata")
        }
        return value
    }

    /// The run settings the training loop stored (metadata `config`, a JSON object of strings);
    /// empty when there are none.
    public var storedConfiguration: [String: String] {
        guard let text = metadata["config"],
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return [:] }
        return object.compactMapValues { $0 as? String }
    }
}
