import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// An exclusive lock on a run folder while a process trains into it: the file `RUN/.lock`, held
/// with `flock` and holding the holder's PID. The kernel drops the lock when its holder ends, however
/// it ends, so a killed run never leaves its folder locked.
public final class RunLock {
    /// The lock file.
    public let url: URL
    private var descriptor: Int32

    /// Takes the lock of `folder` (created if missing), or throws `RunLockError.held` naming the
    /// holder's PID.
    public init(folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        url = folder.appendingPathComponent(".lock")
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunLockError.unavailable(path: url.path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.storedPID(fd)
            close(fd)
            if code == EWOULDBLOCK { throw RunLockError.held(folder: folder.path, pid: holder) }
            throw RunLockError.unavailable(path: url.path, reason: String(cString: strerror(code)))
        }
        descriptor = fd
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// A lock that holds nothing: a data-parallel rank other than 0, which writes nothing in
    /// `folder` (rank 0 holds the folder's lock).
    public init(replicaOf folder: URL) {
        url = folder.appendingPathComponent(".lock")
        descriptor = -1
    }

    /// Releases the lock (also done when the lock is deallocated).
    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    /// The PID written in an open lock file, if it holds one.
    private static func storedPID(_ fd: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: bytes[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// Why a run folder could not be locked.
public enum RunLockError: Error, CustomStringConvertible, Equatable {
    /// Another process trains into the folder.
    case held(folder: String, pid: Int32?)
    /// The lock file could not be opened or locked.
    case unavailable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .held(folder, pid):
            let holder = pid.map { "process \($0)" } ?? "another process"
            return "\(folder) is in use: \(holder) is training into it (lock \(folder)/.lock); wait for it to end or choose another --out"
        case let .unavailable(path, reason):
            return "cannot lock \(path): \(reason)"
        }
    }
}
