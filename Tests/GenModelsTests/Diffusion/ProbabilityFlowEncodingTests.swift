import Foundation
import GenModels
import XCTest
import GenTensor
import GenNN

/// The probability-flow ODE as an encoder: with the exact denoiser of Gaussian data N(m, s^2), the
/// flow maps x to alpha_T m + sqrt(alpha_T^2 s^2 + sigma_T^2) (x - m) / s (it keeps each value's
/// standard score), and decoding an encoding returns the input within 1e-3.
final class ProbabilityFlowEncodingTests: XCTestCase {
    func testEncodingIsExactAndReversible() {
        let m = SamplerRegistryTests.m, s = SamplerRegistryTests.s
        let x = Tensor((0..<24).map { Float(m + s * sin(Double($0) * 1.7) * 1.5) }, shape: [3, 2, 4, 1])
        let values = x.scalars(as: Float.self).map(Double.init)
        for process in [VPProcess() as any NoiseProcess, SubVPProcess(), VEProcess(sigmaMin: 0.01, sigmaMax: 5)] {
            let oracle = SamplerRegistryTests.gaussianOracle(process)
            let options = LikelihoodOptions(steps: 200, startTime: 1e-5)
            let z = probabilityFlowEncode(oracle, process: process, x: x, options: options)
            let t0 = options.startTime, t1 = process.maximumTime
            // The data sits at t0, where the marginal is N(alpha m, alpha^2 s^2 + sigma^2).
            func spread(_ t: Double) -> Double { (pow(process.alpha(t) * s, 2) + pow(process.sigma(t), 2)).squareRoot() }
            let expected = values.map { v in
                process.alpha(t1) * m + spread(t1) * (v - process.alpha(t0) * m) / spread(t0)
            }
            let encoded = z.scalars(as: Float.self).map(Double.init)
            let encodingError = zip(encoded, expected).map { abs($0 - $1) / spread(t1) }.max() ?? .infinity
            XCTAssertLessThan(encodingError, 1e-3, "\(process): the latents of Gaussian data")
            let back = probabilityFlowDecode(oracle, process: process, x: z, options: options).scalars(as: Float.self).map(Double.init)
            let roundTrip = zip(back, values).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(roundTrip, 1e-3, "\(process): decode(encode(x)) = x")
        }
    }
}
