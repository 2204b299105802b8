import GenNN
import GenTestSupport
import XCTest
import GenTensor
import GenFormats

/// `Linear` with an activation: while parameters record gradients it is the layer followed by the
/// activation op (same values, same graph); without recording it is one fused product + bias +
/// activation, equal to the recorded result within Float32 rounding.
final class LinearTests: XCTestCase {
    func testActivationComposesWhenRecordingAndFusesWithout() {
        let layer = Linear(24, 40, generator: RandomGenerator(seed: 3))
        let x = Tensor.uniform([50, 24], low: -2, high: 2, generator: RandomGenerator(seed: 4))
        for activation in LinearActivation.allCases {
            let recorded = layer(x, activation: activation)
            XCTAssertTrue(recorded.tracksGradient, "\(activation)")
            XCTAssertEqual(recorded.scalars(as: Float.self), layer(x).applying(activation).scalars(as: Float.self),
                           "\(activation): recorded layer against layer + activation op")
            let fused = withoutGradients { layer(x, activation: activation) }
            XCTAssertFalse(fused.tracksGradient)
            assertClose(fused, recorded, relative: 1e-5, floor: 1e-7, "\(activation): fused against recorded")
        }
    }

    func testLayerWithoutBias() {
        let layer = Linear(7, 5, bias: false, generator: RandomGenerator(seed: 5))
        let x = Tensor.uniform([3, 2, 7], low: -1, high: 1, generator: RandomGenerator(seed: 6))
        let recorded = layer(x, activation: .tanh)
        let fused = withoutGradients { layer(x, activation: .tanh) }
        XCTAssertEqual(fused.shape, [3, 2, 5])
        assertClose(fused, recorded, relative: 1e-5, floor: 1e-7, "no bias, rank 3")
    }
}
