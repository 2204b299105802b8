import Foundation
import GenTensor
import GenFormats

/// Loading and exporting PyTorch state_dicts (safetensors) by parameter name.
extension Module {
    /// Loads every parameter and buffer from `file`, under `prefix` + the PyTorch name, converting
    /// layouts where the engine's differs. Fails (naming the file, tensor and problem) on a missing
    /// tensor or a shape that disagrees with the model; float64 values are converted to the
    /// parameter's dtype. Names in the file that the model lacks are ignored unless `strict`.
    public func load(from file: SafeTensorsFile, prefix: String = "", strict: Bool = false) throws {
        let own = namedParameters
        for (name, param) in own {
            let key = prefix + name
            let pytorchShape = param.layout.toPyTorch(param.value).shape
            let stored = try file.loadTensor(key, expectedShape: pytorchShape)
            let converted = param.layout.fromPyTorch(stored.cast(to: param.value.dtype))
            param.assign(converted)
        }
        if strict {
            let known = Set(own.map { prefix + $0.0 })
            let extra = file.names.filter { $0.hasPrefix(prefix) && !known.contains($0) }
            if !extra.isEmpty {
                throw SafeTensorsError(path: file.path, kind: .missingTensor,
                                       problem: "unexpected tensors for this model: \(extra.prefix(5).joined(separator: ", "))")
            }
        }
    }

    /// Loads from a safetensors file on disk.
    public func load(contentsOf url: URL, prefix: String = "", strict: Bool = false) throws {
        try load(from: SafeTensorsFile(contentsOf: url), prefix: prefix, strict: strict)
    }

    /// The parameters and buffers in PyTorch's names and layouts, under `prefix`.
    public func stateDict(prefix: String = "") -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, param) in namedParameters { out[prefix + name] = param.layout.toPyTorch(param.value).detached() }
        return out
    }
}
