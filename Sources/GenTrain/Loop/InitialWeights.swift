import Foundation
import GenTensor
import GenFormats
import GenNN

/// `--init-from [NETWORK=]FILE`: one of a model's networks starts from a PyTorch state_dict
/// (`.safetensors`, PyTorch's names and layouts) instead of its own initialisation. NETWORK is a
/// prefix of the model's checkpoint ("model", "generator", "discriminator", "generator_ab", ...);
/// without it, the model's first network.
public struct InitialWeights: Codable, Equatable, Sendable {
    /// The network (nil: the model's first).
    public var network: String?
    public var path: String

    public init(network: String? = nil, path: String) {
        self.network = network
        self.path = path
    }

    /// Parses `FILE` or `NETWORK=FILE`.
    public init(argument: String) {
        if let eq = argument.firstIndex(of: "="), !argument[..<eq].contains("/") {
            self.init(network: String(argument[..<eq]), path: String(argument[argument.index(after: eq)...]))
        } else {
            self.init(path: argument)
        }
    }
}

/// A state_dict that does not fit the network it should initialise: every missing, unexpected and
/// misshapen tensor, on one line.
public struct StateDictMismatch: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var network: String
    /// Tensors the network has and the file lacks.
    public var missing: [String]
    /// Tensors the file has and the network lacks.
    public var unexpected: [String]
    /// Tensors of both whose shapes differ: (name, the file's shape, the network's).
    public var misshapen: [(name: String, file: [Int], model: [Int])]

    public static func == (a: Self, b: Self) -> Bool {
        a.path == b.path && a.network == b.network && a.missing == b.missing && a.unexpected == b.unexpected
            && a.misshapen.map { "\($0)" } == b.misshapen.map { "\($0)" }
    }

    public var description: String {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("\(missing.count) missing (\(missing.joined(separator: ", ")))") }
        if !unexpected.isEmpty { parts.append("\(unexpected.count) unexpected (\(unexpected.joined(separator: ", ")))") }
        if !misshapen.isEmpty {
            let list = misshapen.map { "\($0.name): \($0.file) in the file, \($0.model) in the model" }
            parts.append("\(misshapen.count) misshapen (\(list.joined(separator: "; ")))")
        }
        return "--init-from \(path): the state_dict does not fit the \(network): " + parts.joined(separator: "; ")
    }
}

extension TrainableModel {
    /// The networks `--init-from` can load, by their checkpoint prefix: a `GenerativeModel`'s
    /// exportable networks, else the model's `networkNames`, as far as the checkpoint holds them.
    public func initialisableNetworks(in checkpoint: Checkpoint) -> [String] {
        let declared = (self as? any GenerativeModel)?.exportableNetworks ?? networkNames
        return declared.filter { name in checkpoint.tensors.keys.contains { $0.hasPrefix(name + ".") } }
    }

    /// Loads each state_dict into its network (and the network's EMA copy, if it has one), after a
    /// strict check of names and shapes that lists every problem (`StateDictMismatch`). Returns a
    /// line per file for the log.
    @discardableResult
    public func initialise(from weights: [InitialWeights]) throws -> [String] {
        guard !weights.isEmpty else { return [] }
        var checkpoint = Checkpoint()
        store(into: &checkpoint)
        let networks = initialisableNetworks(in: checkpoint)
        var lines: [String] = []
        var seen: Set<String> = []
        for item in weights {
            guard let network = item.network ?? networks.first else { throw ModelError("--init-from: the model has no network to initialise") }
            guard networks.contains(network) else {
                throw ModelError("--init-from \(network)=\(item.path): no network '\(network)'; this model has \(networks.joined(separator: ", "))")
            }
            guard seen.insert(network).inserted else { throw ModelError("--init-from names the \(network) twice") }
            let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: item.path))
            let prefix = network + "."
            let emaPrefix = network == "model" ? "ema." : "ema." + prefix
            let own = checkpoint.tensors.filter { $0.key.hasPrefix(prefix) }
            var mismatch = StateDictMismatch(path: item.path, network: network, missing: [], unexpected: [], misshapen: [])
            var loaded: [String: Tensor] = [:]
            for key in own.keys.sorted() {
                let name = String(key.dropFirst(prefix.count))
                guard let entry = file.entries[name] else { mismatch.missing.append(name); continue }
                let target = own[key]!
                guard entry.shape == target.shape else {
                    mismatch.misshapen.append((name, entry.shape, target.shape))
                    continue
                }
                loaded[name] = try file.tensor(name).cast(to: target.dtype)
            }
            mismatch.unexpected = file.names.filter { own[prefix + $0] == nil }.sorted()
            guard mismatch.missing.isEmpty && mismatch.unexpected.isEmpty && mismatch.misshapen.isEmpty else { throw mismatch }
            for (name, value) in loaded {
                checkpoint.tensors[prefix + name] = value
                if let shadow = checkpoint.tensors[emaPrefix + name], shadow.shape == value.shape {
                    checkpoint.tensors[emaPrefix + name] = value.cast(to: shadow.dtype)
                }
            }
            lines.append("initialised the \(network) from \(item.path) (\(loaded.count) tensors)")
        }
        try restore(from: checkpoint)
        return lines
    }
}
