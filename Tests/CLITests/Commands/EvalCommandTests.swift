import Foundation
@testable import generative
import GenTrain
import XCTest
@testable import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// `generative eval` and `generative train classifier` end to end, in-process.
final class EvalCommandTests: CommandTestCase {
    /// Parses an eval command line and evaluates it.
    func evaluate(_ arguments: [String]) throws -> EvaluationReport {
        let parsed = try Generative.parseAsRoot(["eval"] + arguments)
        guard let command = parsed as? Eval else { throw EvaluationError("not an eval command: \(arguments)") }
        return try command.evaluate(log: { _ in })
    }

    /// The message a user would see for a failing eval command line.
    func evalErrorMessage(_ arguments: [String]) -> String {
        do {
            _ = try evaluate(arguments)
            return "no error"
        } catch {
            return Generative.message(for: error)
        }
    }

    nonisolated(unsafe) static var testImages: ImageDataset?
    func testSet() throws -> ImageDataset {
        if let t = Self.testImages { return t }
        let t = try ImageDataset.fashionMNIST(split: .test)
        Self.testImages = t
        return t
    }

    /// The check: a .npy of 2,000 test images against the test reference.
    func testNpyOfTestImagesAgainstTestReference() throws {
        let dir = tempDir()
        let test = try testSet()
        let npy = dir.appendingPathComponent("test2000.npy")
        try NPY.writeImages(test.images.rows(Array(0..<2000)), to: npy)
        let start = Date()
        let report = try evaluate([npy.path, "--reference", "test", "--seed", "3", "--kid-subsets", "20", "--json"])
        print(report.table())
        print(String(format: "eval of 2000 images: %.1f s", Date().timeIntervalSince(start)))
        XCTAssertEqual(report.inputKind, "npy")
        XCTAssertEqual(report.sampleCount, 2000)
        XCTAssertEqual(report.reference, "test")
        XCTAssertEqual(report.seed, 3)
        XCTAssertLessThan(report.fid, 2.5)
        XCTAssertGreaterThan(report.inceptionScore, 1)
        XCTAssertNil(report.checkpointSHA256)
        XCTAssertNil(report.sampling)
        XCTAssertEqual(report.kidSubsets, 20)
        XCTAssertEqual(report.networkSHA256, try FeatureNetwork.shared().hash)
        let object = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any]
        XCTAssertEqual(object?["sample_count"] as? Int, 2000)

