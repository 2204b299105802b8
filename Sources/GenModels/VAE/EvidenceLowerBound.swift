import Foundation
import GenTensor
import GenNN

/// The evidence lower bound of an autoencoder with a stochastic encoder, as a density of pixels in
/// [0, 1] (so of uniformly dequantised 8-bit images), one sample of z per image:
///
///     ELBO(x) = log p(x | z) - KL(N(mu, diag(exp logvar)) || N(0, I)),  z = mu + exp(logvar / 2) eps  <=  log p(x)
///
/// with the decoder's density made a proper one on [0, 1]^D:
/// - `bernoulli`: the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019), the training loss's
///   x log lambda + (1 - x) log(1 - lambda) plus its normaliser log C(lambda); with lambda = sigmoid(l),
///   C = l / tanh(l / 2) (2 at l = 0);
/// - `gaussian`: N(x; sigmoid(l), 1/2) per pixel, whose negative log-density is the training loss's
///   squared error plus log(pi) / 2.
/// Computed in float64 from the network's float32 outputs.
///
/// - Parameters:
///   - model: a variational autoencoder.
///   - x: images (N, H, W, C) in [0, 1].
///   - eps: standard normal draws (N, latentDim).
///   - reconstruction: the decoder's density.
/// - Returns: the ELBO of each image, in nats.
public func evidenceLowerBound(_ model: Autoencoder, x: Tensor, eps: Tensor, reconstruction: ReconstructionLoss) -> [Double] {
    precondition(model.isVariational, "evidenceLowerBound: a deterministic autoencoder has no likelihood")
    let n = x.shape[0], d = x.elementCount / n, latent = model.latentDim
    precondition(eps.shape == [n, latent], "evidenceLowerBound: eps \(eps.shape), expected \([n, latent])")
    let (mu, logvar, logits) = withoutGradients { () -> (Tensor, Tensor, Tensor) in
        let (mu, logvar) = model.encode(x)
        return (mu, logvar, model.decode(mu + (logvar * 0.5).exp() * eps))
    }
    let means = mu.cast(to: .float64).scalars(as: Double.self), logVariances = logvar.cast(to: .float64).scalars(as: Double.self)
    let l = logits.cast(to: .float64).scalars(as: Double.self), pixels = x.cast(to: .float64).scalars(as: Double.self)
    return (0..<n).map { i in
        var kl = 0.0
        for k in i * latent..<(i + 1) * latent {
            kl -= 0.5 * (1 + logVariances[k] - means[k] * means[k] - exp(logVariances[k]))
        }
        var logDensity = 0.0
        for k in i * d..<(i + 1) * d {
            switch reconstruction {
            case .bernoulli:
                logDensity -= max(l[k], 0) - l[k] * pixels[k] + log1p(exp(-abs(l[k])))
                logDensity += continuousBernoulliLogNormalizer(logit: l[k])
            case .gaussian:
                let mean = 1 / (1 + exp(-l[k])), e = pixels[k] - mean
                logDensity -= e * e + 0.5 * log(Double.pi)
            }
        }
        return logDensity - kl
    }
}

/// log C of the continuous Bernoulli with logit l: log(l / tanh(l / 2)), log 2 at l = 0 (a series
/// near 0, where the ratio is 0 / 0).
public func continuousBernoulliLogNormalizer(logit l: Double) -> Double {
    abs(l) < 1e-4 ? log(2 + l * l / 6) : log(l / tanh(l / 2))
}
