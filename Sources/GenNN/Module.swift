import Foundation
import GenTensor
import GenFormats

/// A learnable weight or a buffer (such as BatchNorm's running mean) of a module, under a stable
/// dotted name. Optimizers update `value` in place; checkpoints read and write it.
public final class Parameter {
    /// The current value; a leaf that requires gradients when the parameter is trainable.
    public var value: Tensor
    /// Whether optimizers update it (false for buffers).
    public let isTrainable: Bool
    /// How the engine's layout differs from PyTorch's, converted at load and export.
    public let layout: ParameterLayout

    public init(_ value: Tensor, trainable: Bool = true, layout: ParameterLayout = .pytorch) {
        self.value = trainable ? value.detached().requiringGrad() : value.detached()
        self.isTrainable = trainable
        self.layout = layout
    }

    /// Replaces the value, keeping the trainable flag.
    public func assign(_ newValue: Tensor) {
        precondition(newValue.shape == value.shape, "Parameter.assign: shape \(newValue.shape) differs from \(value.shape)")
        value = isTrainable ? newValue.detached().requiringGrad() : newValue.detached()
    }
}

/// How a parameter's engine layout relates to PyTorch's state_dict layout.
public enum ParameterLayout: Sendable, Equatable {
    /// Stored exactly as PyTorch stores it.
    case pytorch
    /// A Linear weight (out, C*H*W) applied after flattening channels-last activations: PyTorch's
    /// columns are in (C, H, W) order, the engine's in (H, W, C) order.
    case linearAfterFlatten(channels: Int, height: Int, width: Int)

    /// Converts a PyTorch tensor to the engine's layout.
    public func fromPyTorch(_ t: Tensor) -> Tensor {
        switch self {
        case .pytorch: return t
        case let .linearAfterFlatten(c, h, w):
            let out = t.shape[0]
            return t.reshaped([out, c, h, w]).permuted([0, 2, 3, 1]).reshaped([out, c * h * w])
        }
    }

    /// Converts an engine tensor back to PyTorch's layout.
    public func toPyTorch(_ t: Tensor) -> Tensor {
        switch self {
        case .pytorch: return t
        case let .linearAfterFlatten(c, h, w):
            let out = t.shape[0]
            return t.reshaped([out, h, w, c]).permuted([0, 3, 1, 2]).reshaped([out, c * h * w])
        }
    }
}

/// A network or layer: something that owns parameters under PyTorch's state_dict names.
///
/// Modules list their parameters explicitly (no reflection); a container prefixes its children's
/// names, so `fc1.weight` or `net.0.weight` come out exactly as in PyTorch.
public protocol Module: AnyObject {
    /// Every parameter and buffer, under its dotted PyTorch name, in a stable order.
    var namedParameters: [(String, Parameter)] { get }
}

extension Module {
    /// The trainable parameters, in `namedParameters` order.
    public var trainableParameters: [Parameter] { namedParameters.map { $0.1 }.filter { $0.isTrainable } }

    /// The trainable parameters with their names.
    public var namedTrainableParameters: [(String, Parameter)] { namedParameters.filter { $0.1.isTrainable } }

    /// The number of trainable scalars.
    public var parameterCount: Int { trainableParameters.reduce(0) { $0 + $1.value.elementCount } }
}

/// Prefixes names with `prefix.` (a container's child).
public func prefixed(_ prefix: String, _ params: [(String, Parameter)]) -> [(String, Parameter)] {
    params.map { ("\(prefix).\($0.0)", $0.1) }
}
