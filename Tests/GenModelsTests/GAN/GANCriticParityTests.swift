import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenTestSupport
import XCTest

/// Miyato et al.'s standard-CNN and ResNet generators and critics against their PyTorch twins
/// (`scripts/torch-gan-recipes.py fixtures`, the same state_dict names, `spectral_norm`'s
/// `weight_orig`, `weight_u` and `weight_v` included): the generator's training-mode forward and
/// BatchNorm statistics, the spectrally normalised critic's power iteration, scores, hinge loss and
/// gradients, the generator's gradients through it, and WGAN-GP on the critic without spectral
/// norm (penalty, input gradient, and the second-order gradients of the penalised loss). The
/// fixtures are the repository's own (`Tests/Fixtures/gan`), not part of the shared draw that
/// `FIXTURES_DIR` names.
final class GANCriticParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/gan")

    /// One architecture's networks: a generator (latent size, base width) and a critic (spectral
    /// norm or not), with the name of the generator's first BatchNorm.
    struct Case {
        let name: String
        let generator: (Int, Int) -> any GANGenerator
        let critic: (Bool, Int) -> any GANDiscriminator & PowerIterating
        let firstBatchNorm: (any GANGenerator) -> BatchNorm
    }

    static let standardCNN = Case(
        name: "sncnn",
        generator: { StandardCNNGenerator(zDim: $0, channels: $1, generator: RandomGenerator(seed: 1)) },
        critic: { StandardCNNCritic(channels: $1, spectralNorm: $0, generator: RandomGenerator(seed: 2)) },
        firstBatchNorm: { $0.batchNorms[0] })
    static let resNet = Case(
        name: "resnet",
        generator: { ResNetGenerator(zDim: $0, width: 2 * $1, generator: RandomGenerator(seed: 1)) },
        critic: { ResNetCritic(width: 2 * $1, spectralNorm: $0, generator: RandomGenerator(seed: 2)) },
        firstBatchNorm: { $0.batchNorms[0] })

    func file(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: Self.folder.appendingPathComponent(name))
    }

    /// The fixture's networks, loaded strictly, and its inputs.
    func fixture(_ c: Case) throws -> (g: any GANGenerator, dSN: any GANDiscriminator & PowerIterating,
                                       d: any GANDiscriminator & PowerIterating, io: SafeTensorsFile) {
        let io = try file("\(c.name).io.safetensors")
        let versions = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("versions.json"))) as? [String: Any]
        let width = try XCTUnwrap(versions?["channels"] as? Int)
        let g = c.generator(try io.tensor("z").shape[1], width)
        try g.load(from: try file("\(c.name)_g.params.safetensors"), strict: true)
        let dSN = c.critic(true, width), d = c.critic(false, width)
        try dSN.load(from: try file("\(c.name)_d_sn.params.safetensors"), strict: true)
        try d.load(from: try file("\(c.name)_d.params.safetensors"), strict: true)
        return (g, dSN, d, io)
    }

    /// Each gradient against PyTorch's within the parity tolerance of its own largest value, or
    /// with `lossScaleFloor`, of `lossScaleFloor` times the largest gradient of the whole loss.
    /// (The WGAN-GP loss needs the second: the bias of a channel that stays in ReLU's linear
    /// range gets the same gradient from every image, so mean critic(fake) - mean critic(real)
    /// gives it exactly zero, computed as a difference of terms of the loss's scale; PyTorch's
    /// float32 leaves about 1e-6 there, a tenth of a millionth of the largest gradient, 0.19.)
    func checkGradients(_ grads: [Tensor], of model: Module, io: SafeTensorsFile, prefix: String, lossScaleFloor: Double? = nil) throws {
        let trainable = model.namedTrainableParameters
        XCTAssertEqual(Set(trainable.map { prefix + $0.0 }), Set(io.names.filter { $0.hasPrefix(prefix) }), "\(prefix): the same parameters")
        let scale = try trainable.map { try io.tensor(prefix + $0.0).doubleScalars().map(abs).max() ?? 0 }.max() ?? 0
        for ((name, _), grad) in zip(trainable, grads) {
            if let lossScaleFloor {
                assertClose(grad, try io.tensor(prefix + name), floor: max(parityAbsoluteFloor, lossScaleFloor * scale), prefix + name)
            } else {
                assertParity(grad, try io.tensor(prefix + name), prefix + name)
            }
        }
    }

    func checkSpectrallyNormalisedCriticAndGenerator(_ c: Case) throws {
        let (g, dSN, _, io) = try fixture(c)
        let z = try io.tensor("z"), real = try io.image("real")
        let fake = g(z, training: true)
        assertParity(nchw(fake), try io.tensor("fake"), "\(c.name): G(z) in training mode")
        assertParity(c.firstBatchNorm(g).runningMean.value, try io.tensor("bn.running_mean"), "\(c.name): running mean")
        assertParity(c.firstBatchNorm(g).runningVar.value, try io.tensor("bn.running_var"), "\(c.name): running variance")

        dSN.powerIterate(1)
        let buffers = Dictionary(dSN.namedParameters, uniquingKeysWith: { a, _ in a })
        let powerNames = io.names.filter { $0.hasPrefix("power.") }
        XCTAssertEqual(powerNames.count, 2 * dSN.namedParameters.filter { $0.0.hasSuffix("weight_orig") }.count, "u and v of every layer")
        for name in powerNames {
            assertParity(try XCTUnwrap(buffers[String(name.dropFirst(6))], name).value, try io.tensor(name), name)
        }

        let sReal = dSN(real, training: true), sFake = dSN(fake.detached(), training: true)
        assertParity(sReal, try io.tensor("s_real"), "\(c.name): scores of real images")
        assertParity(sFake, try io.tensor("s_fake"), "\(c.name): scores of generated images")
        let lossD = hingeDiscriminatorLoss(realScores: sReal, fakeScores: sFake)
        assertParity(lossD.reshaped([1]), try io.tensor("loss_d"), "\(c.name): hinge loss")
        try checkGradients(gradients(of: lossD, wrt: dSN.namedTrainableParameters.map { $0.1.value }), of: dSN, io: io, prefix: "grad_d.")

        let lossG = wganGeneratorLoss(fakeScores: dSN(fake, training: true))
        assertParity(lossG.reshaped([1]), try io.tensor("loss_g"), "\(c.name): generator loss")
        try checkGradients(gradients(of: lossG, wrt: g.namedTrainableParameters.map { $0.1.value }), of: g, io: io, prefix: "grad_g.")
    }

    func checkGradientPenalty(_ c: Case) throws {
        let (_, _, d, io) = try fixture(c)
        let real = try io.image("real"), fake = try io.image("fake"), alpha = try io.image("alpha")
        let (gp, slope) = gradientPenalty(critic: { d($0, training: true) }, real: real, fake: fake, alpha: alpha)
        assertParity(gp.reshaped([1]), try io.tensor("gp"), "\(c.name): gradient penalty")
        assertParity(nchw(slope), try io.tensor("grad_x_hat"), "\(c.name): d critic / d x_hat")
        let loss = wganCriticLoss(realScores: d(real, training: true), fakeScores: d(fake, training: true), penalty: gp, penaltyWeight: 10)
        assertParity(loss.reshaped([1]), try io.tensor("loss_gp"), "\(c.name): penalised critic loss")
        try checkGradients(gradients(of: loss, wrt: d.namedTrainableParameters.map { $0.1.value }), of: d, io: io, prefix: "grad_gp.",
                           lossScaleFloor: 1e-4)
    }

    func testStandardCNNMatchesPyTorch() throws { try checkSpectrallyNormalisedCriticAndGenerator(Self.standardCNN) }
    func testStandardCNNGradientPenaltyMatchesPyTorch() throws { try checkGradientPenalty(Self.standardCNN) }
    func testResNetMatchesPyTorch() throws { try checkSpectrallyNormalisedCriticAndGenerator(Self.resNet) }
    func testResNetGradientPenaltyMatchesPyTorch() throws { try checkGradientPenalty(Self.resNet) }

    /// The names PyTorch's `spectral_norm` gives, and the plain ones without it.
    func testParameterNamesArePyTorchs() {
        let rng = RandomGenerator(seed: 0)
        let sn = Set(StandardCNNCritic(channels: 4, spectralNorm: true, generator: rng).namedParameters.map { $0.0 })
        XCTAssertTrue(sn.isSuperset(of: ["c0_0.weight_orig", "c0_0.weight_u", "c0_0.weight_v", "c0_0.bias", "l4.weight_orig", "l4.weight_v"]))
        XCTAssertFalse(sn.contains("c0_0.weight"))
        let plain = Set(StandardCNNCritic(channels: 4, spectralNorm: false, generator: rng).namedParameters.map { $0.0 })
        XCTAssertEqual(plain.count, 16)
        XCTAssertTrue(plain.contains("c3_0.weight") && plain.contains("l4.bias"))
        let resnet = Set(ResNetCritic(width: 4, spectralNorm: true, generator: rng).namedParameters.map { $0.0 })
        XCTAssertTrue(resnet.isSuperset(of: ["block1.shortcut.weight_orig", "block2.conv2.weight_u", "l5.weight_v"]))
        XCTAssertFalse(resnet.contains { $0.hasPrefix("block3.shortcut") }, "identity shortcuts have no weights")
    }
}
