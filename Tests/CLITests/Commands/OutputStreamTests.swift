import Foundation
@testable import generative
import XCTest

/// Progress and logs go to stderr, results to stdout, through the real executable: a training run's
/// stdout holds only where it left its files, and `eval --json` prints one JSON object and nothing else.
final class OutputStreamTests: CommandTestCase {
    func testTrainingLogsGoToStderrAndResultsToStdout() throws {
        let run = tempDir().appendingPathComponent("run")
        let (status, out, err) = try runExecutable(["train", "vae", "--epochs", "1", "--max-steps", "2", "--batch-size", "8",
                                                    "--threads", "1", "--out", run.path])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("training mlp vae on"), err)
        XCTAssertTrue(err.contains("backend cpu, 1 thread") || err.contains("backend reference, 1 thread"), err)
        XCTAssertTrue(err.contains("epoch 1"), err)
        XCTAssertFalse(out.contains("epoch"), out)
        XCTAssertTrue(out.hasPrefix("done in "), out)
        XCTAssertTrue(out.contains(run.appendingPathComponent("checkpoint.safetensors").path), out)
    }

    func testEvalJSONIsTheWholeOfStdout() throws {
        let images = tempDir().appendingPathComponent("x.npy")
        try run(["sample", "vae", "--checkpoint", Self.vaeCheckpoint, "--count", "20", "--out", images.path])
        let (status, out, err) = try runExecutable(["eval", images.path, "--count", "20", "--json"])
        XCTAssertEqual(status, 0, err)
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        XCTAssertNotNil(object?["fid"], out)
    }

    static let vaeCheckpoint = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Checkpoints/legacy-2026-12b/vae-conv.safetensors").path
}
