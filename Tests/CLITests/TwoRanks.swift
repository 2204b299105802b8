import Foundation
import XCTest

extension CommandTestCase {
    /// `mpirun` on the PATH, or a skip naming what did not run without it.
    func mpirun(skipping what: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let url = URL(fileURLWithPath: String(folder)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("mpirun is not installed (Debian: libopenmpi-dev openmpi-bin, which scripts/mpirun installs), so \(what)")
    }

    /// Runs the built `generative` with `arguments` on two ranks of `mpirun -np 2`, as
    /// `scripts/mpirun` does: (exit status, stdout, stderr). Root is allowed (CI and containers run as
    /// root), the two ranks may share fewer cores, and shared-memory transfers go by copy-in/copy-out,
    /// since a container that forbids process_vm_readv (CMA) would otherwise fail the larger
    /// collectives. A run that hangs fails the test after 300 s instead of hanging the suite.
    func runOnTwoRanks(_ arguments: [String], skipping what: String) throws -> (status: Int32, out: String, err: String) {
        let mpirun = try mpirun(skipping: what), executable = try executable()
        let folder = tempDir()
        let outURL = folder.appendingPathComponent("out"), errURL = folder.appendingPathComponent("err")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let process = Process()
        process.executableURL = mpirun
        process.arguments = ["-np", "2", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", executable.path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        let start = Date()
        try process.run()
        while process.isRunning && Date().timeIntervalSince(start) < 300 { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("mpirun -np 2 \(arguments.joined(separator: " ")) did not finish in 300 s")
        }
        return (process.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
    }
}
