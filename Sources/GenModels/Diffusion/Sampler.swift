import Foundation
import GenTensor
import GenFormats
import GenNN

/// The images a sampler makes in one call: their indices in the run (which key their noise), their
/// labels for a class-conditional denoiser, and the shape of one image.
public struct SampleBatch: Sendable, Equatable {
    /// Image indices in the run (noise keys), one per batch row; distinct.
    public var indices: [Int]
    /// One label per image for a class-conditional denoiser, else nil.
    public var labels: [Int]?
    /// One image's shape, channels-last: (28, 28, 1) for Fashion-MNIST, (7, 7, 4) for a latent.
    public var imageShape: [Int]

    public init(indices: [Int], labels: [Int]? = nil, imageShape: [Int]) {
        precondition(!indices.isEmpty, "SampleBatch: no images")
        precondition(Set(indices).count == indices.count, "SampleBatch: repeated image indices \(indices)")
        precondition(labels == nil || labels!.count == indices.count,
                     "SampleBatch: \(labels!.count) labels for \(indices.count) images")
        self.indices = indices
        self.labels = labels
        self.imageShape = imageShape
    }

    /// Images 0..<count.
    public init(count: Int, labels: [Int]? = nil, imageShape: [Int]) {
        self.init(indices: Array(0..<count), labels: labels, imageShape: imageShape)
    }

    /// B.
    public var count: Int { indices.count }

    /// The labels as an int64 tensor (B), or nil.
    public var labelTensor: Tensor? { labels.map { Tensor($0.map(Int64.init), shape: [$0.count]) } }

    /// Time `t` for every image, float64 (B).
    public func times(_ t: Double) -> Tensor { Tensor([Double](repeating: t, count: count), shape: [count]) }
}

/// One step of a sampler's trajectory: the x_t it started from and its prediction of x0 there (after
/// guidance and clipping).
public struct SamplerStep {
    /// The time of this step.
    public let time: Double
    /// The step's index on a discrete table (0-based), -1 on a continuous process.
    public let t: Int
    /// x_t, (B, H, W, C).
    public let x: Tensor
    /// The predicted x0 at this step, (B, H, W, C).
    public let predictedX0: Tensor

    public init(time: Double, t: Int, x: Tensor, predictedX0: Tensor) {
        self.time = time
        self.t = t
        self.x = x
        self.predictedX0 = predictedX0
    }
}

/// What a sampler returns.
public struct SamplerOutput {
    /// The final x_0, (B, H, W, C).
    public let sample: Tensor
    /// Every step, noisiest first, when the options asked for it; else empty.
    public let trajectory: [SamplerStep]
    /// How many times the denoiser was called (one per step; a `ClassifierFreeGuidance` call runs the
    /// network once on a doubled batch).
    public let denoiserCalls: Int
    /// The denoiser evaluations each image used, one per batch row: `denoiserCalls` for every image,
    /// except where an adaptive sampler steps each image on its own (`ode-rk45`: a call then
    /// evaluates only the images still integrating, and `denoiserCalls` is the most any image used).
    public let imageEvaluations: [Int]

    /// - Parameter imageEvaluations: each image's evaluations; nil: `denoiserCalls` for every image.
    public init(sample: Tensor, trajectory: [SamplerStep], denoiserCalls: Int, imageEvaluations: [Int]? = nil) {
        precondition(imageEvaluations == nil || imageEvaluations!.count == sample.shape.first,
                     "SamplerOutput: \(imageEvaluations!.count) evaluation counts for a batch of \(sample.shape)")
        self.sample = sample
        self.trajectory = trajectory
        self.denoiserCalls = denoiserCalls
        self.imageEvaluations = imageEvaluations ?? [Int](repeating: denoiserCalls, count: sample.shape.first ?? 0)
    }
}

/// Which posterior variance the DDPM ancestral sampler uses for sigma_t^2 (Ho et al. 2020, Sec. 3.2:
/// both give similar samples; beta_tilde is optimal for a deterministic x0, beta_t for x0 ~ N(0, I)).
public enum DDPMVariance: String, CaseIterable, Sendable {
    /// beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t), the forward posterior's variance.
    case posterior
    /// beta_t.
    case beta
}

/// Options of `sampleDDPM`.
public struct DDPMOptions: Sendable, Equatable {
    /// sigma_t^2: the posterior variance beta_tilde_t (default) or beta_t.
    public var variance: DDPMVariance
    /// Clip the predicted x0 to [-1, 1] before forming the mean (on by default).
    public var clipX0: Bool
    /// Keep every step's x_t and x0 prediction in the output.
    public var recordTrajectory: Bool

