import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The VAE family: `train vae`, `sample vae`, and the verbs `vae reconstruct` and `vae interpolate`.
let vaeFamily = FamilyCommands(name: "vae", train: [TrainVAE.self], sample: [SampleVAE.self],
                               verbs: [VAEVerbs.self], models: [VAETraining.self], benchmarks: [WorkloadBenchmark.vae],
                               trainingWorkloads: [TrainingWorkload(name: "vae", batchSize: 128) { VAETraining(learningRate: 1e-3, seed: 0) }])

/// `generative vae VERB`: what a VAE checkpoint does besides sampling.
struct VAEVerbs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae", abstract: "Reconstruct test images with a VAE, or interpolate between them.",
        subcommands: [Reconstruct.self, Interpolate.self])
}

extension ReconstructionLoss: ExpressibleByArgument {}
extension AutoencoderKind: ExpressibleByArgument {}

/// `generative train vae`.
struct TrainVAE: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae", abstract: "Train a VAE (default: the reference MLP VAE, 784-400-20) or an autoencoder with Adam on the negative ELBO.")

    @OptionGroup var flags: TrainingFlags<StandardTrainingDefaults>

    @Option(help: "Architecture: mlp (the reference MLP VAE), conv (convolutional VAE) or ae (deterministic autoencoder).")
    var model: AutoencoderKind = .mlp

    @Option(help: "Reconstruction term: bernoulli (BCE) or gaussian (MSE).")
    var reconstruction: ReconstructionLoss = .bernoulli

    @Option(help: "Latent dimensions.")
    var latentDim: Int = 20

    @Option(name: .customLong("init"), help: .hidden)
    var deprecatedInit: String?

    /// The loop's options, with the older spelling `--init FILE` of `--init-from FILE`.
    var options: TrainingOptions {
        var options = flags.options()
        if let deprecatedInit { options.initFrom = [InitialWeights(path: deprecatedInit)] }
        return options
    }

    func validate() throws {
        try DeprecatedFlag.check(flags.initFrom.first, "--init-from", old: deprecatedInit, "--init")
        guard latentDim >= 1 else { throw ValidationError("--latent-dim must be at least 1") }
    }

    func run() throws {
        let (run, lock) = try flags.start("vae")
        defer { lock.release() }
        let data = try flags.loadTraining()
        // The test split (for the reconstructions written after training) is checked before the first step.
        let test = try flags.dataFlags.load(.test)
        let vae = VAETraining(architecture: model, latentDim: latentDim, learningRate: flags.lr,
                              reconstruction: reconstruction, seed: flags.seed)
        let loop = TrainingLoop(model: vae, options: options, run: run,
                                config: ["model": "vae", "architecture": model.rawValue, "latent_dim": String(latentDim),
                                         "reconstruction": reconstruction.rawValue, "lr": String(flags.lr),
                                         "batch_size": String(flags.batchSize), "seed": String(flags.seed)])
        flags.configure(loop) { [model, latentDim, flags, reconstruction] in
            VAETraining(architecture: model, latentDim: latentDim, learningRate: flags.lr, reconstruction: reconstruction, seed: flags.seed)
        }
        logLine("training \(model.rawValue) vae on \(data.count) images (\(data.source)) for \(flags.epochs) epochs, batch \(flags.batchSize)")
        let start = Date()
        try loop.train(images: data.images, labels: data.labels, resume: flags.resume)
        let reconstructions = run.url.appendingPathComponent("reconstructions.png")
        let originals = test.images.rows(Array(0..<min(32, test.count)))
        try PNGWriter.write(imageGrid(interleavedRows(originals, vae.reconstruct(originals), perRow: 8), columns: 8),
                            to: reconstructions)
        print(String(format: "done in %.1f s.\n  checkpoint: %@\n  metrics: %@\n  loss plot: %@\n  samples: %@\n  reconstructions (odd rows test images, even rows their reconstructions): %@",
                     Date().timeIntervalSince(start), run.checkpoint.path, run.metrics.path, run.lossPlot.path,
                     run.latestSamples.path, reconstructions.path))
    }
}

/// Rows of `perRow` images alternating between `a` and `b` (originals above their reconstructions).
func interleavedRows(_ a: Tensor, _ b: Tensor, perRow: Int) -> Tensor {
    var parts: [Tensor] = []
    for start in stride(from: 0, to: a.shape[0], by: perRow) {
        let r = start..<min(a.shape[0], start + perRow)
        parts.append(a.sliced(axis: 0, r))
        parts.append(b.sliced(axis: 0, r))
    }
    return Tensor.concatenate(parts, axis: 0)
}

/// `generative sample vae`.
struct SampleVAE: DistributedCommand {
    static let configuration = CommandConfiguration(commandName: "vae", abstract: "Decode draws from the prior N(0, I).")

    @OptionGroup var flags: SampleFlags

    func run() throws {
        let vae = try loadModel(flags.checkpoint, as: VAETraining.self)
        guard let images = try sampleShards(vae, flags: flags, labels: nil, options: SamplingOptions(ema: false, batchSize: flags.batchSize),
                                            showProgress: false) else { return }
        print("wrote " + (try writeImages(images, to: flags.out)))
    }
}

/// `generative vae reconstruct`: test images beside their VAE reconstructions.
struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reconstruct test images with a VAE (rows alternate originals and reconstructions in a grid).")

    @Option(help: "The VAE checkpoint.")
    var checkpoint: String

    @Option(parsing: .unconditional, help: "How many test images.")
    var count: Int = 32

    @OptionGroup var data: DataFlags
    @OptionGroup var compute: ComputeFlags

    @Option(help: "Output: .png grid, .npy or folder.")
    var out: String = "reconstructions.png"

    func validate() throws {
        try validateImageOutput(out)
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let vae = try loadModel(checkpoint, as: VAETraining.self)
        let test = try data.load(.test)
        let n = min(count, test.count)
        let x = test.images.rows(Array(0..<n))
        print("wrote " + (try writeImages(interleavedRows(x, vae.reconstruct(x), perRow: 8), to: out)))
    }
}

/// `generative vae interpolate`: a straight line in latent space between two test images.
struct Interpolate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decode points on the line between two test images' latent means.")

    @Option(help: "The VAE checkpoint.")
    var checkpoint: String

    @Option(help: "Index of the first test image.")
    var from: Int = 0

    @Option(help: "Index of the second test image.")
    var to: Int = 1

    @Option(help: "Points on the line, ends included (default 10).")
    var frames: Int?

    @Option(name: .customLong("steps"), help: .hidden)
    var deprecatedSteps: Int?

    /// `--frames` (or its older spelling `--steps`).
    var steps: Int { DeprecatedFlag.merge(frames, deprecatedSteps) ?? 10 }

    @OptionGroup var data: DataFlags
    @OptionGroup var compute: ComputeFlags

    @Option(help: "Output: .png grid, .npy or folder.")
    var out: String = "interpolation.png"

    func validate() throws {
        try validateImageOutput(out)
        try DeprecatedFlag.check(frames, "--frames", old: deprecatedSteps, "--steps")
        guard steps >= 2 else { throw ValidationError("--frames must be at least 2") }
        guard from >= 0, to >= 0 else { throw ValidationError("--from and --to must not be negative") }
    }

    func run() throws {
        let vae = try loadModel(checkpoint, as: VAETraining.self)
        let test = try data.load(.test)
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
