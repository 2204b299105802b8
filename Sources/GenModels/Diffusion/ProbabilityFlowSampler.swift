import Foundation
import GenTensor
import GenFormats
import GenNN

extension SamplerDefinition {
    /// `--sampler ode-heun`: the probability-flow ODE (Song et al. 2021, Eq. 13) by Heun's method, S steps
    /// (100 by default) from the process's start down to its minimum time, then the denoiser's x0.
    /// Deterministic: only the prior draw is random.
    public static let probabilityFlow = SamplerDefinition(
        name: "ode-heun", summary: "probability-flow ODE, Heun's second-order method (Song et al. 2021)",
        grid: { process, options in .spaced(process, steps: options.steps ?? 100, spacing: options.spacing) },
        evaluations: { grid, _ in 2 * grid.steps - 1 },
        run: sampleProbabilityFlow)
}

/// Heun's method on the probability-flow ODE dx/dt = f(t) x - g(t)^2 s(x, t) / 2: an Euler step to
/// the next time, then the average of the two slopes (two denoiser calls per step); on the step that
/// lands on t = 0, the denoiser's x0 at the last time.
///
/// - Parameters: as every `SamplerFunction`; `options` reads clipX0 (of the final x0),
///   recordTrajectory and classifierGuidance (added to the score).
/// - Returns: x_0 (B, ...); two denoiser calls per step, one for the last.
public func sampleProbabilityFlow(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid,
                                  noise: any NoiseSource, batch: SampleBatch, options: SamplerOptions) -> SamplerOutput {
    integrateToClean(denoiser, process: process, grid: grid, start: priorSample(noise, process: process, batch: batch),
                     batch: batch, options: options) { x, time, next in
        let slope = { (x: Tensor, t: Double) -> (Tensor, Tensor) in
            let (score, x0) = scoreAndX0(denoiser, process: process, x: x, time: t, batch: batch,
                                         guidance: options.classifierGuidance)
            return (reverseDrift(process, x: x, score: score, time: t, ode: true), x0)
        }
        let h = next - time
        let (first, x0) = slope(x, time)
        let euler = x + h * first
        let (second, _) = slope(euler, next)
        return ScoreStep(x: x + (0.5 * h) * (first + second), x0: x0, calls: 2)
    }
}
