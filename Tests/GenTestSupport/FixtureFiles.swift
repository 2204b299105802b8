import Foundation
import GenTensor
import XCTest

/// The PyTorch parity fixtures: the folder named by `FIXTURES_DIR`, defaulting to
/// `../shared/fixtures` beside the package root. A missing folder or file fails the test (CI always
/// has them), never skips it.
public enum FixtureFiles {
    /// The fixtures folder.
    public static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["FIXTURES_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/fixtures", isDirectory: true)
    }

    /// Opens `NAME.safetensors` from the fixtures folder.
    public static func open(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> SafeTensorsFile {
        let url = directory.appendingPathComponent("\(name).safetensors")
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("fixture \(url.path) is missing: set FIXTURES_DIR to the fixtures folder", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        return try SafeTensorsFile(contentsOf: url)
    }
}
