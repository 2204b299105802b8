import Foundation

/// A 64-byte-aligned, uninitialised block of memory that backs one or more tensors.
///
/// Tensors are always contiguous and row-major over their storage; `reshape` shares storage, every
/// other view-like op copies. Keeping one layout keeps every kernel a flat loop.
public final class TensorStorage: @unchecked Sendable {
    public let byteCount: Int
    public let pointer: UnsafeMutableRawPointer

    public init(byteCount: Int) {
        self.byteCount = byteCount
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, 64, max(byteCount, 64))
        precondition(status == 0 && raw != nil, "TensorStorage: cannot allocate \(byteCount) bytes")
        pointer = raw!
    }

    deinit { free(pointer) }
}
