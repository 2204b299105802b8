import Foundation
@testable import generative
import XCTest

/// `generative distributed-check` (hidden): the Open MPI binding's collectives on two ranks under
/// `mpirun -np 2` when Open MPI is installed (CI installs it: .ci/run), and trivially in one process.
final class DistributedCommandTests: CommandTestCase {
    func testDistributedCheckPassesOnTwoRanksUnderMPIRun() throws {
        let (status, out, err) = try runOnTwoRanks(["distributed-check"], skipping: "distributed-check did not run on 2 ranks")
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        let lines = err.split(separator: "\n")
        // Only rank 0 prints.
        XCTAssertEqual(lines.filter { $0 == "ranks: 2" }.count, 1, err)
        XCTAssertTrue(lines.contains("distributed-check: allreduce (sum, max), broadcast, allgather, gather and barrier agree on 2 rank(s)"), err)
        XCTAssertFalse(err.contains("rank 1"), err)
        XCTAssertEqual(out, "", out)
    }

    func testDistributedCheckRunsTriviallyInOneProcess() throws {
        if ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil {
            throw XCTSkip("this test process was itself launched by mpirun")
        }
        let (status, out, err) = try runExecutable(["distributed-check"])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(err.split(separator: "\n").first, "ranks: 1", err)
        XCTAssertTrue(err.contains("agree on 1 rank(s)"), err)
        XCTAssertEqual(out, "")
    }

    func testDistributedCheckIsHiddenFromHelp() throws {
        let (status, out, err) = try runExecutable(["--help"])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("plot"), out)
        XCTAssertFalse(out.contains("distributed-check"), out)
    }
}
