import GenNN
import GenTestSupport
import XCTest
@testable import GenTensor

/// EMA, learning-rate schedules and gradient clipping against hand-computed values.
final class TrainingHelpersTests: XCTestCase {
    func testEMAWithWarmupFollowsTheFormula() {
        let p = Parameter(Tensor([0] as [Float]))
        let ema = ExponentialMovingAverage([p], decay: 0.999, warmup: true)
        var expected = 0.0
        for n in 0..<5 {
            p.value.floatPointer[0] = Float(n + 1)
            let d = min(0.999, Double(1 + n) / Double(10 + n))
            XCTAssertEqual(ema.currentDecay, d, accuracy: 1e-15)
            ema.update()
            expected = d * expected + (1 - d) * Double(n + 1)
            XCTAssertEqual(Double(ema.shadows[0].floatPointer[0]), expected, accuracy: 1e-5)
        }
        let plain = ExponentialMovingAverage([p], decay: 0.9, warmup: false)
        XCTAssertEqual(plain.currentDecay, 0.9)
    }

    func testEMACopiesBuffers() {
        let buffer = Parameter(Tensor([Int64(3)]), trainable: false)
        let ema = ExponentialMovingAverage([buffer])
        buffer.value.int64Pointer[0] = 8
        ema.update()
        XCTAssertEqual(ema.shadows[0].scalars(as: Int64.self), [8])
    }

    func testSchedules() {
        XCTAssertEqual(LearningRateSchedule.constant.rate(at: 100, base: 0.1), 0.1)
        let warm = LearningRateSchedule.linearWarmup(warmupSteps: 10)
        XCTAssertEqual(warm.rate(at: 0, base: 1), 0.1, accuracy: 1e-15)
        XCTAssertEqual(warm.rate(at: 9, base: 1), 1, accuracy: 1e-15)
        XCTAssertEqual(warm.rate(at: 50, base: 1), 1)
        let cosine = LearningRateSchedule.cosine(warmupSteps: 0, totalSteps: 100, minFactor: 0.1)
        XCTAssertEqual(cosine.rate(at: 0, base: 1), 1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 50, base: 1), 0.55, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 100, base: 1), 0.1, accuracy: 1e-12)
    }

    func testGradientClippingScalesToMaxNorm() {
        let a = Tensor([3, 0] as [Float]), b = Tensor([4] as [Float])
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        let clipped = a.scalars(as: Float.self) + b.scalars(as: Float.self)
        assertClose(clipped.map(Double.init), [0.6, 0, 0.8], relative: 1e-6, "clipped")
        let small = Tensor([0.1] as [Float])
        clipGradientNorm([small], maxNorm: 1)
        XCTAssertEqual(small.scalars(as: Float.self), [0.1])
    }
}
