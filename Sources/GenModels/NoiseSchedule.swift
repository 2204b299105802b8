/// The DDPM forward-process noise schedule, in float32 exactly as PyTorch computes it
/// (workloads.py's `ddpm_schedule`): betas = torch.linspace(betaStart, betaEnd, T) (float32),
/// alphas = 1 - betas, alphaBars = torch.cumprod(alphas, 0). Timesteps are 0-based (0..<T).
///
/// Bit-for-bit notes (checked against the unet fixture's `xt`, which only matches to the last bit
/// with both of these):
/// - PyTorch's CPU linspace fills the first half from the start and the second half from the end:
///   beta_i = start + step i for i < T/2, else end - step (T - 1 - i), with step = (end - start) / (T - 1),
///   all float32, and each product-and-add is fused (one rounding, as the compiled kernel's FMA).
/// - PyTorch's CPU cumprod of float32 accumulates in float64 and rounds each prefix product to float32.
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

    /// Betas linear from `betaStart` to `betaEnd` over `T` steps (DDPM's 1e-4 ... 0.02, T = 1000).
    public static func linear(T: Int = 1000, betaStart: Double = 1e-4, betaEnd: Double = 0.02) -> NoiseSchedule {
        NoiseSchedule(betas: linspace(Float(betaStart), Float(betaEnd), count: T))
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