        // uint8 N x 1 x 28 x 28, first 500 via --count: the same images up to 8-bit rounding.
        let bytes = test.images.rows(Array(0..<600)).scalars(as: Float.self).map { UInt8(($0 * 255).rounded()) }
        let u8 = dir.appendingPathComponent("u8.npy")
        try NPY.encode(NPYArray(elementType: .uint8, shape: [600, 1, 28, 28], data: Data(bytes))).write(to: u8)
        let labels = dir.appendingPathComponent("labels.npy")
        try NPY.write(test.labels!.rows(Array(0..<600)), to: labels)
        let small = try evaluate([u8.path, "--reference", "test", "--count", "500", "--kid-subsets", "2", "--labels", labels.path])
        XCTAssertEqual(small.sampleCount, 500)
        XCTAssertGreaterThan(small.classAgreement ?? 0, 0.85)  // the classifier's accuracy on these images
        let float500 = try evaluate([npy.path, "--reference", "test", "--count", "500", "--kid-subsets", "2"])
        XCTAssertEqual(small.fid, float500.fid, accuracy: 0.02 * float500.fid)
        XCTAssertEqual(small.inceptionScore, float500.inceptionScore, accuracy: 0.01 * float500.inceptionScore)
    }

    func testBadInputsGiveClearErrors() throws {
        let dir = tempDir()
        func npy(_ name: String, _ images: Tensor) throws -> String {
            let url = dir.appendingPathComponent(name)
            try NPY.write(images, to: url)
            return url.path
        }
        let wrongSize = try npy("wrong.npy", Tensor.zeros([5, 32, 32]))
        XCTAssertTrue(evalErrorMessage([wrongSize]).contains("32 x 32"), evalErrorMessage([wrongSize]))
        let nan = Tensor.zeros([5, 28, 28])
        nan.floatPointer[3 * 784 + 100] = .nan
        let nanPath = try npy("nan.npy", nan)
        XCTAssertTrue(evalErrorMessage([nanPath]).contains("NaN"), evalErrorMessage([nanPath]))
        let signed = try npy("signed.npy", Tensor.uniform([5, 28, 28], low: -1, high: 1, generator: RandomGenerator(seed: 1)))
        XCTAssertTrue(evalErrorMessage([signed]).contains("outside [0, 1]"), evalErrorMessage([signed]))
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertTrue(evalErrorMessage([empty.path]).contains("no PNG images"), evalErrorMessage([empty.path]))
        let pngs = dir.appendingPathComponent("pngs")
        try FileManager.default.createDirectory(at: pngs, withIntermediateDirectories: true)
        try PNGWriter.write(Tensor.zeros([28, 28, 1]), to: pngs.appendingPathComponent("a.png"))
        try PNGWriter.write(Tensor.zeros([30, 28, 1]), to: pngs.appendingPathComponent("b.png"))
        try PNGWriter.write(Tensor.zeros([28, 28, 3]), to: pngs.appendingPathComponent("c.png"))
        try "not a PNG".write(to: pngs.appendingPathComponent("d.png"), atomically: true, encoding: .utf8)
        XCTAssertTrue(evalErrorMessage([pngs.path]).contains("d.png"), evalErrorMessage([pngs.path]))
        try FileManager.default.removeItem(at: pngs.appendingPathComponent("d.png"))
        // Another size is resized and colour converted to grey, each with a warning.
        let converted = try evaluate([pngs.path, "--reference", "test", "--kid-subsets", "2"])
        XCTAssertEqual(converted.sampleCount, 3)
        XCTAssertTrue(converted.warnings.contains { $0.contains("1 of the 3 PNGs") && $0.contains("resized") }, "\(converted.warnings)")
        XCTAssertTrue(converted.warnings.contains { $0.contains("1 of the 3 PNGs") && $0.contains("BT.601") }, "\(converted.warnings)")
        XCTAssertTrue(evalErrorMessage([dir.appendingPathComponent("missing.npy").path]).contains("no such file"))
        let weights = dir.appendingPathComponent("w.safetensors")
        try SafeTensorsFile.write(["x": Tensor.zeros([2])], to: weights)
        XCTAssertTrue(evalErrorMessage([weights.path]).contains("not a generative checkpoint"), evalErrorMessage([weights.path]))
        XCTAssertTrue(evalErrorMessage(["noise", "--reference", "valid"]).contains("valid"))
        XCTAssertTrue(evalErrorMessage(["noise", "--count", "0"]).contains("--count"))
    }

    /// A VAE checkpoint: eval samples it, times it and records its hash.
    func testCheckpointIsSampledAndTimed() throws {
        let dir = tempDir()
        let run = dir.appendingPathComponent("vae").path
        var train = try Generative.parseAsRoot(["train", "vae", "--epochs", "1", "--max-steps", "2", "--batch-size", "32", "--out", run])
        try train.run()
        let checkpoint = run + "/checkpoint.safetensors"
        let report = try evaluate([checkpoint, "--count", "300", "--reference", "test", "--batch-size", "100", "--kid-subsets", "2"])
        XCTAssertEqual(report.inputKind, "checkpoint")
        XCTAssertEqual(report.sampleCount, 300)
        XCTAssertEqual(report.checkpointSHA256, try SHA256.hex(contentsOf: URL(fileURLWithPath: checkpoint)))
        let sampling = try XCTUnwrap(report.sampling)
        XCTAssertEqual(sampling.model, "vae (mlp)")
        XCTAssertEqual(sampling.batchSize, 100)
        XCTAssertEqual(sampling.networkEvaluationsPerImage, 1)
        XCTAssertGreaterThan(sampling.imagesPerSecond, 0)
        // A barely trained VAE is far from the data.
        XCTAssertGreaterThan(report.fid, 10)
        XCTAssertTrue(report.table().contains("images/s"))
        XCTAssertNil(report.classAgreement)
    }

    /// GAN and diffusion checkpoints: sampled with their EMA weights, conditional ones with
    /// balanced labels (so the report has a class agreement); diffusion counts its network evaluations.
    func testGANAndDiffusionCheckpointsAreSampled() throws {
        let dir = tempDir()
        func train(_ arguments: [String]) throws {
            var command = try Generative.parseAsRoot(arguments)
            try command.run()
        }
        let common = ["--reference", "test", "--batch-size", "50", "--kid-subsets", "2"]
        let cganRun = dir.appendingPathComponent("cgan").path
        try train(["train", "cgan", "--epochs", "1", "--max-steps", "1", "--batch-size", "16", "--channels", "8", "--out", cganRun])
        let cgan = try evaluate([cganRun + "/checkpoint.safetensors", "--count", "120"] + common)
        XCTAssertEqual(cgan.sampling?.model, "cgan (EMA generator)")
        XCTAssertEqual(cgan.sampling?.networkEvaluationsPerImage, 1)
        XCTAssertEqual(cgan.sampling?.batchSize, 50)
        XCTAssertNotNil(cgan.classAgreement)
        let raw = try evaluate([cganRun + "/checkpoint.safetensors", "--count", "120", "--no-ema"] + common)
        XCTAssertEqual(raw.sampling?.model, "cgan (raw generator)")
        XCTAssertNotEqual(raw.fid, cgan.fid)

        let ddpmRun = dir.appendingPathComponent("ddpm").path
        try train(["train", "ddpm", "--max-steps", "1", "--width", "8", "--batch-size", "4", "--classes", "--out", ddpmRun])
        let ddpm = try evaluate([ddpmRun + "/checkpoint.safetensors", "--count", "30", "--steps", "2", "--guidance", "2"] + common)
        XCTAssertEqual(ddpm.sampling?.networkEvaluationsPerImage, 4)
        XCTAssertEqual(ddpm.sampling?.model, "ddpm (DDIM-2, guidance 2.0, EMA weights)")
        XCTAssertNotNil(ddpm.classAgreement)
        XCTAssertEqual(ddpm.classHistogram.reduce(0, +), 30)
    }

    /// `train classifier` on a tiny labelled PNG dataset, its exported weights as eval's feature
    /// network (a new hash, so its own cached reference), and a class-folder input's agreement.
    func testTrainClassifierAndEvaluateWithItsWeights() throws {
        let dir = tempDir()
        let test = try testSet()
        let data = dir.appendingPathComponent("data")
        for (split, range) in [("train", 0..<200), ("test", 200..<260)] {
            for i in range {
                let label = Int(test.labels!.int64Pointer[i])
                let folder = data.appendingPathComponent(split).appendingPathComponent("\(label)")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try PNGWriter.write(test.images.rows([i]).reshaped([28, 28, 1]), to: folder.appendingPathComponent(String(format: "%04d.png", i)))
            }
        }
        let run = dir.appendingPathComponent("clf").path
        let weights = dir.appendingPathComponent("clf.safetensors").path
        var train = try Generative.parseAsRoot(["train", "classifier", "--data", data.path, "--epochs", "2", "--batch-size", "50",
                                                "--out", run, "--export", weights])
        try train.run()
        let log = try String(contentsOfFile: run + "/accuracy.jsonl", encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 2)
        let network = try FeatureNetwork(contentsOf: URL(fileURLWithPath: weights))
        XCTAssertNotEqual(network.hash, try FeatureNetwork.shared().hash)
        // --init starts a run from those weights: after one step at a negligible learning rate they are unchanged.
        let again = dir.appendingPathComponent("again.safetensors").path
        var second = try Generative.parseAsRoot(["train", "classifier", "--data", data.path, "--epochs", "1", "--max-steps", "1",
                                                 "--lr", "1e-12", "--init-from", weights, "--out", dir.appendingPathComponent("clf2").path,
                                                 "--export", again])
        try second.run()
        let first = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: weights)), copy = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: again))
        for name in first.names {
            let a = try first.tensor(name).scalars(as: Float.self), b = try copy.tensor(name).scalars(as: Float.self)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6, name) }
        }
        // Its checkpoint works as a feature network too.
        XCTAssertNoThrow(try FeatureNetwork(contentsOf: URL(fileURLWithPath: run + "/checkpoint.safetensors")))

        let cache = dir.appendingPathComponent("cache").path
        let arguments = [data.appendingPathComponent("test").path, "--network", weights, "--data", data.path, "--reference", "test",
                         "--cache", cache, "--kid-subsets", "2"]
        let report = try evaluate(arguments)
        XCTAssertEqual(report.sampleCount, 60)
        XCTAssertEqual(report.referenceCount, 60)
        XCTAssertEqual(report.networkSHA256, network.hash)
        XCTAssertEqual(report.inputKind, "png-folder")
        XCTAssertNotNil(report.classAgreement)
        XCTAssertEqual(report.fid, 0, accuracy: 1e-3)  // the same images as the reference (with ε·I: n < 128)
        XCTAssertTrue(report.warnings.contains { $0.contains("covariance is singular") }, "\(report.warnings)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".safetensors") }.count, 1)
    }

    func testCalibrationInputsParse() throws {
        let blurred = try XCTUnwrap(try Generative.parseAsRoot(["eval", "fashion-mnist:test", "--blur", "1", "--fid-at", "1000,5000"]) as? Eval)
        XCTAssertEqual(try blurred.fidAtSizes(), [1000, 5000])
        XCTAssertEqual(blurred.blur, 1)
        XCTAssertEqual(blurred.reference, "train")
        XCTAssertThrowsError(try Generative.parseAsRoot(["eval", "noise", "--fid-at", "1000,x"]))
        let noise = try evaluate(["noise", "--count", "200", "--reference", "test", "--kid-subsets", "2", "--seed", "4"])
        XCTAssertEqual(noise.inputKind, "noise")
        XCTAssertGreaterThan(noise.fid, 100)
    }

    /// Runs the built executable's eval with --json; returns the parsed object and stderr.
    func evalJSON(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> (object: [String: Any], err: String) {
        let (status, out, err) = try runExecutable(["eval"] + arguments + ["--json", "--threads", "2"])
        XCTAssertEqual(status, 0, err, file: file, line: line)
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return (try XCTUnwrap(object, "stdout is not one JSON object: \(out)", file: file, line: line), err)
    }

    /// `eval A --reference B` with B a .npy, a PNG folder or a .npz of statistics, through the real
    /// executable: a set against itself scores ~0, against another set > 0; --save-stats then
    /// --reference stats.npz gives the direct comparison's FID; the report names the reference.
    func testReferencePathsThroughTheExecutable() throws {
        let dir = tempDir()
        let test = try testSet()
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        try NPY.writeImages(test.images.rows(Array(0..<400)), to: a)
        let other = test.images.rows(Array(400..<800))
        try NPY.writeImages(other * other, to: b)  // darker: another distribution
        let common = ["--kid-subsets", "2", "--seed", "5"]

        let same = try evalJSON([a.path, "--reference", a.path] + common).object
        XCTAssertEqual(same["reference"] as? String, a.path)
        XCTAssertEqual(same["reference_kind"] as? String, "npy")
        XCTAssertEqual(same["reference_count"] as? Int, 400)
        XCTAssertEqual(try XCTUnwrap(same["fid"] as? Double), 0, accuracy: 1e-6)
        XCTAssertNotNil(same["kid"])

        let statsA = dir.appendingPathComponent("a-stats.npz"), statsB = dir.appendingPathComponent("b-stats.npz")
        let (direct, directErr) = try evalJSON([a.path, "--reference", b.path, "--save-stats", statsA.path] + common)
        let fid = try XCTUnwrap(direct["fid"] as? Double)
        XCTAssertGreaterThan(fid, 1)
        XCTAssertNotNil(direct["precision"])
        XCTAssertEqual(direct["saved_statistics"] as? String, statsA.path)
        XCTAssertTrue(directErr.contains("wrote the feature statistics of the 400 images"), directErr)
        let saved = try NPZ.read(statsA)
        XCTAssertEqual(saved["mu"]?.shape, [128])
        XCTAssertEqual(saved["sigma"]?.shape, [128, 128])
        XCTAssertEqual(saved["sigma"]?.elementType, .float64)

        // B's statistics as the reference: the same FID as the direct comparison, and KID and
        // precision/recall left out (with a note on stderr) since a .npz holds no features.
        _ = try evalJSON([b.path, "--reference", a.path, "--save-stats", statsB.path] + common)
        let (fromStats, statsErr) = try evalJSON([a.path, "--reference", statsB.path] + common)
        XCTAssertEqual(try XCTUnwrap(fromStats["fid"] as? Double), fid, accuracy: 1e-6 * fid)
        let infinity = try XCTUnwrap(direct["fid_infinity"] as? Double)
        XCTAssertEqual(try XCTUnwrap(fromStats["fid_infinity"] as? Double), infinity, accuracy: 1e-6 * abs(infinity))
        XCTAssertEqual(fromStats["reference"] as? String, statsB.path)
        XCTAssertEqual(fromStats["reference_kind"] as? String, "npz")
        for key in ["kid", "kid_std", "precision", "recall"] { XCTAssertNil(fromStats[key], key) }
        XCTAssertTrue(statsErr.contains("KID and precision/recall are unavailable"), statsErr)
        // A's own statistics: ~0.
        XCTAssertEqual(try XCTUnwrap(try evalJSON([a.path, "--reference", statsA.path] + common).object["fid"] as? Double), 0, accuracy: 1e-6)

        // The table names the reference too, and says what is unavailable.
        let (status, table, _) = try runExecutable(["eval", a.path, "--reference", statsB.path] + common)
        XCTAssertEqual(status, 0)
        XCTAssertTrue(table.contains("reference                 \(statsB.path) (npz statistics"), table)
        XCTAssertTrue(table.contains("KID                       unavailable"), table)

        // A PNG folder reference (the first 400 images of A as PNGs): ~0 against A, up to 8-bit rounding.
        let pngs = dir.appendingPathComponent("pngs")
        try FileManager.default.createDirectory(at: pngs, withIntermediateDirectories: true)
        for i in 0..<400 {
            try PNGWriter.write(test.images.rows([i]).reshaped([28, 28, 1]), to: pngs.appendingPathComponent(String(format: "%03d.png", i)))
        }
        let png = try evalJSON([a.path, "--reference", pngs.path] + common).object
        XCTAssertEqual(png["reference_kind"] as? String, "png-folder")
        XCTAssertLessThan(try XCTUnwrap(png["fid"] as? Double), 0.05)
    }

    /// A checkpoint as the reference is sampled as INPUT is (same flags and seed): the same
    /// checkpoint on both sides scores ~0, and --count sets how many it samples.
    func testCheckpointReferenceIsSampled() throws {
        let checkpoint = OutputStreamTests.vaeCheckpoint
        let (report, err) = try evalJSON([checkpoint, "--reference", checkpoint, "--count", "200", "--kid-subsets", "2"])
        XCTAssertEqual(report["reference_kind"] as? String, "checkpoint")
        XCTAssertEqual(report["reference_count"] as? Int, 200)
        XCTAssertEqual(report["input_kind"] as? String, "checkpoint")
        XCTAssertEqual(try XCTUnwrap(report["fid"] as? Double), 0, accuracy: 1e-6)
        XCTAssertEqual(err.components(separatedBy: "sampling 200 images from").count - 1, 2, err)
    }

    /// --reference errors: one line on stderr naming --reference (and the accepted forms where the
    /// path is not usable), a non-zero exit, no crash.
    func testReferenceErrors() throws {
        let dir = tempDir()
        let a = dir.appendingPathComponent("a.npy")
        try NPY.writeImages(Tensor.uniform([20, 28, 28, 1], generator: RandomGenerator(seed: 2)), to: a)
        func failure(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
            let (status, out, err) = try runExecutable(["eval", a.path] + arguments)
            XCTAssertNotEqual(status, 0, file: file, line: line)
            XCTAssertEqual(out, "", file: file, line: line)
            let lines = err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, err, file: file, line: line)
            XCTAssertTrue(err.contains("--reference"), err, file: file, line: line)
            return err
        }
        let forms = "use train, test, a .npy of images, a folder of PNGs, a checkpoint (.safetensors) or a .npz of statistics"
        for missing in ["missing.npy", "missing.npz", "valid", "noise"] {
            let err = try failure(["--reference", dir.appendingPathComponent(missing).path])
            XCTAssertTrue(err.contains("no such file") && err.contains(forms), err)
        }
        let text = dir.appendingPathComponent("notes.txt")
        try "hello".write(to: text, atomically: true, encoding: .utf8)
        XCTAssertTrue(try failure(["--reference", text.path]).contains(forms))
        let fake = dir.appendingPathComponent("fake.npz")
        try "hello".write(to: fake, atomically: true, encoding: .utf8)
        XCTAssertTrue(try failure(["--reference", fake.path]).contains("not a .npz file"))
        // pytorch-fid's Inception statistics: 2048 dimensions against the feature network's 128.
        let inception = dir.appendingPathComponent("inception.npz")
        try FeatureStatistics(mean: [Double](repeating: 0, count: 2048), covariance: Matrix64(rows: 2048, columns: 2048), count: 0)
            .writeNPZ(to: inception)
        let err = try failure(["--reference", inception.path])
        XCTAssertTrue(err.contains("dimension 2048") && err.contains("128"), err)
        // Wrong keys.
        let keys = dir.appendingPathComponent("keys.npz")
        try NPZ.write(["m": NPYArray(elementType: .float64, shape: [1], data: Data(count: 8))], to: keys)
        XCTAssertTrue(try failure(["--reference", keys.path]).contains("no 'mu'"))
        // --save-stats needs a .npz name.
        let (status, _, saveErr) = try runExecutable(["eval", a.path, "--save-stats", dir.appendingPathComponent("s.txt").path])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(saveErr.contains("--save-stats"), saveErr)
        XCTAssertTrue(errorMessage(["eval", a.path, "--likelihood", "--save-stats", "s.npz"])?.contains("do not apply") ?? false)
    }
}
