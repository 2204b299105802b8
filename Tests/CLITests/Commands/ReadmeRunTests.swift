import Foundation
@testable import generative
import XCTest
import GenTensor
import GenFormats

/// Every concrete command of the README runs, in the README's order, through the real executable
/// in a scratch folder, with tiny settings: training stops after 2 steps of 8 images, sampling and
/// evaluation use 8 to 16 images, benchmarks time for a moment. So a documented command cannot
/// break unseen. Inputs the README takes from outside the toolkit (PyTorch's peer samples) get
/// stand-ins; the commands whose inputs no earlier README command makes are listed, and the list
/// is checked.
final class ReadmeRunTests: CommandTestCase {
    /// Commands that read what no README command makes (a run the reader trains with other flags,
    /// a folder of class folders), run only as far as parsing (ReadmeCommandTests).
    static let needExternalInputs: Set<String> = [
        "eval RUN/checkpoint.safetensors",
        "eval runs/cgan/checkpoint.safetensors",
        "eval cg-S",
    ]

    /// A README command with tiny settings.
    static func tiny(_ arguments: [String]) -> [String] {
        var args = arguments
        func drop(_ flag: String) {
            if let i = args.firstIndex(of: flag) { args.removeSubrange(i...min(i + 1, args.count - 1)) }
        }
        func set(_ flag: String, _ value: String) {
            if let i = args.firstIndex(of: flag), i + 1 < args.count { args[i + 1] = value } else { args += [flag, value] }
        }
        switch args.first {
        case "train":
            drop("--minutes")
            set("--max-steps", "2")
            set("--batch-size", "8")
            if !args.contains("--resume") { args.append("--overwrite") }
        case "sample":
            set("--count", "8")
        case "eval":
            if args.contains("--likelihood") {
                set("--count", "2")
                set("--likelihood-steps", "2")
            } else {
                set("--count", "16")
                if args.contains("--fid-at") { set("--fid-at", "8,16") }
                set("--batch-size", "16")
            }
        case "table":
            set("--count", "16")
            set("--batch-size", "16")
        case "report":
            set("--grid", "4")
        case "ldm" where args.dropFirst().first == "score":
            set("--count", "8")
            set("--batch-size", "8")
        case "bench":
            if !args.contains("--peak") {
                set("--seconds", "0.05")
                set("--batch-size", "4")
            }
            if args.contains("--distributed") { set("--max-steps", "3") }
        default:
            break
        }
        set("--threads", "2")
        return args
    }

    func testEveryReadmeCommandRunsWithTinySettings() throws {
        let folder = tempDir()
        let commands = try ReadmeCommandTests.commands()
        var skipped: Set<String> = [], ran = 0
        for command in commands {
            let text = command.joined(separator: " ")
            if Self.needExternalInputs.contains(text) {
                skipped.insert(text)
                continue
            }
            // PyTorch's peer samples (scripts/torch-peer-samples.py) get a stand-in of random images.
            for path in command where path.hasPrefix("runs/peers/") && path.hasSuffix(".npy") {
                let url = folder.appendingPathComponent(path)
                guard !FileManager.default.fileExists(atPath: url.path) else { continue }
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try NPY.writeImages(Tensor.uniform([40, 28, 28, 1], generator: RandomGenerator(seed: 1)), to: url)
            }
            let (words, output) = ReadmeCommandTests.redirected(command)
            let arguments = Self.tiny(words)
            let start = Date()
            let (status, out, err) = try runExecutable(arguments, in: folder)
            if let output { try Data(out.utf8).write(to: folder.appendingPathComponent(output)) }
            print(String(format: "README command %5.1f s: generative %@", Date().timeIntervalSince(start), arguments.joined(separator: " ")))
            XCTAssertEqual(status, 0, "README command `generative \(text)` (run as `\(arguments.joined(separator: " "))`): \(err.suffix(600))")
            ran += 1
        }
        XCTAssertEqual(skipped, Self.needExternalInputs, "the README no longer has these commands: update the list")
        XCTAssertGreaterThan(ran, 25)
    }
}
