import Foundation
@testable import generative
import XCTest
import GenTensor
import GenFormats
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

    /// A labelled PNG folder (one sub-folder per class) of `perClass` Fashion-MNIST images of classes 0-3.
    func tinyLabelledFolder(_ dir: URL, perClass: Int = 6) throws -> String {
        let data = try ImageDataset.fashionMNIST(split: .train).subset(Array(0..<200))
        let labels = data.labels!.scalars(as: Int64.self)
        let folder = dir.appendingPathComponent("tiny")
        for k in 0..<4 {
            let classFolder = folder.appendingPathComponent(String(k))
            try FileManager.default.createDirectory(at: classFolder, withIntermediateDirectories: true)
            for (j, i) in labels.indices.filter({ labels[$0] == Int64(k) }).prefix(perClass).enumerated() {
                try PNGWriter.encode(data.images.sliced(axis: 0, i..<(i + 1)).reshaped([28, 28, 1]))
                    .write(to: classFolder.appendingPathComponent("\(j).png"))
            }
        }
        return folder.path
    }

    /// Parses and runs a command line, as `generative` would (on the backend its flags choose).
    func run(_ arguments: [String]) throws {
        var command = try Generative.parseAsRoot(arguments)
        try Generative.run(&command)
    }

    /// The built `generative` beside the test bundle (in it on Linux, beside it on macOS).
    func executable() throws -> URL {
        let bundle = Bundle(for: Self.self).bundleURL
        let candidates = [bundle, bundle.deletingLastPathComponent()].map { $0.appendingPathComponent("generative") }
        guard let url = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw XCTSkip("no built generative beside \(bundle.path)")
        }
        return url
    }

    /// Runs the built `generative` with `arguments` (and `environment` added), returning its exit
    /// status, stdout and stderr.
    func runExecutable(_ arguments: [String], environment: [String: String] = [:],
                       in directory: URL? = nil) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = try executable()
        if let directory { process.currentDirectoryURL = directory }
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outText = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, outText, errText)
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
