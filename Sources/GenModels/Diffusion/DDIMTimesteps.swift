import Foundation
import GenTensor
import GenFormats
import GenNN

/// How DDIM picks its S timesteps out of the T training timesteps 0..<T (the names of Lin et al.
/// 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", as diffusers uses them).
///
/// With 0-based timesteps, listed from the first step taken (noisiest) to the last:
///
/// | spacing | timestep i of S (i = 0 ... S-1), before reversing | T = 1000, S = 10 |
/// | --- | --- | --- |
/// | `leading` | i * floor(T / S) | 900, 800, ..., 100, 0 |
/// | `linspace` | round(i (T - 1) / (S - 1)) (0 when S = 1) | 999, 888, 777, ..., 111, 0 |
/// | `trailing` | round(T (i + 1) / S) - 1 | 999, 899, 799, ..., 199, 99 |
///
/// `round` is round-half-to-even (numpy's `round`) of the exact rational value. These are diffusers'
/// `set_timesteps` definitions (scheduling_ddim.py: `(np.arange(S) * (T // S)).round()[::-1]`,
/// `np.linspace(0, T - 1, S).round()[::-1]`, `np.round(np.arange(T, 0, -T / S)) - 1`), computed in
/// integers instead of float64. They agree with diffusers' lists except where diffusers' float64
/// arithmetic moves an exact .5 tie by an ulp (at T = 1000: linspace S = 27, 31, 47, ...; trailing
/// S = 48, 96, ...) or where `np.arange` returns S + 1 values, the last one -1 (trailing S = 61, 103,
/// 121, ... at T = 1000).
///
/// `leading` and `linspace` always end at t = 0; `trailing` and `linspace` (S > 1) always start at t = T - 1;
/// `leading` starts at (S - 1) floor(T / S), which for S = 10 leaves the noisiest tenth unvisited.
public enum TimestepSpacing: String, CaseIterable, Sendable {
    case leading
    case linspace
    case trailing
}

/// The timesteps DDIM visits, noisiest first: S distinct values of 0..<T in decreasing order (see
/// `TimestepSpacing`). The step from `timesteps[i]` goes to `timesteps[i + 1]`, and the last step to
/// abar = 1; samplers read the previous timestep from this one list, never recompute it (diffusers'
/// `prev_timestep = t - T // S` is wrong for linspace and trailing: their issues #12633, #11347, #9261).
///
/// - Parameters:
///   - steps: S, 1 ... T.
///   - trainingSteps: T, the schedule's length.
///   - spacing: how the S timesteps are spread.
/// - Returns: S timesteps, strictly decreasing, in 0..<T.
public func ddimTimesteps(steps: Int, trainingSteps: Int, spacing: TimestepSpacing) -> [Int] {
    let (s, t) = (steps, trainingSteps)
    precondition(t > 0, "ddimTimesteps: T must be positive, got \(t)")
    precondition(s >= 1 && s <= t, "ddimTimesteps: steps must be in 1...\(t), got \(s)")
    let ascending: [Int]
    switch spacing {
    case .leading:
        ascending = (0..<s).map { $0 * (t / s) }
    case .linspace:
        ascending = s == 1 ? [0] : (0..<s).map { roundedHalfToEven($0 * (t - 1), over: s - 1) }
    case .trailing:
        ascending = (0..<s).map { roundedHalfToEven(t * ($0 + 1), over: s) - 1 }
    }
    let list = Array(ascending.reversed())
    precondition(zip(list, list.dropFirst()).allSatisfy { $0 > $1 } && list.last! >= 0 && list.first! < t,
                 "ddimTimesteps: internal error, \(spacing) list for S = \(s), T = \(t) is not decreasing in 0..<T")
    return list
}

/// numerator / denominator rounded half to even, for numerator >= 0 and denominator > 0.
func roundedHalfToEven(_ numerator: Int, over denominator: Int) -> Int {
    let q = numerator / denominator, r = numerator % denominator
    if 2 * r > denominator { return q + 1 }
    if 2 * r < denominator { return q }
    return q % 2 == 0 ? q : q + 1
}
