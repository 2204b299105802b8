import Foundation
import GenTensor
import GenFormats
import GenNN

extension SamplerDefinition {
    /// `--sampler pc`: predictor-corrector (Song et al. 2021, Algorithms 2 and 3): at each of S steps
    /// (1,000 by default), `correctorSteps` Langevin corrections at signal-to-noise ratio `snr`, then
    /// one reverse-SDE (Euler-Maruyama) prediction; then the denoiser's x0.
    public static let predictorCorrector = SamplerDefinition(
        name: "pc", summary: "predictor-corrector: Langevin corrector, reverse-SDE predictor (Song et al. 2021)",
        grid: { process, options in .spaced(process, steps: options.steps ?? 1000, spacing: options.spacing) },
        evaluations: { grid, options in (options.correctorSteps + 1) * (grid.steps - 1) + 1 },
        run: { sampleAnnealedLangevin($0, process: $1, grid: $2, noise: $3, batch: $4, options: $5, predictor: true) })

    /// `--sampler langevin`: annealed Langevin dynamics (Song & Ermon 2019): the corrector alone,
    /// `correctorSteps` Langevin steps at each of S noise levels (100 by default), then the denoiser's x0.
    public static let annealedLangevin = SamplerDefinition(
        name: "langevin", summary: "annealed Langevin dynamics (Song & Ermon 2019): Langevin steps at each noise level",
        grid: { process, options in .spaced(process, steps: options.steps ?? 100, spacing: options.spacing) },
        evaluations: { grid, options in options.correctorSteps * (grid.steps - 1) + 1 },
        run: { sampleAnnealedLangevin($0, process: $1, grid: $2, noise: $3, batch: $4, options: $5, predictor: false) })
}

/// Langevin corrections at each grid time, optionally followed by a reverse-SDE prediction to the
/// next time.
///
/// One Langevin step at time t (score_sde's `LangevinCorrector`, per image instead of per batch, so
/// that image i does not depend on the rest of its batch):
///
///     epsilon = 2 a (snr ||z|| / ||s(x, t)||)^2,   x <- x + epsilon s(x, t) + sqrt(2 epsilon) z,
///
/// with a = 1 - beta of the step (score_sde's per-step alpha_i) for variance-preserving processes and 1
/// otherwise, and the norms over each image's elements.
///
/// - Parameters: as every `SamplerFunction`; `options` reads correctorSteps, snr, clipX0 (of the final
///   x0), recordTrajectory and classifierGuidance.
/// - Returns: x_0 (B, ...); correctorSteps (+ 1 with the predictor) denoiser calls per step, one for the last.
public func sampleAnnealedLangevin(_ denoiser: any Denoiser, process: any NoiseProcess, grid: TimeGrid,
                                   noise: any NoiseSource, batch: SampleBatch, options: SamplerOptions,
                                   predictor: Bool) -> SamplerOutput {
    integrateToClean(denoiser, process: process, grid: grid, start: priorSample(noise, process: process, batch: batch),
                     batch: batch, options: options) { start, time, next in
        var x = start
        var x0 = start
        let a = process.preservesVariance ? Double(1 - process.stepBeta(from: time, to: next)) : 1
        for draw in 0..<options.correctorSteps {
            let (score, estimate) = scoreAndX0(denoiser, process: process, x: x, time: time, batch: batch,
                                               guidance: options.classifierGuidance)
            if draw == 0 { x0 = estimate }
            let z = stepNoise(noise, process: process, time: time, draw: draw + 1, batch: batch)
            let ratio = options.snr * perImageNorm(z) / perImageNorm(score)
            let stepSize = 2 * a * ratio * ratio
            x = x + stepSize * score + (2 * stepSize).sqrt() * z
        }
        guard predictor else { return ScoreStep(x: x, x0: x0, calls: options.correctorSteps) }
        let (score, estimate) = scoreAndX0(denoiser, process: process, x: x, time: time, batch: batch,
                                           guidance: options.classifierGuidance)
        if options.correctorSteps == 0 { x0 = estimate }
        let h = time - next
        let z = stepNoise(noise, process: process, time: time, draw: 0, batch: batch)
        let moved = x - h * reverseDrift(process, x: x, score: score, time: time, ode: false)
        return ScoreStep(x: moved + process.diffusion(time) * h.squareRoot() * z, x0: x0, calls: options.correctorSteps + 1)
    }
}

/// The L2 norm of each image, shaped (B, 1, ..., 1) to broadcast against the batch.
func perImageNorm(_ x: Tensor) -> Tensor {
    let b = x.shape[0]
    return x.reshaped([b, x.elementCount / b]).norm(axes: [1], keepDims: true)
        .reshaped([b] + [Int](repeating: 1, count: x.rank - 1))
}
