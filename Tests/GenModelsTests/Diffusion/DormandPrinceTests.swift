import Foundation
import GenModels
import XCTest

/// The RK45 integrator behind `ode-rk45`, on problems with known solutions, against scipy 1.17's
/// `solve_ivp(method="RK45")`, whose step control it copies (so its evaluation counts are scipy's).
final class DormandPrinceTests: XCTestCase {
    /// |y - exact| / (atol + rtol |exact|), the largest over the components: at most 1 when the
    /// solution meets its tolerance.
    func scaledError(_ y: [Double], _ exact: [Double], tolerance: Double) -> Double {
        zip(y, exact).map { abs($0 - $1) / (tolerance + tolerance * abs($1)) }.max()!
    }

    /// dy/dt = cos(t) y, y(t) = y(0) exp(sin t), from 0 to 10. scipy's nfev (number of accepted steps):
    /// 74 (10) at rtol = atol = 1e-3, 170 (22) at 1e-5, 506 (74) at 1e-8; scaled errors 0.20, 0.18, 1.4.
    func testMeetsItsToleranceOnALinearODE() {
        let y0 = [1.0, 2, -0.5]
        let exact = y0.map { $0 * exp(sin(10.0)) }
        var errors: [Double] = [], evaluations: [Int] = []
        for (tolerance, scipyEvaluations, scipySteps) in [(1e-3, 74, 10), (1e-5, 170, 22), (1e-8, 506, 74)] {
            var calls = 0
            let solution = DormandPrince.integrate(y0, from: 0, to: 10,
                                                   tolerance: .init(relative: tolerance, absolute: tolerance)) { t, y in
                calls += 1
                return y.map { cos(t) * $0 }
            }
            XCTAssertEqual(solution.succeeded, [true])
            XCTAssertEqual(solution.evaluations, [calls], "the evaluations reported are the calls made")
            XCTAssertEqual(calls, scipyEvaluations, "tolerance \(tolerance): scipy's nfev")
            XCTAssertEqual(solution.acceptedSteps, [scipySteps], "tolerance \(tolerance)")
            XCTAssertEqual(calls, 2 + 6 * (solution.acceptedSteps[0] + solution.rejectedSteps[0]))
            errors.append(scaledError(solution.states[0], exact, tolerance: tolerance))
            evaluations.append(calls)
        }
        XCTAssertLessThan(errors[0], 1, "rtol = atol = 1e-3 met")
        XCTAssertLessThan(errors[1], 1, "rtol = atol = 1e-5 met")
        XCTAssertLessThan(errors[2], 2, "1e-8: global error within twice the local tolerance, as scipy's 1.4")
        XCTAssertEqual(evaluations, evaluations.sorted(), "tighter tolerance, more evaluations")
    }

    /// The probability-flow ODE of Gaussian data N(m, s^2) on the VP SDE (beta 0.1 to 20) has a closed
    /// form: each component stays at the same standard score z, x(t) = alpha(t) m + std(t) z with
    /// std(t)^2 = alpha(t)^2 s^2 + sigma(t)^2. From t = 1 to 1e-3 (score_sde's sampling interval),
    /// 8 components: scipy needs 86 evaluations at rtol = atol = 1e-5 (scaled error 0.27) and 32 at
    /// 1e-3 (scaled error 12.9: the global error of a loose tolerance grows along the way).
    func testMeetsItsToleranceOnTheProbabilityFlowOfGaussianData() {
        let process = VPProcess()
        let m = 0.3, s = 0.2
        func std(_ t: Double) -> Double { (process.alpha(t) * process.alpha(t) * s * s + process.sigma(t) * process.sigma(t)).squareRoot() }
        let x1 = (0..<8).map { sin(Double($0) + 1) * 1.5 }
        let exact = x1.map { process.alpha(1e-3) * m + std(1e-3) * ($0 - process.alpha(1) * m) / std(1) }
        func drift(_ t: Double, _ x: [Double]) -> [Double] {
            let a = process.alpha(t), sigma = process.sigma(t), beta = 0.1 + 19.9 * t
            return x.map { value in
                let score = -(value - a * m) / (a * a * s * s + sigma * sigma)
                return -0.5 * beta * value - 0.5 * beta * score
            }
        }
        let tight = DormandPrince.integrate(x1, from: 1, to: 1e-3, tolerance: .init(relative: 1e-5, absolute: 1e-5), derivative: drift)
        XCTAssertEqual(tight.evaluations, [86], "scipy's nfev")
        XCTAssertLessThan(scaledError(tight.states[0], exact, tolerance: 1e-5), 1)
        let loose = DormandPrince.integrate(x1, from: 1, to: 1e-3, tolerance: .init(relative: 1e-3, absolute: 1e-3), derivative: drift)
        XCTAssertEqual(loose.evaluations, [32], "scipy's nfev")
        XCTAssertLessThan(zip(loose.states[0], exact).map { abs($0 - $1) }.max()!, 0.05)
    }

