import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// Parity of the DDPM U-Net with PyTorch: `unet.params.safetensors` is `UNet(ch=32, num_classes=10)`'s
/// state_dict and `unet.io.safetensors` holds x0, t, y, eps and PyTorch's xt, eps_pred, loss and
/// `grad.<param>` (see Tests/Fixtures/README.md). Every shape is read from the files, so another draw
/// of the fixtures (other seed or batch) passes unchanged.
final class UNetParityTests: XCTestCase {
    func testParameterNamesMatchStateDict() throws {
        let params = try Fixtures.open("unet.params.safetensors")
        let model = try Fixtures.unet()
        let names = model.namedParameters.map { $0.0 }
        XCTAssertEqual(names.count, Set(names).count, "duplicate parameter names")
        XCTAssertEqual(Set(names).subtracting(params.names).sorted(), [], "model parameters missing from the state_dict")
        XCTAssertEqual(Set(params.names).subtracting(names).sorted(), [], "state_dict tensors the model lacks")
        XCTAssertEqual(model.namedTrainableParameters.count, names.count, "every U-Net parameter is trainable")
        // The unconditional default: no class embedding, width 64.
        let plain = UNet(UNetConfig(), generator: RandomGenerator(seed: 2))
        XCTAssertFalse(plain.namedParameters.contains { $0.0.hasPrefix("class_emb") })
        XCTAssertEqual(plain.convIn.weight.value.shape, [64, 1, 3, 3])
    }

    func testNoisedMatchesFixture() throws {
        let io = try Fixtures.open("unet.io.safetensors")
        let schedule = NoiseSchedule.linear(T: 1000, betaStart: 1e-4, betaEnd: 0.02)
        XCTAssertEqual(schedule.steps, 1000)
        XCTAssertEqual(schedule.betas.first, Float(1e-4))
        XCTAssertEqual(schedule.betas.last, Float(0.02))
        let t = try io.required("t")
        let x0 = try io.required("x0"), eps = try io.required("eps"), expected = try io.required("xt")
        assertParity(schedule.noised(x0: x0, t: t, eps: eps), expected, "xt")
        // Not bit-exact in general: PyTorch's vectorised sqrt(abar) x0 + sqrt(1 - abar) eps may fuse a
        // multiply-add that ours rounds twice, so a draw can differ in the last bit.
        // Channels-last gives the same values.
        let xtLast = schedule.noised(x0: try io.image("x0"), t: t, eps: try io.image("eps"))
        assertParity(nchw(xtLast), expected, "xt (channels-last)")
    }

    func testForwardLossAndGradientsMatchPyTorch() throws {
        let io = try Fixtures.open("unet.io.safetensors")
        assertKeys(of: io, are: ["x0", "t", "y", "eps", "xt", "eps_pred", "loss"], besides: ["grad."])
        let model = try Fixtures.unet()
        let schedule = NoiseSchedule.linear()
        let x0 = try io.image("x0"), eps = try io.image("eps")
        let t = try io.required("t"), y = try io.required("y")

        // Forward on PyTorch's own xt, so the network is checked independently of the schedule.
        let xt = try io.image("xt")
        let epsPred = withoutGradients { model(xt, t: t, y: y) }
        assertParity(nchw(epsPred), try io.required("eps_pred"), "eps_pred")

        // The training loss and every gradient, through NoiseSchedule.ddpmLoss.
        let start = Date()
        let loss = schedule.ddpmLoss(model: model, x0: x0, t: t, eps: eps, y: y)
        let grads = gradients(of: loss, wrt: model.trainableParameters.map { $0.value })
        print("UNet forward + backward, batch \(x0.shape[0]): " + String(format: "%.3f s", Date().timeIntervalSince(start)))
        assertParity(loss.reshaped([1]), try io.required("loss"), "loss")
        try assertGradients(grads, of: model, io: io, prefix: "grad.")
    }

    /// The sinusoidal embedding against a direct float32 evaluation of the formula of
    /// scripts/torch_reference/models.py's `sinusoidal_embedding`.
    func testTimestepEmbedding() {
        let t = Tensor([Int64(0), 1, 500, 999], shape: [4])
        let dim = 32, half = dim / 2
        let e = timestepEmbedding(t, dim: dim)
        XCTAssertEqual(e.shape, [4, dim])
        let values = e.scalars(as: Float.self)
        for (row, step) in [Float(0), 1, 500, 999].enumerated() {
            for i in 0..<half {
                let freq = exp(Float(-log(10000.0)) * Float(i) / Float(half))
                XCTAssertEqual(values[row * dim + i], sin(step * freq), accuracy: 1e-5)
                XCTAssertEqual(values[row * dim + half + i], cos(step * freq), accuracy: 1e-5)
            }
        }
    }
}
