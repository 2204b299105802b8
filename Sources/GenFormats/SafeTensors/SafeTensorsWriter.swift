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
    ///
    /// With `float16`, float32 tensors are stored as F16 (IEEE binary16, rounded to nearest even),
    /// which the reader widens back to float32: half the bytes, about three significant digits. A
    /// finite value beyond float16's range (65,504) is refused rather than stored as infinity.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL,
                             float16: Bool = false) throws {
        try write(tensors, metadata: metadata, to: url, float16: float16, afterWriting: nil)
    }

    /// `write`, with a test seam: `afterWriting` runs after each chunk reaches the temporary file
    /// (the header, then each tensor) with the bytes written so far; throwing aborts the write.
    static func write(_ tensors: [String: Tensor], metadata: [String: String], to url: URL, float16: Bool = false,
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
        var halves: [Int: [UInt16]] = [:]  // chunk index -> its float16 bits
        for name in names {
            guard let tensor = tensors[name] else { continue }
            let code: String
            switch tensor.dtype {
            case .float32: code = float16 ? "F16" : "F32"
            case .float64: code = "F64"
            case .int64: code = "I64"
            }
            if code == "F16" {
                halves[chunks.count] = try tensor.scalars(as: Float.self).map { value in
                    let bits = floatToHalf(value)
                    if value.isFinite && bits & 0x7c00 == 0x7c00 {
                        throw SafeTensorsError(path: path, kind: .invalidArgument,
                                               problem: "tensor \(name) holds \(value), beyond float16's range: store it as float32")
                    }
                    return bits
                }
            }
            let count = tensor.elementCount * (code == "F16" ? 2 : tensor.dtype.byteSize)
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
            for (i, chunk) in chunks.enumerated() {
                let copy = { (raw: UnsafeRawBufferPointer) throws in
                    if let base = raw.baseAddress { try write(base, raw.count) }
                    written += raw.count
                }
                if let half = halves[i] { try half.withUnsafeBytes(copy) } else { try chunk.withUnsafeBytes(copy) }
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
