import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// Noise schedules as data: the alpha-bar round trip, the cosine schedule (Nichol & Dhariwal 2021),
/// the posterior variance. (The linear schedule's bit-exactness is checked against the unet fixture
/// in UNetParityTests.)
final class ScheduleTests: XCTestCase {
    /// Betas -> alpha-bars -> betas gives back the betas, for the linear and cosine schedules.
    ///
    /// Tolerance: alpha-bars are float32, each rounded once (relative error <= 2^-24), so
    /// 1 - abar_t / abar_{t-1} is off by at most about 2 * 2^-24 absolutely (abar_t / abar_{t-1} <= 1);
    /// 2^-22 leaves a factor 2 for the float64 arithmetic and the final rounding. (A relative tolerance
    /// would not do: beta_0 = 1e-4 is recovered from abar_0 = 0.9999 to only about 1e-3 relative.)
    func testAlphaBarRoundTrip() {
        for (name, schedule) in [("linear", NoiseSchedule.linear()), ("cosine", NoiseSchedule.cosine()),
                                 ("linear T = 40", NoiseSchedule.linear(T: 40, betaStart: 1e-3, betaEnd: 0.18))] {
            let rebuilt = NoiseSchedule(alphaBars: schedule.alphaBars)
            XCTAssertEqual(rebuilt.alphaBars, schedule.alphaBars, "\(name): alpha-bars kept exactly")
            XCTAssertEqual(rebuilt.steps, schedule.steps)
            assertClose(rebuilt.betas.map(Double.init), schedule.betas.map(Double.init), relative: 0,
                        floor: 0x1p-22, "\(name): betas from alpha-bars")
            assertClose(rebuilt.alphas.map(Double.init), schedule.alphas.map(Double.init), relative: 0,
                        floor: 0x1p-22, "\(name): alphas from alpha-bars")
            // And through float64 directly.
            let betas = NoiseSchedule.betas(fromAlphaBars: schedule.alphaBars.map(Double.init))
            assertClose(betas, schedule.betas.map(Double.init), relative: 0, floor: 0x1p-22, "\(name): betas(fromAlphaBars:)")
        }
        // Alpha-bars -> betas -> alpha-bars, for alpha-bars given as data (a cosine in float64).
        let given = (1...200).map { Float(cos(Double($0) / 201 * Double.pi / 2)) }
        let schedule = NoiseSchedule(alphaBars: given)
        let recomputed = NoiseSchedule(betas: schedule.betas).alphaBars
        assertClose(recomputed.map(Double.init), given.map(Double.init), relative: 1e-5, "alpha-bars from betas from alpha-bars")
    }

    func testCosineSchedule() {
        let schedule = NoiseSchedule.cosine()
        XCTAssertEqual(schedule.steps, 1000)
        let abar = schedule.alphaBars, betas = schedule.betas
        XCTAssertTrue(zip(abar, abar.dropFirst()).allSatisfy { $0 > $1 }, "abar strictly decreasing")
        XCTAssertGreaterThan(abar[0], 0.9999, "abar_0 near 1")
        XCTAssertLessThan(abar[999], 1e-8, "abar_{T-1} near 0")
        XCTAssertTrue(betas.allSatisfy { $0 > 0 && $0 <= 0.999 }, "betas in (0, 0.999]")
        XCTAssertEqual(betas[999], 0.999, "the last beta is clipped")
        XCTAssertEqual(betas.filter { $0 >= 0.999 }.count, 1, "only the last beta is clipped at T = 1000")
        // Against Nichol & Dhariwal's closed form abar(t) = f(t) / f(0) (before clipping).
        func f(_ u: Double) -> Double { let c = cos((u + 0.008) / 1.008 * Double.pi / 2); return c * c }
        for t in [0, 1, 10, 250, 500, 750, 990] {
            XCTAssertEqual(Double(abar[t]), f(Double(t + 1) / 1000) / f(0), accuracy: 1e-5 * f(Double(t + 1) / 1000) / f(0) + 1e-7,
                           "abar_\(t)")
        }
        // Reference values: improved-diffusion's betas_for_alpha_bar in float64, float32 as torch.tensor
        // stores them, cumulative product as NoiseSchedule (numpy 2.4). One float32 ulp of slack for
        // the platform's cos.
        let reference: [(Int, Float, Float)] = [
            (0, 0x1.5a5132p-15, 0x1.fffa96p-1), (1, 0x1.8310a8p-15, 0x1.fff48ap-1),
            (500, 0x1.9d9f70p-9, 0x1.f81992p-2), (998, 0x1.7fffecp-1, 0x1.45fbc6p-19), (999, 0x1.ff7ceep-1, 0x1.4dcd84p-29),
        ]
        for (t, beta, alphaBar) in reference {
            XCTAssertEqual(betas[t], beta, accuracy: 2 * beta.ulp, "beta_\(t)")
            XCTAssertEqual(abar[t], alphaBar, accuracy: 4 * alphaBar.ulp, "abar_\(t)")
        }
        // Other lengths and a smaller clip.
        let short = NoiseSchedule.cosine(T: 50, maxBeta: 0.5)
        XCTAssertEqual(short.steps, 50)
        XCTAssertTrue(short.betas.allSatisfy { $0 <= 0.5 })
        XCTAssertTrue(zip(short.alphaBars, short.alphaBars.dropFirst()).allSatisfy { $0 > $1 })
    }

    func testPosteriorVarianceAndPreviousAlphaBar() {
        let schedule = NoiseSchedule.linear()
        XCTAssertEqual(schedule.alphaBarPrevious(0), 1)
        XCTAssertEqual(schedule.alphaBarPrevious(500), schedule.alphaBars[499])
        XCTAssertEqual(schedule.posteriorVariance(0), 0, "beta_tilde_0 = 0: x_0 is not noised further")
        for t in [1, 10, 500, 999] {
            let beta = Double(schedule.betas[t]), a = Double(schedule.alphaBars[t]), ap = Double(schedule.alphaBars[t - 1])
            let expected = beta * (1 - ap) / (1 - a)
            XCTAssertEqual(Double(schedule.posteriorVariance(t)), expected, accuracy: 1e-6 * expected)
            XCTAssertLessThanOrEqual(schedule.posteriorVariance(t), schedule.betas[t], "beta_tilde_t <= beta_t")
        }
    }

    /// The linear schedule keeps its PyTorch float32 arithmetic (first and last betas exact, and the
    /// values the fixtures' xt depends on).
    func testLinearScheduleUnchanged() {
        let schedule = NoiseSchedule.linear()
        XCTAssertEqual(schedule.betas.first, Float(1e-4))
        XCTAssertEqual(schedule.betas.last, Float(0.02))
        XCTAssertEqual(schedule.alphas[10], 1 - schedule.betas[10])
        XCTAssertEqual(schedule, NoiseSchedule(betas: schedule.betas))
    }
}
