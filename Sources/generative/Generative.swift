import ArgumentParser

/// The `generative` command line: thin wrappers over the library APIs.
@main
struct Generative: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generative",
        abstract: "Train, sample and evaluate generative models (VAE, GANs, flows, diffusion) on Fashion-MNIST.",
        subcommands: [Train.self, Sample.self, Reconstruct.self, Interpolate.self, Export.self, Bench.self])
}
