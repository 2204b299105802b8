import ArgumentParser
import Foundation

/// The `generative` command line: thin wrappers over the library APIs.
@main
struct Generative: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generative",
        abstract: "Train, sample and evaluate generative models (VAE, GANs, flows, diffusion) on Fashion-MNIST.",
        subcommands: [Train.self, Sample.self, Reconstruct.self, Interpolate.self, Translate.self, Export.self, Bench.self, Eval.self])

    /// Line-buffered standard output, so progress lines reach a log file as they happen.
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        main(nil)
    }
}
