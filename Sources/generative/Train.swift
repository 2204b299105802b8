import ArgumentParser
import Foundation
import GenTrain

/// `generative train MODEL`.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on Fashion-MNIST (or --data), writing checkpoints, metrics and sample grids.",
        subcommands: [TrainVAE.self])
}

/// `generative train vae`.
struct TrainVAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae", abstract: "Train the MLP VAE (784-400-20) with Adam on the negative ELBO.")

    @OptionGroup var flags: TrainFlags

    @Option(help: "Reconstruction term: bernoulli (BCE) or gaussian (MSE).")
    var reconstruction: ReconstructionLoss = .bernoulli

    @Option(help: "Latent dimensions.")
    var latentDim: Int = 20

    func validate() throws {
        guard latentDim >= 1 else { throw ValidationError("--latent-dim must be at least 1") }
    }

    func run() throws {
        Threads.set(flags.threads)
        let data = try flags.loadTraining()
        let model = VAETraining(latentDim: latentDim, learningRate: flags.lr, reconstruction: reconstruction, seed: flags.seed)
        let run = RunDirectory(URL(fileURLWithPath: flags.out))
        let loop = TrainingLoop(model: model, options: flags.options, run: run,
                                config: ["model": "vae", "latent_dim": String(latentDim),
                                         "reconstruction": reconstruction.rawValue, "lr": String(flags.lr),
                                         "batch_size": String(flags.batchSize), "seed": String(flags.seed)])
        print("training vae on \(data.count) images (\(data.source)) for \(flags.epochs) epochs, batch \(flags.batchSize)")
        let start = Date()
        try loop.train(images: data.images, labels: data.labels, resume: flags.resume)
        print(String(format: "done in %.1f s. checkpoint: %@\n  metrics: %@\n  loss plot: %@\n  samples: %@",
                     Date().timeIntervalSince(start), run.checkpoint.path, run.metrics.path, run.lossPlot.path,
                     run.latestSamples.path))
    }
}

extension ReconstructionLoss: ExpressibleByArgument {}
