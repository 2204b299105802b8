import Foundation
import GenTensor
import GenFormats
import GenNN

// What the score-based samplers share (Song et al. 2021, "Score-Based Generative Modeling through
// Stochastic Differential Equations"): the score s(x, t) = grad log p_t(x) read from any denoiser,
// the prior x_1 ~ N(0, priorStd^2 I), the drift of the reverse-time SDE and of the probability-flow
// ODE, and the last step to t = 0, which returns the denoiser's x0 (score_sde's "noise removal").

/// The denoiser's score and x0 at x_t (one time for the batch). Classifier guidance, when given,
/// adds s grad log p(y | x_t) to the score (Dhariwal & Nichol 2021, in score form) and moves x0 with
/// it (x0 = (x + sigma^2 score) / alpha).
///
/// - Returns: (score, x0), each shaped like x.
func scoreAndX0(_ denoiser: any Denoiser, process: any NoiseProcess, x: Tensor, time: Double,
                batch: SampleBatch, guidance: ClassifierGuidance? = nil) -> (score: Tensor, x0: Tensor) {
    let times = batch.times(time)
    let gradient = guidance.map { $0.evaluate(x, time: times, y: batch.labelTensor) }
    return withoutGradients {
        let output = callDenoiser(denoiser, x, time: times, y: batch.labelTensor)
        let alpha = process.alpha(time), sigma = process.sigma(time)
        var (eps, x0) = denoiser.prediction.epsilonAndX0(output, x: x, signal: alpha, noise: sigma,
                                                        preservesVariance: process.preservesVariance)
        var score = eps * (-1 / sigma)
        if let guidance, let gradient {
            score = score + guidance.scale * gradient
            x0 = (x + sigma * sigma * score) / alpha
        }
        return (score, x0)
    }
}

/// x_1 ~ N(0, priorStd^2 I) for the batch (the prior of VE is N(0, sigma_max^2 I)).
func priorSample(_ noise: any NoiseSource, process: any NoiseProcess, batch: SampleBatch) -> Tensor {
    let x = startingNoise(noise, batch: batch)
    let scale = process.priorStandardDeviation
    return scale == 1 ? x : x * scale
}

/// Fresh noise for draw `draw` of the step leaving `time`: each step may draw several times (the
/// Langevin corrector's iterations, then the predictor), each with its own key.
func stepNoise(_ noise: any NoiseSource, process: any NoiseProcess, time: Double, draw: Int, batch: SampleBatch) -> Tensor {
    let key = process.noiseKey(ofTime: time) * 64 + draw
    let z = noise.stepNoise(t: key, indices: batch.indices, imageShape: batch.imageShape)
    precondition(z.shape == [batch.count] + batch.imageShape, "sampler: step noise \(z.shape) for batch \(batch.imageShape)")
    return z
}

/// The drift of the reverse-time SDE, f(t) x - g(t)^2 score (Song et al. 2021, Eq. 6), and of the
/// probability-flow ODE, f(t) x - g(t)^2 score / 2 (Eq. 13).
func reverseDrift(_ process: any NoiseProcess, x: Tensor, score: Tensor, time: Double, ode: Bool) -> Tensor {
    let g = process.diffusion(time)
    return process.driftCoefficient(time) * x - (ode ? 0.5 : 1) * g * g * score
}

/// One step of a score sampler: the new x, the x0 estimate it saw at the step's start, and its
/// denoiser calls.
struct ScoreStep {
    var x: Tensor
    var x0: Tensor
    var calls: Int
}

/// Runs `step` over a grid's steps that end above t = 0; a last step to t = 0 returns the
/// denoiser's x0 at the last time above 0 instead (one more denoiser call).
func integrateToClean(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid, start: Tensor,
                      batch: SampleBatch, options: SamplerOptions,
                      step: (_ x: Tensor, _ time: Double, _ next: Double) -> ScoreStep) -> SamplerOutput {
    var x = start
    var calls = 0
    var trajectory: [SamplerStep] = []
    func record(_ time: Double, _ x: Tensor, _ x0: Tensor) {
        if options.recordTrajectory { trajectory.append(SamplerStep(time: time, t: tableIndex(process, time), x: x, predictedX0: x0)) }
    }
    for (time, next) in zip(grid.times, grid.times.dropFirst()) {
        if next == 0 {
            var x0 = scoreAndX0(denoiser, process: process, x: x, time: time, batch: batch,
                                guidance: options.classifierGuidance).x0
            if options.clipX0 { x0 = x0.clamped(min: -1, max: 1) }
            record(time, x, x0)
            return SamplerOutput(sample: x0, trajectory: trajectory, denoiserCalls: calls + 1)
        }
        let result = step(x, time, next)
        record(time, x, result.x0)
        x = result.x
        calls += result.calls
    }
    return SamplerOutput(sample: x, trajectory: trajectory, denoiserCalls: calls)
}
