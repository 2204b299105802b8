import Foundation

/// Dormand & Prince's embedded Runge-Kutta pair of orders 5 and 4 ("A family of embedded Runge-Kutta
/// formulae", J. Comp. Appl. Math. 6, 1980; Hairer, Norsett & Wanner, "Solving Ordinary Differential
/// Equations I", Sec. II.4-5), with the step control of scipy's `solve_ivp(method="RK45")`, which
/// score_sde's ODE sampler calls:
///
/// - 7 stages with FSAL: the last stage is f at the new point, reused as the next step's first, so an
///   attempted step costs 6 evaluations of f;
/// - the 5th-order solution is propagated (local extrapolation); the error estimate is the difference
///   to the embedded 4th-order one, err = h sum_j E_j K_j;
/// - its size is the RMS norm of err / (atol + rtol max(|y|, |y_new|)), elementwise; the step is
///   accepted when the norm is below 1;
/// - the next step is h * min(10, 0.9 norm^(-1/5)) after an accepted step (at most h right after a
///   rejection), h * max(0.2, 0.9 norm^(-1/5)) after a rejected one;
/// - the first step is Hairer, Norsett & Wanner's empirical choice (Sec. II.4), which costs one
///   evaluation of f beyond f(t0, y0);
/// - a step never goes past the end; the last one lands on it exactly.
///
/// So a system costs 2 + 6 (accepted + rejected steps) evaluations, scipy's `nfev`.
///
/// Many independent systems are integrated at once, each with its own time, step size and error
/// norm, so a system's solution does not depend on the others; the derivative closure is called with
/// every system still integrating, each at its own time (one batched call per stage).
public enum DormandPrince {
    /// The error tolerances: a component's error is measured against atol + rtol |y|.
    public struct Tolerance: Sendable, Equatable {
        /// rtol.
        public var relative: Double
        /// atol.
        public var absolute: Double

        public init(relative: Double, absolute: Double) {
            precondition(relative > 0 && absolute > 0 && relative.isFinite && absolute.isFinite,
                         "DormandPrince.Tolerance: rtol \(relative) and atol \(absolute) must be positive")
            self.relative = relative
            self.absolute = absolute
        }
    }

    /// What `integrate` returns, one entry per system.
    public struct Solution: Sendable, Equatable {
        /// y at the end time; NaN where the system failed.
        public var states: [[Double]]
        /// Evaluations of the derivative each system used (scipy's `nfev`).
        public var evaluations: [Int]
        /// Accepted steps.
        public var acceptedSteps: [Int]
        /// Rejected steps (each cost 6 evaluations too).
        public var rejectedSteps: [Int]
        /// False where a system stopped early: a non-finite error estimate, a step below 10 ulps of t,
        /// or more than the maximum number of steps.
        public var succeeded: [Bool]
    }

