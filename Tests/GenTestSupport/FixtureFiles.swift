import Foundation
import GenFormats
import GenTensor
import XCTest
import GenModels

/// The PyTorch parity fixtures: the folder named by `FIXTURES_DIR`, defaulting to the repository's
/// own draw in `Tests/Fixtures` (written by `scripts/make-fixtures.py`). A missing folder or file
/// fails the test, never skips it.
public enum FixtureFiles {
    /// The fixtures folder.
    public static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["FIXTURES_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return tests.appendingPathComponent("Fixtures", isDirectory: true)
    }

    /// The message for a fixtures folder or file that is missing.
    public static func missingMessage(_ path: String) -> String {
        "parity fixture \(path) is missing: set FIXTURES_DIR to a folder written by scripts/make-fixtures.py, "
            + "or leave it unset for the repository's Tests/Fixtures"
    }

    /// Opens `NAME.safetensors` from the fixtures folder.
    public static func open(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> SafeTensorsFile {
        let url = directory.appendingPathComponent("\(name).safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail(missingMessage(url.path), file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        return try SafeTensorsFile(contentsOf: url)
    }
}
