import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// The MLP VAE against PyTorch (`vae.params`, `vae.io`): encoder, decoder, loss and every gradient.
final class VAEParityTests: XCTestCase {
    func loadModel() throws -> MLPVAE {
        let model = MLPVAE(generator: RandomGenerator(seed: 1))
        try Fixtures.load(model, from: "vae.params.safetensors")
        return model
    }

    func testForwardLossAndGradientsMatchPyTorch() throws {
        let io = try Fixtures.open("vae.io.safetensors")
        assertKeys(of: io, are: ["x", "eps", "mu", "logvar", "logits", "loss"], besides: ["grad."])
        let model = try loadModel()
        let x = try io.image("x")
        let eps = try io.required("eps")

        let out = model.loss(x, eps: eps)
        assertParity(out.mu, try io.required("mu"), "mu")
        assertParity(out.logvar, try io.required("logvar"), "logvar")
        assertParity(out.logits, try io.required("logits"), "logits")
        assertParity(out.loss.reshaped([1]), try io.required("loss"), "loss")

        let grads = gradients(of: out.loss, wrt: model.trainableParameters.map { $0.value })
        try assertGradients(grads, of: model, io: io, prefix: "grad.")
    }

    /// Sampling and evaluation run the fused layers (bias and activation inside the matmul): without
    /// gradient recording the encoder and decoder still match PyTorch, and `decodeProbabilities`
    /// (the sigmoid fused into fc4) matches PyTorch's sigmoid of the logits and the recorded
    /// composite sigmoid(decode(z)).
    func testFusedInferenceMatchesPyTorchAndTheRecordedPath() throws {
        let io = try Fixtures.open("vae.io.safetensors")
        let model = try loadModel()
        let x = try io.image("x")
        let eps = try io.required("eps")

        let fused = withoutGradients { model.loss(x, eps: eps) }
        assertParity(fused.mu, try io.required("mu"), "fused mu")
        assertParity(fused.logvar, try io.required("logvar"), "fused logvar")
        assertParity(fused.logits, try io.required("logits"), "fused logits")

        let z = withoutGradients { fused.mu + (fused.logvar * 0.5).exp() * eps }
        let probabilities = withoutGradients { model.decodeProbabilities(z) }
        assertParity(probabilities, try io.required("logits").sigmoid(), "probabilities")
        let recorded = model.decode(z).sigmoid()
        XCTAssertTrue(recorded.tracksGradient)
        assertClose(probabilities, recorded, relative: 1e-5, floor: 1e-7, "fused against recorded probabilities")
    }

    /// `encode` accepts flattened input as well as images, with the same result.
    func testEncodeAcceptsFlatInput() throws {
        let io = try Fixtures.open("vae.io.safetensors")
        let model = try loadModel()
        let x = try io.image("x")
        let fromImages = withoutGradients { model.encode(x) }
        let fromFlat = withoutGradients { model.encode(x.reshaped([x.shape[0], -1])) }
        XCTAssertEqual(fromImages.mu.scalars(as: Float.self), fromFlat.mu.scalars(as: Float.self))
        XCTAssertEqual(fromImages.logvar.scalars(as: Float.self), fromFlat.logvar.scalars(as: Float.self))
    }

    /// The suite can fail: a small change to one loaded parameter puts the logits outside the
    /// tolerance, while the unchanged model is inside it.
    func testPerturbedParameterExceedsTolerance() throws {
        let io = try Fixtures.open("vae.io.safetensors")
        let model = try loadModel()
        let x = try io.image("x")
        let eps = try io.required("eps")
        let expected = try io.required("logits")

        let clean = withoutGradients { model.loss(x, eps: eps).logits }
        XCTAssertLessThanOrEqual(parityErrorRatio(clean, expected), 1)

        // Shift the first output bias by 1e-3 of the largest logit: logits[:, 0] move by exactly
        // that, 10x the tolerance (1e-4 of the largest logit), whatever the fixture draw.
        let scale = expected.doubleScalars().reduce(0) { max($0, abs($1)) }
        let bias = model.fc4.bias!
        var shifted = bias.value.scalars(as: Float.self)
        shifted[0] += Float(1e-3 * scale)
        bias.assign(Tensor(shifted, shape: bias.value.shape))
        let perturbed = withoutGradients { model.loss(x, eps: eps).logits }
        let ratio = parityErrorRatio(perturbed, expected)
        XCTAssertGreaterThan(ratio, 5, "shifting fc4.bias[0] by 1e-3 x max |logit| (\(scale)) should break parity")
    }

    /// The stable BCE-with-logits: finite for large |x|, and its gradient is sigmoid(x) - y
    /// everywhere, x = 0 included (PyTorch's value there).
    func testBinaryCrossEntropyWithLogitsValuesAndGradient() {
        let xs: [Double] = [-200, -3, 0, 0.5, 200], ys: [Double] = [0.2, 1, 0.3, 0, 0.9]
        let logits = Tensor(xs, requiresGrad: true), targets = Tensor(ys)
        let loss = binaryCrossEntropyWithLogits(logits, targets, reduction: .sum)
        let expected = zip(xs, ys).map { x, y in max(x, 0) - x * y + Foundation.log1p(Foundation.exp(-abs(x))) }
        XCTAssertEqual(loss.item, expected.reduce(0, +), accuracy: 1e-9)
        let grad = gradients(of: loss, wrt: [logits])[0].doubleScalars()
        for (i, (x, y)) in zip(xs, ys).enumerated() {
            XCTAssertEqual(grad[i], 1 / (1 + Foundation.exp(-x)) - y, accuracy: 1e-12, "x = \(x)")
        }
        let mean = binaryCrossEntropyWithLogits(logits, targets, reduction: .mean)
        XCTAssertEqual(mean.item, loss.item / 5, accuracy: 1e-12)
        XCTAssertEqual(meanSquaredError(Tensor([1.0, 3.0]), Tensor([0.0, 1.0]), reduction: .sum).item, 5)
        XCTAssertEqual(meanSquaredError(Tensor([1.0, 3.0]), Tensor([0.0, 1.0])).item, 2.5)
    }
}
