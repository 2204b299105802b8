@testable import GenTensor
import GenTestSupport
import XCTest

/// Gradients at the points where a composed formula would get them wrong: softplus at 0 and the
/// norm of a zero vector (the WGAN-GP penalty takes the norm of a gradient that can vanish).
final class EdgeGradientTests: XCTestCase {
    func testNormGradientMatchesFiniteDifferences() {
        let x = GradientCheck.input([3, 4], seed: 1)
        GradientCheck.check([x], "norm over axis 1") { $0[0].norm(axes: [1]) }
        GradientCheck.check([x], "norm over all, keepDims") { $0[0].norm(keepDims: true) }
        GradientCheck.checkSecondOrder([x], "norm") { ($0[0].norm(axes: [1]) - 1).square().mean() }
    }

    func testNormOfZeroRowHasZeroGradientNotNaN() {
        let x = Tensor([0, 0, 0, 3, 4, 0] as [Double], shape: [2, 3], requiresGrad: true)
        let n = x.norm(axes: [1])
        XCTAssertEqual(n.scalars(as: Double.self), [0, 5])
        let g = gradients(of: n.sum(), wrt: [x])[0].scalars(as: Double.self)
        XCTAssertEqual(g, [0, 0, 0, 0.6, 0.8, 0])
    }

    func testSoftplusGradientIsSigmoidIncludingZero() {
        let x = Tensor([-30, -1, 0, 1, 30] as [Double], requiresGrad: true)
        let g = gradients(of: x.softplus().sum(), wrt: [x])[0].scalars(as: Double.self)
        let expected = [-30.0, -1, 0, 1, 30].map { 1 / (1 + Foundation.exp(-$0)) }
        assertClose(g, expected, relative: 1e-12, "softplus'")
        XCTAssertEqual(Tensor([0] as [Float]).softplus().item, Foundation.log(2), accuracy: 1e-7)
        GradientCheck.check([GradientCheck.input([6], seed: 3)], "softplus") { $0[0].softplus() }
    }
}
