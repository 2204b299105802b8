import ArgumentParser
import Foundation
@testable import generative
import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenEval
import GenData
import GenModels

/// `generative table` on a folder of weights-only checkpoints, and `export --weights-only` itself.
final class TableCommandTests: CommandTestCase {
    func table(_ arguments: [String]) throws -> ComparisonTable {
        let parsed = try XCTUnwrap(try Generative.parseAsRoot(["table"] + arguments) as? Table)
        return try parsed.measure(log: { _ in })
    }

    func testTableScoresTheShippedRowsAsEvalDoes() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("run").path
        try self.run(["train", "vae", "--epochs", "1", "--max-steps", "40", "--batch-size", "64", "--out", run])
        let full = run + "/checkpoint.safetensors"
        let trained = try Checkpoint(contentsOf: URL(fileURLWithPath: full))
        XCTAssertGreaterThan(trained.metadata["train_seconds"].flatMap(Double.init) ?? 0, 0, "training time is recorded")

        // Weights only: Adam's two moments gone (the weights and their EMA copy stay, so half the
        // size, up to the header), the same samples.
        let shipped = dir.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: shipped, withIntermediateDirectories: true)
        let vae = shipped.appendingPathComponent("vae.safetensors").path
        try self.run(["export", "--checkpoint", full, "--weights-only", "--out", vae])
        let size = { (path: String) in try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) }
        XCTAssertLessThan(try size(vae), try size(full) / 2 + 4096)
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        try self.run(["sample", "vae", "--checkpoint", full, "--count", "4", "--out", a.path])
        try self.run(["sample", "vae", "--checkpoint", vae, "--count", "4", "--out", b.path])
        XCTAssertEqual(try Data(contentsOf: a), try Data(contentsOf: b))
        XCTAssertTrue(errorMessage(["export", "--checkpoint", full, "--weights-only", "--ema", "--out", vae])?.contains("--weights-only") ?? false)
        // In float16: about half the weights-only file again, marked so, and samples within
        // float16's precision of the float32 file's.
        let half = dir.appendingPathComponent("vae16.safetensors").path
        try self.run(["export", "--checkpoint", full, "--weights-only", "--float16", "--out", half])
        XCTAssertLessThan(try size(half), try size(vae) / 2 + 4096)
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: half)).metadata[Checkpoint.float16Key], "true")
        let c = dir.appendingPathComponent("c.npy")
        try self.run(["sample", "vae", "--checkpoint", half, "--count", "4", "--out", c.path])
        let difference = zip(try NPY.readImages(b).scalars(as: Float.self), try NPY.readImages(c).scalars(as: Float.self)).map { abs($0 - $1) }
        XCTAssertGreaterThan(difference.max() ?? 0, 0, "the weights were rounded")
        XCTAssertLessThan(difference.max() ?? 1, 0.02)
        // EMA only: refused for the VAE, which samples with its trained weights (so the EMA ones
        // would change its samples); the shipped DCGAN samples with its EMA generator, so its
        // EMA-only file is smaller and samples the same images.
        let emaOnly = dir.appendingPathComponent("ema-only.safetensors").path
        XCTAssertTrue(errorMessage(["export", "--checkpoint", full, "--weights-only", "--ema-only", "--out", emaOnly])?
            .contains("samples with its raw weights") ?? false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: emaOnly))
        let dcgan = ReportCommandTests.repository.appendingPathComponent("checkpoints/dcgan.safetensors").path
        try self.run(["export", "--checkpoint", dcgan, "--weights-only", "--ema-only", "--out", emaOnly])
        XCTAssertLessThan(try size(emaOnly), try size(dcgan) * 3 / 4)
        let e = dir.appendingPathComponent("e.npy"), f = dir.appendingPathComponent("f.npy")
        try self.run(["sample", "dcgan", "--checkpoint", dcgan, "--count", "4", "--out", e.path])
        try self.run(["sample", "dcgan", "--checkpoint", emaOnly, "--count", "4", "--out", f.path])
        XCTAssertEqual(try Data(contentsOf: e), try Data(contentsOf: f))
        XCTAssertTrue(errorMessage(["export", "--checkpoint", full, "--ema-only", "--out", emaOnly])?.contains("--ema-only") ?? false)

        // ... and it cannot be resumed.
        let resumed = dir.appendingPathComponent("resumed")
        try FileManager.default.createDirectory(at: resumed, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: vae, toPath: resumed.appendingPathComponent("checkpoint.safetensors").path)
        XCTAssertTrue(errorMessage(["train", "vae", "--epochs", "2", "--out", resumed.path, "--resume"])?.contains("holds weights only") ?? false)

        // The table: the test split, the VAE, and a row without a checkpoint.
        let samples = dir.appendingPathComponent("samples").path
        let arguments = ["--rows", "dcgan,vae,test", "--checkpoints", shipped.path, "--count", "300", "--seed", "3"]
        let measured = try table(arguments + ["--save-samples", samples])
        XCTAssertEqual(measured.rows.map(\.name), ["test", "vae", "dcgan"], "in the chapter's order")
        XCTAssertEqual(measured.rows[2].note, "no checkpoint")
        XCTAssertNil(measured.rows[2].fid)
        let test = measured.rows[0], row = measured.rows[1]
        XCTAssertLessThan(try XCTUnwrap(test.fid), try XCTUnwrap(row.fid), "real test images beat a VAE trained for 40 steps")
        XCTAssertEqual(row.parameters, MLPVAE(generator: RandomGenerator(seed: 0)).trainableParameters.reduce(0) { $0 + $1.value.shape.reduce(1, *) })
        XCTAssertEqual(row.networkEvaluations, 1)
        XCTAssertGreaterThan(try XCTUnwrap(row.trainSeconds), 0)
        XCTAssertNil(test.imagesPerSecond)
        XCTAssertEqual(measured.measuredRanks, ["test": 1, "vae": 2])
        XCTAssertEqual(measured.chapterRanks, ["test": 1, "vae": 2])
        XCTAssertTrue(measured.markdown().contains("| vae | "))

        // The same FID as `eval` of the samples it kept, and the same table again for the same seed.
        let eval = try XCTUnwrap(try Generative.parseAsRoot(["eval", samples + "/vae.npy", "--seed", "3"]) as? Eval).evaluate(log: { _ in })
        XCTAssertEqual(eval.fid, try XCTUnwrap(row.fid), accuracy: 0.01 * eval.fid)
        XCTAssertEqual(try NPY.readImages(URL(fileURLWithPath: samples + "/test.npy")).shape[0], 300)
        let again = try table(arguments)
        XCTAssertEqual(again.rows.map(\.fid), measured.rows.map(\.fid))
        XCTAssertEqual(again.rows.map(\.inceptionScore), measured.rows.map(\.inceptionScore))

        // JSON: every key of every row, null where there is no figure.
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(measured.json().utf8)) as? [String: Any])
        let rows = try XCTUnwrap(object["rows"] as? [[String: Any]])
        let keys: Set<String> = ["name", "fid", "fid_inf", "is", "kid", "precision", "recall", "images_per_s", "nfe", "threads",
                                 "params", "train_seconds", "note", "bits_per_dim", "likelihood_method"]
        for row in rows { XCTAssertEqual(Set(row.keys), keys) }
        XCTAssertTrue(rows[2]["fid"] is NSNull)

        XCTAssertTrue(errorMessage(["table", "--rows", "vae,glow"])?.contains("unknown row 'glow'") ?? false)
    }

    /// Ranks by FID, in both orderings, and the pairs the measurement puts the other way round.
    func testRanksAndDisagreements() {
        var vae = ComparisonTable.Row(name: "vae"), dcgan = ComparisonTable.Row(name: "dcgan"), ddpm = ComparisonTable.Row(name: "ddpm")
        vae.fid = 30; dcgan.fid = 40; ddpm.fid = 10
        let table = ComparisonTable(rows: [vae, dcgan, ddpm])
        XCTAssertEqual(table.measuredRanks, ["ddpm": 1, "vae": 2, "dcgan": 3])
        XCTAssertEqual(table.chapterRanks, ["ddpm": 1, "dcgan": 2, "vae": 3])
        XCTAssertEqual(table.disagreements, ["vae (30.000) < dcgan (40.000), the chapter has the opposite"])
    }

    /// --retrain runs a card's commands (train, then export) before scoring, resuming the run
    /// folder when it holds a checkpoint, so a second --retrain reproduces the same file;
    /// --likelihood adds the bits/dim that `eval --likelihood` measures.
    func testRetrainRunsTheCardCommandsAndLikelihoodAddsBitsPerDim() throws {
        let dir = tempDir()
        let shipped = dir.appendingPathComponent("checkpoints"), run = dir.appendingPathComponent("run").path
        try FileManager.default.createDirectory(at: shipped, withIntermediateDirectories: true)
        let vae = shipped.appendingPathComponent("vae.safetensors")
        try Data("""
            ## vae.safetensors

            | | |
            | --- | --- |
            | command | `scripts/generative train vae --epochs 1 --max-steps 20 --batch-size 64 --out \(run)`, then \
            `scripts/generative export --checkpoint \(run)/checkpoint.safetensors --weights-only --out \(vae.path)` |
            | SHA-256 | `unknown` |
            """.utf8).write(to: shipped.appendingPathComponent("README.md"))
        let arguments = ["--rows", "vae,dcgan", "--checkpoints", shipped.path, "--count", "100", "--retrain"]
        let first = try table(arguments + ["--likelihood", "--likelihood-count", "50"])
        let hash = try SHA256.hex(contentsOf: vae)
        XCTAssertEqual(try Checkpoint(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors")).metadata["step"], "20")
        XCTAssertNotNil(first.rows[0].fid)
        XCTAssertEqual(first.rows[1].note, "no checkpoint", "a row without a card is left as it is")
        let eval = try XCTUnwrap(try Generative.parseAsRoot(["eval", vae.path, "--likelihood", "--count", "50"]) as? Eval).measureLikelihood(log: { _ in })
        XCTAssertEqual(first.rows[0].bitsPerDim, eval.bitsPerDim)
        XCTAssertEqual(first.rows[0].likelihoodMethod, "vlb")
        XCTAssertTrue(first.markdown().contains("| bits/dim |"))

        let second = try table(arguments)
        XCTAssertEqual(try SHA256.hex(contentsOf: vae), hash, "the resumed run exports the same file")
        XCTAssertEqual(second.rows[0].fid, first.rows[0].fid)
        XCTAssertNil(second.rows[0].bitsPerDim)
        XCTAssertFalse(second.markdown().contains("bits/dim"), "no likelihood, no column")
    }

    /// The cyclegan row: domain A's test images translated to B, scored against B's test images,
    /// as `eval TRANSLATED --reference B` scores them; not ranked with the sample FIDs.
    func testTheCycleGANRowScoresTranslationsAgainstTheTargetDomain() throws {
        let dir = tempDir()
        let shipped = dir.appendingPathComponent("checkpoints"), run = dir.appendingPathComponent("run").path
        try FileManager.default.createDirectory(at: shipped, withIntermediateDirectories: true)
        try self.run(["train", "cyclegan", "--epochs", "1", "--max-steps", "3", "--out", run])
        try self.run(["export", "--checkpoint", run + "/checkpoint.safetensors", "--weights-only",
                      "--out", shipped.appendingPathComponent("cyclegan.safetensors").path])
        let samples = dir.appendingPathComponent("samples")
        let measured = try table(["--rows", "test,cyclegan", "--checkpoints", shipped.path, "--count", "200", "--save-samples", samples.path])
        let row = measured.rows[1]
        XCTAssertEqual(row.note, "Sneaker -> Ankle boot, 1000 test images against 1000")
        XCTAssertEqual(row.networkEvaluations, 1)
        XCTAssertGreaterThan(try XCTUnwrap(row.imagesPerSecond), 0)
        XCTAssertEqual(measured.measuredRanks, ["test": 1], "a translation FID is not ranked with the others")
        XCTAssertTrue(measured.markdown().contains("- cyclegan: Sneaker -> Ankle boot"))

        let test = try ImageDataset.fashionMNIST(split: .test)
        let labels = try XCTUnwrap(test.labels).scalars(as: Int64.self)
        let boots = test.images.rows(labels.indices.filter { labels[$0] == 9 })
        let reference = dir.appendingPathComponent("boots.npy")
        try NPY.writeImages(boots, to: reference)
        let translated = samples.appendingPathComponent("cyclegan.npy").path
        XCTAssertEqual(try NPY.readImages(URL(fileURLWithPath: translated)).shape[0], 1000)
        let eval = try XCTUnwrap(try Generative.parseAsRoot(["eval", translated, "--reference", reference.path]) as? Eval).evaluate(log: { _ in })
        XCTAssertEqual(eval.fid, try XCTUnwrap(row.fid), accuracy: 0.01 * eval.fid)
    }
}
