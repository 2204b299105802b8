import GenNN
import GenTestSupport
import XCTest
import GenTensor
import GenFormats

/// Three steps of each optimizer against PyTorch's (fixtures `optimizers.io`).
final class OptimizerTests: XCTestCase {
    func run(_ name: String, _ make: ([Parameter]) -> Optimizer) throws {
        let io = try FixtureFiles.open("optimizers.io")
        let w = Parameter(try io.tensor("w0")), b = Parameter(try io.tensor("b0"))
        let opt = make([w, b])
        for i in 1...3 {
            opt.step([try io.tensor("grad_w\(i)"), try io.tensor("grad_b\(i)")])
            // Three Float32 updates: PyTorch's foreach kernels and ours round differently in the last bit.
            assertClose(w.value, try io.tensor("\(name)_w\(i)"), relative: 1e-6, "\(name) w step \(i)")
            assertClose(b.value, try io.tensor("\(name)_b\(i)"), relative: 1e-6, "\(name) b step \(i)")
        }
    }

    func testSGDMomentum() throws { try run("sgd") { SGD($0, learningRate: 0.1, momentum: 0.9) } }
    func testAdam() throws { try run("adam") { Adam($0, learningRate: 1e-2) } }
    func testAdamW() throws { try run("adamw") { Adam.adamW($0, learningRate: 1e-2, weightDecay: 0.1) } }
    func testRMSprop() throws { try run("rmsprop") { RMSprop($0, learningRate: 1e-2) } }

    /// `lastGradientNorm`: the global L2 norm of the last step's gradients, for every optimizer; the
    /// gradients are the caller's, unchanged by the update.
    func testLastGradientNormIsTheGlobalL2Norm() {
        for make in [{ SGD($0, learningRate: 0.1, momentum: 0.9) as Optimizer }, { Adam($0, learningRate: 1e-2, weightDecay: 0.1) },
                     { RMSprop($0, learningRate: 1e-2) }] as [([Parameter]) -> Optimizer] {
            let opt = make([Parameter(Tensor([Float](repeating: 1, count: 3), shape: [3])), Parameter(Tensor([Float(2)], shape: [1]))])
            XCTAssertNil(opt.lastGradientNorm)
            opt.step([Tensor([Float(3), 0, 4], shape: [3]), Tensor([Float(12)], shape: [1])])
            XCTAssertEqual(opt.lastGradientNorm ?? 0, 13, accuracy: 1e-12)  // sqrt(9 + 16 + 144)
            opt.step([Tensor([Float(0), 0, 0], shape: [3]), Tensor([Float(-2)], shape: [1])])
            XCTAssertEqual(opt.lastGradientNorm ?? 0, 2, accuracy: 1e-12)
        }
    }

    /// `maxGradientNorm`: each step first scales the gradients to that global norm (PyTorch's
    /// `clip_grad_norm_`), and `lastGradientNorm` reports the norm before clipping, as it returns.
    func testMaxGradientNormClipsBeforeTheUpdate() {
        let w = Parameter(Tensor([Float](repeating: 1, count: 3), shape: [3])), b = Parameter(Tensor([Float(2)], shape: [1]))
        let sgd = SGD([w, b], learningRate: 0.5)
        sgd.maxGradientNorm = 1
        sgd.step([Tensor([Float(3), 0, 4], shape: [3]), Tensor([Float(12)], shape: [1])])
        XCTAssertEqual(sgd.lastGradientNorm ?? 0, 13, accuracy: 1e-5)
        // The update used g / (13 + 1e-6): w = 1 - 0.5 g / 13.
        let expected: [Float] = [1 - 0.5 * 3 / 13, 1, 1 - 0.5 * 4 / 13]
        for (a, e) in zip(w.value.scalars(as: Float.self), expected) { XCTAssertEqual(a, e, accuracy: 1e-6) }
        XCTAssertEqual(b.value.scalars(as: Float.self)[0], 2 - 0.5 * 12 / 13, accuracy: 1e-6)
        // Below the bound nothing is scaled.
        sgd.step([Tensor([Float(0.1), 0, 0], shape: [3]), Tensor([Float(0)], shape: [1])])
        XCTAssertEqual(sgd.lastGradientNorm ?? 0, 0.1, accuracy: 1e-6)
        XCTAssertEqual(w.value.scalars(as: Float.self)[0], expected[0] - 0.05, accuracy: 1e-6)
    }
}