    /// Systems integrated together give exactly what each gives alone (own steps, own error norm),
    /// and a system that has reached the end leaves the calls.
    func testSystemsAreIndependent() {
        let rates = [0.5, 3, 12]
        let starts = [[1.0, -1], [2.0], [0.3, 0.1, 5]]
        let tolerance = DormandPrince.Tolerance(relative: 1e-6, absolute: 1e-6)
        var batchSizes: [Int] = []
        let together = DormandPrince.integrate(starts, from: 0, to: 1, tolerance: tolerance) { systems, times, states in
            batchSizes.append(systems.count)
            return zip(systems, zip(times, states)).map { i, point in point.1.map { -rates[i] * (1 + point.0) * $0 } }
        }
        for i in rates.indices {
            let alone = DormandPrince.integrate(starts[i], from: 0, to: 1, tolerance: tolerance) { t, y in
                y.map { -rates[i] * (1 + t) * $0 }
            }
            XCTAssertEqual(together.states[i], alone.states[0], "system \(i)")
            XCTAssertEqual(together.evaluations[i], alone.evaluations[0], "system \(i)")
            let exact = starts[i].map { $0 * exp(-rates[i] * 1.5) }
            XCTAssertLessThan(scaledError(together.states[i], exact, tolerance: 1e-6), 1, "system \(i)")
        }
        XCTAssertEqual(Set(together.evaluations).count, 3, "each its own number of steps: \(together.evaluations)")
        XCTAssertEqual(batchSizes.count, together.evaluations.max())
        XCTAssertEqual(batchSizes.reduce(0, +), together.evaluations.reduce(0, +))
        XCTAssertEqual(batchSizes.first, 3)
        XCTAssertEqual(batchSizes.last, 1)
    }

    /// Backward in time, a zero-length interval (no evaluation), and a derivative that goes NaN
    /// (the system fails, NaN, without hanging).
    func testDirectionEmptyIntervalAndFailure() {
        let tolerance = DormandPrince.Tolerance(relative: 1e-7, absolute: 1e-7)
        let backward = DormandPrince.integrate([1.0], from: 2, to: 0.5, tolerance: tolerance) { t, y in [-2 * t * y[0]] }
        XCTAssertEqual(backward.states[0][0], exp(-(0.25 - 4)), accuracy: 1e-6 * exp(3.75))
        var called = false
        let empty = DormandPrince.integrate([1.0, 2], from: 0.3, to: 0.3, tolerance: tolerance) { _, y in
            called = true
            return y
        }
        XCTAssertFalse(called)
        XCTAssertEqual(empty.states, [[1, 2]])
        XCTAssertEqual(empty.evaluations, [0])
        let failing = DormandPrince.integrate([[1.0], [1.0]], from: 0, to: 1, tolerance: tolerance) { systems, times, states in
            zip(systems, zip(times, states)).map { i, point in [i == 1 && point.0 > 0.5 ? .nan : point.1[0]] }
        }
        XCTAssertEqual(failing.succeeded, [true, false])
        XCTAssertEqual(failing.states[0][0], exp(1), accuracy: 1e-5)
        XCTAssertTrue(failing.states[1][0].isNaN)
        let stuck = DormandPrince.integrate([1.0], from: 0, to: 1, tolerance: tolerance, maximumSteps: 3) { _, y in y }
        XCTAssertEqual(stuck.succeeded, [false])
        XCTAssertEqual(stuck.acceptedSteps[0] + stuck.rejectedSteps[0], 3)
    }
}
