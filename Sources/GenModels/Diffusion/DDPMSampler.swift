import Foundation
import GenTensor
import GenFormats
import GenNN

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

extension SamplerDefinition {
    /// `--sampler ddpm`: DDPM's ancestral sampler, every step of a discrete table (or `steps`, 1000
    /// by default, evenly spaced on a continuous variance-preserving process).
    public static let ddpm = SamplerDefinition(
        name: "ddpm", summary: "DDPM's ancestral sampler (Ho et al. 2020), every step of the table",
        grid: { process, options in
            if let table = process as? DiscreteDDPMProcess {
                return .discrete(table, indices: Array((0..<table.steps).reversed()))
            }
            return .uniform(steps: options.steps ?? 1000, on: process)
        },
        unsupported: needsVariancePreserving,
        run: sampleDDPM)
}

/// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) over a time grid: one denoiser call per
/// step, x_{t-1} = mu_theta(x_t, t) + sigma_t z, with no noise on the step that lands on t = 0.
/// On a discrete table's full grid every quantity is the table's own, so the samples are those of
/// the sampler as first written.
///
/// A pure function: the process, the grid, the noise and the options are all handed in.
///
/// - Parameters:
///   - denoiser: the model (any `PredictionType`); conditional on `batch.labels` when given.
///   - process: a variance-preserving process (DDPM's table, VP).
///   - grid: the times, noisiest first (`SamplerDefinition.ddpm.grid`).
///   - noise: x_T and each step's z, keyed by image index (`SeededNoise`, `ExplicitNoise`).
///   - batch: which images (their indices key the noise), their labels and shape.
///   - options: sigma_t^2 (posterior variance by default), x0 clipping (on by default), trajectory,
///     classifier guidance (shifts each step's mean by s sigma_t^2 grad log p(y | x_t); needs labels).
/// - Returns: x_0 (B, ...), with the trajectory when asked for; one denoiser call per step.
public func sampleDDPM(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid, noise: any NoiseSource,
                       batch: SampleBatch, options: SamplerOptions) -> SamplerOutput {
    precondition(process.preservesVariance, "sampleDDPM: the ancestral sampler needs a variance-preserving process")
    let y = batch.labelTensor
    let classifierGuidance = options.classifierGuidance
    precondition(classifierGuidance == nil || y != nil, "sampleDDPM: classifier guidance needs labels")
    var x = startingNoise(noise, batch: batch)
    var trajectory: [SamplerStep] = []
    for (time, nextTime) in zip(grid.times, grid.times.dropFirst()) {
        let tt = batch.times(time)
        let alphaBar = Float(process.alphaBar(time)), alphaBarPrev = Float(process.alphaBar(nextTime))
        let beta = process.stepBeta(from: time, to: nextTime), alpha = 1 - beta
        let variance: Float = options.variance == .posterior ? beta * (1 - alphaBarPrev) / (1 - alphaBar) : beta
        let guidanceGradient = classifierGuidance.map { $0.evaluate(x, time: tt, y: y) }
        x = withoutGradients {
            let output = callDenoiser(denoiser, x, time: tt, y: y)
            let (eps, predictedX0) = denoiser.prediction.epsilonAndX0(output, x: x, alphaBar: alphaBar)
            var x0 = predictedX0
            var mean: Tensor
            if options.clipX0 && nextTime == 0 {
                // abar = 1 at t = 0: the posterior mean is x0 itself (its coefficients, formed in float32,
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
            if options.recordTrajectory {
                trajectory.append(SamplerStep(time: time, t: tableIndex(process, time), x: x, predictedX0: x0))
            }
            guard nextTime > 0 else { return mean }
            let z = noise.stepNoise(t: process.noiseKey(ofTime: time), indices: batch.indices, imageShape: batch.imageShape)
            precondition(z.shape == x.shape, "sampleDDPM: step noise \(z.shape) for x_t \(x.shape)")
            return mean + Double(variance.squareRoot()) * z
        }
    }
    return SamplerOutput(sample: x, trajectory: trajectory, denoiserCalls: grid.steps)
}

/// DDPM ancestral sampling of a model of discrete timesteps on its table (every step, t = T-1 ... 0).
public func sampleDDPM(_ denoiser: some IndexedDenoiser, schedule: NoiseSchedule, noise: some NoiseSource,
                       batch: SampleBatch, options: DDPMOptions = DDPMOptions(),
                       classifierGuidance: ClassifierGuidance? = nil) -> SamplerOutput {
    Sampler.ddpm(options).sample(denoiser, schedule: schedule, noise: noise, batch: batch,
                                 classifierGuidance: classifierGuidance)
}