    public init(variance: DDPMVariance = .posterior, clipX0: Bool = true, recordTrajectory: Bool = false) {
        self.variance = variance
        self.clipX0 = clipX0
        self.recordTrajectory = recordTrajectory
    }
}

/// Options of `sampleDDIM`.
public struct DDIMOptions: Sendable, Equatable {
    /// S, the number of denoiser steps (1 ... T).
    public var steps: Int
    /// eta: 0 deterministic DDIM, 1 the DDPM-like variance (Song et al. 2021, Eq. 16).
    public var eta: Double
    /// How the S timesteps are picked (`TimestepSpacing`).
    public var spacing: TimestepSpacing
    /// Clip the predicted x0 to [-1, 1] (on by default); eps is then re-derived from the clipped x0.
    public var clipX0: Bool
    /// Keep every step's x_t and x0 prediction in the output.
    public var recordTrajectory: Bool

    public init(steps: Int, eta: Double = 0, spacing: TimestepSpacing = .leading, clipX0: Bool = true,
                recordTrajectory: Bool = false) {
        precondition(steps >= 1, "DDIMOptions: steps must be at least 1, got \(steps)")
        precondition(eta >= 0, "DDIMOptions: eta must be non-negative, got \(eta)")
        self.steps = steps
        self.eta = eta
        self.spacing = spacing
        self.clipX0 = clipX0
        self.recordTrajectory = recordTrajectory
    }
}

/// What every sampler reads beyond its denoiser, process, grid, noise and batch. A sampler uses the
/// fields that apply to it (the grid already holds the steps and spacing).
public struct SamplerOptions {
    /// S, the number of denoiser steps; nil for the sampler's default (the ancestral sampler: every
    /// step of a discrete table, 1000 on a continuous process).
    public var steps: Int?
    /// DDIM's eta: 0 deterministic, 1 the DDPM-like variance.
    public var eta: Double
    /// How a discrete table's S timesteps are picked.
    public var spacing: TimestepSpacing
    /// The ancestral sampler's sigma_t^2.
    public var variance: DDPMVariance
    /// Clip the predicted x0 to [-1, 1].
    public var clipX0: Bool
    /// Keep every step's x_t and x0 prediction in the output.
    public var recordTrajectory: Bool
    /// Langevin corrector steps per noise level (`pc`, `langevin`).
    public var correctorSteps: Int
    /// The Langevin corrector's signal-to-noise ratio (score_sde: 0.16 for VE, 0.01 for VP and sub-VP).
    public var snr: Double
    /// The gradient of a noise-aware classifier, in the process's continuous time (see
    /// `ClassifierGuidance.indexed(steps:)` for a classifier of discrete timesteps).
    public var classifierGuidance: ClassifierGuidance?
    /// The adaptive ODE solver's relative tolerance rtol (`ode-rk45`; score_sde: 1e-5).
    public var relativeTolerance: Double
    /// The adaptive ODE solver's absolute tolerance atol (`ode-rk45`; score_sde: 1e-5).
    public var absoluteTolerance: Double

    public init(steps: Int? = nil, eta: Double = 0, spacing: TimestepSpacing = .leading,
                variance: DDPMVariance = .posterior, clipX0: Bool = true, recordTrajectory: Bool = false,
                correctorSteps: Int = 1, snr: Double = 0.16, classifierGuidance: ClassifierGuidance? = nil,
                relativeTolerance: Double = 1e-5, absoluteTolerance: Double = 1e-5) {
        precondition(correctorSteps >= 0 && snr > 0, "SamplerOptions: need correctorSteps >= 0 and snr > 0")
        precondition(relativeTolerance > 0 && absoluteTolerance > 0,
                     "SamplerOptions: the tolerances must be positive, got rtol \(relativeTolerance), atol \(absoluteTolerance)")
        precondition(steps == nil || steps! >= 1, "SamplerOptions: steps must be at least 1, got \(steps!)")
        precondition(eta >= 0, "SamplerOptions: eta must be non-negative, got \(eta)")
        self.steps = steps
        self.eta = eta
        self.spacing = spacing
        self.variance = variance
        self.clipX0 = clipX0
        self.recordTrajectory = recordTrajectory
        self.correctorSteps = correctorSteps
        self.snr = snr
        self.classifierGuidance = classifierGuidance
        self.relativeTolerance = relativeTolerance
        self.absoluteTolerance = absoluteTolerance
    }

