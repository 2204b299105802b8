import Foundation
@testable import generative
import GenFormats
import GenNN
import GenTrain
import XCTest

/// Data-parallel training under `mpirun -np 2` (when Open MPI is installed; CI installs it:
/// .ci/run): two ranks of one thread each end with the bits of one process computing each batch
/// as two shards (`--grad-shards 2`), within 1% of the loss of plain one-process training; rank 0
/// alone prints and writes; a run resumes with another number of ranks.
final class DistributedTrainingTests: CommandTestCase {
    private let skipped = "training was not split over 2 ranks"

    /// A checkpoint's tensor bytes (everything after its JSON header) and its metadata.
    private func contents(_ run: URL) throws -> (tensors: Data, metadata: [String: String]) {
        let url = run.appendingPathComponent("checkpoint.safetensors")
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
        let checkpoint = try Checkpoint(contentsOf: url)
        return (data.dropFirst(8 + headerLength), checkpoint.metadata)
    }

    /// The mean loss of the steps so far, from the checkpoint's running epoch sums.
    private func lossSum(_ metadata: [String: String]) throws -> Double {
        let sums = try JSONDecoder().decode([String: Double].self, from: Data((metadata["epoch_sums"] ?? "{}").utf8))
        return try XCTUnwrap(sums["loss"])
    }

