import GenTensor
import GenFormats
import GenNN
/// The MLP variational autoencoder of `scripts/torch_reference/models.py` (Kingma & Welling; pytorch/examples):
/// a 784-400-(20, 20) Gaussian encoder and a 20-400-784 Bernoulli decoder that outputs logits.
///
/// - Input images: (N, 28, 28, 1) channels-last, or already flattened (N, 784), values in [0, 1].
/// - Parameters (PyTorch names): `fc1` (400 x 784), `fc_mu` (20 x 400), `fc_logvar` (20 x 400),
///   `fc3` (400 x 20), `fc4` (784 x 400), each with `.weight` (out x in) and `.bias` (out).
///
/// With one channel the channels-last flatten of (N, 28, 28, 1) equals PyTorch's flatten of
/// (N, 1, 28, 28), so the weights load unchanged.
public final class MLPVAE: Module {
    public let inputDim: Int, hiddenDim: Int, latentDim: Int
    public let fc1: Linear, fcMu: Linear, fcLogvar: Linear, fc3: Linear, fc4: Linear

    public init(inputDim: Int = 784, hiddenDim: Int = 400, latentDim: Int = 20, generator: RandomGenerator) {
        self.inputDim = inputDim
        self.hiddenDim = hiddenDim
        self.latentDim = latentDim
        fc1 = Linear(inputDim, hiddenDim, generator: generator)
        fcMu = Linear(hiddenDim, latentDim, generator: generator)
        fcLogvar = Linear(hiddenDim, latentDim, generator: generator)
        fc3 = Linear(latentDim, hiddenDim, generator: generator)
        fc4 = Linear(hiddenDim, inputDim, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("fc1", fc1.namedParameters) + prefixed("fc_mu", fcMu.namedParameters)
            + prefixed("fc_logvar", fcLogvar.namedParameters) + prefixed("fc3", fc3.namedParameters)
            + prefixed("fc4", fc4.namedParameters)
    }

    /// `x` as (N, inputDim): (N, H, W, 1) images are flattened, (N, inputDim) passes through.
    func flattenedInput(_ x: Tensor) -> Tensor {
        let flat = x.rank == 2 ? x : x.flattened(from: 1)
        precondition(flat.rank == 2 && flat.shape[1] == inputDim,
                     "MLPVAE: input \(x.shape) does not flatten to (N, \(inputDim))")
        return flat
    }

    /// The approximate posterior q(z | x) = N(mu, exp(logvar)).
    ///
    /// - Parameter x: (N, 28, 28, 1) or (N, 784).
    /// - Returns: `mu` and `logvar`, each (N, latentDim).
    public func encode(_ x: Tensor) -> (mu: Tensor, logvar: Tensor) {
        let h = fc1(flattenedInput(x), activation: .relu)
        return (fcMu(h), fcLogvar(h))
    }

    /// The decoder: Bernoulli logits of the pixels.
    ///
    /// - Parameter z: (N, latentDim).
    /// - Returns: logits (N, inputDim); `sigmoid` gives pixel probabilities.
    public func decode(_ z: Tensor) -> Tensor {
        fc4(fc3(z, activation: .relu))
    }

    /// Pixel probabilities, sigmoid(decode(z)). Without gradient recording (sampling) each layer is
    /// one fused product + bias + activation: ReLU after fc3, the sigmoid after fc4.
    ///
    /// - Parameter z: (N, latentDim).
    /// - Returns: (N, inputDim) in [0, 1].
    public func decodeProbabilities(_ z: Tensor) -> Tensor {
        fc4(fc3(z, activation: .relu), activation: .sigmoid)
    }

    /// The negative ELBO per example with the reparameterisation z = mu + exp(logvar / 2) eps:
    /// (BCE-with-logits summed over pixels and batch + KL(q(z|x) || N(0, I)) summed) / N.
    ///
    /// - Parameters:
    ///   - x: (N, 28, 28, 1) or (N, 784), targets in [0, 1].
    ///   - eps: (N, latentDim) standard normal noise, given explicitly so that the step is reproducible.
    ///   - term: the reconstruction term, Bernoulli (BCE) by default.
    /// - Returns: the encoder outputs, the logits and the scalar loss.
    public func loss(_ x: Tensor, eps: Tensor, reconstruction term: ReconstructionLoss = .bernoulli) -> VAEOutput {
        let target = flattenedInput(x)
        let batch = target.shape[0]
        precondition(eps.shape == [batch, latentDim], "MLPVAE.loss: eps \(eps.shape) should be [\(batch), \(latentDim)]")
        let (mu, logvar) = encode(target)
        let z = mu + (logvar * 0.5).exp() * eps
        let logits = decode(z)
        let reconstruction: Tensor
        switch term {
        case .bernoulli: reconstruction = binaryCrossEntropyWithLogits(logits, target, reduction: .sum)
        case .gaussian: reconstruction = meanSquaredError(logits.sigmoid(), target, reduction: .sum)
        }
        let kl = (1 + logvar - mu.square() - logvar.exp()).sum() * -0.5
        return VAEOutput(mu: mu, logvar: logvar, logits: logits, loss: (reconstruction + kl) / Double(batch))
    }
}

/// What `MLPVAE.loss` computes, all of it differentiable.
///
/// - `mu`, `logvar`: (N, latentDim), the encoder's posterior parameters.
/// - `logits`: (N, inputDim), the decoder's Bernoulli logits at z = mu + exp(logvar / 2) eps.
/// - `loss`: rank 0, (BCE sum + KL sum) / N.
public struct VAEOutput {
    public let mu: Tensor
    public let logvar: Tensor
    public let logits: Tensor
    public let loss: Tensor

    public init(mu: Tensor, logvar: Tensor, logits: Tensor, loss: Tensor) {
        self.mu = mu
        self.logvar = logvar
        self.logits = logits
        self.loss = loss
    }
}

/// The reconstruction term of a VAE's ELBO.
public enum ReconstructionLoss: String, Sendable, CaseIterable, Codable {
    /// -log p(x | z) for Bernoulli pixels: binary cross-entropy with the decoder's logits, summed.
    case bernoulli
    /// A unit-variance Gaussian on sigmoid(logits), up to constants: the squared error, summed.
    case gaussian
}
