@testable import GenDistributed
import XCTest

/// Each rank's share of the cores under `mpirun --bind-to none` (what `scripts/mpirun` passes).
final class LocalCoresTests: XCTestCase {
    private func environment(rank: Int, of size: Int, policy: String? = "none") -> [String: String] {
        var environment = ["OMPI_COMM_WORLD_SIZE": "\(size)", "OMPI_COMM_WORLD_LOCAL_RANK": "\(rank)",
                           "OMPI_COMM_WORLD_LOCAL_SIZE": "\(size)"]
        environment["OMPI_MCA_hwloc_base_binding_policy"] = policy
        return environment
    }

    func testEachLocalRankGetsAContiguousShareOfTheAllowedCores() {
        let cores = Array(0..<16)
        XCTAssertEqual((0..<4).map { LocalCores.share(environment: environment(rank: $0, of: 4), allowed: cores) },
                       [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]])
        // Cores beyond a whole share stay unused; fewer cores than ranks: one each, shared.
        XCTAssertEqual(LocalCores.share(environment: environment(rank: 2, of: 3), allowed: [1, 3, 5, 7]), [5])
        XCTAssertEqual(LocalCores.share(environment: environment(rank: 2, of: 3), allowed: [0, 1]), [0])
    }

    func testNoShareInAPlainProcessOrUnderABindingMPIRunMade() {
        XCTAssertNil(LocalCores.share(environment: [:], allowed: [0, 1]))
        XCTAssertNil(LocalCores.share(environment: environment(rank: 0, of: 2, policy: nil), allowed: [0, 1]))
        XCTAssertNil(LocalCores.share(environment: environment(rank: 0, of: 2, policy: "core"), allowed: [0, 1]))
        XCTAssertNil(LocalCores.defaultThreads(environment: [:]))
        XCTAssertNotNil(LocalCores.allowed())
    }
}
