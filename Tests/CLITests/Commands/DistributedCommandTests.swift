import Foundation
@testable import generative
import XCTest

/// `generative distributed-check` (hidden): the Open MPI binding's collectives on two ranks under
/// `mpirun -np 2` when Open MPI is installed (CI installs it: .ci/run), and trivially in one process.
final class DistributedCommandTests: CommandTestCase {
    /// `mpirun` on the PATH, or a skip saying why the two-rank check did not run.
    private func mpirun() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let url = URL(fileURLWithPath: String(folder)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("mpirun is not installed (Debian: libopenmpi-dev openmpi-bin, which scripts/mpirun installs), "
                      + "so distributed-check did not run on 2 ranks")
    }

    func testDistributedCheckPassesOnTwoRanksUnderMPIRun() throws {
        let mpirun = try mpirun()
        let executable = try executable()
        let folder = tempDir()
        let outURL = folder.appendingPathComponent("out"), errURL = folder.appendingPathComponent("err")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let process = Process()
        process.executableURL = mpirun
        // Root is allowed (CI and containers run as root); two ranks may share fewer cores.
        process.arguments = ["-np", "2", "--oversubscribe", "--allow-run-as-root", executable.path, "distributed-check"]
        // Shared-memory transfers by copy-in/copy-out: a container that forbids process_vm_readv (CMA)
        // would otherwise fail the larger collectives.
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        let start = Date()
        try process.run()
        // A hung collective must fail the test, not the suite.
        while process.isRunning && Date().timeIntervalSince(start) < 300 { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("mpirun -np 2 distributed-check did not finish in 300 s")
        }
        let out = try String(contentsOf: outURL, encoding: .utf8)
        let err = try String(contentsOf: errURL, encoding: .utf8)
        XCTAssertEqual(process.terminationStatus, 0, "stdout:\n\(out)\nstderr:\n\(err)")
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
