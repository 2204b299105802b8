import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: N, little-endian u64] [N bytes: UTF-8 JSON header] [data buffer]
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}, offsets relative
// to the first byte of the data buffer, plus an optional "__metadata__" object of string -> string.
// The tensors must tile the data buffer exactly: no overlap, no gap, nothing left over.
//
// The reader treats every file as hostile: all sizes come from the file, so every size computation
// is checked and every problem becomes a `SafeTensorsError` naming the file, never a trap.

#if _endian(big)
#error("SafeTensors.swift copies little-endian element bytes as they are: it needs a little-endian host")
#endif

// MARK: - Errors

/// An error reading or writing a safetensors file; its description names the file and the problem.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for callers that want to react to one case.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be read, created, written or renamed.
        case io
        /// The file ends before the header or the data it declares.
        case truncated
        /// The header is not valid UTF-8 JSON of the expected structure.
        case invalidHeader
        /// Data offsets are reversed, overlapping, leave a gap or leave bytes uncovered.
        case invalidOffsets
        /// A dtype string that is not a safetensors dtype at all.
        case unknownDType
        /// A valid safetensors dtype that this engine does not load.
        case unsupportedDType
        /// A shape whose byte size disagrees with its data offsets.
        case sizeMismatch
        /// A shape with a negative dimension or an element count that overflows.
        case invalidShape
        /// A tensor name that the file does not hold.
        case missingTensor
        /// A tensor whose shape differs from the one the model expects.
        case shapeMismatch
        /// Arguments that cannot be written (for example a tensor named `__metadata__`).
        case invalidArgument
    }

    /// The file read or written.
    public let path: String
    /// The kind of problem.
    public let kind: Kind
    /// The problem, in words.
    public let problem: String
    /// The full message: the file and the problem.
    public let description: String

    /// Makes an error whose description is "`path`: `problem`".
    public init(path: String, kind: Kind, problem: String) {
        self.path = path
        self.kind = kind
        self.problem = problem
        self.description = "safetensors file \(path): \(problem)"
    }

    /// Makes an error whose `problem` already names the file where it reads best.
    init(path: String, kind: Kind, message: String) {
        self.path = path
        self.kind = kind
        self.problem = message
        self.description = message
    }
}

// MARK: - Reading

/// A safetensors file read into memory and validated; tensors are decoded on request.
///
/// Opening checks the whole header (structure, dtypes, shapes, offsets tiling the data buffer), so
/// a file that opens can only fail later for a missing name or a dtype this engine does not load
/// (anything but F32, F64, I64, F16 and BF16; the last two are widened to float32).
public struct SafeTensorsFile: Sendable {
    /// What the header says about one tensor.
    public struct Entry: Sendable, Equatable {
        /// The tensor's name.
        public let name: String
        /// The safetensors dtype code, for example `"F32"` or `"BF16"`.
        public let dtype: String
        /// The size of each axis (empty for a scalar).
        public let shape: [Int]
        /// The tensor's bytes, relative to the start of the data buffer.
        public let dataOffsets: Range<Int>
    }

    /// The path of the file (or the label given to `init(data:path:)`), used in error messages.
    public let path: String
    /// The `__metadata__` object of the header (empty when absent).
    public let metadata: [String: String]
    /// The tensor names, sorted.
    public let names: [String]
    /// The header entries, by name.
    public let entries: [String: Entry]

    /// The whole file.
    private let bytes: Data
    /// Where the data buffer starts in `bytes`.
    private let dataStart: Int

    /// The largest header accepted, as in the reference implementation.
    static let maxHeaderSize = 100_000_000

