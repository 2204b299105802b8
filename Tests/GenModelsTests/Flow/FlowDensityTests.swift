import Foundation
import GenTensor
import GenNN
@testable import GenModels
import GenTestSupport
import XCTest

/// The change of variables adds up: a 2-D RealNVP's density p(x) = N(f(x)) |det df/dx| integrates
/// to 1 over the plane, and the bits/dim of 8-bit images follow from the density of their
/// dequantised values.
final class FlowDensityTests: XCTestCase {
    /// A RealNVP on 1 x 2 "images" (four checkerboard couplings: x1 | x2 alternately), perturbed away
    /// from the identity with scales of at most 0.5 per coupling so that its mass stays in the box.
    func toyFlow() -> NormalizingFlow {
        var config = FlowConfiguration()
        config.scales = 1
        config.channels = 8
        config.blocks = 1
        config.imageShape = [1, 2, 1]
        let flow = NormalizingFlow(config, generator: RandomGenerator(seed: 21))
        FlowLayerTests.perturb(flow, seed: 22)
        for case let coupling as CouplingLayer in flow.layers { coupling.scale?.assign(Tensor([Float(0.5)], shape: [1])) }
        return flow
    }

    func testTwoDimensionalDensityIntegratesToOne() {
        let flow = toyFlow()
        let half = 16.0, step = 0.025
        let side = Int(2 * half / step)
        var total = 0.0
        let rowsPerBatch = 100
        for firstRow in stride(from: 0, to: side, by: rowsPerBatch) {
            var points: [Float] = []
            for i in firstRow..<min(side, firstRow + rowsPerBatch) {
                for j in 0..<side {
                    points.append(Float(-half + (Double(i) + 0.5) * step))
                    points.append(Float(-half + (Double(j) + 0.5) * step))
                }
            }
            let x = Tensor(points, shape: [points.count / 2, 1, 2, 1])
            let logDensity = withoutGradients { () -> Tensor in
                let (z, logDets) = flow.forward(x, training: false)
                return logDets.reduce(FlowDensity.priorLogDensity(z), +)
            }
            total += logDensity.doubleScalars().reduce(0) { $0 + Foundation.exp($1) } * step * step
        }
        XCTAssertEqual(total, 1, accuracy: 1e-3, "the density integrates to 1")
        // The flow is far from the identity: its density is not the standard normal's.
        let origin = Tensor([Float(0), 0], shape: [1, 1, 2, 1])
        let atOrigin = withoutGradients { () -> Double in
            let (z, logDets) = flow.forward(origin, training: false)
            return logDets.reduce(FlowDensity.priorLogDensity(z), +).item
        }
        XCTAssertGreaterThan(abs(atOrigin + Foundation.log(2 * Double.pi)), 0.05)
    }

    func testBitsPerDimensionOfTheIdentityFlow() {
        // An identity flow (fresh couplings output zero) leaves z = logit(alpha + (1 - 2 alpha) y):
        // bits/dim = (-log N(z) - logit log-determinant + D log 256) / (D log 2), computed here by hand.
        var config = FlowConfiguration()
        config.imageShape = [4, 4, 1]
        let flow = NormalizingFlow(config, generator: RandomGenerator(seed: 1))
        let images = Tensor((0..<16).map { Float(($0 * 17) % 256) / 255 }, shape: [1, 4, 4, 1])
        let uniform = Tensor((0..<16).map { Float($0) / 16 }, shape: [1, 4, 4, 1])
        let bits = withoutGradients { flow.bitsPerDimension(images, uniform: uniform, training: false).bits.item }
        var nats = 0.0
        for k in 0..<16 {
            let y = (Double((k * 17) % 256) + Double(k) / 16) / 256
            let p = 0.05 + 0.9 * y
            let z = Foundation.log(p / (1 - p))
            nats += 0.5 * z * z + 0.5 * Foundation.log(2 * Double.pi) - (Foundation.log(0.9) - Foundation.log(p) - Foundation.log(1 - p))
        }
        XCTAssertEqual(bits, (nats + 16 * Foundation.log(256.0)) / (16 * Foundation.log(2.0)), accuracy: 1e-4)
    }
}
