import Foundation
import GenTensor
import GenFormats
import GenNN

// DDIM sampling: Song, Meng & Ermon (2021), "Denoising Diffusion Implicit Models", Eq. 12 and 16,
// over a subsequence tau of the training timesteps (Sec. 4.2), with 0-based timesteps.
//
// Notation (code -> paper; the paper's alpha_t is our abar_t):
//   timesteps                tau_S > ... > tau_1, the S visited timesteps (`ddimTimesteps`), noisiest first
//   t, tPrev                 tau_i and tau_{i-1}, tPrev READ from `timesteps` (the next entry), never computed
//   alphaBar, alphaBarPrev   alpha_{tau_i}, alpha_{tau_{i-1}}; alphaBarPrev = 1 after the last step
//   eps                      eps_theta(x_t), from the denoiser's output (`PredictionType`)
//   x0                       "predicted x_0" = (x_t - sqrt(1 - alpha_t) eps) / sqrt(alpha_t); clipped to
//                            [-1, 1] when `clipX0`, and eps then re-derived from it (as guided-diffusion)
//   sigma                    sigma_{tau_i}(eta) = eta sqrt((1 - alpha_prev) / (1 - alpha_t)) sqrt(1 - alpha_t / alpha_prev) (Eq. 16)
//   direction                sqrt(1 - alpha_prev - sigma^2) eps, the "direction pointing to x_t"
//   z                        eps_t ~ N(0, I) of the step leaving t (`noise.stepNoise(t:)`), only when sigma > 0
//   update                   x_prev = sqrt(alpha_prev) x0 + direction + sigma z (Eq. 12)
//   guidance                 classifier guidance, Dhariwal & Nichol (2021) Eq. 14:
//                            eps_hat = eps - s sqrt(1 - alpha_t) grad log p(y | x_t), x0 from eps_hat
//
// eta = 0 is the deterministic DDIM; eta = 1 with all T timesteps is DDPM with sigma_t^2 = beta_tilde_t.
// Scalars are float32 in the order PyTorch evaluates them on a float32 schedule (the fixtures'
// reference loop in scripts/make-fixtures.py, samplers_case).

extension SamplerDefinition {
    /// `--sampler ddim`: DDIM (eta 0 deterministic) over S steps (20 by default), picked by `spacing`
    /// on a discrete table, evenly spaced on a continuous variance-preserving process.
    public static let ddim = SamplerDefinition(
        name: "ddim", summary: "DDIM (Song, Meng & Ermon 2021), S steps, eta 0 deterministic",
        grid: { process, options in .spaced(process, steps: options.steps ?? 20, spacing: options.spacing) },
        unsupported: needsVariancePreserving,
        run: sampleDDIM)
}

/// DDIM sampling (Song et al. 2021) over a time grid: one denoiser call per step, each stepping to
/// the next grid time (the last one to t = 0, abar = 1).
///
/// A pure function: the process, the grid, the noise and the options are all handed in. With eta = 0
/// only x_T is drawn from `noise`.
///
/// - Parameters:
///   - denoiser: the model (any `PredictionType`); conditional on `batch.labels` when given.
///   - process: a variance-preserving process (DDPM's table, VP).
///   - grid: the times, noisiest first (`TimeGrid.spaced`).
///   - noise: x_T and, for eta > 0, each step's z, keyed by image index.
///   - batch: which images (their indices key the noise), their labels and shape.
///   - options: eta, x0 clipping (on by default), trajectory, and classifier guidance (replaces eps by
///     eps - s sqrt(1 - abar_t) grad log p(y | x_t); needs labels).
/// - Returns: x_0 (B, ...), with the trajectory when asked for; one denoiser call per step.
public func sampleDDIM(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid, noise: any NoiseSource,
                       batch: SampleBatch, options: SamplerOptions) -> SamplerOutput {
    precondition(process.preservesVariance, "sampleDDIM: DDIM here needs a variance-preserving process")
    let y = batch.labelTensor
    let classifierGuidance = options.classifierGuidance
    precondition(classifierGuidance == nil || y != nil, "sampleDDIM: classifier guidance needs labels")
    var x = startingNoise(noise, batch: batch)
    var trajectory: [SamplerStep] = []
    for (time, nextTime) in zip(grid.times, grid.times.dropFirst()) {
        let tt = batch.times(time)
        let alphaBar = Float(process.alphaBar(time))
        let alphaBarPrev = Float(process.alphaBar(nextTime))
        let signal = Double(alphaBar.squareRoot()), noiseLevel = Double((1 - alphaBar).squareRoot())
        let guidanceGradient = classifierGuidance.map { $0.evaluate(x, time: tt, y: y) }
        x = withoutGradients {
            let output = callDenoiser(denoiser, x, time: tt, y: y)
            var (eps, x0) = denoiser.prediction.epsilonAndX0(output, x: x, alphaBar: alphaBar)
            if let classifierGuidance, let guidanceGradient {
                eps = eps - (classifierGuidance.scale * noiseLevel) * guidanceGradient
                x0 = (x - noiseLevel * eps) / signal
            }
            if options.clipX0 {
                x0 = x0.clamped(min: -1, max: 1)
                eps = (x - signal * x0) / noiseLevel
            }
            if options.recordTrajectory {
                trajectory.append(SamplerStep(time: time, t: tableIndex(process, time), x: x, predictedX0: x0))
            }
            let sigma = Float(options.eta) * ((1 - alphaBarPrev) / (1 - alphaBar)).squareRoot()
                * (1 - alphaBar / alphaBarPrev).squareRoot()
            let direction = max(0, 1 - alphaBarPrev - sigma * sigma).squareRoot()
            let next = Double(alphaBarPrev.squareRoot()) * x0 + Double(direction) * eps
            guard sigma > 0 else { return next }
            let z = noise.stepNoise(t: process.noiseKey(ofTime: time), indices: batch.indices, imageShape: batch.imageShape)
            precondition(z.shape == x.shape, "sampleDDIM: step noise \(z.shape) for x_t \(x.shape)")
            return next + Double(sigma) * z
        }
    }
    return SamplerOutput(sample: x, trajectory: trajectory, denoiserCalls: grid.steps)
}

/// DDIM sampling of a model of discrete timesteps on its table, at `ddimTimesteps(steps:trainingSteps:spacing:)`.
public func sampleDDIM(_ denoiser: some IndexedDenoiser, schedule: NoiseSchedule, noise: some NoiseSource,
                       batch: SampleBatch, options: DDIMOptions,
                       classifierGuidance: ClassifierGuidance? = nil) -> SamplerOutput {
    Sampler.ddim(options).sample(denoiser, schedule: schedule, noise: noise, batch: batch,
                                 classifierGuidance: classifierGuidance)
}
