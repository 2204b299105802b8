import Foundation
import GenTensor
import GenFormats
import GenNN

/// The DDPM forward-process noise schedule, in float32 exactly as PyTorch computes it
/// (scripts/torch_reference/models.py's `linear_schedule`): betas = torch.linspace(betaStart, betaEnd, T) (float32),
/// alphas = 1 - betas, alphaBars = torch.cumprod(alphas, 0). Timesteps are 0-based (0..<T).
///
/// Bit-for-bit notes (checked against the unet fixture's `xt`, which only matches to the last bit
/// with both of these):
/// - PyTorch's CPU linspace fills the first half from the start and the second half from the end:
///   beta_i = start + step i for i < T/2, else end - step (T - 1 - i), with step = (end - start) / (T - 1),
///   all float32, and each product-and-add is fused (one rounding, as the compiled kernel's FMA).
/// - PyTorch's CPU cumprod of float32 accumulates in float64 and rounds each prefix product to float32.
///
/// Other schedules: `cosine(T:offset:maxBeta:)` (Nichol & Dhariwal 2021) and `init(alphaBars:)`.
/// A schedule is data that samplers are handed (see `Diffusion/`), never state they own.
/// The beta tables DDPM trains on, by name (as stored in checkpoints and given on the command line).
public enum NoiseScheduleKind: String, Codable, CaseIterable, Sendable {
    /// Ho et al.: beta linear from 1e-4 to 0.02.
    case linear
    /// Nichol & Dhariwal: alpha-bar a squared cosine.
    case cosine

    /// The table of `steps` diffusion steps.
    public func schedule(steps: Int) -> NoiseSchedule {
        switch self {
        case .linear: return .linear(T: steps)
        case .cosine: return .cosine(T: steps)
        }
    }
}

public struct NoiseSchedule: Sendable, Equatable {
    /// beta_t, (T).
    public let betas: [Float]
    /// alpha_t = 1 - beta_t, (T).
    public let alphas: [Float]
    /// abar_t = alpha_0 alpha_1 ... alpha_t, (T).
    public let alphaBars: [Float]

    /// The number of diffusion steps T.
    public var steps: Int { betas.count }

    /// A schedule from explicit betas (alphas and their cumulative product are derived as PyTorch does).
    public init(betas: [Float]) {
        precondition(!betas.isEmpty, "NoiseSchedule: no betas")
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        var product = 1.0
        alphaBars = alphas.map { a in
            product *= Double(a)
            return Float(product)
        }
    }

    /// A schedule given by its alpha-bars (the signal level of each timestep), as k-diffusion and
    /// Kingma et al. (2021) describe a schedule. `alphaBars` are kept exactly; the betas are derived
    /// with `betas(fromAlphaBars:)` (in float64, rounded once to float32) and alphas = 1 - betas.
    ///
    /// - Parameter alphaBars: abar_0 ... abar_{T-1}, strictly decreasing, each in (0, 1).
    public init(alphaBars: [Float]) {
        precondition(!alphaBars.isEmpty, "NoiseSchedule: no alpha-bars")
        let betas = NoiseSchedule.betas(fromAlphaBars: alphaBars.map(Double.init)).map(Float.init)
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        self.alphaBars = alphaBars
    }

    /// Betas linear from `betaStart` to `betaEnd` over `T` steps (DDPM's 1e-4 ... 0.02, T = 1000).
    public static func linear(T: Int = 1000, betaStart: Double = 1e-4, betaEnd: Double = 0.02) -> NoiseSchedule {
        NoiseSchedule(betas: linspace(Float(betaStart), Float(betaEnd), count: T))
    }

    /// The cosine schedule of Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic
    /// Models", Eq. 17: abar(t) = f(t) / f(0) with f(t) = cos(((t / T + s) / (1 + s)) * pi / 2)^2, and
    /// beta_t = min(1 - abar(t + 1) / abar(t), maxBeta) so that beta never reaches 1 near t = T.
    ///
    /// With 0-based timesteps, beta_i = min(1 - f((i + 1) / T) / f(i / T), maxBeta) for i in 0..<T
    /// (improved-diffusion's `betas_for_alpha_bar`; diffusers' `squaredcos_cap_v2`), computed in
    /// float64 and rounded to float32; alphas and alpha-bars then follow from the betas as for every
    /// schedule (so abar_0 = 1 - beta_0, about 0.99996 for T = 1000).
    ///
    /// - Parameters:
    ///   - T: the number of diffusion steps.
    ///   - offset: the small offset s that keeps beta_0 from being vanishingly small (0.008).
    ///   - maxBeta: the clip on each beta (0.999).
    public static func cosine(T: Int = 1000, offset s: Double = 0.008, maxBeta: Double = 0.999) -> NoiseSchedule {
        precondition(T > 0, "NoiseSchedule.cosine: T must be positive, got \(T)")
        precondition(s >= 0 && maxBeta > 0 && maxBeta < 1,
                     "NoiseSchedule.cosine: need offset >= 0 and 0 < maxBeta < 1, got \(s), \(maxBeta)")
        func f(_ u: Double) -> Double {
            let c = cos((u + s) / (1 + s) * Double.pi / 2)
            return c * c
        }
        let betas = (0..<T).map { i in
            Float(min(1 - f(Double(i + 1) / Double(T)) / f(Double(i) / Double(T)), maxBeta))
        }
        return NoiseSchedule(betas: betas)
    }

