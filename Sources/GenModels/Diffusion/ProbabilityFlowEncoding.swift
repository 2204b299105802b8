import Foundation
import GenTensor
import GenFormats
import GenNN

/// The probability-flow ODE as an invertible map between data and latents (Song et al. 2021,
/// Sec. 4.3: "uniquely identifiable encoding"): `probabilityFlowEncode` integrates
/// dx/dt = f(t) x - g(t)^2 s(x, t) / 2 forward from the data at `startTime` to the process's maximum
/// time, `probabilityFlowDecode` back, both by RK4 on the likelihood's grid (uniform in
/// sqrt(t - startTime), `LikelihoodOptions.steps` steps), so that decoding an encoding returns the
/// input up to the solver's error. Deterministic: no noise is drawn.
///
/// - Parameters:
///   - denoiser: the model in continuous time (any prediction type).
///   - process: its noise process.
///   - x: the data (B, ...) for `probabilityFlowEncode`, latents (B, ...) for `probabilityFlowDecode`.
///   - labels: one label per image for a conditional model, else nil.
///   - options: `steps` and `startTime` (the trace estimator is not used).
/// - Returns: the latents x_T, or the data x_eps, shaped like `x`.
public func probabilityFlowEncode(_ denoiser: any Denoiser, process: any NoiseProcess, x: Tensor, labels: [Int]? = nil,
                                  options: LikelihoodOptions = LikelihoodOptions()) -> Tensor {
    integrateProbabilityFlow(denoiser, process: process, x: x, labels: labels, options: options, forward: true)
}

/// The inverse of `probabilityFlowEncode` (see there).
public func probabilityFlowDecode(_ denoiser: any Denoiser, process: any NoiseProcess, x: Tensor, labels: [Int]? = nil,
                                  options: LikelihoodOptions = LikelihoodOptions()) -> Tensor {
    integrateProbabilityFlow(denoiser, process: process, x: x, labels: labels, options: options, forward: false)
}

/// RK4 on the probability-flow ODE over the likelihood's grid, forward (to the maximum time) or back.
private func integrateProbabilityFlow(_ denoiser: any Denoiser, process: any NoiseProcess, x: Tensor, labels: [Int]?,
                                      options: LikelihoodOptions, forward: Bool) -> Tensor {
    let batch = SampleBatch(count: x.shape[0], labels: labels, imageShape: Array(x.shape.dropFirst()))
    let grid = options.times(to: process.maximumTime)
    let times = forward ? grid : Array(grid.reversed())
    func drift(_ x: Tensor, _ t: Double) -> Tensor {
        let score = scoreAndX0(denoiser, process: process, x: x, time: t, batch: batch).score
        return withoutGradients { reverseDrift(process, x: x, score: score, time: t, ode: true) }
    }
    var state = x.detached()
    for (t, next) in zip(times, times.dropFirst()) {
        let h = next - t
        let d1 = drift(state, t)
        let d2 = drift(withoutGradients { state + (h / 2) * d1 }, t + h / 2)
        let d3 = drift(withoutGradients { state + (h / 2) * d2 }, t + h / 2)
        let d4 = drift(withoutGradients { state + h * d3 }, next)
        state = withoutGradients { state + (h / 6) * (d1 + 2 * d2 + 2 * d3 + d4) }
    }
    return state
}
