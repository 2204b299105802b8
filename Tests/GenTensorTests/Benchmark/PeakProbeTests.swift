import XCTest
@testable import GenTensor

/// The peak probe does the arithmetic it counts (timings are for `generative bench --peak`, not tests).
final class PeakProbeTests: XCTestCase {
    /// Each accumulator follows a <- a m + c from seed + j, so after n iterations it holds
    /// (seed + j) m^n + c (1 - m^n) / (1 - m); the loop returns the sum over 16 accumulators x 16 lanes.
    func testFMALoopComputesTheCountedRecurrence() {
        let n = 1000, seed = 0.5, m = Double(Float(0.999_999)), c = Double(Float(1e-7))
        let mn = pow(m, Double(n))
        var expected = 0.0
        for j in 0..<PeakProbe.accumulators { expected += 16 * ((seed + Double(j)) * mn + c * (1 - mn) / (1 - m)) }
        let got = Double(PeakProbe.fmaLoop(iterations: n, seed: Float(seed)))
        XCTAssertEqual(got, expected, accuracy: 1e-4 * expected)
        XCTAssertEqual(PeakProbe.flopsPerIteration, Double(PeakProbe.accumulators * 16 * 2))
    }

    func testProbesReportPositiveRatesAndRestoreTheThreadCount() {
        let threads = Threads.count
        let fma = PeakProbe.fma(threads: 1, seconds: 0.01)
        XCTAssertGreaterThan(fma.gflops_per_s, 0)
        XCTAssertEqual(fma.threads, 1)
        let gemm = PeakProbe.sgemm(threads: 1, size: 64, seconds: 0.01)
        XCTAssertGreaterThan(gemm.gflops_per_s, 0)
        XCTAssertEqual(gemm.probe, "sgemm 64x64x64")
        XCTAssertEqual(Threads.count, threads)
    }
}
