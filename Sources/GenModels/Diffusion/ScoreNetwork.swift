import Foundation
import GenTensor
import GenFormats
import GenNN

/// The SDE of a score-based model (Song et al. 2021, score_sde's defaults), as a command-line and
/// checkpoint value.
public enum ScoreSDE: String, CaseIterable, Codable, Sendable {
    /// Variance exploding: sigma geometric from 0.01 to sigma_max.
    case ve
    /// Variance preserving: beta linear from 0.1 to 20.
    case vp
    /// Sub-variance preserving, with VP's beta.
    case subvp

    /// The process; `sigmaMax` is read by VE only. VP and sub-VP sample down to t = 1e-3, VE to 1e-5.
    public func process(sigmaMax: Double) -> any NoiseProcess {
        switch self {
        case .ve: return VEProcess(sigmaMin: 0.01, sigmaMax: sigmaMax)
        case .vp: return VPProcess()
        case .subvp: return SubVPProcess()
        }
    }
}

/// A U-Net read as a score model in continuous time (score_sde's conventions for its DDPM++ and
/// NCSN++ models at this scale):
///
/// - the time enters the U-Net's sinusoidal embedding as 999 t (for VE, log sigma(t) is affine in t,
///   so this is the embedding of log sigma up to an affine map);
/// - VP and sub-VP: the output is eps, so the score is -output / sigma(t);
/// - VE: the output is divided by sigma(t) and read as the score (`scale_by_sigma`).
///
/// - Input: x_t (B, H, W, C), time float64 (B), y int64 (B) or nil. Output: (B, H, W, C).
public struct ScoreNetwork: Denoiser {
    public let network: UNet
    public let sde: ScoreSDE
    public let process: any NoiseProcess

    public init(_ network: UNet, sde: ScoreSDE, process: any NoiseProcess) {
        self.network = network
        self.sde = sde
        self.process = process
    }

    public var prediction: PredictionType { sde == .ve ? .score : .epsilon }

    public func callAsFunction(_ x: Tensor, time: Tensor, y: Tensor?) -> Tensor {
        let times = time.scalars(as: Double.self)
        let output = network(x, t: Tensor(times.map { Float(999 * $0) }, shape: [times.count]), y: y)
        guard sde == .ve else { return output }
        let shape = [times.count] + [Int](repeating: 1, count: x.rank - 1)
        return output * Tensor(times.map { Float(1 / process.sigma($0)) }, shape: shape)
    }
}

/// Denoising score matching weighted by lambda(t) = sigma(t)^2 (Song et al. 2021, Eq. 7), which for
/// any prediction type is the mean squared error of the implied noise:
/// sigma^2 ||s(x_t, t) + eps / sigma||^2 = ||eps_hat - eps||^2, x_t = alpha(t) x0 + sigma(t) eps.
///
/// - Parameters:
///   - denoiser: the model (differentiable in its parameters).
///   - process: the noise process.
///   - x0: clean data (B, ...).
///   - times: B times in [eps, 1].
///   - eps: standard normal noise shaped like x0.
///   - y: labels (B) or nil.
/// - Returns: the scalar loss, the mean over all elements.
public func denoisingScoreMatchingLoss(_ denoiser: any Denoiser, process: any NoiseProcess, x0: Tensor, times: [Double],
                                       eps: Tensor, y: Tensor?) -> Tensor {
    let xt = process.noised(x0: x0, times: times, eps: eps)
    let output = denoiser(xt, time: Tensor(times, shape: [times.count]), y: y)
    let shape = [times.count] + [Int](repeating: 1, count: x0.rank - 1)
    let alpha = Tensor(times.map { Float(process.alpha($0)) }, shape: shape)
    let sigma = Tensor(times.map { Float(process.sigma($0)) }, shape: shape)
    let predictedNoise: Tensor
    switch denoiser.prediction {
    case .epsilon: predictedNoise = output
    case .score: predictedNoise = output * sigma * -1
    case .x0: predictedNoise = (xt - alpha * output) / sigma
    case .v:
        let r = alpha * alpha + sigma * sigma
        predictedNoise = (sigma * xt + alpha * output) / r
    }
    return (predictedNoise - eps).square().mean()
}