    /// The options of `DDPMOptions`.
    public init(_ options: DDPMOptions) {
        self.init(variance: options.variance, clipX0: options.clipX0, recordTrajectory: options.recordTrajectory)
    }

    /// The options of `DDIMOptions`.
    public init(_ options: DDIMOptions) {
        self.init(steps: options.steps, eta: options.eta, spacing: options.spacing, clipX0: options.clipX0,
                  recordTrajectory: options.recordTrajectory)
    }
}

/// The one signature every sampler has: a denoiser, a noise process, a time grid, a noise source
/// keyed by image index, the batch and the options -> the samples.
public typealias SamplerFunction = (_ denoiser: any Denoiser, _ process: any NoiseProcess, _ grid: TimeGrid,
                                    _ noise: any NoiseSource, _ batch: SampleBatch, _ options: SamplerOptions) -> SamplerOutput

/// A sampler as the registry holds it: its name, what it does, the grid it walks for given options,
/// and its function.
public struct SamplerDefinition: @unchecked Sendable {
    /// The name `--sampler` takes.
    public let name: String
    /// One line for `--help` and error messages.
    public let summary: String
    /// The time grid for the options on a process.
    public let grid: (_ process: any NoiseProcess, _ options: SamplerOptions) -> TimeGrid
    /// The sampler.
    public let run: SamplerFunction
    /// Network evaluations per image for a grid and options (one per step unless it says otherwise);
    /// nil for an adaptive sampler, whose count depends on the data (each run's
    /// `SamplerOutput.imageEvaluations` says what it used).
    public let evaluations: (_ grid: TimeGrid, _ options: SamplerOptions) -> Int?
    /// Why the sampler cannot run on a process, or nil when it can.
    public let unsupported: (_ process: any NoiseProcess) -> String?

    public init(name: String, summary: String,
                grid: @escaping (_ process: any NoiseProcess, _ options: SamplerOptions) -> TimeGrid,
                evaluations: @escaping (_ grid: TimeGrid, _ options: SamplerOptions) -> Int? = { grid, _ in grid.steps },
                unsupported: @escaping (_ process: any NoiseProcess) -> String? = { _ in nil },
                run: @escaping SamplerFunction) {
        self.name = name
        self.summary = summary
        self.grid = grid
        self.evaluations = evaluations
        self.unsupported = unsupported
        self.run = run
    }

    /// For samplers written for variance-preserving processes (DDPM's table, VP) only.
    public static let needsVariancePreserving: (any NoiseProcess) -> String? = { process in
        process.preservesVariance ? nil : "it needs a variance-preserving process (DDPM's table or VP)"
    }
}

/// The samplers by name. The built-in ones are defined in their own files (`SamplerDefinition.ddpm`,
/// `.ddim`, `.reverseSDE`, `.probabilityFlow`, `.adaptiveProbabilityFlow`, `.predictorCorrector`,
/// `.annealedLangevin`) and listed
/// here; a new sampler is one file and one `register` call, and every command that samples takes it.
public enum SamplerRegistry {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var table: [String: SamplerDefinition] =
        Dictionary(uniqueKeysWithValues: [SamplerDefinition.ddpm, .ddim, .reverseSDE, .probabilityFlow,
                                          .adaptiveProbabilityFlow, .predictorCorrector,
                                          .annealedLangevin].map { ($0.name, $0) })

    /// Adds a sampler; a name already taken is a programming error.
    public static func register(_ definition: SamplerDefinition) {
        lock.withLock {
            precondition(table[definition.name] == nil, "SamplerRegistry: a sampler named '\(definition.name)' is already registered")
            table[definition.name] = definition
        }
    }

    /// Adds a sampler unless one of that name is registered already (for code that may run twice,
    /// such as tests).
    public static func registerIfAbsent(_ definition: SamplerDefinition) {
        lock.withLock {
            if table[definition.name] == nil { table[definition.name] = definition }
        }
    }

    /// The sampler called `name`, or nil.
    public static func definition(named name: String) -> SamplerDefinition? { lock.withLock { table[name] } }

    /// Every registered name, sorted.
    public static var names: [String] { lock.withLock { table.keys.sorted() } }
}

/// The network evaluations of the images a sampler has made: a tally that the copies of one
/// `Sampler` value share, so that a command reads what the model's sampling with its sampler used.
public final class EvaluationTally: @unchecked Sendable {
    private let lock = NSLock()
    private var images = 0, evaluations = 0

