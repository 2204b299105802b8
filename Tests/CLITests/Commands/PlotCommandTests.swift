import Foundation
@testable import generative
import XCTest
import GenFormats
import GenEval

/// `generative plot` through the executable: FID against the training step (a line per run) and
/// against the sampling speed (a marker per report), from real `eval --json` reports; and its errors.
final class PlotCommandTests: CommandTestCase {
    func testStepAndSpeedPlotsFromEvalReports() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("vae").path
        try self.run(["train", "vae", "--epochs", "1", "--max-steps", "2", "--batch-size", "32", "--out", run])
        let (status, json, err) = try runExecutable(["eval", run + "/checkpoint.safetensors", "--count", "100", "--reference", "test",
                                                      "--batch-size", "100", "--kid-subsets", "2", "--json", "--threads", "2"])
        XCTAssertEqual(status, 0, err)
        // The report names the checkpoint's step; two more made from it at other steps and speeds.
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["checkpoint_step"] as? Int, 2)
        var lines = [json.trimmingCharacters(in: .whitespacesAndNewlines)]
        for (step, fid, speed) in [(4, 80.0, 500.0), (6, 60.0, 50.0)] {
            object["checkpoint_step"] = step
            object["fid"] = fid
            var sampling = try XCTUnwrap(object["sampling"] as? [String: Any])
            sampling["images_per_second"] = speed
            sampling["model"] = "vae at \(step)"
            object["sampling"] = sampling
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        }
        let reports = dir.appendingPathComponent("reports.jsonl")
        try lines.joined(separator: "\n").write(to: reports, atomically: true, encoding: .utf8)

        for axis in ["step", "speed"] {
            let png = dir.appendingPathComponent("\(axis).png").path
            let (code, out, log) = try runExecutable(["plot", reports.path, "--x", axis, "--out", png])
            XCTAssertEqual(code, 0, log)
            XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), png, "the result path on stdout")
            XCTAssertTrue(log.contains("plotted 3 reports in \(axis == "step" ? 1 : 3) series"), log)
            let image = try PNGReader.readGray(URL(fileURLWithPath: png))
            XCTAssertEqual(image.shape, [500, 800, 1])
        }

        // Errors: one line each, naming the file or flag.
        let noStep = dir.appendingPathComponent("nostep.json")
        object.removeValue(forKey: "checkpoint_step")
        try JSONSerialization.data(withJSONObject: object).write(to: noStep)
        let bad = dir.appendingPathComponent("bad.json")
        try "{\"fid\": 3}\n".write(to: bad, atomically: true, encoding: .utf8)
        for (arguments, message) in [
            ([noStep.path, "--out", dir.appendingPathComponent("p.png").path], "\(noStep.path): "),
            ([bad.path, "--out", dir.appendingPathComponent("p.png").path], "\(bad.path), line 1: not a generative eval --json report"),
            ([reports.path, "--out", dir.appendingPathComponent("p.jpg").path], "--out \(dir.appendingPathComponent("p.jpg").path): the plot is a .png"),
            ([reports.path, "--x", "time", "--out", "p.png"], "--x"),
        ] {
            let (code, _, log) = try runExecutable(["plot"] + arguments)
            XCTAssertNotEqual(code, 0, log)
            let errors = log.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            XCTAssertEqual(errors.count, 1, log)
            XCTAssertTrue(errors.first?.contains(message) ?? false, "\(message) in \(log)")
        }
    }
}
