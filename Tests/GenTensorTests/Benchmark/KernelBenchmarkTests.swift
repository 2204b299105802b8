import XCTest
@testable import GenTensor

/// `generative bench --kernels --workload W` times only that workload's shapes.
final class KernelBenchmarkTests: XCTestCase {
    func testWorkloadFilterKeepsOnlyThatWorkloadsShapes() {
        let vae = KernelBenchmark.run(threads: 1, seconds: 0.001, workload: "vae")
        XCTAssertEqual(vae.count, 3 * KernelBenchmark.linearShapes.filter { $0.name.hasPrefix("vae ") }.count)
        XCTAssertTrue(vae.allSatisfy { $0.name.hasPrefix("vae ") && $0.gflopsPerSecond > 0 })

        let dcganConvolutions = KernelBenchmark.convolutionShapes.filter { $0.name.hasPrefix("dcgan ") }
        XCTAssertFalse(dcganConvolutions.isEmpty)
        XCTAssertTrue(KernelBenchmark.convolutionShapes.contains { !$0.name.hasPrefix("dcgan ") },
                      "the filter must have something to leave out")
    }
}
