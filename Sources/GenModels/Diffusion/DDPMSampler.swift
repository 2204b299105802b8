import Foundation

// DDPM ancestral sampling: Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models",
// Algorithm 2 (the chapter's Algorithm 6-2), with 0-based timesteps t = T-1 ... 0.
//
// Notation (code -> paper):
//   x                      x_t, the current sample; starts as x_T ~ N(0, I) (`noise.initialNoise`)
//   t                      t - 1 of the paper's 1-based t (code t = 0 is the paper's t = 1)
//   schedule.betas[t]      beta_t
//   schedule.alphas[t]     alpha_t = 1 - beta_t
//   schedule.alphaBars[t]  abar_t = prod_{s <= t} alpha_s; abarPrev = abar_{t-1}, 1 at t = 0
//   eps                    eps_theta(x_t, t), from the denoiser's output (`PredictionType`)
//   x0                     the predicted x_0 (Ho et al. Eq. 15), clipped to [-1, 1] when `clipX0`
//   mean                   mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) (Eq. 11);
//                          with clipping, the posterior mean of Eq. 7 at the clipped x0:
//                          sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
//   variance               sigma_t^2: beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) or beta_t (Sec. 3.2)
//   z                      z ~ N(0, I) of step t (`noise.stepNoise(t:)`); none at t = 0
//   guidance               classifier guidance, Dhariwal & Nichol (2021) Algorithm 1: mean += s sigma_t^2 grad log p(y | x_t)
//
// Scalars are float32 in the order PyTorch evaluates them on a float32 schedule, so the fixtures'
// reference loop (scripts/make-fixtures.py, samplers_case) is followed operation by operation.

/// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2): T denoiser calls, t = T-1 down to 0,
/// x_{t-1} = mu_theta(x_t, t) + sigma_t z with no noise at the last step.
///
/// A pure function: the schedule, the noise and the options are all handed in.
///
/// - Parameters:
///   - denoiser: the model (any `PredictionType`); conditional on `batch.labels` when given.
///   - schedule: the noise schedule the model was trained with (T = `schedule.steps`).
///   - noise: x_T and each step's z, keyed by image index (`SeededNoise`, `ExplicitNoise`).
///   - batch: which images (their indices key the noise), their labels and shape.
///   - options: sigma_t^2 (posterior variance by default), x0 clipping (on by default), trajectory.
///   - classifierGuidance: shifts each step's mean by s sigma_t^2 grad log p(y | x_t) (needs labels).
/// - Returns: x_0 (B, H, W, C), with the trajectory when asked for; T denoiser calls.
public func sampleDDPM(_ denoiser: some Denoiser, schedule: NoiseSchedule, noise: some NoiseSource,
                       batch: SampleBatch, options: DDPMOptions = DDPMOptions(),
                       classifierGuidance: ClassifierGuidance? = nil) -> SamplerOutput {
    let y = batch.labelTensor
    precondition(classifierGuidance == nil || y != nil, "sampleDDPM: classifier guidance needs labels")
    var x = startingNoise(noise, batch: batch)
    var trajectory: [SamplerStep] = []
    for t in stride(from: schedule.steps - 1, through: 0, by: -1) {
        let tt = batch.timesteps(t)
        let beta = schedule.betas[t], alpha = schedule.alphas[t], alphaBar = schedule.alphaBars[t]
        let alphaBarPrev = schedule.alphaBarPrevious(t)
        let variance: Float = options.variance == .posterior ? schedule.posteriorVariance(t) : beta
        let guidanceGradient = classifierGuidance.map { $0.evaluate(x, t: tt, y: y) }
        x = withoutGradients {
            let output = callDenoiser(denoiser, x, t: tt, y: y)
            let (eps, predictedX0) = denoiser.prediction.epsilonAndX0(output, x: x, alphaBar: alphaBar)
            var x0 = predictedX0
            var mean: Tensor
            if options.clipX0 && t == 0 {
                // abar_{-1} = 1: the posterior mean is x0 itself (its coefficients, formed in float32,
                // would miss 1 by the rounding of 1 - abar_0, up to 3e-4 relative for beta_0 = 1e-4).
                x0 = x0.clamped(min: -1, max: 1)
                mean = x0
            } else if options.clipX0 {
                x0 = x0.clamped(min: -1, max: 1)
                let x0Coefficient = beta * alphaBarPrev.squareRoot() / (1 - alphaBar)
                let xtCoefficient = (1 - alphaBarPrev) * alpha.squareRoot() / (1 - alphaBar)
                mean = Double(x0Coefficient) * x0 + Double(xtCoefficient) * x
            } else {
                let epsCoefficient = beta / (1 - alphaBar).squareRoot()
                mean = (x - Double(epsCoefficient) * eps) / Double(alpha.squareRoot())
            }
            if let classifierGuidance, let guidanceGradient {
                mean = mean + (classifierGuidance.scale * Double(variance)) * guidanceGradient
            }
            if options.recordTrajectory { trajectory.append(SamplerStep(t: t, x: x, predictedX0: x0)) }
            guard t > 0 else { return mean }
            let z = noise.stepNoise(t: t, indices: batch.indices, imageShape: batch.imageShape)
            precondition(z.shape == x.shape, "sampleDDPM: step noise \(z.shape) for x_t \(x.shape)")
            return mean + Double(variance.squareRoot()) * z
        }
    }
    return SamplerOutput(sample: x, trajectory: trajectory, denoiserCalls: schedule.steps)
}
