import Foundation

extension Tensor {
    /// Whether every element is finite (no NaN, no infinity); integer tensors always are. One pass
    /// over the exponent bits (a max reduction the compiler vectorises), so it is cheap enough to run
    /// on every step's gradients.
    public var isAllFinite: Bool {
        switch dtype {
        case .float32:
            return withUnsafeBufferPointer(as: Float.self) { buffer in
                buffer.withMemoryRebound(to: UInt32.self) { bits in
                    var widest: UInt32 = 0
                    for b in bits { widest = Swift.max(widest, b & 0x7F80_0000) }
                    return widest != 0x7F80_0000
                }
            }
        case .float64:
            return withUnsafeBufferPointer(as: Double.self) { buffer in
                buffer.withMemoryRebound(to: UInt64.self) { bits in
                    var widest: UInt64 = 0
                    for b in bits { widest = Swift.max(widest, b & 0x7FF0_0000_0000_0000) }
                    return widest != 0x7FF0_0000_0000_0000
                }
            }
        case .int64:
            return true
        }
    }
}