    /// c_i, the stage times as fractions of h.
    static let c: [Double] = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1]
    /// a_ij, the stage weights (row i combines stages 0 ..< i).
    static let a: [[Double]] = [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
    ]
    /// b_j, the 5th-order solution's weights (stage 6 is f at the new point, weight 0).
    static let b: [Double] = [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84]
    /// E_j = b_j - b*_j, the 5th-order weights minus the embedded 4th-order ones, over all 7 stages.
    static let e: [Double] = [-71.0 / 57600, 0, 71.0 / 16695, -71.0 / 1920, 17253.0 / 339200, -22.0 / 525, 1.0 / 40]
    static let safety = 0.9, minimumFactor = 0.2, maximumFactor = 10.0
    /// -1 / (q + 1) for the embedded order q = 4.
    static let errorExponent = -1.0 / 5

    /// Integrates dy/dt = f(t, y) for each system from `start` to `end` (either direction).
    ///
    /// - Parameters:
    ///   - starts: y(start) of each system; each non-empty (the systems may differ in size).
    ///   - start: t0.
    ///   - end: the time to reach (equal to `start`: nothing is evaluated).
    ///   - tolerance: rtol and atol.
    ///   - maximumSteps: attempted steps after which a system gives up (fails).
    ///   - derivative: (systems, times, states) -> f(times[k], states[k]) for system systems[k], in that
    ///     order; called with the systems still integrating, each at its own time.
    /// - Returns: each system's y(end) and its evaluation and step counts.
    public static func integrate(_ starts: [[Double]], from start: Double, to end: Double, tolerance: Tolerance,
                                 maximumSteps: Int = 10_000,
                                 derivative: (_ systems: [Int], _ times: [Double], _ states: [[Double]]) -> [[Double]]) -> Solution {
        precondition(starts.allSatisfy { !$0.isEmpty }, "DormandPrince: every system needs at least one component")
        precondition(start.isFinite && end.isFinite, "DormandPrince: times \(start) and \(end) must be finite")
        var systems = starts.map { System(t: start, y: $0) }
        let direction: Double = end >= start ? 1 : -1
        let rtol = tolerance.relative, atol = tolerance.absolute

        /// One batched call for the systems `ids` at their times and states; checked.
        func evaluate(_ ids: [Int], _ times: [Double], _ states: [[Double]]) -> [[Double]] {
            let slopes = derivative(ids, times, states)
            precondition(slopes.count == ids.count && zip(slopes, states).allSatisfy { $0.count == $1.count },
                         "DormandPrince: the derivative returned \(slopes.map(\.count)) values for states of \(states.map(\.count))")
            for id in ids { systems[id].evaluations += 1 }
            return slopes
        }

        if start != end {
            // f(t0, y0), then the first step (Hairer, Norsett & Wanner, Sec. II.4; scipy's select_initial_step).
            let all = Array(systems.indices)
            let f0 = evaluate(all, all.map { _ in start }, starts)
            var h0 = [Double](repeating: 0, count: systems.count)
            var scales = [[Double]](repeating: [], count: systems.count)
            var probed: [Int] = [], probes: [[Double]] = []
            let interval = abs(end - start)
            for i in all {
                systems[i].f = f0[i]
                scales[i] = starts[i].map { atol + abs($0) * rtol }
                let d0 = rmsNorm(starts[i], over: scales[i]), d1 = rmsNorm(f0[i], over: scales[i])
                guard d0.isFinite && d1.isFinite else { systems[i].fail(); continue }
                h0[i] = min(d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1, interval)
                probed.append(i)
                probes.append(zip(starts[i], f0[i]).map { $0 + h0[i] * direction * $1 })
            }
            let f1 = probed.isEmpty ? [] : evaluate(probed, probed.map { start + h0[$0] * direction }, probes)
            for (k, i) in probed.enumerated() {
                let d1 = rmsNorm(f0[i], over: scales[i])
                let d2 = rmsNorm(zip(f1[k], f0[i]).map { $0 - $1 }, over: scales[i]) / h0[i]
                let h1 = d1 <= 1e-15 && d2 <= 1e-15 ? max(1e-6, h0[i] * 1e-3) : pow(0.01 / max(d1, d2), -errorExponent)
                systems[i].stepSize = min(100 * h0[i], h1, interval)
                if !d2.isFinite || !(systems[i].stepSize > 0) { systems[i].fail() }
            }
        } else {
            for i in systems.indices { systems[i].done = true }
        }

        // Every system still integrating attempts one step per round: 6 batched calls.
        while true {
            let active = systems.indices.filter { !systems[$0].done }
            if active.isEmpty { break }
            var attempting: [Int] = []
            for i in active {
                let t = systems[i].t
                let minimumStep = 10 * abs((direction > 0 ? t.nextUp : t.nextDown) - t)
                if !systems[i].rejectedThisStep {
                    systems[i].stepSize = max(systems[i].stepSize, minimumStep)
                } else if systems[i].stepSize < minimumStep {
                    systems[i].fail()
                    continue
                }
                if systems[i].acceptedSteps + systems[i].rejectedSteps >= maximumSteps {
                    systems[i].fail()
                    continue
                }
                var next = t + systems[i].stepSize * direction
                if direction * (next - end) > 0 { next = end }
                systems[i].next = next
                systems[i].h = next - t
                systems[i].stepSize = abs(systems[i].h)
                systems[i].stages = [systems[i].f]
                attempting.append(i)
            }
            if attempting.isEmpty { continue }
            for s in 1...6 {
                var times: [Double] = [], states: [[Double]] = []
                for i in attempting {
                    let system = systems[i]
                    let weights = s < 6 ? a[s] : b
                    var combination = [Double](repeating: 0, count: system.y.count)
                    for (j, weight) in weights.enumerated() where weight != 0 {
                        let stage = system.stages[j]
                        for k in combination.indices { combination[k] += stage[k] * weight }
                    }
                    let h = system.h
                    states.append(zip(system.y, combination).map { $0 + $1 * h })
                    times.append(s < 6 ? system.t + c[s] * h : system.t + h)
                }
                let slopes = evaluate(attempting, times, states)
                for (k, i) in attempting.enumerated() {
                    systems[i].stages.append(slopes[k])
                    if s == 6 { systems[i].proposal = states[k] }
                }
            }
            for i in attempting { systems[i].finishAttempt(rtol: rtol, atol: atol, end: end) }
        }
        return Solution(states: systems.map(\.y), evaluations: systems.map(\.evaluations),
                        acceptedSteps: systems.map(\.acceptedSteps), rejectedSteps: systems.map(\.rejectedSteps),
                        succeeded: systems.map(\.succeeded))
    }

    /// One system: `integrate` on a single state, with a derivative of (t, y).
    public static func integrate(_ start: [Double], from t0: Double, to t1: Double, tolerance: Tolerance,
                                 maximumSteps: Int = 10_000, derivative: (Double, [Double]) -> [Double]) -> Solution {
        integrate([start], from: t0, to: t1, tolerance: tolerance, maximumSteps: maximumSteps) { _, times, states in
            [derivative(times[0], states[0])]
        }
    }

    /// sqrt(mean((x / scale)^2)), scipy's RMS norm.
    static func rmsNorm(_ x: [Double], over scale: [Double]) -> Double {
        var sum = 0.0
        for (value, s) in zip(x, scale) { sum += (value / s) * (value / s) }
        return (sum / Double(x.count)).squareRoot()
    }

    /// One system's integration state.
    struct System {
        var t: Double
        var y: [Double]
        /// f(t, y).
        var f: [Double] = []
        /// |h| for the next attempt.
        var stepSize = 0.0
        /// The attempt in progress: its signed step, end time, stages K_0 ... K_6 and 5th-order solution.
        var h = 0.0, next = 0.0
        var stages: [[Double]] = []
        var proposal: [Double] = []
        /// Whether the current step has been rejected at least once (the step may then not grow).
        var rejectedThisStep = false
        var done = false, succeeded = true
        var evaluations = 0, acceptedSteps = 0, rejectedSteps = 0

        init(t: Double, y: [Double]) {
            self.t = t
            self.y = y
        }

        mutating func fail() {
            y = y.map { _ in .nan }
            done = true
            succeeded = false
        }

        /// Accepts or rejects the attempt by its error norm, and sizes the next attempt.
        mutating func finishAttempt(rtol: Double, atol: Double, end: Double) {
            var sum = 0.0
            for k in y.indices {
                var error = 0.0
                for (j, weight) in DormandPrince.e.enumerated() where weight != 0 { error += stages[j][k] * weight }
                let scale = atol + max(abs(y[k]), abs(proposal[k])) * rtol
                let scaled = error * h / scale
                sum += scaled * scaled
            }
            let norm = (sum / Double(y.count)).squareRoot()
            guard norm.isFinite else { return fail() }
            if norm < 1 {
                var factor = norm == 0 ? maximumFactor : min(maximumFactor, safety * pow(norm, errorExponent))
                if rejectedThisStep { factor = min(1, factor) }
                stepSize *= factor
                t = next
                y = proposal
                f = stages[6]
                acceptedSteps += 1
                rejectedThisStep = false
                if t == end { done = true }
            } else {
                stepSize *= max(minimumFactor, safety * pow(norm, errorExponent))
                rejectedSteps += 1
                rejectedThisStep = true
            }
            stages = []
            proposal = []
        }
    }
}
