import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// `train sgm` and `sample sgm` end to end on tiny settings: each SDE, exact resume, every
/// registered sampler, eval on the checkpoint, bad flags.
final class SGMCommandTests: CommandTestCase {
    func weights(_ path: String) throws -> [String: [Float]] {
        let c = try Checkpoint(contentsOf: URL(fileURLWithPath: path))
        return c.tensors.filter { $0.key.hasPrefix("model.") || $0.key.hasPrefix("ema.") }
            .mapValues { $0.dtype == .float32 ? $0.scalars(as: Float.self) : [] }
    }

    func testTrainResumeAndSampleEverySDE() throws {
        let dir = tempDir()
        let tiny = ["--width", "8", "--batch-size", "4"]
        for sde in ScoreSDE.allCases {
            let straight = dir.appendingPathComponent("\(sde)-a").path, resumed = dir.appendingPathComponent("\(sde)-b").path
            try run(["train", "sgm", "--sde", sde.rawValue, "--max-steps", "3", "--out", straight] + tiny)
            try run(["train", "sgm", "--sde", sde.rawValue, "--max-steps", "2", "--out", resumed] + tiny)
            try run(["train", "sgm", "--sde", sde.rawValue, "--max-steps", "3", "--resume", "--out", resumed] + tiny)
            XCTAssertEqual(try weights(straight + "/checkpoint.safetensors"), try weights(resumed + "/checkpoint.safetensors"), "\(sde)")
            let model = try ScoreModelTraining.load(try Checkpoint(contentsOf: URL(fileURLWithPath: straight + "/checkpoint.safetensors")))
            XCTAssertEqual(model.config.sde, sde)
            for sampler in SamplerRegistry.names where !sampler.hasPrefix("test-") {
                let out = dir.appendingPathComponent("\(sde)-\(sampler).npy")
                if sde != .vp && ["ddpm", "ddim"].contains(sampler) {
                    let message = errorMessage(["sample", "sgm", "--checkpoint", straight + "/checkpoint.safetensors",
                                                "--sampler", sampler, "--out", out.path]) ?? ""
                    XCTAssertTrue(message.contains("--sampler \(sampler)") && message.contains("variance-preserving"), message)
                    XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
                    continue
                }
                try run(["sample", "sgm", "--checkpoint", straight + "/checkpoint.safetensors", "--sampler", sampler,
                         "--steps", "4", "--count", "3", "--batch-size", "2", "--out", out.path])
                let images = try NPY.readImages(out)
                XCTAssertEqual(images.shape, [3, 28, 28, 1], "\(sde) \(sampler)")
                XCTAssertTrue(images.scalars(as: Float.self).allSatisfy { $0 >= 0 && $0 <= 1 }, "\(sde) \(sampler)")
            }
            XCTAssertTrue(errorMessage(["train", "sgm", "--sde", "vp", "--max-steps", "4", "--resume", "--out", straight] + tiny)
                .map { sde == .vp || $0.contains("sde was \(sde.rawValue), now vp") } ?? (sde == .vp), "\(sde)")
        }
        XCTAssertTrue(errorMessage(["train", "sgm", "--sde", "ou"])?.contains("--sde") ?? false)
    }

    /// Image i is the same whatever the batch size (its noise is keyed by i), and eval samples the
    /// checkpoint with any registered sampler.
    func testBatchInvarianceAndEval() throws {
        let dir = tempDir()
        let runPath = dir.appendingPathComponent("run").path
        try run(["train", "sgm", "--max-steps", "2", "--width", "8", "--batch-size", "4", "--out", runPath])
        let checkpoint = runPath + "/checkpoint.safetensors"
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        try run(["sample", "sgm", "--checkpoint", checkpoint, "--sampler", "euler-maruyama", "--steps", "5", "--count", "3", "--out", a.path])
        try run(["sample", "sgm", "--checkpoint", checkpoint, "--sampler", "euler-maruyama", "--steps", "5", "--count", "5",
                 "--batch-size", "2", "--out", b.path])
        let x = try NPY.readImages(a).scalars(as: Float.self), y = try NPY.readImages(b).scalars(as: Float.self)
        XCTAssertLessThan(zip(x, y.prefix(x.count)).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        let report = try Eval.parse([checkpoint, "--count", "20", "--sampler", "ode-heun", "--steps", "3", "--fid-at", "10,20"])
            .evaluate(log: { _ in })
        XCTAssertEqual(report.sampling?.networkEvaluationsPerImage, 5)
        XCTAssertTrue(report.sampling?.model.contains("ode-heun") ?? false, report.sampling?.model ?? "")
    }

    /// `--sampler ode-rk45` with `--rtol` and `--atol`: eval reports the evaluations per image the run
    /// used (2 + 6 per step + 1 at the least), and the tolerances must be positive.
    func testAdaptiveODESamplerReportsItsEvaluations() throws {
        let dir = tempDir()
        let runPath = dir.appendingPathComponent("run").path
        try run(["train", "sgm", "--max-steps", "2", "--width", "8", "--batch-size", "4", "--out", runPath])
        let checkpoint = runPath + "/checkpoint.safetensors"
        let report = try Eval.parse([checkpoint, "--count", "20", "--sampler", "ode-rk45", "--rtol", "1e-3", "--atol", "1e-3",
                                     "--fid-at", "10,20"]).evaluate(log: { _ in })
        let evaluations = report.sampling?.networkEvaluationsPerImage ?? 0
        XCTAssertGreaterThanOrEqual(evaluations, 9)
        XCTAssertTrue(report.sampling?.model.contains("ode-rk45 rtol 0.001, atol 0.001") ?? false, report.sampling?.model ?? "")
        let out = dir.appendingPathComponent("s.npy")
        try run(["sample", "sgm", "--checkpoint", checkpoint, "--sampler", "ode-rk45", "--rtol", "1e-3", "--count", "2", "--out", out.path])
        XCTAssertEqual(try NPY.readImages(out).shape, [2, 28, 28, 1])
        for (flag, value) in [("--rtol", "0"), ("--atol", "0"), ("--rtol", "nan")] {
            let message = errorMessage(["sample", "sgm", "--checkpoint", checkpoint, "--sampler", "ode-rk45", flag, value]) ?? ""
            XCTAssertTrue(message.contains("\(flag) must be positive"), message)
        }
    }
}