    public init() {}

    /// Adds one batch: the evaluations of each of its images.
    public func add(_ imageEvaluations: [Int]) {
        lock.withLock {
            images += imageEvaluations.count
            evaluations += imageEvaluations.reduce(0, +)
        }
    }

    /// The images counted so far.
    public var imageCount: Int { lock.withLock { images } }

    /// The mean evaluations per image so far, or nil before any image.
    public var meanPerImage: Double? {
        lock.withLock { images == 0 ? nil : Double(evaluations) / Double(images) }
    }
}

/// A registered sampler and its options, as one value (what the command line builds and the
/// conformance suite iterates over).
public struct Sampler {
    public let definition: SamplerDefinition
    public var options: SamplerOptions
    /// The evaluations of every image this value and its copies have sampled.
    public let tally = EvaluationTally()

    public init(_ definition: SamplerDefinition, options: SamplerOptions) {
        self.definition = definition
        self.options = options
    }

    /// The registered sampler `name`; throws a message listing the registered names otherwise.
    public init(named name: String, options: SamplerOptions) throws {
        guard let definition = SamplerRegistry.definition(named: name) else {
            throw UnknownSampler(name: name, known: SamplerRegistry.names)
        }
        self.init(definition, options: options)
    }

    /// DDPM's ancestral sampler.
    public static func ddpm(_ options: DDPMOptions = DDPMOptions()) -> Sampler { Sampler(.ddpm, options: SamplerOptions(options)) }

    /// DDIM.
    public static func ddim(_ options: DDIMOptions) -> Sampler { Sampler(.ddim, options: SamplerOptions(options)) }

    /// The registered name.
    public var name: String { definition.name }

    /// The grid this sampler walks on `process`.
    public func grid(on process: any NoiseProcess) -> TimeGrid { definition.grid(process, options) }

    /// Throws when this sampler cannot run on `process`, saying why.
    public func check(_ process: any NoiseProcess) throws {
        if let reason = definition.unsupported(process) { throw UnsupportedSampler(name: name, reason: reason) }
    }

    /// Network evaluations per image on `process` (a classifier-free guided model evaluates twice
    /// each); nil for an adaptive sampler, whose count depends on the data.
    public func evaluations(on process: any NoiseProcess) -> Int? { definition.evaluations(grid(on: process), options) }

    /// Whether the sampler adapts its steps to the data (its evaluations are known only once it has run).
    public func isAdaptive(on process: any NoiseProcess) -> Bool { evaluations(on: process) == nil }

    /// Network evaluations per image on `process`: the fixed count, or for an adaptive sampler the
    /// mean over the images it has sampled, rounded (nil before it has sampled any).
    public func evaluationsPerImage(on process: any NoiseProcess) -> Int? {
        evaluations(on: process) ?? tally.meanPerImage.map { Int($0.rounded()) }
    }

    /// How the sampler steps, for reports: "S steps", or an adaptive one's tolerances.
    public func stepsDescription(on process: any NoiseProcess) -> String {
        isAdaptive(on: process) ? "rtol \(options.relativeTolerance), atol \(options.absoluteTolerance)"
                                : "\(grid(on: process).steps) steps"
    }

    /// The timesteps the sampler visits on a T-step table (one denoiser call each), noisiest first.
    public func timesteps(trainingSteps: Int) -> [Int] {
        let table = DiscreteDDPMProcess(schedule: .linear(T: trainingSteps))
        return grid(on: table).times.dropLast().map(table.index(ofTime:))
    }

    /// Samples one batch in continuous time, adding its evaluations to `tally`.
    public func sample(_ denoiser: any Denoiser, process: any NoiseProcess, noise: any NoiseSource,
                       batch: SampleBatch) -> SamplerOutput {
        let output = definition.run(denoiser, process, grid(on: process), noise, batch, options)
        tally.add(output.imageEvaluations)
        return output
    }

