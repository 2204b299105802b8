import Foundation
import GenTestSupport
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN

/// `--init-from`: a network (and its EMA copy) starts from a PyTorch state_dict, for any family,
/// after a strict check that lists every missing, unexpected and misshapen tensor.
final class InitialWeightsTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeTemporaryFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func write(_ state: [String: Tensor], _ name: String) throws -> String {
        let url = folder.appendingPathComponent(name)
        try SafeTensorsFile.write(state, metadata: [:], to: url)
        return url.path
    }

    func values(_ module: Module) -> [String: [Double]] { module.stateDict().mapValues { $0.doubleScalars() } }

    func testArgumentsParse() {
        XCTAssertEqual(InitialWeights(argument: "g.safetensors"), InitialWeights(path: "g.safetensors"))
        XCTAssertEqual(InitialWeights(argument: "generator=runs/a=b.safetensors"),
                       InitialWeights(network: "generator", path: "runs/a=b.safetensors"))
        XCTAssertEqual(InitialWeights(argument: "runs/a=b.safetensors"), InitialWeights(path: "runs/a=b.safetensors"))
    }

    /// A GAN's generator from one seed's state_dict, its discriminator from another's: each network
    /// and the generator's EMA copy then hold exactly those weights, the rest is the model's own.
    func testGANNetworksLoadByName() throws {
        let source = GANTraining(variant: .dcgan, seed: 1), other = GANTraining(variant: .dcgan, seed: 2)
        let model = GANTraining(variant: .dcgan, seed: 3)
        XCTAssertEqual(model.initialisableNetworks(in: { var c = Checkpoint(); model.store(into: &c); return c }()),
                       ["generator", "discriminator"])
        let g = try write(source.generator.stateDict(), "g.safetensors")
        let d = try write(other.discriminator.stateDict(), "d.safetensors")
        let lines = try model.initialise(from: [InitialWeights(path: g), InitialWeights(network: "discriminator", path: d)])
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("initialised the generator from \(g)"), lines[0])
        XCTAssertEqual(values(model.generator), values(source.generator))
        XCTAssertEqual(values(model.discriminator), values(other.discriminator))
        XCTAssertEqual(model.ema.shadows.map { $0.doubleScalars() }, source.ema.parameters.map { $0.value.doubleScalars() })
    }

    /// The strict check lists every problem at once, on one line, naming the flag and the file.
    func testMismatchesAreAllListed() throws {
        let model = GANTraining(variant: .dcgan, seed: 3)
        var state = model.generator.stateDict()
        let names = state.keys.sorted()
        state.removeValue(forKey: names[0])
        state.removeValue(forKey: names[1])
        state["extra.weight"] = Tensor([Float(1)], shape: [1])
        state[names[2]] = Tensor([Float](repeating: 0, count: 3), shape: [3])
        let path = try write(state, "bad.safetensors")
        let before = values(model.generator)
        XCTAssertThrowsError(try model.initialise(from: [InitialWeights(path: path)])) { error in
            guard let mismatch = error as? StateDictMismatch else { return XCTFail("\(error)") }
            XCTAssertEqual(mismatch.missing, [names[0], names[1]])
            XCTAssertEqual(mismatch.unexpected, ["extra.weight"])
            XCTAssertEqual(mismatch.misshapen.map(\.name), [names[2]])
            XCTAssertEqual(mismatch.misshapen.first?.file, [3])
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"))
            XCTAssertTrue(text.hasPrefix("--init-from \(path): the state_dict does not fit the generator: 2 missing (\(names[0]), \(names[1])); 1 unexpected (extra.weight); 1 misshapen (\(names[2]): [3] in the file, "), text)
        }
        XCTAssertEqual(values(model.generator), before, "a refused state_dict changes nothing")
        XCTAssertThrowsError(try model.initialise(from: [InitialWeights(network: "critic", path: path)])) { error in
            XCTAssertEqual("\(error)", "--init-from critic=\(path): no network 'critic'; this model has generator, discriminator")
        }
    }

    /// Families without a special case: CycleGAN's four networks by their checkpoint names, and a
    /// DDPM's U-Net (network "model", with its EMA copy).
    func testCycleGANAndDDPMNetworks() throws {
        let tiny = CycleGANConfiguration(generatorChannels: 4, residualBlocks: 1, discriminatorChannels: 4)
        let cycle = CycleGANTraining(config: tiny, seed: 1), cycleSource = CycleGANTraining(config: tiny, seed: 2)
        var c = Checkpoint()
        cycle.store(into: &c)
        XCTAssertEqual(cycle.initialisableNetworks(in: c), ["generator_ab", "generator_ba", "discriminator_a", "discriminator_b"])
        let path = try write(cycleSource.discriminatorB.stateDict(), "db.safetensors")
        let name = try XCTUnwrap(cycle.optimizers.first { $0.module === cycle.discriminatorB }?.name)
        try cycle.initialise(from: [InitialWeights(network: name, path: path)])
        XCTAssertEqual(values(cycle.discriminatorB), values(cycleSource.discriminatorB))

        var config = DDPMConfiguration()
        config.width = 8
        let ddpm = DDPMTraining(config: config, learningRate: 1e-3, seed: 1), ddpmSource = DDPMTraining(config: config, learningRate: 1e-3, seed: 2)
        let unet = try write(ddpmSource.model.stateDict(), "unet.safetensors")
        try ddpm.initialise(from: [InitialWeights(path: unet)])
        XCTAssertEqual(values(ddpm.model), values(ddpmSource.model))
        XCTAssertEqual(ddpm.ema.shadows.map { $0.doubleScalars() }, ddpmSource.ema.parameters.map { $0.value.doubleScalars() })
    }
}