    private func files(_ run: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: run.path).filter { !$0.hasPrefix(".") }.sorted()
    }

    func testTwoRanksEndWithTheBitsOfTwoGradientShards() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        // vae and ddpm as the issue asks (50 steps at batch 64, also within 1% of one process's loss);
        // dcgan's two networks and cyclegan's four are each synchronised where they step (a few steps).
        let runs: [(model: String, steps: Int, batch: Int, extra: [String])] = [
            ("vae", 50, 64, []), ("ddpm", 50, 64, ["--width", "8"]), ("dcgan", 10, 64, []), ("cyclegan", 3, 8, [])]
        for (model, steps, batch, extra) in runs {
            let common = ["train", model, "--max-steps", "\(steps)", "--batch-size", "\(batch)", "--threads", "1", "--log-every", "10"] + extra
            let plain = dir.appendingPathComponent("\(model)-plain"), shards = dir.appendingPathComponent("\(model)-shards"),
                ranks = dir.appendingPathComponent("\(model)-ranks")
            let one = try runExecutable(common + ["--out", plain.path])
            XCTAssertEqual(one.status, 0, one.err)
            let emulated = try runExecutable(common + ["--grad-shards", "2", "--out", shards.path])
            XCTAssertEqual(emulated.status, 0, emulated.err)
            let (status, out, err) = try runOnTwoRanks(common + ["--out", ranks.path], skipping: skipped)
            XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
            XCTAssertEqual(err.split(separator: "\n").filter { $0 == "ranks: 2" }.count, 1, err)
            XCTAssertEqual(err.split(separator: "\n").filter { $0.hasPrefix("train \(model) in ") }.count, 1, "one header line, rank 0's:\n\(err)")
            XCTAssertEqual(out.components(separatedBy: "checkpoint: ").count - 1, 1, "one report, rank 0's:\n\(out)")
            XCTAssertEqual(try files(ranks), try files(shards), "the two ranks write what one process writes")

            let a = try contents(shards), b = try contents(ranks), c = try contents(plain)
            XCTAssertEqual(a.metadata["step"], "\(steps)")
            XCTAssertTrue(a.tensors == b.tensors, "\(model): 2 ranks and --grad-shards 2 end with the same bits")
            XCTAssertEqual(try JSONSerialization.jsonObject(with: Data((a.metadata["epoch_sums"] ?? "").utf8)) as? [String: Double],
                           try JSONSerialization.jsonObject(with: Data((b.metadata["epoch_sums"] ?? "").utf8)) as? [String: Double])
            // The GANs' BatchNorm normalises over each rank's rows, so their losses differ from one process's by more.
            if model == "vae" || model == "ddpm" {
                XCTAssertEqual(try lossSum(a.metadata), try lossSum(c.metadata), accuracy: 0.01 * abs(try lossSum(c.metadata)),
                               "\(model): within 1% of one process's loss")
            }
        }
    }

    /// 25 steps on two ranks, then 25 more: resumed on two ranks with --grad-shards 2 in one
    /// process, the run ends with the bits of 50 uninterrupted steps on two ranks; resumed by one
    /// plain process, it goes on (another sum order) within 1% of the loss.
    func testARunResumesWithAnotherNumberOfRanks() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        let common = ["train", "vae", "--batch-size", "64", "--threads", "1"]
        let straight = dir.appendingPathComponent("straight")
        let full = try runOnTwoRanks(common + ["--max-steps", "50", "--out", straight.path], skipping: skipped)
        XCTAssertEqual(full.status, 0, full.err)
        for (name, second) in [("emulated", ["--grad-shards", "2"]), ("plain", [])] {
            let run = dir.appendingPathComponent(name)
            let first = try runOnTwoRanks(common + ["--max-steps", "25", "--out", run.path], skipping: skipped)
            XCTAssertEqual(first.status, 0, first.err)
            let resumed = try runExecutable(common + ["--max-steps", "50", "--resume", "--out", run.path] + second)
            XCTAssertEqual(resumed.status, 0, resumed.err)
            XCTAssertTrue(resumed.err.contains("resuming"), resumed.err)
            let a = try contents(straight), b = try contents(run)
            XCTAssertEqual(b.metadata["step"], "50")
            if second.isEmpty {
                XCTAssertEqual(try lossSum(b.metadata), try lossSum(a.metadata), accuracy: 0.01 * abs(try lossSum(a.metadata)))
            } else {
                XCTAssertTrue(a.tensors == b.tensors, "resumed in one process as two shards: the bits of two ranks")
            }
        }
    }

    /// The kill test: one of two ranks killed mid-run ends the whole job, with mpirun's message
    /// naming the rank and the signal; the run resumes from its last checkpoint on two ranks or one.
    func testAKilledRankEndsTheJobAndTheRunResumes() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        let run = dir.appendingPathComponent("run")
        let common = ["train", "ddpm", "--width", "8", "--batch-size", "64", "--threads", "1", "--out", run.path]
        var killed: Int32?
        let result = try runOnTwoRanks(common + ["--epochs", "1", "--save-every", "5"], skipping: skipped) { process in
            // Once the first checkpoint is written, kill the rank with the larger PID.
            guard FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.safetensors").path),
                  let victim = self.childProcesses(of: process.processIdentifier).last else { return false }
            kill(victim, SIGKILL)
            killed = victim
            return true
        }
        XCTAssertNotNil(killed, "the job ended before its first checkpoint:\n\(result.err)")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.err.contains("signal 9"), "mpirun names the killed rank:\n\(result.err)")
        let saved = try XCTUnwrap(Int(try contents(run).metadata["step"] ?? ""))
        XCTAssertGreaterThanOrEqual(saved, 5)
        let twoRanks = try runOnTwoRanks(common + ["--resume", "--max-steps", "\(saved + 5)"], skipping: skipped)
        XCTAssertEqual(twoRanks.status, 0, twoRanks.err)
        XCTAssertEqual(try contents(run).metadata["step"], "\(saved + 5)")
        let oneProcess = try runExecutable(common + ["--resume", "--max-steps", "\(saved + 10)"])
        XCTAssertEqual(oneProcess.status, 0, oneProcess.err)
        XCTAssertEqual(try contents(run).metadata["step"], "\(saved + 10)")
    }

    /// Glow's ActNorm initialises from the first batch, which ranks see in parts: a fresh run on two
    /// ranks is refused with the way round (one step in one process, then resume on the ranks), which works.
    func testAFreshGlowRunStartsInOneProcessThenResumesOnTheRanks() throws {
        _ = try mpirun(skipping: skipped)
        let run = tempDir().appendingPathComponent("glow").path
        let common = ["train", "realnvp", "--flow", "glow", "--flow-steps", "1", "--coupling", "additive", "--scales", "1",
                      "--channels", "8", "--blocks", "1", "--batch-size", "8", "--threads", "1", "--out", run]
        let refused = try runOnTwoRanks(common + ["--max-steps", "2"], skipping: skipped)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("glow's ActNorm initialises from the first batch"), refused.err)
        let first = try runExecutable(common + ["--max-steps", "1", "--overwrite"])
        XCTAssertEqual(first.status, 0, first.err)
        let resumed = try runOnTwoRanks(common + ["--max-steps", "3", "--resume"], skipping: skipped)
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(try contents(URL(fileURLWithPath: run)).metadata["step"], "3")
    }
}
