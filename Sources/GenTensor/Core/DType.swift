/// The element types a tensor can hold.
///
/// Float32 is the compute type (oneDNN kernels), Float64 serves gradient checks and metrics (Swift
/// reference kernels), Int64 holds labels and timesteps.
public enum DType: String, Sendable, CaseIterable {
    case float32
    case float64
    case int64

    /// Bytes per element.
    @inlinable public var byteSize: Int {
        switch self {
        case .float32: return 4
        case .float64, .int64: return 8
        }
    }

    /// Whether values of this type can carry gradients.
    @inlinable public var isFloatingPoint: Bool { self != .int64 }
}

/// A Swift scalar type that a tensor can store.
public protocol TensorScalar: Numeric, Sendable {
    static var dtype: DType { get }
}

extension Float: TensorScalar { public static var dtype: DType { .float32 } }
extension Double: TensorScalar { public static var dtype: DType { .float64 } }
extension Int64: TensorScalar { public static var dtype: DType { .int64 } }
