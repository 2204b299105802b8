import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// The DCGAN generator and discriminator against PyTorch (`dcgan_g.params`, `dcgan_d.params`,
/// `dcgan.io`), following the README's train-mode BatchNorm conventions:
/// 1. `fake_eval` = G(z) in eval mode (running statistics), before any train-mode forward;
/// 2. `fake` = G(z) in train mode; `bn_after.*` = G's running statistics after it;
/// 3. `d_real` = D(x), `d_fake` = D(fake.detach()), two separate train-mode forwards;
///    `loss_d` = BCE(d_real, 1) + BCE(d_fake, 0) (two means, summed), `grad_d.*` its D gradients;
/// 4. `loss_g` = BCE(D(fake), 1) from a third train-mode forward of D, `grad_g.*` its G gradients.
final class DCGANParityTests: XCTestCase {
    func testGeneratorDiscriminatorLossesAndGradientsMatchPyTorch() throws {
        let io = try Fixtures.open("dcgan.io.safetensors")
        assertKeys(of: io, are: ["x", "z", "fake", "fake_eval", "d_real", "d_fake", "loss_d", "loss_g"],
                   besides: ["grad_d.", "grad_g.", "bn_after."])
        let generator = DCGANGenerator(generator: RandomGenerator(seed: 1))
        let discriminator = DCGANDiscriminator(generator: RandomGenerator(seed: 2))
        try Fixtures.load(generator, from: "dcgan_g.params.safetensors")
        try Fixtures.load(discriminator, from: "dcgan_d.params.safetensors")
        let x = try io.image("x")
        let z = try io.required("z")

        // 1. Eval mode first: the train-mode forward below moves the running statistics.
        let fakeEval = withoutGradients { generator(z, training: false) }
        assertParity(nchw(fakeEval), try io.required("fake_eval"), "fake_eval")

        // 2. Train mode: batch statistics, and one running-statistics update.
        let fake = generator(z, training: true)
        assertParity(nchw(fake), try io.required("fake"), "fake")
        let buffers = generator.namedParameters.filter { $0.0.hasSuffix("running_mean") || $0.0.hasSuffix("running_var") }
        XCTAssertEqual(Set(io.names.filter { $0.hasPrefix("bn_after.") }), Set(buffers.map { "bn_after." + $0.0 }),
                       "bn_after.* should be exactly G's running statistics")
        for (name, buffer) in buffers {
            assertParity(buffer.value, try io.required("bn_after." + name), "bn_after." + name)
        }

        // 3. Discriminator loss: two separate train-mode forwards, the fake one detached.
        let dReal = discriminator(x, training: true)
        let dFake = discriminator(fake.detached(), training: true)
        assertParity(dReal, try io.required("d_real"), "d_real")
        assertParity(dFake, try io.required("d_fake"), "d_fake")
        let lossD = ganDiscriminatorLoss(realLogits: dReal, fakeLogits: dFake)
        assertParity(lossD.reshaped([1]), try io.required("loss_d"), "loss_d")
        let gradD = gradients(of: lossD, wrt: discriminator.trainableParameters.map { $0.value })
        try assertGradients(gradD, of: discriminator, io: io, prefix: "grad_d.")

        // 4. Generator loss: a third train-mode forward of the (not updated) discriminator.
        let lossG = ganGeneratorLoss(fakeLogits: discriminator(fake, training: true))
        assertParity(lossG.reshaped([1]), try io.required("loss_g"), "loss_g")
        let gradG = gradients(of: lossG, wrt: generator.trainableParameters.map { $0.value })
        try assertGradients(gradG, of: generator, io: io, prefix: "grad_g.")
    }

    /// Shapes of the public API: (N, 100) -> (N, 28, 28, 1) -> (N).
    func testShapes() {
        let g = DCGANGenerator(generator: RandomGenerator(seed: 3))
        let d = DCGANDiscriminator(generator: RandomGenerator(seed: 4))
        let images = withoutGradients { g(Tensor.normal([3, 100], generator: RandomGenerator(seed: 5)), training: true) }
        XCTAssertEqual(images.shape, [3, 28, 28, 1])
        XCTAssertEqual(withoutGradients { d(images, training: false) }.shape, [3])
    }

    /// Without its BatchNorm the discriminator is conv, LeakyReLU, conv, LeakyReLU, conv (the WGAN
    /// critic's layout, no biases), the same in both modes, and holds no `net.3` parameters.
    func testDiscriminatorWithoutBatchNorm() {
        let d = DCGANDiscriminator(channels: 4, batchNorm: false, generator: RandomGenerator(seed: 6))
        XCTAssertEqual(d.namedParameters.map { $0.0 }, ["net.0.weight", "net.2.weight", "net.5.weight"])
        let x = Tensor.uniform([5, 28, 28, 1], low: -1, high: 1, generator: RandomGenerator(seed: 7))
        let expected = Tensor.conv2d(
            Tensor.conv2d(Tensor.conv2d(x, d.conv1.weight.value, stride: (2, 2), padding: (1, 1)).leakyRelu(0.2),
                          d.conv2.weight.value, stride: (2, 2), padding: (1, 1)).leakyRelu(0.2),
            d.conv3.weight.value).reshaped([-1])
        XCTAssertEqual(d(x, training: true).scalars(as: Float.self), expected.scalars(as: Float.self))
        XCTAssertEqual(d(x, training: false).scalars(as: Float.self), expected.scalars(as: Float.self))
    }
}
