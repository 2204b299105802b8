import ArgumentParser
import GenFormats
import GenModels
import GenData
import GenEval
import GenTrain

/// `generative train MODEL`: one subcommand per registered family's model.
struct Train: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            abstract: "Train a model on Fashion-MNIST (or --data), writing checkpoints, metrics and sample grids.",
            subcommands: CommandRegistry.trainCommands)
    }
}

/// `generative sample MODEL`: one subcommand per registered family's model.
struct Sample: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(abstract: "Sample images from a trained model's checkpoint.", subcommands: CommandRegistry.sampleCommands)
    }
}
