import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GenTensor

#if _endian(big)
#error("SafeTensorsWriter.swift copies little-endian element bytes as they are: it needs a little-endian host")
#endif

// MARK: - Writing

extension SafeTensorsFile {
    /// Writes `tensors` (F32, F64 or I64, by name) and `metadata` to `url` as a safetensors file.
    ///
    /// The file is written to a temporary file in the same directory, flushed to disk and renamed
    /// over `url`, so a failure or a crash part-way leaves any previous file at `url` intact.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try write(tensors, metadata: metadata, to: url, afterWriting: nil)
    }

    /// `write`, with a test seam: `afterWriting` runs after each chunk reaches the temporary file
    /// (the header, then each tensor) with the bytes written so far; throwing aborts the write.
    static func write(_ tensors: [String: Tensor], metadata: [String: String], to url: URL,
                      afterWriting: ((_ bytesWritten: Int) throws -> Void)?) throws {
        let path = url.path
        let names = tensors.keys.sorted()
        if names.contains("__metadata__") {
            throw SafeTensorsError(path: path, kind: .invalidArgument,
                                   problem: "cannot write a tensor named __metadata__ (the name is reserved)")
        }
        guard url.isFileURL else {
            throw SafeTensorsError(path: path, kind: .invalidArgument, problem: "the URL \(url) is not a file URL")
        }

        // The header, with offsets laid out in name order.
        var json = "{"
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { key in "\(jsonString(key)):\(jsonString(metadata[key] ?? ""))" }
            members.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        var chunks: [Tensor] = []
        for name in names {
            guard let tensor = tensors[name] else { continue }
            let code: String
            switch tensor.dtype {
            case .float32: code = "F32"
            case .float64: code = "F64"
            case .int64: code = "I64"
            }
            let count = tensor.elementCount * tensor.dtype.byteSize
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            members.append("\(jsonString(name)):{\"dtype\":\"\(code)\",\"shape\":[\(shape)],"
                           + "\"data_offsets\":[\(offset),\(offset + count)]}")
            offset += count
            chunks.append(tensor)
        }
        json += members.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        var prefix = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        prefix.append(contentsOf: header)

        func ioError(_ what: String, _ code: Int32) -> Error {
            SafeTensorsError(path: path, kind: .io, problem: "\(what): \(String(cString: strerror(code)))")
        }
        try AtomicFile.write(path: path, makeError: ioError) { write in
            var written = 0
            try prefix.withUnsafeBytes { raw in
                if let base = raw.baseAddress { try write(base, raw.count) }
            }
            written += prefix.count
            try afterWriting?(written)
            for chunk in chunks {
                try chunk.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { try write(base, raw.count) }
                    written += raw.count
                }
                try afterWriting?(written)
            }
        }
    }

    /// A JSON string literal for `text`.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
