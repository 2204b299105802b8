import Foundation
@testable import generative
import XCTest
import GenTrain
import GenTensor

/// One meaning per flag name: `--max-steps` (training length), `--frames` (interpolation points),
/// `--init-from FILE` and `--init-scheme NAME`, `--batch-size` everywhere. The older spellings still
/// work for one release, with a warning on stderr; giving both spellings is an error.
final class FlagNameTests: CommandTestCase {
    func testNewNamesParse() throws {
        let train = try XCTUnwrap(try Generative.parseAsRoot(["train", "vae", "--max-steps", "7", "--init-from", "w.safetensors"]) as? TrainVAE)
        XCTAssertEqual(train.flags.maxSteps, 7)
        XCTAssertEqual(train.options.initFrom, [InitialWeights(path: "w.safetensors")])
        let gan = try XCTUnwrap(try Generative.parseAsRoot(["train", "dcgan", "--init-scheme", "pytorch"]) as? TrainDCGAN)
        XCTAssertEqual(gan.flags.initialization, .pytorch)
        let interpolate = try XCTUnwrap(try Generative.parseAsRoot(["vae", "interpolate", "--checkpoint", "x", "--frames", "5"]) as? Interpolate)
        XCTAssertEqual(interpolate.steps, 5)
        let bench = try XCTUnwrap(try Generative.parseAsRoot(["bench", "--batch-size", "32"]) as? Bench)
        XCTAssertEqual(bench.batch, 32)
    }

    func testOldSpellingsWarnAndStillWork() throws {
        // Each stops early (no data, no checkpoint, no such workload): the warning comes at parsing.
        let nowhere = ["--data", "/nonexistent/fashion-mnist", "--out", tempDir().appendingPathComponent("run").path]
        for (arguments, old, new) in [(["train", "vae", "--steps", "1"] + nowhere, "--steps", "--max-steps"),
                                      (["train", "dcgan", "--init", "pytorch"] + nowhere, "--init", "--init-scheme"),
                                      (["vae", "interpolate", "--checkpoint", "missing.safetensors", "--steps", "3"], "--steps", "--frames"),
                                      (["bench", "--batch", "8", "--workload", "nothing"], "--batch", "--batch-size")] {
            let (_, _, err) = try runExecutable(arguments)
            XCTAssertTrue(err.contains("warning: \(old) is deprecated and goes in the next release; use \(new)"), err)
        }
        let train = try XCTUnwrap(try Generative.parseAsRoot(["train", "vae", "--steps", "3", "--init", "w.safetensors"]) as? TrainVAE)
        XCTAssertEqual(train.flags.maxSteps, 3)
        XCTAssertEqual(train.options.initFrom, [InitialWeights(path: "w.safetensors")])
    }

    func testBothSpellingsAtOnceAreRefused() {
        let message = errorMessage(["train", "vae", "--steps", "3", "--max-steps", "4"]) ?? ""
        XCTAssertTrue(message.contains("--steps is the older spelling of --max-steps"), message)
    }

    /// `--log-every` and `--tensorboard` reach the loop's options on every `train` command.
    func testStepLogFlags() throws {
        let train = try XCTUnwrap(try Generative.parseAsRoot(["train", "dcgan", "--log-every", "7", "--tensorboard"]) as? TrainDCGAN)
        XCTAssertEqual(train.flags.common.options().logEvery, 7)
        XCTAssertTrue(train.flags.common.options().tensorboard)
        let vae = try XCTUnwrap(try Generative.parseAsRoot(["train", "vae"]) as? TrainVAE)
        XCTAssertEqual(vae.flags.options().logEvery, 50)
        XCTAssertFalse(vae.flags.options().tensorboard)
        XCTAssertEqual(errorMessage(["train", "vae", "--log-every=-1"]), "--log-every must not be negative (0: epoch lines only)")
        // --clip-grad-norm is shared too (it was realnvp's alone).
        let clipped = try XCTUnwrap(try Generative.parseAsRoot(["train", "ddpm", "--clip-grad-norm", "1.5"]) as? TrainDDPM)
        XCTAssertEqual(clipped.flags.common.options().clipGradientNorm, 1.5)
        XCTAssertEqual(errorMessage(["train", "dcgan", "--clip-grad-norm", "0"]), "--clip-grad-norm must be a positive number")
    }

    /// An image output that is neither .png, .npy nor a folder is refused before any work, naming
    /// the flag and the accepted forms (it used to become a folder called samples.jpg).
    func testUnknownOutputExtensionsAreRefused() {
        let accepted = "use .png (a grid), .npy (an array) or a folder (no extension)"
        for arguments in [["sample", "vae", "--checkpoint", "c.safetensors", "--out", "x.jpg"],
                          ["sample", "ddpm", "--checkpoint", "c.safetensors", "--out", "x.JPEG"],
                          ["vae", "reconstruct", "--checkpoint", "c.safetensors", "--out", "x.gif"],
                          ["cyclegan", "translate", "--checkpoint", "c.safetensors", "--input", "a.npy", "--out", "x.tiff"]] {
            let ext = arguments.last!.split(separator: ".").last!.lowercased()
            XCTAssertEqual(errorMessage(arguments), "--out \(arguments.last!): unknown extension .\(ext); \(accepted)", "\(arguments)")
        }
    }

    /// `generative --version`: one line on stdout, `generative X.Y.Z (commit C, oneDNN vA.B.C)`,
    /// naming the oneDNN library actually loaded.
    func testVersionPrintsOneLineWithCommitAndOneDNN() throws {
        let (status, out, err) = try runExecutable(["--version"])
        XCTAssertEqual(status, 0, err)
        let line = out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(line, ToolkitVersion.line)
        XCTAssertFalse(line.contains("\n"))
        let pattern = #"^generative \d+\.\d+\.\d+ \(commit ([0-9a-f]{7}(-dirty)?|unknown), oneDNN v\d+\.\d+\.\d+\)$"#
        XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), line)
        XCTAssertTrue(line.contains("oneDNN v\(CPUBackend.oneDNNVersion)"), line)
    }
}