    /// Reads and validates the safetensors file at `url`.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw SafeTensorsError(path: path, kind: .io, problem: "cannot read the file: \(error.localizedDescription)")
        }
        try self.init(data: data, path: path)
    }

    /// Validates safetensors bytes already in memory; `path` labels error messages.
    public init(data: Data, path: String) throws {
        func fail(_ kind: SafeTensorsError.Kind, _ problem: String) -> SafeTensorsError {
            SafeTensorsError(path: path, kind: kind, problem: problem)
        }
        let fileSize = data.count
        guard fileSize >= 8 else {
            throw fail(.truncated, "the file is \(fileSize) bytes long, too short for the 8-byte header length: "
                       + "it is truncated or not a safetensors file")
        }
        var declared: UInt64 = 0
        for (k, byte) in data.prefix(8).enumerated() { declared |= UInt64(byte) << (8 * UInt64(k)) }
        let available = fileSize - 8
        guard declared <= UInt64(available) else {
            throw fail(.truncated, "the header length \(declared) exceeds the \(available) bytes that follow it: "
                       + "the file is truncated or not a safetensors file")
        }
        let headerSize = Int(declared)  // <= available, so it fits
        guard headerSize <= Self.maxHeaderSize else {
            throw fail(.invalidHeader, "the header length \(headerSize) exceeds the \(Self.maxHeaderSize)-byte limit")
        }
        let headerStart = data.startIndex + 8
        let headerBytes = [UInt8](data[headerStart ..< headerStart + headerSize])
        let dataSize = available - headerSize

        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw fail(.invalidHeader, "the header is not valid UTF-8")
        }
        let json: HeaderJSON
        do {
            json = try HeaderJSON.parse(headerBytes)
        } catch let error as HeaderJSON.ParseError {
            throw fail(.invalidHeader, "the header is not valid JSON: \(error.message)")
        }
        guard case .object(let members) = json else {
            throw fail(.invalidHeader, "the header is \(json.typeName), not a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        var sawMetadata = false
        for (name, value) in members {
            if name == "__metadata__" {
                guard !sawMetadata else { throw fail(.invalidHeader, "the header has two __metadata__ objects") }
                sawMetadata = true
                guard case .object(let pairs) = value else {
                    throw fail(.invalidHeader, "__metadata__ must be an object of strings, found \(value.typeName)")
                }
                for (key, item) in pairs {
                    guard case .string(let text) = item else {
                        throw fail(.invalidHeader, "__metadata__ values must be strings; '\(key)' is \(item.typeName)")
                    }
                    guard metadata.updateValue(text, forKey: key) == nil else {
                        throw fail(.invalidHeader, "__metadata__ has the key '\(key)' twice")
                    }
                }
                continue
            }
            let entry = try Self.parseEntry(name: name, value: value, dataSize: dataSize, fail: fail)
            guard entries.updateValue(entry, forKey: name) == nil else {
                throw fail(.invalidHeader, "the header lists tensor '\(name)' twice")
            }
        }

        // The tensors must tile the data buffer: sorted by offsets, each starts where the last ended.
        let ordered = entries.values.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var covered = 0
        var previous: Entry?
        for entry in ordered {
            let range = entry.dataOffsets
            if range.lowerBound < covered, let previous {
                throw fail(.invalidOffsets, "tensors '\(previous.name)' \(Self.format(previous.dataOffsets)) and "
                           + "'\(entry.name)' \(Self.format(range)) overlap")
            }
            if range.lowerBound > covered {
                throw fail(.invalidOffsets, "bytes \(covered) to \(range.lowerBound) of the data buffer belong to no tensor "
                           + "(a gap before '\(entry.name)'); tensors must cover the data contiguously")
            }
            covered = range.upperBound
            previous = entry
        }
        if covered != dataSize {
            throw fail(.invalidOffsets, "the data buffer has \(dataSize) bytes but the tensors cover only \(covered): "
                       + "\(dataSize - covered) bytes at the end belong to no tensor")
        }

        self.path = path
        self.metadata = metadata
        self.entries = entries
        self.names = entries.keys.sorted()
        self.bytes = data
        self.dataStart = 8 + headerSize
    }

    /// Validates one tensor entry of the header.
    private static func parseEntry(name: String, value: HeaderJSON, dataSize: Int,
                                   fail: (SafeTensorsError.Kind, String) -> SafeTensorsError) throws -> Entry {
        guard case .object(let fields) = value else {
            throw fail(.invalidHeader, "tensor '\(name)' must be an object with dtype, shape and data_offsets, "
                       + "found \(value.typeName)")
        }
        func field(_ key: String) throws -> HeaderJSON {
            guard let found = fields.first(where: { $0.key == key }) else {
                throw fail(.invalidHeader, "tensor '\(name)' is missing the field '\(key)'")
            }
            return found.value
        }
        func integers(_ key: String, _ json: HeaderJSON) throws -> [Int] {
            guard case .array(let items) = json else {
                throw fail(.invalidHeader, "tensor '\(name)': field '\(key)' must be an array of integers, found \(json.typeName)")
            }
            return try items.map { item in
                guard case .number(let text) = item, let value = Int(text) else {
                    throw fail(.invalidHeader, "tensor '\(name)': field '\(key)' must be an array of 64-bit integers, "
                               + "but holds \(item.typeName)\(item.numberText.map { " (\($0))" } ?? "")")
                }
                return value
            }
        }

        let dtypeJSON = try field("dtype")
        guard case .string(let dtype) = dtypeJSON else {
            throw fail(.invalidHeader, "tensor '\(name)': field 'dtype' must be a string, found \(dtypeJSON.typeName)")
        }
        guard let bits = safetensorsDTypeBits[dtype] else {
            throw fail(.unknownDType, "tensor '\(name)' has unknown dtype '\(dtype)', which is not a safetensors dtype "
                       + "(known: \(safetensorsDTypeBits.keys.sorted().joined(separator: ", ")))")
        }
        let shape = try integers("shape", try field("shape"))
        if let negative = shape.first(where: { $0 < 0 }) {
            throw fail(.invalidShape, "tensor '\(name)' has the negative dimension \(negative) in its shape \(format(shape))")
        }
        let offsets = try integers("data_offsets", try field("data_offsets"))
        guard offsets.count == 2 else {
            throw fail(.invalidHeader, "tensor '\(name)': field 'data_offsets' must hold 2 integers [begin, end], "
                       + "found \(offsets.count)")
        }
        let begin = offsets[0], end = offsets[1]
        guard begin >= 0, end >= 0 else {
            throw fail(.invalidOffsets, "tensor '\(name)' has negative data_offsets [\(begin), \(end)]")
        }
        guard begin <= end else {
            throw fail(.invalidOffsets, "tensor '\(name)' has data_offsets [\(begin), \(end)] whose begin is after its end")
        }

        // Element count and byte size, checked: the numbers come from the file.
        var count = 1
        for dim in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else {
                throw fail(.invalidShape, "tensor '\(name)' has shape \(format(shape)), whose element count overflows")
            }
            count = product
        }
        let (totalBits, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow else {
            throw fail(.invalidShape, "tensor '\(name)' has shape \(format(shape)), whose byte size overflows")
        }
        guard totalBits % 8 == 0, totalBits / 8 == end - begin else {
            let expected = totalBits % 8 == 0 ? "\(totalBits / 8) bytes" : "\(totalBits) bits, not a whole number of bytes"
            throw fail(.sizeMismatch, "tensor '\(name)' has dtype \(dtype) and shape \(format(shape)) (\(expected)) "
                       + "but its data_offsets [\(begin), \(end)] span \(end - begin) bytes")
        }
        guard end <= dataSize else {
            throw fail(.truncated, "tensor '\(name)' has data_offsets [\(begin), \(end)] out of range: the data buffer "
                       + "has only \(dataSize) bytes (the file is truncated or its offsets are wrong)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, dataOffsets: begin ..< end)
    }

    /// Whether the file holds a tensor named `name`.
    public func contains(_ name: String) -> Bool {
        entries[name] != nil
    }

    /// The header entry of `name`; throws a missing-tensor error that lists some available names.
    public func entry(_ name: String) throws -> Entry {
        guard let entry = entries[name] else {
            throw SafeTensorsError(path: path, kind: .missingTensor, problem: missingTensorProblem(name))
        }
        return entry
    }

    /// Decodes tensor `name`: F32, F64 and I64 keep their dtype, F16 and BF16 become float32.
    public func tensor(_ name: String) throws -> Tensor {
        let entry = try entry(name)
        let tensor: Tensor
        switch entry.dtype {
        case "F32": tensor = Tensor(uninitializedShape: entry.shape, dtype: .float32)
        case "F64": tensor = Tensor(uninitializedShape: entry.shape, dtype: .float64)
        case "I64": tensor = Tensor(uninitializedShape: entry.shape, dtype: .int64)
        case "F16", "BF16": tensor = Tensor(uninitializedShape: entry.shape, dtype: .float32)
        default:
            throw SafeTensorsError(
                path: path, kind: .unsupportedDType,
                problem: "tensor '\(name)' has dtype \(entry.dtype), an unsupported dtype for this engine "
                    + "(it loads F32, F64, I64, and F16 and BF16 as float32)")
        }
        let start = dataStart + entry.dataOffsets.lowerBound
        let byteCount = entry.dataOffsets.count
        guard byteCount > 0 else { return tensor }
        bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let source = UnsafeRawBufferPointer(rebasing: raw[start ..< start + byteCount])
            switch entry.dtype {
            case "F16":
                let out = tensor.floatPointer
                for i in 0 ..< byteCount / 2 {
                    out[i] = Self.halfToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            case "BF16":
                let out = tensor.floatPointer
                for i in 0 ..< byteCount / 2 {
                    out[i] = Self.bfloat16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
            default:
                if let base = source.baseAddress {
                    tensor.storage.pointer.copyMemory(from: base, byteCount: byteCount)
                }
            }
        }
        return tensor
    }

    /// Decodes tensor `name` for a model parameter, checking that its shape is `expectedShape`.
    public func loadTensor(_ name: String, expectedShape: [Int]) throws -> Tensor {
        let entry = try entry(name)
        guard entry.shape == expectedShape else {
            throw SafeTensorsError(
                path: path, kind: .shapeMismatch,
                message: "tensor \(name) has shape \(Self.format(entry.shape)) in \(path) "
                    + "but the model expects \(Self.format(expectedShape))")
        }
        return try tensor(name)
    }

    /// Decodes every tensor of the file, by name.
    public func allTensors() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in names { result[name] = try tensor(name) }
        return result
    }

    /// The missing-tensor message: the names most similar to `name` first (longest common prefix).
    private func missingTensorProblem(_ name: String) -> String {
        guard !names.isEmpty else { return "no tensor named '\(name)': the file holds no tensors" }
        func commonPrefix(_ other: String) -> Int {
            zip(name.unicodeScalars, other.unicodeScalars).prefix { $0 == $1 }.count
        }
        let shown = 5
        let nearest = names.map { (commonPrefix($0), $0) }
            .sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
            .prefix(shown).map { "'\($0.1)'" }
        let more = names.count > shown ? ", ..." : ""
        return "no tensor named '\(name)': the file holds \(names.count) tensors, for example "
            + nearest.joined(separator: ", ") + more
    }

    /// `[a,b,c]`, the shape notation of the messages.
    static func format(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ",") + "]"
    }

    /// `[begin, end]`, as the header writes data offsets.
    static func format(_ range: Range<Int>) -> String {
        "[\(range.lowerBound), \(range.upperBound)]"
    }

    // MARK: Half-precision conversion

    /// Widens IEEE 754 binary16 bits to a Float, exactly (subnormals, infinities and NaN payloads).
    static func halfToFloat(_ half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = UInt32(half >> 10) & 0x1f
        var mantissa = UInt32(half & 0x03ff)
        if exponent == 0x1f {  // infinity or NaN: all-ones exponent, payload kept
            return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13)
        }
        if exponent != 0 {  // normal: rebias 15 -> 127
            return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
        if mantissa == 0 { return Float(bitPattern: sign) }  // signed zero
        // Subnormal: mantissa * 2^-24; shift the leading one into the implicit bit position.
        var biased: UInt32 = 113  // the exponent of 2^-14 in binary32
        while mantissa & 0x0400 == 0 {
            mantissa <<= 1
            biased -= 1
        }
        return Float(bitPattern: sign | biased << 23 | (mantissa & 0x03ff) << 13)
    }

    /// Widens bfloat16 bits to a Float (bfloat16 is the top half of a binary32).
    static func bfloat16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}

/// Bits per element of every safetensors dtype (the reference implementation's `Dtype`).
let safetensorsDTypeBits: [String: Int] = [
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
]

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
        var chunks: [(pointer: UnsafeRawPointer, count: Int)] = []
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
            chunks.append((UnsafeRawPointer(tensor.storage.pointer), count))
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
                try write(chunk.pointer, chunk.count)
                written += chunk.count
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

// MARK: - Header JSON

/// A strict JSON parser for safetensors headers: numbers stay as text (so that `1.5`, `true` or
/// `1e2` are never taken for integers), depth is bounded, and errors give a byte position.
enum HeaderJSON {
    case object([(key: String, value: HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// A parse failure.
    struct ParseError: Error {
        let message: String
    }

    /// The deepest nesting accepted (a header needs 3).
    static let maxDepth = 64

    /// The kind of value, with an article, for messages.
    var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number(let text): return Int(text) == nil ? "a non-integer number" : "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The number's text, when this is a number.
    var numberText: String? {
        if case .number(let text) = self { return text }
        return nil
    }

    /// Parses one JSON value, allowing only whitespace after it.
    static func parse(_ bytes: [UInt8]) throws -> HeaderJSON {
        var parser = Parser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ what: String) -> ParseError {
            ParseError(message: "\(what) at byte \(index) of the header")
        }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
        }

        mutating func expect(_ byte: UInt8, _ expected: String? = nil) throws {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else {
                throw error("expected \(expected ?? "'\(Character(Unicode.Scalar(byte)))'")")
            }
            index += 1
        }

        /// Consumes `byte` (after whitespace) when it is next.
        mutating func consume(_ byte: UInt8) -> Bool {
            skipWhitespace()
            if index < bytes.count, bytes[index] == byte {
                index += 1
                return true
            }
            return false
        }

        mutating func value(depth: Int) throws -> HeaderJSON {
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of the JSON") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard depth < HeaderJSON.maxDepth else { throw error("nesting too deep") }
                index += 1
                var members: [(key: String, value: HeaderJSON)] = []
                if consume(UInt8(ascii: "}")) { return .object(members) }
                repeat {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                        throw error("expected a string key")
                    }
                    let key = try string()
                    try expect(UInt8(ascii: ":"))
                    members.append((key, try value(depth: depth + 1)))
                } while consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return .object(members)
            case UInt8(ascii: "["):
                guard depth < HeaderJSON.maxDepth else { throw error("nesting too deep") }
                index += 1
                var items: [HeaderJSON] = []
                if consume(UInt8(ascii: "]")) { return .array(items) }
                repeat {
                    items.append(try value(depth: depth + 1))
                } while consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return .array(items)
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw error("unexpected character")
            }
        }

        mutating func literal(_ word: String) throws {
            let expected = Array(word.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index ..< index + expected.count]) == expected else {
                throw error("invalid literal")
            }
            index += expected.count
        }

        mutating func digits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - start
        }

        /// A number per the JSON grammar, returned as its text.
        mutating func number() throws -> String {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw error("invalid number") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                throw error("invalid number")
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("invalid number") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digits() > 0 else { throw error("invalid number") }
            }
            return String(decoding: bytes[start ..< index], as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for byte in bytes[index ..< index + 4] {
                guard let digit = Character(Unicode.Scalar(byte)).hexDigitValue else { throw error("invalid \\u escape") }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }

        /// A string starting at the opening quote.
        mutating func string() throws -> String {
            index += 1
            var utf8: [UInt8] = []
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: utf8, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
                    return text
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw error("unterminated string") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0c)
                    case UInt8(ascii: "n"): utf8.append(0x0a)
                    case UInt8(ascii: "r"): utf8.append(0x0d)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xd800 ..< 0xdc00).contains(code) {  // high surrogate: a low one must follow
                            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                                  bytes[index + 1] == UInt8(ascii: "u") else { throw error("unpaired surrogate") }
                            index += 2
                            let low = try hex4()
                            guard (0xdc00 ..< 0xe000).contains(low) else { throw error("unpaired surrogate") }
                            code = 0x10000 + (code - 0xd800) << 10 + (low - 0xdc00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error("unpaired surrogate") }
                        utf8.append(contentsOf: String(scalar).utf8)
                    default:
                        throw error("invalid escape")
                    }
                case 0x00 ..< 0x20:
                    throw error("control character in a string")
                default:
                    utf8.append(byte)
                }
            }
        }
    }
}
