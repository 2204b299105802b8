import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Sampling a DDPM through the model interface: any registered sampler that runs on its discrete
/// table (default DDIM, 20 steps), classifier-free guidance for class-conditional networks, and a
/// noisy classifier's guidance.
extension DDPMTraining: GenerativeModel {
    /// The sampler when the options name none.
    public static let defaultSampler = "ddim", defaultSteps = 20

    public var classCount: Int { config.classes }

    public func validate(_ options: SamplingOptions) throws {
        try refuseTemperature(options)
        let sampler = chosenSampler(options)
        try sampler.check(process)
        guard (sampler.options.steps ?? 0) <= schedule.steps else { throw ModelError("--steps must be at most \(schedule.steps)") }
        if options.guidance != nil && config.classes == 0 && options.classifierGuidance == nil {
            throw ModelError("the ddpm is unconditional: --guidance needs a class-conditional model (train ddpm --classes)")
        }
    }

    /// Unlabelled samples of a class-conditional network take the null label (unconditional).
    public func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try validate(options)
        let labels = labels ?? nullLabels(count: count)
        return sample(count: count, sampler: chosenSampler(options), seed: seed, batchSize: options.batchSize, labels: labels,
                      guidance: options.guidance, classifierGuidance: options.classifierGuidance, ema: options.ema,
                      startIndex: startIndex, progress: progress)
    }

    /// Two evaluations per step with classifier-free guidance, plus the classifier's forward and
    /// backward (counted as one) with classifier guidance; an adaptive sampler's are those its
    /// sampling used.
    public func evaluationsPerImage(_ options: SamplingOptions) throws -> Int {
        let perStep = (options.guidance == nil || options.classifierGuidance != nil ? 1 : 2) + (options.classifierGuidance == nil ? 0 : 1)
        return try chosenSampler(options).requiredEvaluationsPerImage(on: process) * perStep
    }

    public var likelihoodMethods: [LikelihoodMethod] { [.vlb, .ode] }

    /// Bits per dimension of the EMA weights (class-conditional networks unconditionally, by the null
    /// label): `vlb`, the variational bound of the pixels round(255 x) on the 8-bit grid with the
    /// ancestral sampler's posterior variance and clipping (`variationalBound`, T network evaluations
    /// per image); `ode`, the probability-flow ODE of the table read as its continuous VP SDE (see
    /// `continuousScoreModel`), on uniformly dequantised pixels.
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64, progress: ((Double) -> Void)?) throws -> [Double] {
        let n = images.shape[0]
        let dimensions = images.elementCount / max(n, 1)
        let indices = Array(startIndex..<(startIndex + n))
        switch method {
        case .vlb:
            let x0 = Dequantization.gridValues(images)
            let bound = variationalBound(denoiser(ema: true).base, schedule: schedule, x0: x0, labels: nullLabels(count: n),
                                         indices: indices, seed: seed, progress: progress)
            return bound.total.map { $0 / (Double(dimensions) * log(2)) }
        case .ode:
            let (network, process) = try continuousScoreModel()
            let x = Dequantization.dequantize(images, startIndex: startIndex, seed: seed) * 2 - 1
            return probabilityFlowLogLikelihood(network, process: process, x: x, labels: nullLabels(count: n), indices: indices,
                                                seed: seed, options: options, progress: progress)
                .map { GenModels.bitsPerDimension(logLikelihood: $0, dimensions: dimensions) }
        case .exact:
            throw ModelError("a ddpm has no exact likelihood: --likelihood-method vlb (the variational bound) or ode")
        }
    }

    /// The EMA network read as a score model in continuous time, as score_sde reads DDPM checkpoints:
    /// the linear table of T steps from beta_0 to beta_{T-1} is the VP SDE with beta(t) linear from
    /// T beta_0 to T beta_{T-1} (0.1 to 20 for Ho et al.'s table), and time t enters the network as
    /// the fractional index T t - 1 (index i sits at t = (i + 1) / T on the table), clamped at 0.
    /// Only the linear table has this limit; a cosine one is refused.
    public func continuousScoreModel() throws -> (TimeFunctionDenoiser, VPProcess) {
        guard config.schedule == .linear else {
            throw ModelError("the probability-flow likelihood reads a linear table as the VP SDE; this ddpm's table is \(config.schedule.rawValue): use --likelihood-method vlb")
        }
        let network = samplingNetwork(ema: true)
        let steps = Double(schedule.steps)
        let process = VPProcess(schedule: .linear(betaMin: steps * Double(schedule.betas[0]),
                                                  betaMax: steps * Double(schedule.betas[schedule.steps - 1])), minimumTime: 1e-3)
        let denoiser = TimeFunctionDenoiser(prediction: config.prediction) { x, time, y in
            let index = time.scalars(as: Double.self).map { Float(max(0, steps * $0 - 1)) }
            return network(x, t: Tensor(index, shape: [index.count]), y: y)
        }
        return (denoiser, process)
    }

    public func samplingSummary(_ options: SamplingOptions) -> String {
        let sampler = chosenSampler(options)
        let name = sampler.reportName(on: process)
        return "ddpm (\(name)\(options.guidance.map { ", guidance \($0)" } ?? ""), \(Self.weightsWord(options)))"
    }
}

