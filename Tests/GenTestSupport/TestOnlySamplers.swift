import GenModels
import GenTensor
import GenFormats
import GenNN

/// Samplers that exist only in the tests (registered by them, never by the library).
public enum TestOnlySamplers {
    /// One denoiser call at t = 1; the sample is the predicted x0.
    public static let oneStep = SamplerDefinition(
        name: "test-one-step", summary: "test only: the denoiser's x0 at t = 1",
        grid: { _, _ in TimeGrid([1, 0]) },
        run: { denoiser, process, grid, noise, batch, _ in
            let x = noise.initialNoise(indices: batch.indices, imageShape: batch.imageShape)
            let t = grid.times[0]
            let output = withoutGradients { denoiser(x, time: batch.times(t), y: batch.labelTensor) }
            let x0 = denoiser.prediction.epsilonAndX0(output, x: x, signal: process.alpha(t), noise: process.sigma(t),
                                                      preservesVariance: process.preservesVariance).x0
            return SamplerOutput(sample: x0, trajectory: [], denoiserCalls: 1)
        })
}
