import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that a failure part-way leaves any previous file intact and readers never see a
/// half-written one: the bytes go to a temporary file beside it (the rename stays within one file
/// system), which is flushed and renamed over the destination; the folder is then flushed so that
/// the rename itself is durable. Checkpoints, safetensors and data files are all written this way.
public enum AtomicFile {
    /// Writes the file at `path` with the bytes that `body` hands to its `write` function, in order.
    /// Failures are reported through `makeError(what failed, errno)`; errors `body` throws pass
    /// through. Either way the temporary file is removed.
    public static func write(path: String, makeError: @escaping (String, Int32) -> Error,
                             _ body: (_ write: (UnsafeRawPointer, Int) throws -> Void) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw makeError("cannot create the temporary file \(temporary)", errno) }
        var isOpen = true
        do {
            defer { if isOpen { close(fd) } }
            try body { pointer, count in
                var done = 0
                while done < count {
                    let n = posixWrite(fd, pointer + done, min(count - done, 1 << 30))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw makeError("cannot write the temporary file \(temporary)", errno)
                    }
                    if n == 0 { throw makeError("cannot write the temporary file \(temporary) (no progress)", EIO) }
                    done += n
                }
            }
            guard fsync(fd) == 0 else { throw makeError("cannot flush \(temporary) to disk", errno) }
            isOpen = false
            guard close(fd) == 0 else { throw makeError("cannot close \(temporary)", errno) }
            guard rename(temporary, path) == 0 else { throw makeError("cannot rename \(temporary) to \(path)", errno) }
        } catch {
            unlink(temporary)
            throw error
        }
        // Make the rename durable; a failure here leaves a complete file, so it is not an error.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }
}

extension AtomicFile {
    /// Whether `name` is one of `write`'s temporary files (`.NAME.UUID.tmp`).
    public static func isTemporaryName(_ name: String) -> Bool {
        guard name.hasPrefix("."), name.hasSuffix(".tmp") else { return false }
        let parts = name.dropLast(4).split(separator: ".")
        guard let last = parts.last else { return false }
        return UUID(uuidString: String(last)) != nil
    }

    /// Removes the temporary files that a killed `write` left in `folder` (call it only while no
    /// other process writes there, e.g. holding the folder's lock); returns their names.
    @discardableResult
    public static func removeOrphans(in folder: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter(isTemporaryName).filter { unlink(folder.appendingPathComponent($0).path) == 0 }.sorted()
    }
}

/// POSIX `write`, named apart from Swift methods called `write`.
@inline(__always)
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}