/// Sampling a score model through the model interface: any registered sampler that runs on its
/// SDE (default the probability-flow ODE by Heun, 20 steps), classifier-free guidance, and the
/// likelihood along the probability-flow ODE.
extension ScoreModelTraining: GenerativeModel {
    public var classCount: Int { config.classes }

    public func validate(_ options: SamplingOptions) throws {
        try refuseTemperature(options)
        try chosenSampler(options).check(process)
        if options.guidance != nil && config.classes == 0 {
            throw ModelError("the sgm is unconditional: --guidance needs a class-conditional model (train sgm --classes)")
        }
        if options.classifierGuidance != nil { throw ModelError("classifier guidance needs a ddpm (its noisy classifier sees the table's indices)") }
    }

    /// Unlabelled samples of a class-conditional network take the null label (unconditional).
    public func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        try validate(options)
        let labels = labels ?? nullLabels(count: count)
        return try sample(count: count, sampler: chosenSampler(options), seed: seed, batchSize: options.batchSize, labels: labels,
                          guidance: options.guidance, ema: options.ema, startIndex: startIndex, progress: progress)
    }

    public func evaluationsPerImage(_ options: SamplingOptions) throws -> Int {
        try chosenSampler(options).requiredEvaluationsPerImage(on: process) * (options.guidance == nil ? 1 : 2)
    }

    public func samplingSummary(_ options: SamplingOptions) -> String {
        let sampler = chosenSampler(options)
        return "sgm (\(config.sde.rawValue) SDE, \(sampler.name) \(sampler.stepsDescription(on: process))"
            + "\(options.guidance.map { ", guidance \($0)" } ?? ""), \(Self.weightsWord(options)))"
    }

    public var likelihoodMethods: [LikelihoodMethod] { [.ode] }

    /// Bits per dimension along the probability-flow ODE (RK4 from t = eps to T): the 8-bit pixels
    /// round(255 x) dequantised with uniform noise keyed by (seed, image index), scaled to [-1, 1],
    /// with the bits/dim offset of that scaling. Class-conditional networks are evaluated
    /// unconditionally (the null label).
    public func bitsPerDimension(_ images: Tensor, startIndex: Int, method: LikelihoodMethod, options: LikelihoodOptions,
                                 seed: UInt64, progress: ((Double) -> Void)?) throws -> [Double] {
        guard method == .ode else { throw ModelError("score models measure their likelihood by the probability-flow ODE (--likelihood-method ode)") }
        let n = images.shape[0]
        let dimensions = images.elementCount / max(n, 1)
        let x = Dequantization.dequantize(images, startIndex: startIndex, seed: seed) * 2 - 1
        let labels = nullLabels(count: n)
        let logLikelihoods = probabilityFlowLogLikelihood(scoreNetwork(ema: true), process: process, x: x, labels: labels,
                                                          indices: Array(startIndex..<(startIndex + n)), seed: seed, options: options,
                                                          progress: progress)
        return logLikelihoods.map { GenModels.bitsPerDimension(logLikelihood: $0, dimensions: dimensions) }
    }
}
