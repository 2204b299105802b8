import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenTestSupport
import XCTest

/// Miyato et al.'s standard-CNN generator and critic against their PyTorch twins
/// (`scripts/torch-gan-recipes.py fixtures`, the same state_dict names, `spectral_norm`'s
/// `weight_orig`, `weight_u` and `weight_v` included): the generator's training-mode forward and
/// BatchNorm statistics, the spectrally normalised critic's power iteration, scores, hinge loss and
/// gradients, the generator's gradients through it, and WGAN-GP on the critic without spectral
/// norm (penalty, input gradient, and the second-order gradients of the penalised loss). The
/// fixtures are the repository's own (`Tests/Fixtures/gan`), not part of the shared draw that
/// `FIXTURES_DIR` names.
final class StandardCNNParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/gan")

    func file(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: Self.folder.appendingPathComponent(name))
    }

    /// The fixture's networks, loaded strictly, and its inputs (images channels-last).
    func fixture() throws -> (g: StandardCNNGenerator, dSN: StandardCNNCritic, d: StandardCNNCritic, io: SafeTensorsFile) {
        let io = try file("sncnn.io.safetensors")
        let z = try io.tensor("z")
        let width = try file("sncnn_g.params.safetensors").entry("c3.weight").shape[1]
        let g = StandardCNNGenerator(zDim: z.shape[1], channels: width, generator: RandomGenerator(seed: 1))
        try g.load(from: try file("sncnn_g.params.safetensors"), strict: true)
        let dSN = StandardCNNCritic(channels: width, spectralNorm: true, generator: RandomGenerator(seed: 2))
        try dSN.load(from: try file("sncnn_d_sn.params.safetensors"), strict: true)
        let d = StandardCNNCritic(channels: width, spectralNorm: false, generator: RandomGenerator(seed: 3))
        try d.load(from: try file("sncnn_d.params.safetensors"), strict: true)
        return (g, dSN, d, io)
    }

    func checkGradients(_ grads: [Tensor], of model: Module, io: SafeTensorsFile, prefix: String) throws {
        let trainable = model.namedTrainableParameters
        XCTAssertEqual(Set(trainable.map { prefix + $0.0 }), Set(io.names.filter { $0.hasPrefix(prefix) }), "\(prefix): the same parameters")
        for ((name, _), grad) in zip(trainable, grads) {
            assertParity(grad, try io.tensor(prefix + name), prefix + name)
        }
    }

    func testSpectrallyNormalisedCriticAndGeneratorMatchPyTorch() throws {
        let (g, dSN, _, io) = try fixture()
        let z = try io.tensor("z"), real = try io.image("real")
        let fake = g(z, training: true)
        assertParity(nchw(fake), try io.tensor("fake"), "G(z) in training mode")
        assertParity(g.batchNorms[0].runningMean.value, try io.tensor("bn0.running_mean"), "bn0 running mean")
        assertParity(g.batchNorms[0].runningVar.value, try io.tensor("bn0.running_var"), "bn0 running variance")

        dSN.powerIterate(1)
        let buffers = Dictionary(dSN.namedParameters, uniquingKeysWith: { a, _ in a })
        let powerNames = io.names.filter { $0.hasPrefix("power.") }
        XCTAssertEqual(powerNames.count, 16, "u and v of eight layers")
        for name in powerNames {
            assertParity(try XCTUnwrap(buffers[String(name.dropFirst(6))]).value, try io.tensor(name), name)
        }

        let sReal = dSN(real), sFake = dSN(fake.detached())
        assertParity(sReal, try io.tensor("s_real"), "scores of real images")
        assertParity(sFake, try io.tensor("s_fake"), "scores of generated images")
        let lossD = hingeDiscriminatorLoss(realScores: sReal, fakeScores: sFake)
        assertParity(lossD.reshaped([1]), try io.tensor("loss_d"), "hinge loss")
        try checkGradients(gradients(of: lossD, wrt: dSN.namedTrainableParameters.map { $0.1.value }), of: dSN, io: io, prefix: "grad_d.")

        let lossG = wganGeneratorLoss(fakeScores: dSN(fake))
        assertParity(lossG.reshaped([1]), try io.tensor("loss_g"), "generator loss")
        try checkGradients(gradients(of: lossG, wrt: g.namedTrainableParameters.map { $0.1.value }), of: g, io: io, prefix: "grad_g.")
    }

    func testGradientPenaltyOnTheCriticWithoutSpectralNormMatchesPyTorch() throws {
        let (_, _, d, io) = try fixture()
        let real = try io.image("real"), fake = try io.image("fake"), alpha = try io.image("alpha")
        let (gp, slope) = gradientPenalty(critic: { d($0) }, real: real, fake: fake, alpha: alpha)
        assertParity(gp.reshaped([1]), try io.tensor("gp"), "gradient penalty")
        assertParity(nchw(slope), try io.tensor("grad_x_hat"), "d critic / d x_hat")
        let loss = wganCriticLoss(realScores: d(real), fakeScores: d(fake), penalty: gp, penaltyWeight: 10)
        assertParity(loss.reshaped([1]), try io.tensor("loss_gp"), "penalised critic loss")
        try checkGradients(gradients(of: loss, wrt: d.namedTrainableParameters.map { $0.1.value }), of: d, io: io, prefix: "grad_gp.")
    }

    /// The names PyTorch's `spectral_norm` gives, and the plain ones without it.
    func testParameterNamesArePyTorchs() {
        let rng = RandomGenerator(seed: 0)
        let sn = Set(StandardCNNCritic(channels: 4, spectralNorm: true, generator: rng).namedParameters.map { $0.0 })
        XCTAssertTrue(sn.isSuperset(of: ["c0_0.weight_orig", "c0_0.weight_u", "c0_0.weight_v", "c0_0.bias", "l4.weight_orig", "l4.weight_v"]))
        XCTAssertFalse(sn.contains("c0_0.weight"))
        let plain = Set(StandardCNNCritic(channels: 4, spectralNorm: false, generator: rng).namedParameters.map { $0.0 })
        XCTAssertEqual(plain.count, 16)
        XCTAssertTrue(plain.contains("c3_0.weight") && plain.contains("l4.bias"))
    }
}
