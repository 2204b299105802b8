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

    @Flag(help: "Store the float32 weights as float16 (half the bytes; read back as float32, so everything that loads the file works unchanged). Measure what it changes before shipping it: `generative eval` of both files with one seed.")
    var float16 = false

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
        try SafeTensorsFile.write(state, metadata: ["source": checkpoint], to: URL(fileURLWithPath: out), float16: float16)
        print("wrote \(state.count) tensors to \(out)")
    }

    /// `--weights-only`: the checkpoint less its optimiser state, checked to load as it did (with
    /// `--float16`, the file as written is read back and loaded).
    func writeWeightsOnly(_ c: Checkpoint) throws {
        var stripped = c.weightsOnly()
        if float16 { stripped.metadata[Checkpoint.float16Key] = "true" }
        let family = ModelRegistry.model(kind: c.metadata["model"] ?? "")
        if let family { _ = try family.load(stripped) }
        let url = URL(fileURLWithPath: out)
        try stripped.write(to: url, float16: float16)
        if float16, let family { _ = try family.load(try Checkpoint.finite(contentsOf: url)) }
        let bytes = { (path: String) in ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0 }
        print(String(format: "wrote %@ (weights only%@, %.1f MB; the checkpoint is %.1f MB)", out, float16 ? ", float16" : "",
                     Double(bytes(out)) / 1e6, Double(bytes(checkpoint)) / 1e6))
    }
}
