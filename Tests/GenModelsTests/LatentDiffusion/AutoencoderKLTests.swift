import Foundation
import GenTensor
import GenNN
import GenModels
import XCTest

/// The KL autoencoder's posterior and shapes.
final class AutoencoderKLTests: XCTestCase {
    /// KL(N(m, s^2) || N(0, 1)) by Simpson's rule on q log(q / p), in float64.
    func numericKL(mean m: Double, logVariance: Double) -> Double {
        let s = exp(0.5 * logVariance)
        let (a, b, n) = (m - 14 * s, m + 14 * s, 20_000)
        let h = (b - a) / Double(n)
        func f(_ x: Double) -> Double {
            let logQ = -0.5 * ((x - m) / s) * ((x - m) / s) - log(s) - 0.5 * log(2 * .pi)
            let logP = -0.5 * x * x - 0.5 * log(2 * .pi)
            return exp(logQ) * (logQ - logP)
        }
        var sum = f(a) + f(b)
        for i in 1..<n { sum += f(a + Double(i) * h) * (i % 2 == 1 ? 4 : 2) }
        return sum * h / 3
    }

    func testKLMatchesTheClosedFormAndANumericIntegral() {
        let means: [Float] = [0, 1.5, -0.7, 0.2, 2.0, -1.1]
        let logVariances: [Float] = [0, -2, 1, -6, 0.5, 2.5]
        let posterior = DiagonalGaussian(mean: Tensor(means, shape: [2, 1, 3, 1]), logVariance: Tensor(logVariances, shape: [2, 1, 3, 1]))
        let kl = posterior.kl.doubleScalars()
        XCTAssertEqual(kl.count, 2)
        for item in 0..<2 {
            var closed = 0.0, numeric = 0.0
            for j in (3 * item)..<(3 * item + 3) {
                let m = Double(means[j]), lv = Double(logVariances[j])
                closed += 0.5 * (m * m + exp(lv) - 1 - lv)
                numeric += numericKL(mean: m, logVariance: lv)
            }
            XCTAssertEqual(kl[item], closed, accuracy: 1e-5 * max(1, closed), "closed form, item \(item)")
            XCTAssertEqual(kl[item], numeric, accuracy: 1e-4 * max(1, numeric), "numeric integral, item \(item)")
        }
        // The standard normal posterior costs nothing.
        XCTAssertEqual(DiagonalGaussian(mean: Tensor.zeros([1, 2, 2, 3]), logVariance: Tensor.zeros([1, 2, 2, 3])).kl.item, 0, accuracy: 1e-7)
    }

    func testSampleIsMeanPlusSigmaTimesNoise() {
        let posterior = DiagonalGaussian(mean: Tensor([Float(1), -2], shape: [1, 1, 1, 2]),
                                         logVariance: Tensor([Float(0), Float(log(4.0))], shape: [1, 1, 1, 2]))
        let z = posterior.sample(noise: Tensor([Float(0.5), -1], shape: [1, 1, 1, 2]))
        XCTAssertEqual(z.doubleScalars()[0], 1.5, accuracy: 1e-6)
        XCTAssertEqual(z.doubleScalars()[1], -4, accuracy: 1e-5)
    }

    func testShapesAndNames() {
        var config = AutoencoderKLConfiguration()
        config.width = 8
        config.latentChannels = 3
        let ae = AutoencoderKL(config, generator: RandomGenerator(seed: 0))
        let posterior = ae.encode(Tensor.uniform([2, 28, 28, 1], generator: RandomGenerator(seed: 1)) * 2 - 1)
        XCTAssertEqual(posterior.mean.shape, [2, 7, 7, 3])
        XCTAssertEqual(posterior.logVariance.shape, [2, 7, 7, 3])
        XCTAssertEqual(ae.decode(posterior.mean).shape, [2, 28, 28, 1])
        let names = Set(ae.namedParameters.map { $0.0 })
        XCTAssertTrue(names.isSuperset(of: ["encoder.conv_out.weight", "encoder.down.2.skip.weight", "decoder.up.2.skip.weight", "decoder.conv_out.bias"]))
        XCTAssertEqual(names.count, ae.namedParameters.count, "unique names")
        config.width = 12
        XCTAssertNotNil(config.problem, "a width that 8 groups do not divide")
        config.width = 8
        config.imageShape = [30, 28, 1]
        XCTAssertNotNil(config.problem, "a height that does not halve twice")
    }
}

/// The U-Net on latents of odd size: 7x7 halves to 4x4 and comes back to 7x7.
final class OddSizeUNetTests: XCTestCase {
    func testSevenBySevenLatentsKeepTheirShape() {
        let unet = UNet(UNetConfig(inChannels: 4, width: 8, channelMultipliers: [1, 2], numRes: 1), generator: RandomGenerator(seed: 0))
        let x = Tensor.normal([2, 7, 7, 4], generator: RandomGenerator(seed: 1)).requiringGrad()
        let y = unet(x, t: Tensor([Int64(3), 500], shape: [2]))
        XCTAssertEqual(y.shape, [2, 7, 7, 4])
        // The corner output sees the opposite corner's input through the 4x4 level's attention:
        // the crop after upsampling cuts no path.
        let g = gradients(of: y.sliced(axis: 1, 0..<1).sliced(axis: 2, 0..<1).sum(), wrt: [x])[0]
        let far = g.sliced(axis: 0, 0..<1).sliced(axis: 1, 6..<7).sliced(axis: 2, 6..<7).doubleScalars()
        XCTAssertTrue(far.contains { $0 != 0 }, "no gradient from (6, 6) to (0, 0)")
    }
}
