@testable import GenDistributed
import XCTest

/// The binding without `mpirun`: a plain process has no world and never loads libmpi; the
/// single-rank communicator's collectives return their input; a missing library or symbol is an
/// error naming it. (The collectives across ranks are checked by `generative distributed-check`
/// under `mpirun -np 2`: CLITests' DistributedCommandTests.)
final class CommunicatorTests: XCTestCase {
    func testWorldIsNilInAPlainProcess() throws {
        if Communicator.launchedByMPIRun(environment: ProcessInfo.processInfo.environment) {
            throw XCTSkip("this test process was itself launched by mpirun")
        }
        XCTAssertNil(try Communicator.world)
        let current = try Communicator.current
        XCTAssertTrue(current === Communicator.single)
        XCTAssertEqual(current.rank, 0)
        XCTAssertEqual(current.size, 1)
        XCTAssertNil(current.library)
    }

    func testLaunchedByMPIRunReadsOpenMPIsEnvironment() {
        XCTAssertTrue(Communicator.launchedByMPIRun(environment: ["OMPI_COMM_WORLD_SIZE": "2", "PATH": "/bin"]))
        XCTAssertFalse(Communicator.launchedByMPIRun(environment: ["PATH": "/bin"]))
    }

    func testSingleRankCollectivesReturnTheirInput() throws {
        let single = Communicator.single
        var floats: [Float] = [1.5, -2, 3]
        try single.allreduceSum(&floats)
        XCTAssertEqual(floats, [1.5, -2, 3])
        try floats.withUnsafeMutableBufferPointer { try single.allreduceSum($0) }
        XCTAssertEqual(floats, [1.5, -2, 3])
        var doubles: [Double] = [0.25, 7]
        try single.allreduceMax(&doubles)
        XCTAssertEqual(doubles, [0.25, 7])
        var integers: [Int64] = [1 << 40]
        try single.broadcast(&integers, root: 0)
        XCTAssertEqual(integers, [1 << 40])
        XCTAssertEqual(try single.broadcast(bytes: [1, 2, 3]), [1, 2, 3])
        XCTAssertEqual(try single.allgather([2.5, 3.5]), [2.5, 3.5])
        XCTAssertEqual(try single.gather([Int64(4)], root: 0), [4])
        try single.barrier()
        XCTAssertThrowsError(try single.broadcast(&integers, root: 1)) { error in
            XCTAssertEqual("\(error)", "root rank 1 is outside 0..<1")
        }
    }

    func testALibraryThatDoesNotLoadIsNamedWithTheReason() {
        XCTAssertThrowsError(try Communicator.launch(worldSize: "2", candidates: ["libmpi-missing.so.40", "libmpi-missing.so"])) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("launched by mpirun (OMPI_COMM_WORLD_SIZE=2) but libmpi-missing.so.40 could not be loaded: libmpi-missing.so.40: "), message)
            XCTAssertTrue(message.contains("libmpi-missing.so: "), message)
            XCTAssertTrue(message.contains("cannot open shared object file"), message)
            XCTAssertTrue(message.contains("libopenmpi-dev openmpi-bin"), message)
        }
    }

    func testALibraryWithoutMPIsSymbolsIsNamed() {
        // The C library loads, but is not MPI: the first symbol looked up is missing.
        XCTAssertThrowsError(try MPILibrary.load(candidates: ["libc.so.6"])) { error in
            XCTAssertTrue("\(error)".hasPrefix("libc.so.6 was loaded but has no symbol MPI_Init_thread"), "\(error)")
        }
    }
}

final class LauncherEnvironmentTests: XCTestCase {
    func testMPIRunAndSrunWithPMIxAnnounceTheirWorldSize() {
        XCTAssertEqual(Communicator.launcherWorldSize(environment: ["OMPI_COMM_WORLD_SIZE": "4"]), "4")
        XCTAssertEqual(Communicator.launcherWorldSize(environment: ["PMIX_RANK": "1", "SLURM_NTASKS": "8"]), "8")
        // A Slurm job step without PMIx (a plain `srun generative ...` per task) is a plain process.
        XCTAssertNil(Communicator.launcherWorldSize(environment: ["SLURM_NTASKS": "8", "SLURM_PROCID": "0"]))
        XCTAssertNil(Communicator.launcherWorldSize(environment: [:]))
    }
}