    /// Samples images startIndex..<startIndex + count in batches of at most `batchSize` (the first
    /// starting at `startIndex`); image i is the same whatever `count`, `startIndex` and `batchSize`
    /// (its noise is keyed by i), up to float rounding in the network, and bit for bit when its
    /// batch holds the same images.
    ///
    /// - Parameters:
    ///   - labels: one label per image (count of them) for a class-conditional denoiser, else nil.
    ///   - imageShape: one image's shape, channels-last (a latent is just another shape).
    ///   - startIndex: the index of the first image (a shard of a run split over processes).
    ///   - progress: called after each batch with (images done, count).
    /// - Returns: (count, imageShape...).
    public func sample(_ denoiser: any Denoiser, process: any NoiseProcess, noise: any NoiseSource, count: Int,
                       batchSize: Int, labels: [Int]? = nil, imageShape: [Int], startIndex: Int = 0,
                       progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        precondition(count >= 1 && batchSize >= 1, "Sampler: count \(count) and batch size \(batchSize) must be positive")
        precondition(labels == nil || labels!.count == count, "Sampler: \(labels!.count) labels for \(count) images")
        precondition(startIndex >= 0, "Sampler: negative start index \(startIndex)")
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: batchSize) {
            let range = start..<min(start + batchSize, count)
            let batch = SampleBatch(indices: Array((startIndex + range.lowerBound)..<(startIndex + range.upperBound)),
                                    labels: labels.map { Array($0[range]) }, imageShape: imageShape)
            parts.append(sample(denoiser, process: process, noise: noise, batch: batch).sample)
            progress?(range.upperBound, count)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }

    /// Samples one batch from a model of DDPM's discrete timesteps on its table: the model sees the
    /// indices it was trained on, and `classifierGuidance` takes indices too.
    public func sample(_ denoiser: some IndexedDenoiser, schedule: NoiseSchedule, noise: some NoiseSource,
                       batch: SampleBatch, classifierGuidance: ClassifierGuidance? = nil) -> SamplerOutput {
        indexed(by: schedule, classifierGuidance).sample(DiscreteTimeDenoiser(denoiser, steps: schedule.steps),
                                                         process: DiscreteDDPMProcess(schedule: schedule), noise: noise, batch: batch)
    }

    /// `sample(_:process:noise:count:batchSize:labels:imageShape:progress:)` for a model of DDPM's
    /// discrete timesteps on its table.
    public func sample(_ denoiser: some IndexedDenoiser, schedule: NoiseSchedule, noise: some NoiseSource, count: Int,
                       batchSize: Int, labels: [Int]? = nil, imageShape: [Int],
                       classifierGuidance: ClassifierGuidance? = nil,
                       progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        indexed(by: schedule, classifierGuidance).sample(DiscreteTimeDenoiser(denoiser, steps: schedule.steps),
                                                         process: DiscreteDDPMProcess(schedule: schedule), noise: noise,
                                                         count: count, batchSize: batchSize, labels: labels,
                                                         imageShape: imageShape, progress: progress)
    }

    /// This sampler with classifier guidance of a classifier of the table's indices (or none).
    private func indexed(by schedule: NoiseSchedule, _ classifierGuidance: ClassifierGuidance?) -> Sampler {
        var copy = self
        copy.options.classifierGuidance = classifierGuidance?.indexed(steps: schedule.steps)
        return copy
    }
}

/// A `--sampler` name that no sampler is registered under.
public struct UnknownSampler: Error, CustomStringConvertible {
    public let name: String
    public let known: [String]
    public var description: String { "no sampler is named '\(name)' (registered: \(known.joined(separator: ", ")))" }
}

/// A sampler asked to run on a process it was not written for.
public struct UnsupportedSampler: Error, CustomStringConvertible {
    public let name: String
    public let reason: String
    public var description: String { "--sampler \(name) cannot sample this model: \(reason)" }
}

/// The first x_T of a batch, checked.
func startingNoise(_ noise: any NoiseSource, batch: SampleBatch) -> Tensor {
    let x = noise.initialNoise(indices: batch.indices, imageShape: batch.imageShape)
    precondition(x.shape == [batch.count] + batch.imageShape && x.dtype == .float32,
                 "sampler: the noise source gave x_T \(x.shape) \(x.dtype), expected float32 \([batch.count] + batch.imageShape)")
    return x
}

/// One denoiser call without gradient recording, checked.
func callDenoiser(_ denoiser: any Denoiser, _ x: Tensor, time: Tensor, y: Tensor?) -> Tensor {
    let out = withoutGradients { denoiser(x, time: time, y: y) }
    precondition(out.shape == x.shape, "sampler: the denoiser returned \(out.shape) for x_t \(x.shape)")
    return out
}

/// A trajectory step's index on a discrete table, -1 on a continuous process.
func tableIndex(_ process: any NoiseProcess, _ time: Double) -> Int {
    (process as? DiscreteDDPMProcess)?.index(ofTime: time) ?? -1
}
