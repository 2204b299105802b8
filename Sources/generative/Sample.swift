import ArgumentParser
import Foundation
import GenTrain

/// `generative sample MODEL`.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample images from a trained model's checkpoint.", subcommands: [SampleVAE.self, SampleDDPM.self, SampleSGM.self, SampleGAN.self, SampleDCGAN.self, SampleWGAN.self, SampleWGANGP.self, SampleLSGAN.self, SampleSNGAN.self, SampleCGAN.self, SampleCycleGAN.self])
}

/// Flags shared by the sampling commands.
struct SampleFlags: ParsableArguments {
    @Option(help: "The checkpoint to sample from.")
    var checkpoint: String

    @Option(help: "How many images.")
    var count: Int = 64

    @Option(help: "Seed of the sampling noise.")
    var seed: UInt64 = 0

    @Option(help: "Where to write: a .png grid, a .npy array (N x 28 x 28 float32 in [0, 1]) or a folder.")
    var out: String = "samples.png"

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }
}

/// Loads a VAE checkpoint, with the latent size from its configuration.
func loadVAE(_ path: String) throws -> VAETraining {
    let checkpoint = try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path))
    guard checkpoint.metadata["model"] == VAETraining.kind else {
        throw ValidationError("\(path) is a '\(checkpoint.metadata["model"] ?? "unknown")' checkpoint, not a vae one")
    }
    let latent = checkpoint.tensors["model.fc_mu.bias"]?.shape.first ?? 20
    let architecture = AutoencoderKind(rawValue: checkpoint.metadata["architecture"] ?? "mlp") ?? .mlp
    let vae = VAETraining(architecture: architecture, latentDim: latent, learningRate: 1e-3, seed: 0)
    try vae.restore(from: checkpoint)
    return vae
}

/// `generative sample vae`.
struct SampleVAE: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vae", abstract: "Decode draws from the prior N(0, I).")

    @OptionGroup var flags: SampleFlags

    func run() throws {
        let vae = try loadVAE(flags.checkpoint)
        let images = vae.sample(count: flags.count, generator: RandomGenerator(seed: flags.seed))
        print("wrote " + (try writeImages(images, to: flags.out)))
    }
}

/// `generative reconstruct`: test images beside their VAE reconstructions.
struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reconstruct test images with a VAE (rows alternate originals and reconstructions in a grid).")

    @Option(help: "The VAE checkpoint.")
    var checkpoint: String

    @Option(help: "How many test images.")
    var count: Int = 32

    @Option(help: "A data folder (default: Fashion-MNIST); its test split is used.")
    var data: String?

    @Option(help: "Output: .png grid, .npy or folder.")
    var out: String = "reconstructions.png"

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let vae = try loadVAE(checkpoint)
        let test = try loadDataset(data, split: .test)
        let n = min(count, test.count)
        let x = test.images.rows(Array(0..<n))
        print("wrote " + (try writeImages(interleavedRows(x, vae.reconstruct(x), perRow: 8), to: out)))
    }
}

/// `generative interpolate`: a straight line in latent space between two test images.
struct Interpolate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decode points on the line between two test images' latent means.")

    @Option(help: "The VAE checkpoint.")
    var checkpoint: String

    @Option(help: "Index of the first test image.")
    var from: Int = 0

    @Option(help: "Index of the second test image.")
    var to: Int = 1

    @Option(help: "Points on the line, ends included.")
    var steps: Int = 10

    @Option(help: "A data folder (default: Fashion-MNIST); its test split is used.")
    var data: String?

    @Option(help: "Output: .png grid, .npy or folder.")
    var out: String = "interpolation.png"

    func validate() throws {
        guard steps >= 2 else { throw ValidationError("--steps must be at least 2") }
        guard from >= 0, to >= 0 else { throw ValidationError("--from and --to must not be negative") }
    }

    func run() throws {
        let vae = try loadVAE(checkpoint)
        let test = try loadDataset(data, split: .test)
        guard from < test.count, to < test.count else {
            throw ValidationError("--from and --to must be below the test set's \(test.count) images")
        }
        let images = withoutGradients { () -> Tensor in
            let mu = vae.model.encode(test.images.rows([from, to])).mu
            let a = mu.sliced(axis: 0, 0..<1), b = mu.sliced(axis: 0, 1..<2)
            let ts = Tensor((0..<steps).map { Float($0) / Float(steps - 1) }, shape: [steps, 1])
            let z = a + (b - a) * ts
            return vae.decodeImages(z)
        }
        print("wrote " + (try writeImages(images, to: out)))
    }
}
