import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM during training: the first asks the loop to finish its step, save a checkpoint
/// and stop (exit status 128 + signal); a second one exits at once, leaving the last complete
/// checkpoint (checkpoints are written atomically).
public enum StopSignal {
    /// The signal received since `install`, or 0.
    nonisolated(unsafe) public private(set) static var received: Int32 = 0
    nonisolated(unsafe) private static var previous: [Int32: sighandler_t?] = [:]
    /// Installs not yet restored: the in-process replicas of `--grad-shards` each install, in turn,
    /// and only the first install and the last restore act.
    nonisolated(unsafe) private static var depth = 0

    /// Installs the handlers (until `restore`).
    public static func install() {
        depth += 1
        guard depth == 1 else { return }
        received = 0
        for signal in [SIGINT, SIGTERM] {
            previous[signal] = Glibc.signal(signal) { number in
                if StopSignal.received != 0 { _exit(128 + number) }
                StopSignal.received = number
            }
        }
    }

    /// Puts back the handlers that were there before `install`.
    public static func restore() {
        depth = max(0, depth - 1)
        guard depth == 0 else { return }
        for (signal, handler) in previous { _ = Glibc.signal(signal, handler ?? SIG_DFL) }
        previous = [:]
        received = 0
    }
}

/// The free space of the file system that holds `folder`, in bytes (nil when it cannot be read).
public func freeDiskSpace(at folder: URL) -> Int64? {
    var stats = statvfs()
    guard statvfs(folder.path, &stats) == 0 else { return nil }
    return Int64(stats.f_bavail) * Int64(stats.f_frsize)
}
