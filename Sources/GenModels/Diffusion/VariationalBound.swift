import Foundation
import GenTensor
import GenFormats
import GenNN

/// The three parts of DDPM's variational bound for each image, in nats (Ho et al. 2020, Eq. 5):
/// -log p(x0) <= L_T + sum over t = 2..T of L_{t-1} + L_0.
public struct VariationalBoundTerms: Sendable, Equatable {
    /// L_T = KL(q(x_T | x0) || N(0, I)), one per image.
    public var prior: [Double]
    /// The sum over t = 2..T of L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)), one per image.
    public var diffusion: [Double]
    /// L_0 = -log p(x0 | x_1) under the discretised Gaussian decoder, one per image.
    public var decoder: [Double]

    /// The bound, -log p(x0) <= total, in nats per image.
    public var total: [Double] { (0..<prior.count).map { prior[$0] + diffusion[$0] + decoder[$0] } }
}

/// DDPM's variational bound on the negative log-likelihood of 8-bit images (Ho et al. 2020, Sec. 3.3
/// and Eq. 5; computed as Nichol & Dhariwal 2021's `calc_bpd_loop` does, one x_t per timestep):
///
///     L_T     = KL(N(sqrt(abar_T) x0, (1 - abar_T) I) || N(0, I))
///     L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z_t
///             = ||mu~_t(x_t, x0) - mu_theta(x_t, t)||^2 / (2 sigma_t^2)
///             = coef1_t^2 ||x0 - x0_theta||^2 / (2 beta~_t)
///     L_0     = -log of the discretised Gaussian N(x0_theta(x_1, 1), sigma_1^2) over each pixel's bin
///               [x - 1/255, x + 1/255], the outer bins open (Ho et al. Eq. 13)
///
/// with 1-based t, q's posterior mean mu~ = coef1 x0 + coef2 x_t, coef1 = beta_t sqrt(abar_{t-1}) / (1 - abar_t),
/// coef2 = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t), and the model's mean of the same form with its
/// prediction of x0 (clipped to [-1, 1] when `clipX0`, as the ancestral sampler does). The model's
/// variance is the posterior's, sigma_t^2 = beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (the
/// ancestral sampler's default), and the decoder's sigma_1^2 = beta~_2 (beta~_1 is 0; Nichol &
/// Dhariwal's clipped log-variance). Each network output is converted to float64 before the sums.
///
/// - Parameters:
///   - denoiser: the model of the table's indices (epsilon, x0 or v prediction).
///   - schedule: its table (T steps).
///   - x0: the images (B, ...) in [-1, 1] on the 8-bit grid (2 v / 255 - 1).
///   - labels: one label per image for a conditional network (the null label for its unconditional
///     model), else nil.
///   - indices: the images' indices in the run (they key the noise z_t); 0..<B by default.
///   - seed: the seed of the noise.
///   - progress: called after each timestep with the fraction done.
/// - Returns: the bound's parts per image, in nats (divide the total by D ln 2 for bits/dim).
public func variationalBound(_ denoiser: some IndexedDenoiser, schedule: NoiseSchedule, x0: Tensor, labels: [Int]? = nil,
                             indices: [Int]? = nil, seed: UInt64 = 0, clipX0: Bool = true,
                             progress: ((Double) -> Void)? = nil) -> VariationalBoundTerms {
    let steps = schedule.steps
    precondition(steps >= 2, "variationalBound: the table needs at least 2 steps, got \(steps)")
    let batch = SampleBatch(indices: indices ?? Array(0..<x0.shape[0]), labels: labels, imageShape: Array(x0.shape.dropFirst()))
    let b = batch.count, d = x0.elementCount / b
    let clean = x0.cast(to: .float64).scalars(as: Double.self)
    let noise = SeededNoise(seed: seed)
    let abar = schedule.alphaBars.map(Double.init), beta = schedule.betas.map(Double.init)
    /// beta~ of 0-based index i >= 1.
    func posteriorVariance(_ i: Int) -> Double { beta[i] * (1 - abar[i - 1]) / (1 - abar[i]) }

    var terms = VariationalBoundTerms(prior: [Double](repeating: 0, count: b), diffusion: [Double](repeating: 0, count: b),
                                      decoder: [Double](repeating: 0, count: b))
    let last = abar[steps - 1]
    for n in 0..<b {
        var squares = 0.0
        for k in 0..<d { squares += clean[n * d + k] * clean[n * d + k] }
        terms.prior[n] = 0.5 * (Double(d) * (-log(1 - last) + (1 - last) - 1) + last * squares)
    }
    // Timesteps from the noisiest down, as the ancestral sampler visits them.
    for (done, i) in (0..<steps).reversed().enumerated() {
        let signal = abar[i].squareRoot(), spread = (1 - abar[i]).squareRoot()
        let z = noise.stepNoise(t: i, indices: batch.indices, imageShape: batch.imageShape).cast(to: .float64).scalars(as: Double.self)
        let noisy = (0..<(b * d)).map { signal * clean[$0] + spread * z[$0] }
        let xt = Tensor(noisy.map(Float.init), shape: x0.shape)
        let output = withoutGradients {
            denoiser(xt, t: Tensor([Int64](repeating: Int64(i), count: b), shape: [b]), y: batch.labelTensor)
        }
        var predicted = withoutGradients {
            denoiser.prediction.epsilonAndX0(output, x: xt, signal: signal, noise: spread, preservesVariance: true).x0
        }
        if clipX0 { predicted = predicted.clamped(min: -1, max: 1) }
        let x0Hat = predicted.cast(to: .float64).scalars(as: Double.self)
        if i == 0 {
            let scale = posteriorVariance(1).squareRoot()
            for n in 0..<b {
                var total = 0.0
                for k in 0..<d { total -= discretizedGaussianLogProbability(clean[n * d + k], mean: x0Hat[n * d + k], scale: scale) }
                terms.decoder[n] = total
            }
        } else {
            let coef1 = beta[i] * abar[i - 1].squareRoot() / (1 - abar[i])
            let weight = coef1 * coef1 / (2 * posteriorVariance(i))
            for n in 0..<b {
                var squares = 0.0
                for k in 0..<d { let e = clean[n * d + k] - x0Hat[n * d + k]; squares += e * e }
                terms.diffusion[n] += weight * squares
            }
        }
        progress?(Double(done + 1) / Double(steps))
    }
    return terms
}

/// log P(x) for a pixel x on the 8-bit grid of [-1, 1] under N(mean, scale^2) integrated over its bin
/// [x - 1/255, x + 1/255], the bins at -1 and 1 open to infinity (Ho et al. 2020, Eq. 13); through
/// erfc on the side of the mean that keeps the difference accurate in the tails.
public func discretizedGaussianLogProbability(_ x: Double, mean: Double, scale: Double) -> Double {
    let lower = x <= -1 + 1e-6 ? -Double.infinity : (x - 1.0 / 255 - mean) / scale
    let upper = x >= 1 - 1e-6 ? Double.infinity : (x + 1.0 / 255 - mean) / scale
    let probability = lower > 0
        ? 0.5 * (erfc(lower / 2.0.squareRoot()) - erfc(upper / 2.0.squareRoot()))
        : 0.5 * (erfc(-upper / 2.0.squareRoot()) - erfc(-lower / 2.0.squareRoot()))
    return log(max(probability, Double.leastNormalMagnitude))
}
