import Foundation
import GenTestSupport
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Spectral normalisation: the power iteration's sigma against the largest singular value from an
/// eigendecomposition of W Wᵀ, PyTorch's state_dict names, and that it advances once per SNGAN step.
final class GANSpectralNormTests: XCTestCase {
    /// The largest singular value of `w` reshaped to (rows, rest), from the eigenvalues of W Wᵀ.
    func largestSingularValue(_ w: Tensor) throws -> Double {
        let rows = w.shape[0]
        let m = try Matrix64(w.reshaped([rows, w.elementCount / rows]).cast(to: .float64))
        let eig = try SymmetricEigendecomposition(LinearAlgebra64.multiplyTransposed(m, m))
        return (eig.eigenvalues.max() ?? 0).squareRoot()
    }

    func testConvergedPowerIterationNormalisesTheSpectralNormToOne() throws {
        let critic = SNGANCritic(channels: 8, generator: RandomGenerator(seed: 1))
        critic.powerIterate(200)
        for layer in [critic.conv1, critic.conv2, critic.conv3] {
            let n = layer.normalizer
            let raw = try largestSingularValue(n.weight.value)
            XCTAssertEqual(n.sigma.item, raw, accuracy: 1e-3 * raw, "sigma against the SVD")
            let normalised = try largestSingularValue(withoutGradients { n.normalizedWeight })
            XCTAssertEqual(normalised, 1, accuracy: 1e-3, "spectral norm of W / sigma")
        }
        // One iteration from the random start is an underestimate, not yet 1.
        let fresh = SNGANCritic(channels: 8, generator: RandomGenerator(seed: 1))
        fresh.powerIterate(1)
        XCTAssertLessThanOrEqual(fresh.conv2.normalizer.sigma.item, try largestSingularValue(fresh.conv2.normalizer.weight.value) + 1e-5)
    }

    func testParameterNamesAreSpectralNorms() {
        let critic = SNGANCritic(channels: 8, generator: RandomGenerator(seed: 1))
        var expected: [String: [Int]] = [:]
        for (i, (cin, cout, k)) in [(0, (1, 8, 4)), (2, (8, 16, 4)), (4, (16, 1, 7))] {
            expected["net.\(i).weight_orig"] = [cout, cin, k, k]
            expected["net.\(i).bias"] = [cout]
            expected["net.\(i).weight_u"] = [cout]
            expected["net.\(i).weight_v"] = [cin * k * k]
        }
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: critic.namedParameters.map { ($0.0, $0.1.value.shape) }), expected)
        XCTAssertEqual(critic.trainableParameters.count, 6, "u and v are buffers")
        let state = critic.stateDict()
        XCTAssertNil(state["net.0.weight"], "PyTorch's state_dict holds weight_orig, not weight")
    }

    /// The normalised weight's gradient treats u and v as constants: d sigma / d W = u vᵀ.
    func testSigmaGradientIsTheOuterProductOfTheSingularVectors() {
        let critic = SNGANCritic(channels: 4, generator: RandomGenerator(seed: 2))
        critic.powerIterate(3)
        let n = critic.conv2.normalizer
        let g = gradients(of: n.sigma, wrt: [n.weight.value])[0]
        let u = n.u.value.scalars(as: Float.self), v = n.v.value.scalars(as: Float.self)
        let expected = Tensor(u.flatMap { a in v.map { a * $0 } }, shape: n.weight.value.shape)
        assertClose(g, expected, relative: 1e-5, floor: 1e-7, "d sigma / d W")
    }

    func testSNGANAdvancesOnePowerIterationPerStep() {
        var c = GANConfiguration(variant: .sngan)
        c.channels = 4
        let gan = GANTraining(config: c, seed: 3)
        let critic = gan.discriminator as! SNGANCritic
        let twin = SNGANCritic(channels: 4, generator: RandomGenerator(seed: 0))
        for ((_, a), (_, b)) in zip(twin.namedParameters, critic.namedParameters) { a.assign(b.value.copied()) }
        twin.powerIterate(1)
        let images = GANTrainingTests.images.rows(Array(0..<4))
        let losses = gan.trainStep(images: images, labels: nil, rng: RandomGenerator(seed: 1), step: 0)
        XCTAssertTrue(losses.allSatisfy { $0.1.isFinite }, "\(losses)")
        // u and v after the step are exactly one iteration on the pre-step weights.
        XCTAssertEqual(critic.conv1.normalizer.u.value.scalars(as: Float.self), twin.conv1.normalizer.u.value.scalars(as: Float.self))
        XCTAssertEqual(critic.conv3.normalizer.v.value.scalars(as: Float.self), twin.conv3.normalizer.v.value.scalars(as: Float.self))
        XCTAssertEqual(gan.config.optimizer, .adam)
        XCTAssertEqual([gan.config.generatorLearningRate, gan.config.beta1, gan.config.beta2], [2e-4, 0.5, 0.999])
        XCTAssertEqual(gan.config.discriminatorSteps, 1)
    }
}
