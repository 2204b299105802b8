import Foundation
import GenTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error reading or writing a data file (IDX, PNG, NPY) or a data folder; its description names
/// the file or folder and the problem. Every problem with the input becomes one of these, never a trap.
public struct DataError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for callers that want to react to one case.
    public enum Kind: String, Sendable, Equatable {
        /// A file or folder that does not exist.
        case notFound
        /// A folder that holds neither IDX files nor PNG images.
        case emptyDirectory
        /// A file that could not be read, created, written or renamed.
        case io
        /// A file that ends before the data its header declares.
        case truncated
        /// A gzip or zlib stream that does not inflate.
        case corruptCompressedData
        /// A file whose magic number or signature is not the expected one.
        case wrongMagic
        /// A header (IDX dimensions, NPY dictionary, PNG IHDR) that is malformed.
        case invalidHeader
        /// Image data that is malformed (a PNG chunk with a bad CRC, a bad filter type, ...).
        case corruptImage
        /// A well-formed file using a feature this reader does not handle (an NPY dtype, ...).
        case unsupported
        /// An image file and a label file that disagree on the number of items, or data of the wrong size.
        case countMismatch
        /// A record file (a TensorBoard event file) whose framing or checksums are wrong.
        case corruptRecord
        /// Arguments that cannot be written (for example a tensor of the wrong rank).
        case invalidArgument
    }

    /// The file or folder involved.
    public let path: String
    /// The kind of problem.
    public let kind: Kind
    /// The problem, in words.
    public let problem: String

    /// The full message: "`path`: `problem`".
    public var description: String { "\(path): \(problem)" }

    /// Makes an error about the file or folder at `path`.
    public init(path: String, kind: Kind, problem: String) {
        self.path = path
        self.kind = kind
        self.problem = problem
    }
}

// MARK: - File helpers shared by the readers and writers

package enum FileIO {
    /// Reads a whole file, turning "missing", "is a folder" and read failures into `DataError`s.
    package static func read(_ url: URL) throws -> Data {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(path: path, kind: .notFound, problem: "no such file")
        }
        if isDirectory.boolValue {
            throw DataError(path: path, kind: .io, problem: "is a folder, not a file")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw DataError(path: path, kind: .io, problem: "cannot read the file (\(error.localizedDescription))")
        }
    }

    /// Writes `bytes` over `url` atomically (`AtomicFile`): a failure part-way leaves any previous
    /// file intact and readers never see a half-written file.
    static func writeAtomically(_ bytes: Data, to url: URL) throws {
        let path = url.path
        guard url.isFileURL else {
            throw DataError(path: path, kind: .invalidArgument, problem: "the URL \(url) is not a file URL")
        }
        func ioError(_ what: String, _ code: Int32) -> Error {
            DataError(path: path, kind: .io, problem: "\(what): \(String(cString: strerror(code)))")
        }
        try AtomicFile.write(path: path, makeError: ioError) { write in
            try bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress { try write(base, raw.count) }
            }
        }
    }

    /// Creates `url` and its parents when missing; a file in the way is an error.
    package static func createDirectory(_ url: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return }
            throw DataError(path: url.path, kind: .io, problem: "is a file, not a folder")
        }
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw DataError(path: url.path, kind: .io, problem: "cannot create the folder (\(error.localizedDescription))")
        }
    }
}
