import CDNNL
import Foundation

/// A 64-byte-aligned, uninitialised block of memory that backs one or more tensors.
///
/// Tensors are always contiguous and row-major over their storage; `reshape` shares storage, every
/// other view-like op copies. Keeping one layout keeps every kernel a flat loop.
public final class TensorStorage: @unchecked Sendable {
    public let byteCount: Int
    public let pointer: UnsafeMutableRawPointer

    /// Keeps freed tensor memory in the process for reuse: by default glibc returns every block over
    /// 128 KiB to the kernel with munmap, and each new activation then pays page faults to get zeroed
    /// pages back (7% of a U-Net training step). Blocks up to 32 MiB (glibc's limit) now come from the
    /// heap, and the heap is trimmed only above 256 MiB of free space at its top.
    private static let allocatorConfigured: Bool = {
        cgen_keep_freed_memory(32 << 20, 256 << 20)
        return true
    }()

    public init(byteCount: Int) {
        _ = Self.allocatorConfigured
        self.byteCount = byteCount
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, 64, max(byteCount, 64))
        precondition(status == 0 && raw != nil, "TensorStorage: cannot allocate \(byteCount) bytes")
        pointer = raw!
    }

    deinit { free(pointer) }
}
