import Foundation
import GenTensor
import GenFormats
import GenNN

extension SamplerDefinition {
    /// `--sampler euler-maruyama`: the reverse-time SDE by Euler-Maruyama (Song et al. 2021, Eq. 6), S steps
    /// (1,000 by default; `TimeGrid.spaced`: the table's own timesteps, or evenly spaced in continuous time), then the
    /// denoiser's x0.
    public static let reverseSDE = SamplerDefinition(
        name: "euler-maruyama", summary: "reverse-time SDE, Euler-Maruyama (Song et al. 2021)",
        grid: { process, options in .spaced(process, steps: options.steps ?? 1000, spacing: options.spacing) },
        run: sampleReverseSDE)
}

/// Euler-Maruyama on the reverse-time SDE dx = [f(t) x - g(t)^2 s(x, t)] dt + g(t) dw, from the
/// prior x ~ N(0, priorStd^2 I) at the grid's first time:
///
///     x <- x - [f(t) x - g(t)^2 s(x, t)] h + g(t) sqrt(h) z,   h = t - t_next,
///
/// and, on the step that lands on t = 0, the denoiser's x0 at the last time.
///
/// - Parameters: as every `SamplerFunction`; `options` reads clipX0 (of the final x0),
///   recordTrajectory and classifierGuidance (added to the score).
/// - Returns: x_0 (B, ...); one denoiser call per step.
public func sampleReverseSDE(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid, noise: any NoiseSource,
                             batch: SampleBatch, options: SamplerOptions) -> SamplerOutput {
    integrateToClean(denoiser, process: process, grid: grid, start: priorSample(noise, process: process, batch: batch),
                     batch: batch, options: options) { x, time, next in
        let (score, x0) = scoreAndX0(denoiser, process: process, x: x, time: time, batch: batch,
                                     guidance: options.classifierGuidance)
        let h = time - next
        let z = stepNoise(noise, process: process, time: time, draw: 0, batch: batch)
        let moved = x - h * reverseDrift(process, x: x, score: score, time: time, ode: false)
        return ScoreStep(x: moved + process.diffusion(time) * h.squareRoot() * z, x0: x0, calls: 1)
    }
}
