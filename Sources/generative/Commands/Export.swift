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

    @Flag(help: "With --weights-only: keep each network's EMA weights (what sampling uses by default) in place of its raw ones, and drop the EMA copies: about half the file for a model with an EMA; --no-ema then samples the same EMA weights.")
    var emaOnly = false

    @Flag(help: "Store the float32 weights as float16 (half the bytes; read back as float32, so everything that loads the file works unchanged). Measure what it changes before shipping it: `generative eval` of both files with one seed.")
    var float16 = false

    func validate() throws {
        if sameFile(out, checkpoint) { throw ValidationError("--out \(out) is the checkpoint being exported: choose another file") }
        if weightsOnly && (ema || network != nil) {
            throw ValidationError("--weights-only keeps every network and its EMA weights; --ema and --network choose a state_dict's contents")
        }
        if emaOnly && !weightsOnly { throw ValidationError("--ema-only goes with --weights-only (a state_dict takes --ema)") }
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
    /// `--float16` or `--ema-only`, the file as written is read back and loaded). `--ema-only` is
    /// refused for a model whose samples it would change (one that samples with its raw weights),
    /// checked by making two images from both (`fixedInputSamples`).
    func writeWeightsOnly(_ c: Checkpoint) throws {
        var stripped = c.weightsOnly()
        let family = ModelRegistry.model(kind: c.metadata["model"] ?? "")
        if let family { _ = try family.load(stripped) }
        if emaOnly {
            let original = stripped
            stripped = stripped.keepingOnlyEMA()
            guard stripped.metadata[Checkpoint.emaOnlyKey] != "{}" else { throw ValidationError("--ema-only: \(checkpoint) holds no EMA weights") }
            if let family {
                var restored = stripped
                try restored.restoreEMACopies()
                let sample = { (checkpoint: Checkpoint) in
                    try family.load(checkpoint).fixedInputSamples(count: 2, seed: 0, options: SamplingOptions())
                }
                guard try sample(original).scalars(as: Float.self) == sample(restored).scalars(as: Float.self) else {
                    throw ValidationError("--ema-only: a '\(family.kind)' model samples with its raw weights, which --ema-only replaces by the EMA ones; export it without --ema-only")
                }
            }
        }
        if float16 { stripped.metadata[Checkpoint.float16Key] = "true" }
        let url = URL(fileURLWithPath: out)
        try stripped.write(to: url, float16: float16)
        if float16 || emaOnly, let family { _ = try family.load(try Checkpoint.finite(contentsOf: url)) }
        let bytes = { (path: String) in ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0 }
        print(String(format: "wrote %@ (weights only%@%@, %.1f MB; the checkpoint is %.1f MB)", out, emaOnly ? ", EMA only" : "",
                     float16 ? ", float16" : "", Double(bytes(out)) / 1e6, Double(bytes(checkpoint)) / 1e6))
    }
}
