import Foundation
@testable import generative
import XCTest

/// Shell completion (`generative --generate-completion-script bash|zsh|fish`): the scripts come
/// from the real executable, bash's is valid and completes subcommands and shared flags.
final class CompletionTests: CommandTestCase {
    func testBashCompletionCompletesCommandsAndFlags() throws {
        let (status, script, err) = try runExecutable(["--generate-completion-script", "bash"])
        XCTAssertEqual(status, 0, err)
        let url = tempDir().appendingPathComponent("generative.bash")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try script.write(to: url, atomically: true, encoding: .utf8)
        func complete(_ words: [String]) throws -> [String] {
            let line = words.joined(separator: " ")
            let program = """
                source '\(url.path)'
                COMP_LINE='\(line)'; COMP_POINT=\(line.count); COMP_WORDS=(\(words.map { "'\($0)'" }.joined(separator: " "))); COMP_CWORD=\(words.count - 1)
                _generative; printf '%s\\n' "${COMPREPLY[@]}"
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", program]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        XCTAssertTrue(try complete(["generative", ""]).contains("train"))
        let trainFlags = try complete(["generative", "train", "dcgan", ""])
        for flag in ["--init-from", "--log-every", "--tensorboard", "--threads", "--max-steps"] {
            XCTAssertTrue(trainFlags.contains(flag), "\(flag) in \(trainFlags.prefix(20))")
        }
        for shell in ["zsh", "fish"] {
            let (code, text, _) = try runExecutable(["--generate-completion-script", shell])
            XCTAssertEqual(code, 0)
            XCTAssertTrue(text.contains("generative") && text.contains("init-from"), shell)
        }
    }
}
