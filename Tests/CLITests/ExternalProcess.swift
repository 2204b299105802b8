import Foundation
import XCTest

extension CommandTestCase {
    /// The first of `names` that is an executable on the PATH, or nil.
    func executableOnPath(_ names: String...) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in names {
            for folder in path.split(separator: ":") {
                let url = URL(fileURLWithPath: String(folder)).appendingPathComponent(name)
                if FileManager.default.isExecutableFile(atPath: url.path) { return url }
            }
        }
        return nil
    }

    /// Runs `executable` with `arguments` (and `environment` added), its output going to files
    /// rather than pipes (a chatty child cannot block on a full pipe): (exit status, stdout,
    /// stderr). A run still going after `timeout` seconds is stopped and fails the test, instead of
    /// hanging the suite. `watch`, when given, is called every 50 ms while the process runs, until
    /// it returns true (it may signal the process's children, say).
    func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                    timeout: TimeInterval = 300, watch: ((Process) -> Bool)? = nil) throws -> (status: Int32, out: String, err: String) {
        let folder = tempDir()
        let outURL = folder.appendingPathComponent("out"), errURL = folder.appendingPathComponent("err")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        let start = Date()
        try process.run()
        var watching = watch != nil
        while process.isRunning && Date().timeIntervalSince(start) < timeout {
            if watching, let watch { watching = !watch(process) }
            usleep(50_000)
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) did not finish in \(Int(timeout)) s")
        }
        return (process.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
    }
}
