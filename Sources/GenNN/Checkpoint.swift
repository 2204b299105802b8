import Foundation
import GenTensor
import GenFormats

/// A training checkpoint: one safetensors file holding the weights of every network, their EMA
/// weights, the optimizers' state, the step, the RNG state and the run's configuration (JSON in the
/// metadata). Written atomically, so a crash mid-write leaves the previous checkpoint intact.
///
/// Keys: `NETWORK.NAME` for weights and buffers under PyTorch's state_dict names (NETWORK is `model`
/// for single-network models, or e.g. `generator` / `discriminator`), `ema.NAME` (or
/// `ema.NETWORK.NAME` beside several networks) for EMA weights, `optim.NETWORK.NAME.STATE` for
/// per-parameter optimizer state and `optim.NETWORK.STATE` for global optimizer state.
public struct Checkpoint {
    /// Every tensor, by key.
    public var tensors: [String: Tensor] = [:]
    /// String metadata: `config` (JSON), `step`, `epoch`, `rng_seed`, `rng_counter`, `format`.
    public var metadata: [String: String] = [:]

    public static let formatVersion = "generative-checkpoint-1"

    public init() { metadata["format"] = Checkpoint.formatVersion }

    /// Reads a checkpoint; errors name the file and the problem.
    public init(contentsOf url: URL) throws {
        let file = try SafeTensorsFile(contentsOf: url)
        guard file.metadata["format"] == Checkpoint.formatVersion else {
            throw SafeTensorsError(path: url.path, kind: .invalidHeader,
                                   problem: "not a generative checkpoint (metadata 'format' is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"))")
        }
        tensors = try file.allTensors()
        metadata = file.metadata
        self.path = url.path
        try restoreEMACopies()
    }

    /// Makes the EMA keys of an EMA-only checkpoint again, as copies of the weights that hold their
    /// values (`keepingOnlyEMA`); nothing for other checkpoints.
    public mutating func restoreEMACopies() throws {
        guard let folded = metadata[Self.emaOnlyKey] else { return }
        guard let pairs = try? JSONDecoder().decode([String: String].self, from: Data(folded.utf8)),
              pairs.values.allSatisfy({ tensors[$0] != nil }) else {
            throw SafeTensorsError(path: path, kind: .invalidHeader, problem: "its metadata '\(Self.emaOnlyKey)' names weights it does not hold")
        }
        for (emaKey, rawKey) in pairs where tensors[emaKey] == nil { tensors[emaKey] = tensors[rawKey]!.copied() }
    }

    /// The file this checkpoint was read from (for error messages).
    public private(set) var path: String = "checkpoint"

    /// The metadata key marking a checkpoint stripped to its weights.
    public static let weightsOnlyKey = "weights_only"

    /// The metadata key marking a checkpoint whose float32 tensors were stored as float16
    /// (`export --weights-only --float16`); they read back as float32.
    public static let float16Key = "float16"

    /// The metadata key of an EMA-only checkpoint: a JSON object mapping each EMA key to the raw
    /// key that holds its values (`keepingOnlyEMA`).
    public static let emaOnlyKey = "ema_only"

    /// This checkpoint with each network's EMA weights stored in place of its raw ones and the EMA
    /// copies left out: the weights sampling uses by default, in half the bytes for a model whose
    /// every weight has an EMA. Reading the file back makes the EMA keys again, as copies, so every
    /// family loads it; its raw weights are then the EMA ones. An EMA key `ema.NAME` pairs with
    /// `NAME` where that key exists (`ema.generator.W` with `generator.W`), else with `model.NAME`.
    /// Buffers, which have no EMA copy, stay as they are.
    public func keepingOnlyEMA() -> Checkpoint {
        var copy = self
        var pairs: [String: String] = [:]
        for (key, value) in tensors where key.hasPrefix("ema.") {
            let name = String(key.dropFirst(4))
            guard let raw = [name, "model." + name].first(where: { tensors[$0]?.shape == value.shape }) else { continue }
            copy.tensors[raw] = value
            copy.tensors[key] = nil
            pairs[key] = raw
        }
        if let text = try? JSONEncoder().encode(pairs) { copy.metadata[Self.emaOnlyKey] = String(decoding: text, as: UTF8.self) }
        return copy
    }

    /// Whether this checkpoint holds weights only (no optimiser state): it samples, evaluates and
    /// exports like the checkpoint it came from, and cannot be resumed.
    public var isWeightsOnly: Bool { metadata[Self.weightsOnlyKey] == "true" }

    /// This checkpoint without the optimisers' state (`optim.*`, twice the weights' size for Adam):
    /// the weights, EMA weights, buffers and metadata stay, so every family loads it for sampling.
    public func weightsOnly() -> Checkpoint {
        var copy = self
        copy.tensors = tensors.filter { !$0.key.hasPrefix("optim.") }
        copy.metadata[Self.weightsOnlyKey] = "true"
        return copy
    }

    /// Writes atomically (temporary file, fsync, rename); with `float16`, float32 tensors are
    /// stored as float16 and read back as float32.
    public func write(to url: URL, float16: Bool = false) throws {
        try SafeTensorsFile.write(tensors, metadata: metadata, to: url, float16: float16)
    }

    // MARK: networks

    /// Stores a module's state_dict under `prefix.`.
    public mutating func store(_ module: Module, as prefix: String) {
        for (name, t) in module.stateDict(prefix: prefix + ".") { tensors[name] = t.copied() }
    }

    /// Loads a module's weights from `prefix.` keys; errors name the missing or misshapen tensor.
    public func restore(_ module: Module, from prefix: String) throws {
        for (name, param) in module.namedParameters {
            let key = prefix + "." + name
            guard let stored = tensors[key] else {
                throw SafeTensorsError(path: path, kind: .missingTensor, problem: "tensor \(key) is missing from the checkpoint")
            }
            let expected = param.layout.toPyTorch(param.value).shape
            guard stored.shape == expected else {
                throw SafeTensorsError(path: path, kind: .shapeMismatch,
                                       problem: "tensor \(key) has shape \(stored.shape) but the model expects \(expected)")
            }
            param.assign(param.layout.fromPyTorch(stored.cast(to: param.value.dtype)).copied())
        }
    }

    /// Stores EMA shadows under `prefix.NAME`, with names taken from the module.
    public mutating func store(_ ema: ExponentialMovingAverage, of module: Module, as prefix: String) {
        let names = Dictionary(uniqueKeysWithValues: module.namedParameters.map { (ObjectIdentifier($0.1), $0.0) })
        for (p, shadow) in zip(ema.parameters, ema.shadows) {
            guard let name = names[ObjectIdentifier(p)] else { continue }
            tensors[prefix + "." + name] = p.layout.toPyTorch(shadow).copied()
        }
        metadata[prefix + ".updates"] = String(ema.updates)
    }

    /// Restores EMA shadows stored by `store(_:of:as:)`.
    public func restore(_ ema: ExponentialMovingAverage, of module: Module, from prefix: String) throws {
        let names = Dictionary(uniqueKeysWithValues: module.namedParameters.map { (ObjectIdentifier($0.1), $0.0) })
        for (p, shadow) in zip(ema.parameters, ema.shadows) {
            guard let name = names[ObjectIdentifier(p)] else { continue }
            let key = prefix + "." + name
            guard let stored = tensors[key], stored.shape == p.layout.toPyTorch(shadow).shape else {
                throw SafeTensorsError(path: path, kind: .missingTensor, problem: "EMA tensor \(key) is missing or misshapen")
            }
            shadow.assign(p.layout.fromPyTorch(stored.cast(to: shadow.dtype)))
        }
        ema.restore(updates: Int(metadata[prefix + ".updates"] ?? "0") ?? 0)
    }

    /// Stores an optimizer's state under `optim.NETWORK.`, naming per-parameter state by the
    /// parameter's PyTorch name.
    public mutating func store(_ optimizer: Optimizer, of module: Module, as network: String) {
        let names = parameterNames(optimizer, module)
        for (key, t) in optimizer.namedState {
            tensors["optim.\(network)." + renameState(key, names)] = t.copied()
        }
    }

    /// Restores an optimizer's state stored by `store(_:of:as:)`; a weights-only checkpoint
    /// leaves the optimizer as it is.
    public func restore(_ optimizer: Optimizer, of module: Module, from network: String) throws {
        if isWeightsOnly { return }
        let names = parameterNames(optimizer, module)
        let prefix = "optim.\(network)."
        var state: [String: Tensor] = [:]
        var byName: [String: String] = [:]
        for (i, n) in names.enumerated() { byName[n] = String(i) }
        for (key, t) in tensors where key.hasPrefix(prefix) {
            let rest = String(key.dropFirst(prefix.count))
            // Longest parameter name that prefixes `rest`, followed by ".STATE".
            if let match = names.filter({ rest.hasPrefix($0 + ".") }).max(by: { $0.count < $1.count }) {
                state[byName[match]! + "." + rest.dropFirst(match.count + 1)] = t
            } else {
                state[rest] = t
            }
        }
        do {
            try optimizer.loadState(state)
        } catch {
            throw SafeTensorsError(path: path, kind: .missingTensor, problem: "\(network) optimizer: \(error)")
        }
    }

    private func parameterNames(_ optimizer: Optimizer, _ module: Module) -> [String] {
        let names = Dictionary(uniqueKeysWithValues: module.namedParameters.map { (ObjectIdentifier($0.1), $0.0) })
        return optimizer.parameters.enumerated().map { names[ObjectIdentifier($0.element)] ?? String($0.offset) }
    }

    private func renameState(_ key: String, _ names: [String]) -> String {
        guard let dot = key.firstIndex(of: "."), let i = Int(key[..<dot]), i < names.count else { return key }
        return names[i] + key[dot...]
    }

    // MARK: scalars

    /// An integer metadata value, or a clear error.
    public func integer(_ key: String) throws -> Int {
        guard let text = metadata[key], let value = Int(text) else {
            throw SafeTensorsError(path: path, kind: .invalidHeader, problem: "metadata '\(key)' is missing or not an integer")
        }
        return value
    }

    /// Stores a random generator's state.
    public mutating func store(_ rng: RandomGenerator, as key: String) {
        metadata[key + ".seed"] = String(rng.seed)
        metadata[key + ".counter"] = String(rng.counter)
    }

    /// Restores a random generator stored by `store(_:as:)`.
    public func randomGenerator(_ key: String) throws -> RandomGenerator {
        guard let s = metadata[key + ".seed"].flatMap(UInt64.init), let c = metadata[key + ".counter"].flatMap(UInt64.init) else {
            throw SafeTensorsError(path: path, kind: .invalidHeader, problem: "random generator state '\(key)' is missing")
        }
        return RandomGenerator(seed: s, counter: c)
    }
}
