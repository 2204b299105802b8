import ArgumentParser
import Foundation
import GenTrain
import GenModels

/// A model family as the command line sees it: its `train` and `sample` subcommands, the commands
/// that group its own verbs (`generative vae reconstruct`), its `bench` workloads, and the checkpoint
/// kinds it loads.
struct FamilyCommands {
    /// The family's name, for listings ("vae", "gan", "diffusion").
    var name: String
    var train: [ParsableCommand.Type] = []
    var sample: [ParsableCommand.Type] = []
    /// Top-level commands named after a model, whose subcommands are the family's own verbs
    /// (`VAEVerbs`: `generative vae reconstruct`, `generative vae interpolate`).
    var verbs: [ParsableCommand.Type] = []
    /// The models its checkpoints hold (registered with `ModelRegistry` for eval and export).
    var models: [any GenerativeModel.Type] = []
    /// The workloads `generative bench` times for this family.
    var benchmarks: [WorkloadBenchmark.Suite] = []
    /// The training steps `generative bench --distributed` times for this family.
    var trainingWorkloads: [TrainingWorkload] = []
    /// The figures `generative report` draws on the cards of this family's checkpoints.
    var reportFigures: [ReportFigureMaker] = []
}

/// A model whose training step `bench --distributed` times: `make` builds it as `train NAME` does
/// by default (seed 0), for batches of `batchSize` images (28, 28, 1).
struct TrainingWorkload {
    var name: String
    var batchSize: Int
    var make: () -> TrainableModel
}

/// The families the command line knows. `train`, `sample`, `bench` and the top-level command list
/// are built from it, so a new family is a folder of its own plus one line in `builtIn` (or one
/// `register` call, as the tests do) and no command changes.
enum CommandRegistry {
    /// The families shipped with the toolkit, in the order their commands are listed.
    static let builtIn: [FamilyCommands] = [
        vaeFamily,
        diffusionFamily,
        classifierFamily,
        ganFamily,
        flowFamily,
        latentDiffusionFamily,
    ]

    nonisolated(unsafe) private static var registered: [FamilyCommands] = []

    /// Adds a family (its commands appear in `train`, `sample` and the top level; its models load
    /// in `eval` and `export`; its workloads run in `bench`). A family of the same name is replaced.
    static func register(_ family: FamilyCommands) {
        registered.removeAll { $0.name == family.name }
        registered.append(family)
        for model in family.models { ModelRegistry.register(model) }
    }

    static var families: [FamilyCommands] { builtIn + registered }
    static var trainCommands: [ParsableCommand.Type] { families.flatMap(\.train) }
    static var sampleCommands: [ParsableCommand.Type] { families.flatMap(\.sample) }
    static var verbs: [ParsableCommand.Type] { families.flatMap(\.verbs) }
    static var benchmarks: [WorkloadBenchmark.Suite] { families.flatMap(\.benchmarks) }
    static var trainingWorkloads: [TrainingWorkload] { families.flatMap(\.trainingWorkloads) }
    static var reportFigures: [ReportFigureMaker] { families.flatMap(\.reportFigures) }

    /// Every verb again at the top level under its older spelling (`generative reconstruct`),
    /// hidden from `--help`; each runs the verb after a note naming the new spelling.
    static var formerVerbSpellings: [ParsableCommand.Type] {
        verbs.flatMap { group in group.configuration.subcommands.map { verb in formerSpelling(group, verb) } }
    }

    private static func formerSpelling<Group: ParsableCommand, Verb: ParsableCommand>(_: Group.Type, _: Verb.Type)
        -> ParsableCommand.Type {
        FormerVerbSpelling<Group, Verb>.self
    }
}

/// A family verb under its older top-level spelling (`generative translate` for
/// `generative cyclegan translate`): the same flags, hidden from `--help`, and a note on stderr.
struct FormerVerbSpelling<Group: ParsableCommand, Verb: ParsableCommand>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: verbName, abstract: Verb.configuration.abstract,
                             discussion: "Older spelling of `generative \(groupName) \(verbName)`.", shouldDisplay: false)
    }

    static var verbName: String { Verb._commandName }
    static var groupName: String { Group._commandName }

    @OptionGroup var verb: Verb

    func run() throws {
        FileHandle.standardError.write(Data(
            "note: `generative \(Self.verbName)` is now `generative \(Self.groupName) \(Self.verbName)`; the older spelling will be removed in a later release\n".utf8))
        var command = verb
        try command.run()
    }
}