    /// The betas of a schedule given by its alpha-bars: beta_0 = 1 - abar_0 and
    /// beta_t = 1 - abar_t / abar_{t-1} (the inverse of the cumulative product).
    public static func betas(fromAlphaBars alphaBars: [Double]) -> [Double] {
        alphaBars.indices.map { t in
            let previous = t == 0 ? 1.0 : alphaBars[t - 1]
            precondition(alphaBars[t] > 0 && alphaBars[t] <= previous,
                         "NoiseSchedule.betas(fromAlphaBars:): alpha-bars must be positive and non-increasing "
                         + "(abar_\(t) = \(alphaBars[t]) after \(previous))")
            return 1 - alphaBars[t] / previous
        }
    }

    /// abar_{t-1}, the signal level one step before t: 1 for t = 0 (no noise before the first step).
    public func alphaBarPrevious(_ t: Int) -> Float {
        precondition(t >= 0 && t < steps, "NoiseSchedule: timestep \(t) outside 0..<\(steps)")
        return t == 0 ? 1 : alphaBars[t - 1]
    }

    /// The variance of the forward-process posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eq. 7):
    /// beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t), 0 at t = 0. Float32 arithmetic in the
    /// order PyTorch evaluates `betas[t] * (1 - abar[t - 1]) / (1 - abar[t])`.
    public func posteriorVariance(_ t: Int) -> Float {
        betas[t] * (1 - alphaBarPrevious(t)) / (1 - alphaBars[t])
    }

    /// torch.linspace(start, end, count) in float32, as PyTorch's CPU kernel computes it.
    static func linspace(_ start: Float, _ end: Float, count: Int) -> [Float] {
        precondition(count > 0, "linspace: count must be positive")
        if count == 1 { return [start] }
        let step = (end - start) / Float(count - 1)
        let halfway = count / 2
        return (0..<count).map { i in
            i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(count - 1 - i))
        }
    }

    /// abar_t for each timestep of the int64 tensor `t` (B).
    public func alphaBars(at t: Tensor) -> [Float] {
        precondition(t.rank == 1 && t.dtype == .int64, "NoiseSchedule: t must be int64 (B), got \(t.dtype) \(t.shape)")
        return t.scalars(as: Int64.self).map { step in
            precondition(step >= 0 && Int(step) < steps, "NoiseSchedule: timestep \(step) outside 0..<\(steps)")
            return alphaBars[Int(step)]
        }
    }

    /// The forward process q(x_t | x_0): sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
    ///
    /// - Parameters:
    ///   - x0: clean samples (B, ...), e.g. (B, H, W, C).
    ///   - t: int64 timesteps (B), 0-based.
    ///   - eps: standard normal noise shaped like `x0`.
    /// - Returns: x_t shaped like `x0` (differentiable in x0 and eps).
    public func noised(x0: Tensor, t: Tensor, eps: Tensor) -> Tensor {
        precondition(x0.shape == eps.shape, "NoiseSchedule.noised: x0 \(x0.shape) and eps \(eps.shape) differ")
        precondition(x0.rank >= 1 && t.shape == [x0.shape[0]],
                     "NoiseSchedule.noised: timesteps \(t.shape) do not match batch of \(x0.shape)")
        let abar = alphaBars(at: t)
        let shape = [abar.count] + [Int](repeating: 1, count: x0.rank - 1)
        // float32 as PyTorch: a.sqrt() and (1 - a).sqrt(), each rounded to float32.
        let signal = Tensor(abar.map { $0.squareRoot() }, shape: shape).cast(to: x0.dtype)
        let noise = Tensor(abar.map { (1 - $0).squareRoot() }, shape: shape).cast(to: x0.dtype)
        return signal * x0 + noise * eps
    }

    /// The DDPM training loss for given timesteps and noise: mean over all elements of
    /// (model(x_t, t, y) - eps)^2 with x_t = `noised(x0:t:eps:)` (PyTorch's `F.mse_loss`).
    ///
    /// - Parameters:
    ///   - model: the noise-prediction network.
    ///   - x0: clean images (B, H, W, C), channels-last.
    ///   - t: int64 timesteps (B), 0-based.
    ///   - eps: noise (B, H, W, C).
    ///   - y: int64 labels (B) for a class-conditional model, else nil.
    /// - Returns: the scalar loss.
    public func ddpmLoss(model: UNet, x0: Tensor, t: Tensor, eps: Tensor, y: Tensor? = nil) -> Tensor {
        let xt = noised(x0: x0, t: t, eps: eps)
        return (model(xt, t: t, y: y) - eps).square().mean()
    }
}
