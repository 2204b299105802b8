import Foundation
@testable import generative
import GenFormats
import GenTensor
import XCTest

/// `--backend reference` samples the same images as the default backend (within 1e-4, the backend
/// seam's bar), for a VAE, a DCGAN and a DDPM checkpoint; and a bad backend name is a one-line error.
final class BackendCommandTests: CommandTestCase {
    static let checkpoints = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Checkpoints")

    /// The largest difference between the images of `arguments` on each backend.
    private func backendDifference(_ arguments: [String], _ name: String) throws -> Float {
        let dir = tempDir()
        var images: [[Float]] = []
        for backend in ["cpu", "reference"] {
            let out = dir.appendingPathComponent("\(name)-\(backend).npy")
            try run(arguments + ["--backend", backend, "--out", out.path])
            images.append(try NPY.readImages(out).scalars(as: Float.self))
        }
        XCTAssertEqual(images[0].count, images[1].count, name)
        return zip(images[0], images[1]).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testSamplesAgreeAcrossBackends() throws {
        let families = Self.checkpoints.appendingPathComponent("legacy-2026-12b")
        let ddpm = Self.checkpoints.appendingPathComponent("ddpm-2026-12/ddpm.safetensors").path
        let cases: [(String, [String])] = [
            ("vae", ["sample", "vae", "--checkpoint", families.appendingPathComponent("vae-conv.safetensors").path, "--count", "3"]),
            ("dcgan", ["sample", "dcgan", "--checkpoint", families.appendingPathComponent("dcgan.safetensors").path, "--count", "3"]),
            ("ddpm", ["sample", "ddpm", "--checkpoint", ddpm, "--count", "2", "--sampler", "ddim", "--steps", "5", "--class", "3"]),
        ]
        for (name, arguments) in cases {
            let difference = try backendDifference(arguments + ["--seed", "7"], name)
            print("backend parity \(name): max |cpu - reference| = \(difference)")
            XCTAssertLessThan(difference, 1e-4, name)
        }
    }

    func testUnknownBackendIsAOneLineError() {
        let message = errorMessage(["sample", "vae", "--checkpoint", "x.safetensors", "--backend", "gpu"])
        XCTAssertNotNil(message)
        XCTAssertTrue(message?.contains("--backend") ?? false, message ?? "")
        XCTAssertFalse(message?.contains("\n") ?? true, message ?? "")
    }

    /// Every command that computes takes --backend (found by `ComputeFlags.find` through its option groups).
    func testComputingCommandsCarryTheBackendFlags() throws {
        let trains = ["vae", "ddpm", "sgm", "gan", "dcgan", "wgan", "wgan-gp", "lsgan", "sngan", "cgan", "cyclegan",
                      "classifier", "noisy-classifier", "realnvp", "autoencoder-kl"].map { ["train", $0] } + [["train", "ldm", "--autoencoder", "x"]]
        let samples = ["vae", "ddpm", "sgm", "gan", "dcgan", "wgan-gp", "sngan", "cgan", "cyclegan", "realnvp", "ldm"]
            .map { ["sample", $0, "--checkpoint", "x"] }
        let others = [["eval", "x.npy"], ["bench"], ["vae", "reconstruct", "--checkpoint", "x"], ["vae", "interpolate", "--checkpoint", "x"],
                      ["cyclegan", "translate", "--checkpoint", "x", "--input", "y"]]
        let sampleCommands = samples.map { $0[1] == "cyclegan" ? $0 + ["--input", "y"] : $0 }
        for arguments in trains + sampleCommands + others {
            let command = try Generative.parseAsRoot(arguments + ["--backend", "reference", "--threads", "3"])
            let flags = ComputeFlags.find(in: command)
            XCTAssertEqual(flags?.backend, .reference, arguments.joined(separator: " "))
            XCTAssertEqual(flags?.threads, 3, arguments.joined(separator: " "))
        }
    }

    /// Without --threads: GENERATIVE_THREADS, else every core.
    func testThreadsDefaultToTheEnvironmentThenEveryCore() throws {
        let flags = try XCTUnwrap(ComputeFlags.find(in: try Generative.parseAsRoot(["bench"])))
        XCTAssertEqual(flags.threads, ComputeFlags.environmentThreads ?? ProcessInfo.processInfo.activeProcessorCount)
        let header = backendDescription(try flags.makeBackend())
        XCTAssertTrue(header.hasPrefix("backend \(Backend.processDefault.name), "), header)
    }
}
