import CDNNL
import Foundation

/// Where a tensor's memory lives.
public enum Device: String, Sendable {
    /// Host memory, which the CPU and reference backends compute on.
    case host
}

/// A 64-byte-aligned, uninitialised block of memory that backs one or more tensors.
///
/// Tensors are always contiguous and row-major over their storage; `reshape` shares storage, every
/// other view-like op copies. Keeping one layout keeps every kernel a flat loop.
///
/// Freed memory is kept for reuse rather than handed back to the kernel, which would give zeroed
/// pages (and a page fault per 4 KiB) to the next tensor of the same size: blocks below 32 MiB stay
/// in glibc's heap (tuned once here), larger ones in `LargeBlockCache`.
public final class TensorStorage: @unchecked Sendable {
    public let byteCount: Int
    /// Where the memory lives: the host, for both backends of today (a device backend's storage
    /// would say so, and the backend would check it).
    public let device = Device.host
    /// The memory; internal to the engine (see `HostAccess.swift`).
    let pointer: UnsafeMutableRawPointer
    /// The size actually allocated (large blocks are rounded up to whole MiB so they can be reused).
    private let allocatedBytes: Int

    /// glibc returns every block over 128 KiB to the kernel by default; blocks up to 32 MiB (its
    /// limit) now come from the heap, which is trimmed only above 256 MiB of free space at its top.
    private static let allocatorConfigured: Bool = {
        cgen_keep_freed_memory(Int32(LargeBlockCache.threshold), 256 << 20)
        return true
    }()

    public init(byteCount: Int) {
        _ = Self.allocatorConfigured
        self.byteCount = byteCount
        let size = max(byteCount, 64)
        if size >= LargeBlockCache.threshold {
            allocatedBytes = (size + (1 << 20) - 1) & ~((1 << 20) - 1)
            if let reused = LargeBlockCache.shared.take(allocatedBytes) {
                pointer = reused
                return
            }
        } else {
            allocatedBytes = size
        }
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, 64, allocatedBytes)
        guard status == 0, let raw else { Self.outOfMemory(bytes: byteCount) }
        pointer = raw
    }

    /// An allocation the machine refused: a one-line error on stderr and exit status 1, instead of
    /// the crash that a null pointer would be (`-Ounchecked` removes preconditions).
    static func outOfMemory(bytes: Int) -> Never {
        let message = String(format: "Error: out of memory: cannot allocate %.2f GB for a tensor; lower --batch-size or --count\n",
                             Double(bytes) / 1e9)
        fputs(message, stderr)
        exit(1)
    }

    deinit {
        if allocatedBytes >= LargeBlockCache.threshold {
            LargeBlockCache.shared.give(pointer, allocatedBytes)
        } else {
            free(pointer)
        }
    }
}

/// Freed blocks of 32 MiB and more, by size, for the next tensor of the same size (sampling and
/// evaluation allocate the same large batches over and over). Holds at most 1 GiB; beyond that the
/// oldest sizes are released.
final class LargeBlockCache: @unchecked Sendable {
    static let threshold = 32 << 20
    static let shared = LargeBlockCache()
    private let limit = 1 << 30
    private let lock = NSLock()
    private var blocks: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
    private var cachedBytes = 0

    func take(_ size: Int) -> UnsafeMutableRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        guard let i = blocks.lastIndex(where: { $0.size == size }) else { return nil }
        cachedBytes -= size
        return blocks.remove(at: i).pointer
    }

    func give(_ pointer: UnsafeMutableRawPointer, _ size: Int) {
        lock.lock()
        defer { lock.unlock() }
        blocks.append((size, pointer))
        cachedBytes += size
        while cachedBytes > limit, !blocks.isEmpty {
            let oldest = blocks.removeFirst()
            cachedBytes -= oldest.size
            free(oldest.pointer)
        }
    }
}
