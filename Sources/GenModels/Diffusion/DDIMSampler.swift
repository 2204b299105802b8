import Foundation

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

/// DDIM sampling (Song et al. 2021): S denoiser calls at `ddimTimesteps(steps:trainingSteps:spacing:)`,
/// each stepping to the next listed timestep, the last to abar = 1.
///
/// A pure function: the schedule, the noise and the options are all handed in. With eta = 0 only x_T
/// is drawn from `noise`.
///
/// - Parameters:
///   - denoiser: the model (any `PredictionType`); conditional on `batch.labels` when given.
///   - schedule: the noise schedule the model was trained with (T = `schedule.steps`).
///   - noise: x_T and, for eta > 0, each step's z, keyed by image index.
///   - batch: which images (their indices key the noise), their labels and shape.
///   - options: steps S, eta, timestep spacing, x0 clipping (on by default), trajectory.
///   - classifierGuidance: replaces eps by eps - s sqrt(1 - abar_t) grad log p(y | x_t) (needs labels).
/// - Returns: x_0 (B, H, W, C), with the trajectory when asked for; S denoiser calls.
public func sampleDDIM(_ denoiser: some Denoiser, schedule: NoiseSchedule, noise: some NoiseSource,
                       batch: SampleBatch, options: DDIMOptions,
                       classifierGuidance: ClassifierGuidance? = nil) -> SamplerOutput {
    let y = batch.labelTensor
    precondition(classifierGuidance == nil || y != nil, "sampleDDIM: classifier guidance needs labels")
    let timesteps = ddimTimesteps(steps: options.steps, trainingSteps: schedule.steps, spacing: options.spacing)
    var x = startingNoise(noise, batch: batch)
    var trajectory: [SamplerStep] = []
    for (i, t) in timesteps.enumerated() {
        let tt = batch.timesteps(t)
        let alphaBar = schedule.alphaBars[t]
        let alphaBarPrev: Float = i + 1 < timesteps.count ? schedule.alphaBars[timesteps[i + 1]] : 1
        let signal = Double(alphaBar.squareRoot()), noiseLevel = Double((1 - alphaBar).squareRoot())
        let guidanceGradient = classifierGuidance.map { $0.evaluate(x, t: tt, y: y) }
        x = withoutGradients {
            let output = callDenoiser(denoiser, x, t: tt, y: y)
            var (eps, x0) = denoiser.prediction.epsilonAndX0(output, x: x, alphaBar: alphaBar)
            if let classifierGuidance, let guidanceGradient {
                eps = eps - (classifierGuidance.scale * noiseLevel) * guidanceGradient
                x0 = (x - noiseLevel * eps) / signal
            }
            if options.clipX0 {
                x0 = x0.clamped(min: -1, max: 1)
                eps = (x - signal * x0) / noiseLevel
            }
            if options.recordTrajectory { trajectory.append(SamplerStep(t: t, x: x, predictedX0: x0)) }
            let sigma = Float(options.eta) * ((1 - alphaBarPrev) / (1 - alphaBar)).squareRoot()
                * (1 - alphaBar / alphaBarPrev).squareRoot()
            let direction = max(0, 1 - alphaBarPrev - sigma * sigma).squareRoot()
            let next = Double(alphaBarPrev.squareRoot()) * x0 + Double(direction) * eps
            guard sigma > 0 else { return next }
            let z = noise.stepNoise(t: t, indices: batch.indices, imageShape: batch.imageShape)
            precondition(z.shape == x.shape, "sampleDDIM: step noise \(z.shape) for x_t \(x.shape)")
            return next + Double(sigma) * z
        }
    }
    return SamplerOutput(sample: x, trajectory: trajectory, denoiserCalls: timesteps.count)
}
