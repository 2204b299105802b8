import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// `generative export`: a checkpoint's weights as a plain PyTorch state_dict.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's weights as a plain state_dict (safetensors) that PyTorch loads with load_state_dict(strict=True).")

    @Option(help: "The checkpoint.")
    var checkpoint: String

    @Option(help: "The output .safetensors file.")
    var out: String

    @Flag(help: "Export the EMA weights instead of the raw ones.")
    var ema = false

    @Option(help: "The network to export, for checkpoints of several (e.g. generator, discriminator); default: the model's first.")
    var network: String?

    @Flag(help: "Write a generative checkpoint without the optimiser state instead of a state_dict: it samples, evaluates and exports as the checkpoint does (without Adam's two moments per weight), and cannot be resumed.")
    var weightsOnly = false

    func validate() throws {
        if sameFile(out, checkpoint) { throw ValidationError("--out \(out) is the checkpoint being exported: choose another file") }
        if weightsOnly && (ema || network != nil) {
            throw ValidationError("--weights-only keeps every network and its EMA weights; --ema and --network choose a state_dict's contents")
        }
    }

    func run() throws {
        let c = try Checkpoint.finite(contentsOf: URL(fileURLWithPath: checkpoint))
        if weightsOnly { return try writeWeightsOnly(c) }
        // A registered model loads (its tensors checked against its networks' shapes) and names
        // the networks it exports; other checkpoints (classifiers, CycleGAN) export by prefix.
        var network = self.network ?? "model"
        if let family = ModelRegistry.model(kind: c.metadata["model"] ?? "") {
            let model = try family.load(c)
            network = self.network ?? model.exportableNetworks[0]
            guard model.exportableNetworks.contains(network) else {
                throw ValidationError("--network \(network): \(checkpoint) holds \(model.exportableNetworks.joined(separator: ", "))")
            }
        }
        let prefix = (ema ? (network == "model" ? "ema" : "ema.\(network)") : network) + "."
        // Buffers have no EMA copy: take them from the network itself.
        var state: [String: Tensor] = [:]
        for (key, t) in c.tensors where key.hasPrefix(network + ".") {
            state[String(key.dropFirst(network.count + 1))] = t
        }
        if ema {
            let averaged = c.tensors.filter { $0.key.hasPrefix(prefix) }
            guard !averaged.isEmpty else { throw ValidationError("\(checkpoint) holds no EMA weights under '\(prefix)'") }
            for (key, t) in averaged { state[String(key.dropFirst(prefix.count))] = t }
        }
        guard !state.isEmpty else { throw ValidationError("\(checkpoint) holds no network named '\(network)'") }
        try SafeTensorsFile.write(state, metadata: ["source": checkpoint], to: URL(fileURLWithPath: out))
        print("wrote \(state.count) tensors to \(out)")
    }

    /// `--weights-only`: the checkpoint less its optimiser state, checked to load as it did.
    func writeWeightsOnly(_ c: Checkpoint) throws {
        let stripped = c.weightsOnly()
        if let family = ModelRegistry.model(kind: c.metadata["model"] ?? "") { _ = try family.load(stripped) }
        try stripped.write(to: URL(fileURLWithPath: out))
        let bytes = { (path: String) in ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0 }
        print(String(format: "wrote %@ (weights only, %.1f MB; the checkpoint is %.1f MB)", out,
                     Double(bytes(out)) / 1e6, Double(bytes(checkpoint)) / 1e6))
    }
}
