import Foundation
import RealModule

/// A floating-point scalar type the kernels are written for (Float and Double).
public protocol KernelFloat: BinaryFloatingPoint, Real, TensorScalar {}
extension Float: KernelFloat {}
extension Double: KernelFloat {}

/// An n-dimensional array of Float32, Float64 or Int64 values, eagerly evaluated, that records the
/// operations applied to it so that gradients can be taken (see `Autodiff.swift`).
///
/// Layout: always contiguous, row-major (the last axis varies fastest). Image tensors in this engine
/// are **channels-last**, `(N, H, W, C)`, which is what oneDNN's fastest convolutions want; PyTorch's
/// NCHW tensors and weights are converted at the edges (`permuted`, safetensors loading).
///
/// A `Tensor` is a reference type because the autodiff graph links tensors; its values never change
/// after creation, except through the explicitly named in-place helpers that optimizers use.
public final class Tensor: @unchecked Sendable {
    /// The size of each axis.
    public let shape: [Int]
    /// The element type.
    public let dtype: DType
    /// The memory holding the elements (shared between a tensor and its reshapes and detached copies).
    public let storage: TensorStorage
    /// Whether this tensor is a leaf whose gradient is wanted (a parameter or an input under test).
    public let requiresGrad: Bool
    /// The operation that produced this tensor, when it was produced under gradient recording from
    /// inputs that track gradients.
    var node: GradNode?

    /// Makes a tensor with uninitialised contents.
    public init(uninitializedShape shape: [Int], dtype: DType, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        precondition(!requiresGrad || dtype.isFloatingPoint, "Tensor: an int64 tensor cannot require gradients")
        self.shape = shape
        self.dtype = dtype
        self.requiresGrad = requiresGrad
        self.storage = TensorStorage(byteCount: shape.reduce(1, *) * dtype.byteSize)
    }

    /// Makes a tensor that shares `storage` (used by reshape and detach).
    public init(storage: TensorStorage, shape: [Int], dtype: DType, requiresGrad: Bool = false) {
        precondition(shape.reduce(1, *) * dtype.byteSize <= storage.byteCount,
                     "Tensor: shape \(shape) does not fit its storage")
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// Makes a tensor from values in row-major order.
    public convenience init<T: TensorScalar>(_ values: [T], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == shape.reduce(1, *),
                     "Tensor: \(values.count) values do not fill shape \(shape)")
        self.init(uninitializedShape: shape, dtype: T.dtype, requiresGrad: requiresGrad)
        values.withUnsafeBufferPointer { src in
            storage.pointer.copyMemory(from: src.baseAddress!, byteCount: values.count * dtype.byteSize)
        }
    }

    /// Makes a rank-1 tensor from values.
    public convenience init<T: TensorScalar>(_ values: [T], requiresGrad: Bool = false) {
        self.init(values, shape: [values.count], requiresGrad: requiresGrad)
    }

    /// Makes a rank-0 tensor.
    public convenience init<T: TensorScalar>(scalar: T, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    /// Makes a tensor filled with one value.
    public convenience init(repeating value: Double, shape: [Int], dtype: DType = .float32, requiresGrad: Bool = false) {
        self.init(uninitializedShape: shape, dtype: dtype, requiresGrad: requiresGrad)
        Backend.current.fill(self, with: value)
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32, requiresGrad: Bool = false) -> Tensor {
        Tensor(repeating: 0, shape: shape, dtype: dtype, requiresGrad: requiresGrad)
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32, requiresGrad: Bool = false) -> Tensor {
        Tensor(repeating: 1, shape: shape, dtype: dtype, requiresGrad: requiresGrad)
    }

    /// The number of axes.
    @inlinable public var rank: Int { shape.count }
    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Whether gradients flow through this tensor (a leaf that requires them, or an op result).
    public var tracksGradient: Bool { requiresGrad || node != nil }

    /// Typed access to the elements (the caller must know the dtype). Internal to the engine: code
    /// outside reads and writes through `HostAccess.swift`, so that a backend can own the memory.
    var floatPointer: UnsafeMutablePointer<Float> { storage.pointer.assumingMemoryBound(to: Float.self) }
    var doublePointer: UnsafeMutablePointer<Double> { storage.pointer.assumingMemoryBound(to: Double.self) }
    var int64Pointer: UnsafeMutablePointer<Int64> { storage.pointer.assumingMemoryBound(to: Int64.self) }

    /// Typed pointer to the elements; traps when `T` is not this tensor's dtype.
    func pointer<T: TensorScalar>(as type: T.Type) -> UnsafeMutablePointer<T> {
        precondition(T.dtype == dtype, "Tensor: asked for \(T.dtype) elements of a \(dtype) tensor")
        return storage.pointer.assumingMemoryBound(to: T.self)
    }

    /// The elements in row-major order.
    public func scalars<T: TensorScalar>(as type: T.Type = T.self) -> [T] {
        Array(UnsafeBufferPointer(start: pointer(as: T.self), count: elementCount))
    }

    /// The elements converted to Double, whatever the dtype.
    public func doubleScalars() -> [Double] {
        let n = elementCount
        switch dtype {
        case .float32: return (0..<n).map { Double(floatPointer[$0]) }
        case .float64: return Array(UnsafeBufferPointer(start: doublePointer, count: n))
        case .int64: return (0..<n).map { Double(int64Pointer[$0]) }
        }
    }

    /// The value of a one-element tensor, as Double.
    public var item: Double {
        precondition(elementCount == 1, "item: tensor of shape \(shape) has \(elementCount) elements")
        return doubleScalars()[0]
    }

    /// A tensor with the same values and no gradient history (shares storage).
    public func detached() -> Tensor {
        Tensor(storage: storage, shape: shape, dtype: dtype)
    }

    /// A leaf copy of this tensor's values that requires gradients.
    public func requiringGrad() -> Tensor {
        Tensor(storage: storage, shape: shape, dtype: dtype, requiresGrad: true)
    }

    /// A deep copy (new storage) with no gradient history.
    public func copied() -> Tensor {
        let out = Tensor(uninitializedShape: shape, dtype: dtype)
        Backend.current.copyRuns(count: 1, length: elementCount, from: self, offset: 0, stride: 0, into: out, offset: 0, stride: 0)
        return out
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = doubleScalars()
        let shown = values.prefix(8).map { dtype == .int64 ? String(Int64($0)) : String(format: "%.5g", $0) }
        return "Tensor(\(dtype), shape: \(shape), [\(shown.joined(separator: ", "))\(values.count > 8 ? ", ..." : "")])"
    }
}
