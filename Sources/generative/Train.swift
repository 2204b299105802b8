import ArgumentParser
import Foundation
import GenTrain

/// `generative train MODEL`.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on Fashion-MNIST (or --data), writing checkpoints, metrics and sample grids.",
        subcommands: [TrainVAE.self, TrainDDPM.self, TrainSGM.self, TrainNoisyClassifier.self, TrainGAN.self, TrainDCGAN.self, TrainWGAN.self, TrainWGANGP.self, TrainLSGAN.self, TrainSNGAN.self, TrainCGAN.self, TrainCycleGAN.self, TrainClassifier.self])
}

/// `generative train vae`.
struct TrainVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae", abstract: "Train a VAE (default: the reference MLP VAE, 784-400-20) or an autoencoder with Adam on the negative ELBO.")

    @OptionGroup var flags: TrainFlags

    @Option(help: "Architecture: mlp (the reference MLP VAE), conv (convolutional VAE) or ae (deterministic autoencoder).")
    var model: AutoencoderKind = .mlp

    @Option(help: "Reconstruction term: bernoulli (BCE) or gaussian (MSE).")
    var reconstruction: ReconstructionLoss = .bernoulli

    @Option(help: "Latent dimensions.")
    var latentDim: Int = 20

    func validate() throws {
        guard latentDim >= 1 else { throw ValidationError("--latent-dim must be at least 1") }
    }

    func run() throws {
        Threads.set(flags.threads)
        let (run, lock) = try openRun(flags.runPath("vae"), resume: flags.resume, overwrite: flags.overwrite)
        defer { lock.release() }
        let data = try flags.loadTraining()
        let vae = VAETraining(architecture: model, latentDim: latentDim, learningRate: flags.lr,
                              reconstruction: reconstruction, seed: flags.seed)
        if let path = flags.initWeights {
            try vae.model.load(contentsOf: URL(fileURLWithPath: path), strict: true)
            print("initialised from \(path)")
        }
        let loop = TrainingLoop(model: vae, options: flags.options, run: run,
                                config: ["model": "vae", "architecture": model.rawValue, "latent_dim": String(latentDim),
                                         "reconstruction": reconstruction.rawValue, "lr": String(flags.lr),
                                         "batch_size": String(flags.batchSize), "seed": String(flags.seed)])
        print("training \(model.rawValue) vae on \(data.count) images (\(data.source)) for \(flags.epochs) epochs, batch \(flags.batchSize)")
        let start = Date()
        try loop.train(images: data.images, labels: data.labels, resume: flags.resume)
        let test = try loadDataset(flags.data, split: .test)
        let reconstructions = run.url.appendingPathComponent("reconstructions.png")
        let originals = test.images.rows(Array(0..<min(32, test.count)))
        try PNGWriter.write(imageGrid(interleavedRows(originals, vae.reconstruct(originals), perRow: 8), columns: 8),
                            to: reconstructions)
        print(String(format: "done in %.1f s.\n  checkpoint: %@\n  metrics: %@\n  loss plot: %@\n  samples: %@\n  reconstructions (odd rows test images, even rows their reconstructions): %@",
                     Date().timeIntervalSince(start), run.checkpoint.path, run.metrics.path, run.lossPlot.path,
                     run.latestSamples.path, reconstructions.path))
    }
}

extension ReconstructionLoss: ExpressibleByArgument {}
extension AutoencoderKind: ExpressibleByArgument {}

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
