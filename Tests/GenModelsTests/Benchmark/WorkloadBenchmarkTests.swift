import GenModels
import XCTest
import GenTensor
import GenFormats

/// `generative bench --workload` accepts exactly the workloads that exist.
final class WorkloadBenchmarkTests: XCTestCase {
    func testNamesAreTheWorkloadsInOrder() {
        var seen: [String] = []
        for workload in WorkloadBenchmark.workloads(batch: 2) where seen.last != workload.name { seen.append(workload.name) }
        XCTAssertEqual(seen, WorkloadBenchmark.names)
    }
}
