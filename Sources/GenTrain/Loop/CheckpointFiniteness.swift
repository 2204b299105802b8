import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

extension Checkpoint {
    /// The first tensor (in key order) holding a NaN or an infinity, with that value; nil when
    /// every floating-point tensor is finite.
    public func firstNonFiniteTensor() -> (key: String, value: Double)? {
        for key in tensors.keys.sorted() {
            guard let t = tensors[key], let value = Self.firstNonFinite(t) else { continue }
            return (key, value)
        }
        return nil
    }

    /// Reads a checkpoint for sampling or export, refusing one whose tensors are not all finite.
    public static func finite(contentsOf url: URL) throws -> Checkpoint {
        let checkpoint = try Checkpoint(contentsOf: url)
        if let bad = checkpoint.firstNonFiniteTensor() {
            throw NonFiniteCheckpointError(path: url.path, tensor: bad.key, value: bad.value)
        }
        return checkpoint
    }

    private static func firstNonFinite(_ t: Tensor) -> Double? {
        switch t.dtype {
        case .float32:
            return t.withUnsafeBufferPointer(as: Float.self) { $0.first { !$0.isFinite } }.map(Double.init)
        case .float64:
            return t.withUnsafeBufferPointer(as: Double.self) { $0.first { !$0.isFinite } }
        case .int64:
            return nil
        }
    }
}

/// A checkpoint whose weights hold NaN or infinite values (a diverged run).
public struct NonFiniteCheckpointError: Error, CustomStringConvertible, Equatable {
    public var path: String
    /// The first bad tensor's key.
    public var tensor: String
    public var value: Double

    public var description: String {
        "\(path) holds non-finite weights (tensor \(tensor) holds \(nonFiniteText(value))): the run that wrote it diverged; use an earlier checkpoint"
    }
}

/// A non-finite value as users read it: "nan" (whatever its sign bit), "inf" or "-inf".
func nonFiniteText(_ value: Double) -> String { value.isNaN ? "nan" : "\(value)" }
