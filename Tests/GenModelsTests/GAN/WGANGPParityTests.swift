import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenNN

/// The WGAN-GP critic and gradient penalty against PyTorch (`wgan_critic.params`, `wgan_gp.io`),
/// including the second-order gradient of the penalty with respect to the critic's parameters.
final class WGANGPParityTests: XCTestCase {
    func testPenaltyLossAndSecondOrderGradientsMatchPyTorch() throws {
        let io = try Fixtures.open("wgan_gp.io.safetensors")
        assertKeys(of: io, are: ["real", "fake", "alpha", "gp", "grad_x_hat", "loss"], besides: ["grad."])
        let critic = WGANCritic(generator: RandomGenerator(seed: 1))
        try Fixtures.load(critic, from: "wgan_critic.params.safetensors")
        let real = try io.image("real")
        let fake = try io.image("fake")
        let alpha = try io.image("alpha")

        let (gp, gradXHat) = gradientPenalty(critic: critic, real: real, fake: fake, alpha: alpha)
        assertParity(gp.reshaped([1]), try io.required("gp"), "gp")
        assertParity(nchw(gradXHat), try io.required("grad_x_hat"), "grad_x_hat")

        let loss = wganCriticLoss(realScores: critic(real), fakeScores: critic(fake), penalty: gp, penaltyWeight: 10)
        assertParity(loss.reshaped([1]), try io.required("loss"), "loss")
        let grads = gradients(of: loss, wrt: critic.trainableParameters.map { $0.value })
        try assertGradients(grads, of: critic, io: io, prefix: "grad.")
    }
}
