import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenTestSupport
import XCTest

/// RealNVP and Glow against their PyTorch twin (`scripts/torch-realnvp.py`, which loads the same
/// state_dict names): bits/dim, latents, every layer's log-determinant, and the gradients of the mean
/// bits/dim for every parameter. The flow fixtures are the repository's own (`Tests/Fixtures/flows`,
/// not part of the shared draw that `FIXTURES_DIR` names).
final class FlowParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/flows")

    func check(_ name: String) throws {
        let params = try SafeTensorsFile(contentsOf: Self.folder.appendingPathComponent("\(name).params.safetensors"))
        let io = try SafeTensorsFile(contentsOf: Self.folder.appendingPathComponent("\(name).io.safetensors"))
        let config = try JSONDecoder().decode(FlowConfiguration.self, from: Data(try XCTUnwrap(params.metadata["flow_config"]).utf8))
        let flow = NormalizingFlow(config, generator: RandomGenerator(seed: 0))
        try flow.load(from: params, strict: true)
        let (bits, logDets) = flow.bitsPerDimension(try io.tensor("images"), uniform: try io.tensor("uniform"), training: false)
        assertClose(bits, try io.tensor("bits"), "\(name) bits/dim")
        assertClose(Tensor.concatenate(logDets.map { $0.reshaped([-1, 1]) }, axis: 1), try io.tensor("log_dets"), "\(name) log-determinants")
        let z = withoutGradients { flow.forward(FlowDensity.logit(Dequantization.dequantize(try! io.tensor("images"), uniform: try! io.tensor("uniform")),
                                                                  alpha: config.alpha).x, training: false).z }
        assertClose(z, try io.tensor("z"), "\(name) latents")
        let trainable = flow.namedTrainableParameters
        let grads = gradients(of: bits.mean(), wrt: trainable.map { $0.1.value })
        for ((parameter, _), grad) in zip(trainable, grads) {
            assertClose(grad, try io.tensor("grad." + parameter), "\(name) gradient of \(parameter)")
        }
        XCTAssertEqual(Set(trainable.map { "grad." + $0.0 }), Set(io.names.filter { $0.hasPrefix("grad.") }), "\(name): the same parameters")
    }

    func testRealNVPMatchesPyTorch() throws { try check("realnvp") }
    func testGlowMatchesPyTorch() throws { try check("glow") }
    func testAdditiveGlowMatchesPyTorch() throws { try check("glow_additive") }
}
