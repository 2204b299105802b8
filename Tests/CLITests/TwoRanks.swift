import Foundation
import XCTest

extension CommandTestCase {
    /// `mpirun` on the PATH, or a skip naming what did not run without it.
    func mpirun(skipping what: String) throws -> URL {
        guard let url = executableOnPath("mpirun") else {
            throw XCTSkip("mpirun is not installed (Debian: libopenmpi-dev openmpi-bin, which scripts/mpirun installs), so \(what)")
        }
        return url
    }

    /// Runs the built `generative` with `arguments` on two ranks of `mpirun -np 2`, as
    /// `scripts/mpirun` does: (exit status, stdout, stderr). Root is allowed (CI and containers run as
    /// root), the two ranks may share fewer cores, and shared-memory transfers go by copy-in/copy-out,
    /// since a container that forbids process_vm_readv (CMA) would otherwise fail the larger
    /// collectives. A run that hangs fails the test after 300 s instead of hanging the suite.
    func runOnTwoRanks(_ arguments: [String], skipping what: String,
                       watch: ((Process) -> Bool)? = nil) throws -> (status: Int32, out: String, err: String) {
        let mpirun = try mpirun(skipping: what), executable = try executable()
        return try runProcess(mpirun, ["-np", "2", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", executable.path] + arguments,
                              environment: ["OMPI_MCA_btl_vader_single_copy_mechanism": "none"], watch: watch)
    }

    /// The PIDs of `pid`'s child processes (from /proc), in increasing order.
    func childProcesses(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // pid (comm) state ppid ...: the fields after the command name's closing parenthesis.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }.sorted()
    }
}
