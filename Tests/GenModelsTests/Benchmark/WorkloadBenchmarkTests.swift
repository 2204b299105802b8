import GenModels
import XCTest
import GenTensor
import GenFormats

/// The families' `bench` workloads build what their names say, and `run` times exactly the selection.
final class WorkloadBenchmarkTests: XCTestCase {
    let suites = [WorkloadBenchmark.vae, WorkloadBenchmark.dcgan, WorkloadBenchmark.unet, WorkloadBenchmark.ddpm,
                  WorkloadBenchmark.ldm, WorkloadBenchmark.classifier]

    func testEachSuiteBuildsWorkloadsOfItsOwnNameAtTheOverriddenBatch() {
        for suite in suites {
            let workloads = suite.build(2, RandomGenerator(seed: 0))
            XCTAssertFalse(workloads.isEmpty, suite.name)
            for workload in workloads {
                XCTAssertEqual(workload.name, suite.name)
                XCTAssertTrue(["train", "sample"].contains(workload.phase), workload.phase)
                XCTAssertEqual(workload.batch, 2, "\(suite.name) \(workload.phase)")
            }
        }
    }

    func testRunTimesOnlyTheSelectedWorkloadAndPhase() {
        var results: [WorkloadBenchmark.Result] = []
        var progress: [Int] = []
        WorkloadBenchmark.run(suites, workload: "vae", phase: "sample", batch: 2, seconds: 0.001,
                              started: { done, _ in progress.append(done) }) { results.append($0) }
        XCTAssertEqual(results.map { "\($0.workload) \($0.phase) \($0.batch)" }, ["vae sample 2"])
        XCTAssertGreaterThan(results[0].items_per_s, 0)
        XCTAssertEqual(progress, [0, 1])
    }
}
