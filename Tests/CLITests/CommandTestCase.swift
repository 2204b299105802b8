import Foundation
@testable import generative
import XCTest
import GenTensor
import GenModels
import GenData
import GenEval
import GenTrain

/// A test case that runs `generative` command lines in-process, with a temporary folder per test.
class CommandTestCase: XCTestCase {
    /// A fresh folder, removed after the test.
    func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gen-cli-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Parses and runs a command line, as `generative` would (on the backend its flags choose).
    func run(_ arguments: [String]) throws {
        var command = try Generative.parseAsRoot(arguments)
        try Generative.run(&command)
    }

    /// The message a user would see for a failing command line, or nil when it succeeds.
    func errorMessage(_ arguments: [String]) -> String? {
        do {
            try run(arguments)
            return nil
        } catch {
            return Generative.message(for: error)
        }
    }
}
