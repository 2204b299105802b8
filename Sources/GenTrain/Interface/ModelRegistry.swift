import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Maps checkpoint kinds (the metadata key `model`) to the families that load them. The built-in
/// families are registered at first use; tests and extensions add their own with `register`.
public enum ModelRegistry {
    /// A checkpoint kind that makes no images (classifiers): what to tell a user who tries.
    public struct AuxiliaryKind: Sendable {
        public let kind: String
        public let note: String
        public init(kind: String, note: String) { self.kind = kind; self.note = note }
    }

    nonisolated(unsafe) private static var models: [String: any GenerativeModel.Type] = [
        VAETraining.kind: VAETraining.self,
        GANTraining.kind: GANTraining.self,
        DDPMTraining.kind: DDPMTraining.self,
        ScoreModelTraining.kind: ScoreModelTraining.self,
        FlowTraining.kind: FlowTraining.self,
        LatentDiffusionTraining.kind: LatentDiffusionTraining.self,
    ]
    nonisolated(unsafe) private static var auxiliary: [String: AuxiliaryKind] = [
        ClassifierTraining.kind: AuxiliaryKind(kind: ClassifierTraining.kind,
                                               note: "a classifier checkpoint: it makes no images (use it as the feature network with --network)"),
        NoisyClassifierTraining.kind: AuxiliaryKind(kind: NoisyClassifierTraining.kind,
                                                    note: "a noisy-classifier checkpoint: it guides a DDPM (sample ddpm --classifier) and makes no images"),
        CycleGANTraining.kind: AuxiliaryKind(kind: CycleGANTraining.kind,
                                             note: "a CycleGAN checkpoint: it translates images (generative cyclegan translate) and samples none from noise"),
        AutoencoderKLTraining.kind: AuxiliaryKind(kind: AutoencoderKLTraining.kind,
                                                  note: "an autoencoder-kl checkpoint: latent diffusion's first stage; it reconstructs images and samples none from noise"),
    ]
    private static let lock = NSLock()

    /// Registers a family under its `kind` (replacing one of the same kind).
    public static func register(_ model: any GenerativeModel.Type) {
        lock.lock(); defer { lock.unlock() }
        models[model.kind] = model
    }

    /// Registers a kind of checkpoint that makes no images.
    public static func registerAuxiliary(_ entry: AuxiliaryKind) {
        lock.lock(); defer { lock.unlock() }
        auxiliary[entry.kind] = entry
    }

    /// The family of a checkpoint kind.
    public static func model(kind: String) -> (any GenerativeModel.Type)? {
        lock.lock(); defer { lock.unlock() }
        return models[kind]
    }

    /// The registered kinds that make images, sorted.
    public static var kinds: [String] {
        lock.lock(); defer { lock.unlock() }
        return models.keys.sorted()
    }

    /// Loads the model a checkpoint holds, or explains why it cannot be sampled.
    public static func load(_ checkpoint: Checkpoint) throws -> any GenerativeModel {
        let kind = checkpoint.metadata["model"] ?? "unknown"
        if let model = model(kind: kind) { return try model.load(checkpoint) }
        lock.lock(); let note = auxiliary[kind]?.note; lock.unlock()
        if let note { throw ModelError("\(checkpoint.path) is \(note)") }
        throw ModelError("\(checkpoint.path): no registered model loads '\(kind)' checkpoints (known: \(kinds.joined(separator: ", ")))")
    }
}
