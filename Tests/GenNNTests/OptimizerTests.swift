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
}
