import Foundation

/// The images a sampler makes in one call: their indices in the run (which key their noise), their
/// labels for a class-conditional denoiser, and the shape of one image.
public struct SampleBatch: Sendable, Equatable {
    /// Image indices in the run (noise keys), one per batch row; distinct.
    public var indices: [Int]
    /// One label per image for a class-conditional denoiser, else nil.
    public var labels: [Int]?
    /// One image's shape, channels-last (H, W, C): (28, 28, 1) for Fashion-MNIST.
    public var imageShape: [Int]

    public init(indices: [Int], labels: [Int]? = nil, imageShape: [Int] = [28, 28, 1]) {
        precondition(!indices.isEmpty, "SampleBatch: no images")
        precondition(Set(indices).count == indices.count, "SampleBatch: repeated image indices \(indices)")
        precondition(labels == nil || labels!.count == indices.count,
                     "SampleBatch: \(labels!.count) labels for \(indices.count) images")
        self.indices = indices
        self.labels = labels
        self.imageShape = imageShape
    }

    /// Images 0..<count.
    public init(count: Int, labels: [Int]? = nil, imageShape: [Int] = [28, 28, 1]) {
        self.init(indices: Array(0..<count), labels: labels, imageShape: imageShape)
    }

    /// B.
    public var count: Int { indices.count }

    /// The labels as an int64 tensor (B), or nil.
    public var labelTensor: Tensor? { labels.map { Tensor($0.map(Int64.init), shape: [$0.count]) } }

    /// Timestep `t` for every image, int64 (B).
    func timesteps(_ t: Int) -> Tensor { Tensor([Int64](repeating: Int64(t), count: count), shape: [count]) }
}

/// One step of a sampler's trajectory: the x_t it started from and its prediction of x0 there (after
/// guidance and clipping).
public struct SamplerStep {
    /// The timestep t of this step (0-based).
    public let t: Int
    /// x_t, (B, H, W, C).
    public let x: Tensor
    /// The predicted x0 at this step, (B, H, W, C).
    public let predictedX0: Tensor
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

/// A sampler and its options, as one value (what the command line builds and the conformance suite
/// iterates over). Each case runs the pure function of its file.
public enum Sampler: Sendable, Equatable {
    case ddpm(DDPMOptions)
    case ddim(DDIMOptions)

    /// The timesteps the sampler visits (one denoiser call each), noisiest first.
    public func timesteps(trainingSteps: Int) -> [Int] {
        switch self {
        case .ddpm: return Array((0..<trainingSteps).reversed())
        case let .ddim(options):
            return ddimTimesteps(steps: options.steps, trainingSteps: trainingSteps, spacing: options.spacing)
        }
    }

    /// Samples one batch (see `sampleDDPM` and `sampleDDIM`).
    public func sample(_ denoiser: some Denoiser, schedule: NoiseSchedule, noise: some NoiseSource,
                       batch: SampleBatch, classifierGuidance: ClassifierGuidance? = nil) -> SamplerOutput {
        switch self {
        case let .ddpm(options):
            return sampleDDPM(denoiser, schedule: schedule, noise: noise, batch: batch, options: options,
                              classifierGuidance: classifierGuidance)
        case let .ddim(options):
            return sampleDDIM(denoiser, schedule: schedule, noise: noise, batch: batch, options: options,
                              classifierGuidance: classifierGuidance)
        }
    }

    /// Samples images 0..<count in batches of at most `batchSize`; image i is the same whatever
    /// `count` and `batchSize` (its noise is keyed by i), up to float rounding in the network.
    ///
    /// - Parameters:
    ///   - labels: one label per image (count of them) for a class-conditional denoiser, else nil.
    ///   - progress: called after each batch with (images done, count).
    /// - Returns: (count, imageShape...).
    public func sample(_ denoiser: some Denoiser, schedule: NoiseSchedule, noise: some NoiseSource, count: Int,
                       batchSize: Int, labels: [Int]? = nil, imageShape: [Int] = [28, 28, 1],
                       classifierGuidance: ClassifierGuidance? = nil,
                       progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        precondition(count >= 1 && batchSize >= 1, "Sampler: count \(count) and batch size \(batchSize) must be positive")
        precondition(labels == nil || labels!.count == count, "Sampler: \(labels!.count) labels for \(count) images")
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: batchSize) {
            let range = start..<min(start + batchSize, count)
            let batch = SampleBatch(indices: Array(range), labels: labels.map { Array($0[range]) },
                                    imageShape: imageShape)
            parts.append(sample(denoiser, schedule: schedule, noise: noise, batch: batch,
                                classifierGuidance: classifierGuidance).sample)
            progress?(range.upperBound, count)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }
}

/// The first x_T of a batch, checked.
func startingNoise(_ noise: some NoiseSource, batch: SampleBatch) -> Tensor {
    let x = noise.initialNoise(indices: batch.indices, imageShape: batch.imageShape)
    precondition(x.shape == [batch.count] + batch.imageShape && x.dtype == .float32,
                 "sampler: the noise source gave x_T \(x.shape) \(x.dtype), expected float32 \([batch.count] + batch.imageShape)")
    return x
}

/// One denoiser call without gradient recording, checked.
func callDenoiser(_ denoiser: some Denoiser, _ x: Tensor, t: Tensor, y: Tensor?) -> Tensor {
    let out = withoutGradients { denoiser(x, t: t, y: y) }
    precondition(out.shape == x.shape, "sampler: the denoiser returned \(out.shape) for x_t \(x.shape)")
    return out
}
