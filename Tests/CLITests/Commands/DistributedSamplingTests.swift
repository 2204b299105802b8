import Foundation
@testable import generative
import GenData
import GenEval
import GenFormats
import GenTensor
import XCTest

/// `sample` and `eval` split over two ranks under `mpirun -np 2` (when Open MPI is installed; CI
/// installs it: .ci/run) give the images and the scores of one process: bit for bit where whole
/// batches go to the ranks, within 1e-5 per pixel where a batch is split.
final class DistributedSamplingTests: CommandTestCase {
    /// What does not run without Open MPI.
    private let skipped = "sampling was not split over 2 ranks"

    /// A DDPM of width 8 after one training step (seconds to train and to sample).
    private func tinyDDPM(in dir: URL) throws -> String {
        let out = dir.appendingPathComponent("ddpm").path
        try run(["train", "ddpm", "--max-steps", "1", "--width", "8", "--batch-size", "4", "--out", out])
        return out + "/checkpoint.safetensors"
    }

    private func pixels(_ url: URL) throws -> [Float] { try NPY.readImages(url).scalars(as: Float.self) }

    func testSampleDDPMOnTwoRanksWritesTheImagesOfOneProcess() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        let checkpoint = try tinyDDPM(in: dir)
        let common = ["sample", "ddpm", "--checkpoint", checkpoint, "--steps", "3", "--threads", "1"]
        // 7 images in batches of 2: 4 batches, two per rank (images 0..<4 and 4..<7), as one process batches them.
        // 5 images in one batch of 8: fewer batches than ranks, so the images split 2 + 3, in other batches.
        for (count, batch, exact) in [(7, 2, true), (5, 8, false)] {
            let one = dir.appendingPathComponent("one-\(count).npy"), two = dir.appendingPathComponent("two-\(count).npy")
            let flags = ["--count", "\(count)", "--batch-size", "\(batch)"]
            let single = try runExecutable(common + flags + ["--out", one.path])
            XCTAssertEqual(single.status, 0, single.err)
            XCTAssertFalse(single.err.contains("ranks:"), single.err)
            let (status, out, err) = try runOnTwoRanks(common + flags + ["--out", two.path], skipping: skipped)
            XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
            // Rank 0 alone prints the header line and writes.
            XCTAssertEqual(err.split(separator: "\n").filter { $0 == "ranks: 2" }.count, 1, err)
            XCTAssertEqual(out.split(separator: "\n").filter { $0.hasPrefix("wrote ") }.count, 1, out)
            let x = try pixels(one), y = try pixels(two)
            XCTAssertEqual(x.count, count * 784)
            XCTAssertEqual(y.count, x.count)
            if exact {
                XCTAssertEqual(x, y, "whole batches per rank: bit for bit")
            } else {
                XCTAssertLessThanOrEqual(zip(x, y).map { abs($0 - $1) }.max() ?? 1, 1e-5)
            }
        }
    }

    func testEvalOnTwoRanksGivesTheFIDOfOneProcess() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        let checkpoint = try tinyDDPM(in: dir)
        // A small reference of test images keeps the feature extraction short.
        let reference = dir.appendingPathComponent("reference.npy")
        let test = try ImageDataset.fashionMNIST(split: .test)
        try NPY.write(test.images.sliced(axis: 0, 0..<64), to: reference)
        let arguments = ["eval", checkpoint, "--count", "12", "--steps", "3", "--batch-size", "4", "--threads", "1",
                         "--reference", reference.path, "--json"]
        let single = try runExecutable(arguments)
        XCTAssertEqual(single.status, 0, single.err)
        let (status, out, err) = try runOnTwoRanks(arguments, skipping: skipped)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertEqual(err.split(separator: "\n").filter { $0 == "ranks: 2" }.count, 1, err)
        let a = try EvaluationReport.decode(json: Data(single.out.utf8))
        let b = try EvaluationReport.decode(json: Data(out.utf8))  // one report: rank 1 prints nothing
        XCTAssertEqual(a.fid, b.fid, accuracy: 1e-6)
        XCTAssertEqual(a.inceptionScore, b.inceptionScore, accuracy: 1e-6)
    }

    /// `eval --likelihood` on 2 ranks: the images split by whole batches, each measured with the
    /// noise of its index, and the per-image bits gathered to rank 0: one process's report.
    func testLikelihoodOnTwoRanksGivesTheFigureOfOneProcess() throws {
        _ = try mpirun(skipping: skipped)
        let checkpoint = LikelihoodCommandTests.folder.appendingPathComponent("vae-conv.safetensors").path
        let arguments = ["eval", checkpoint, "--likelihood", "--count", "10", "--batch-size", "2", "--threads", "1", "--json"]
        let single = try runExecutable(arguments)
        XCTAssertEqual(single.status, 0, single.err)
        let (status, out, err) = try runOnTwoRanks(arguments, skipping: skipped)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertEqual(err.split(separator: "\n").filter { $0 == "ranks: 2" }.count, 1, err)
        func figures(_ json: String) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        }
        let a = try figures(single.out), b = try figures(out)  // one report: rank 1 prints nothing
        XCTAssertEqual(a["count"] as? Int, 10)
        XCTAssertEqual(b["count"] as? Int, 10)
        XCTAssertEqual(a["bits_per_dim"] as? Double, b["bits_per_dim"] as? Double, "whole batches per rank: bit for bit")
        XCTAssertEqual(a["bits_per_dim_se"] as? Double, b["bits_per_dim_se"] as? Double)
    }

    /// `sample cyclegan` on 2 ranks: the shipped CycleGAN's translation of 5 test images, split 2 + 3
    /// over the ranks, equals one process's within 1e-5 (each image is normalised on its own).
    func testCycleGANTranslationOnTwoRanksWritesTheImagesOfOneProcess() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        let checkpoint = ShippedCheckpointTests.folder.appendingPathComponent("cyclegan.safetensors").path
        let input = dir.appendingPathComponent("x.npy")
        try NPY.write(try ImageDataset.fashionMNIST(split: .test).images.sliced(axis: 0, 0..<5), to: input)
        let common = ["sample", "cyclegan", "--checkpoint", checkpoint, "--input", input.path, "--threads", "1"]
        let one = dir.appendingPathComponent("one.npy"), two = dir.appendingPathComponent("two.npy")
        let single = try runExecutable(common + ["--out", one.path])
        XCTAssertEqual(single.status, 0, single.err)
        let (status, out, err) = try runOnTwoRanks(common + ["--out", two.path], skipping: skipped)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertEqual(out.components(separatedBy: "translated 5 images").count - 1, 1, out)
        let x = try pixels(one), y = try pixels(two)
        XCTAssertEqual(x.count, 5 * 784)
        XCTAssertEqual(y.count, x.count)
        XCTAssertLessThanOrEqual(zip(x, y).map { abs($0 - $1) }.max() ?? 1, 1e-5)
    }

    /// `table` on 2 ranks: every checkpoint row's samples and test images split over the ranks, as
    /// `eval` splits them; rank 0 prints one table with one process's figures.
    func testTableOnTwoRanksGivesTheFiguresOfOneProcess() throws {
        _ = try mpirun(skipping: skipped)
        let dir = tempDir()
        let shipped = dir.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: shipped, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: ShippedCheckpointTests.folder.appendingPathComponent("vae.safetensors"),
                                         to: shipped.appendingPathComponent("vae.safetensors"))
        let arguments = ["table", "--rows", "vae,dcgan", "--checkpoints", shipped.path, "--count", "40", "--batch-size", "8",
                         "--likelihood", "--likelihood-count", "12", "--threads", "1", "--json"]
        let single = try runExecutable(arguments)
        XCTAssertEqual(single.status, 0, single.err)
        let (status, out, err) = try runOnTwoRanks(arguments, skipping: skipped)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertEqual(err.split(separator: "\n").filter { $0 == "ranks: 2" }.count, 1, err)
        let a = try ComparisonTable.decode(json: Data(single.out.utf8)), b = try ComparisonTable.decode(json: Data(out.utf8))
        XCTAssertEqual(a.rows.map(\.name), ["vae", "dcgan"])
        XCTAssertEqual(b.rows.map(\.name), a.rows.map(\.name))
        XCTAssertEqual(try XCTUnwrap(b.rows[0].fid), try XCTUnwrap(a.rows[0].fid), accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(b.rows[0].bitsPerDim), try XCTUnwrap(a.rows[0].bitsPerDim), accuracy: 1e-9)
        XCTAssertEqual(b.rows[1].note, "no checkpoint")
        let refused = try runOnTwoRanks(["table", "--retrain", "--rows", "vae", "--checkpoints", shipped.path], skipping: skipped)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("--retrain runs the card commands in one process"), refused.err)
    }

    /// A command that does not split over ranks is refused under mpirun, by rank 0 alone, instead of
    /// running whole on every rank.
    func testCommandsThatDoNotSplitAreRefusedOnSeveralRanks() throws {
        _ = try mpirun(skipping: skipped)
        let (status, _, err) = try runOnTwoRanks(["train", "classifier", "--max-steps", "1"], skipping: skipped)
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(err.components(separatedBy: "does not split over ranks").count - 1, 1, err)
    }

    func testShardsAreWholeBatchesWhenEveryRankGetsOne() {
        XCTAssertEqual((0..<2).map { ImageShards.range(count: 7, batchSize: 2, rank: $0, size: 2) }, [0..<4, 4..<7])
        XCTAssertEqual((0..<3).map { ImageShards.range(count: 10, batchSize: 2, rank: $0, size: 3) }, [0..<2, 2..<6, 6..<10])
        XCTAssertEqual((0..<2).map { ImageShards.range(count: 5, batchSize: 8, rank: $0, size: 2) }, [0..<2, 2..<5])
        XCTAssertEqual((0..<3).map { ImageShards.range(count: 2, batchSize: 8, rank: $0, size: 3) }, [0..<0, 0..<1, 1..<2])
        XCTAssertEqual(ImageShards.range(count: 9, batchSize: 4, rank: 0, size: 1), 0..<9)
    }
}
