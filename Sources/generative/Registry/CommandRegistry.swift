import ArgumentParser
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// A model family as the command line sees it: its `train` and `sample` subcommands, verbs of its
/// own (top-level commands such as `translate`), and the checkpoint kinds it loads.
struct FamilyCommands {
    /// The family's name, for listings ("vae", "gan", "diffusion").
    var name: String
    var train: [ParsableCommand.Type] = []
    var sample: [ParsableCommand.Type] = []
    var verbs: [ParsableCommand.Type] = []
    /// The models its checkpoints hold (registered with `ModelRegistry` for eval and export).
    var models: [any GenerativeModel.Type] = []
}

/// The families the command line knows. `train`, `sample` and the top-level command list are built
/// from it, so a new family is a folder of its own plus one line in `builtIn` (or one `register`
/// call, as the tests do) and no command changes.
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
    /// in `eval` and `export`). A family of the same name is replaced.
    static func register(_ family: FamilyCommands) {
        registered.removeAll { $0.name == family.name }
        registered.append(family)
        for model in family.models { ModelRegistry.register(model) }
    }

    static var families: [FamilyCommands] { builtIn + registered }
    static var trainCommands: [ParsableCommand.Type] { families.flatMap(\.train) }
    static var sampleCommands: [ParsableCommand.Type] { families.flatMap(\.sample) }
    static var verbs: [ParsableCommand.Type] { families.flatMap(\.verbs) }
}
