import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GenTensor

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
#error("SafeTensorsReader.swift copies little-endian element bytes as they are: it needs a little-endian host")
#endif

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
        let dtype: DType
        switch entry.dtype {
        case "F32", "F16", "BF16": dtype = .float32
        case "F64": dtype = .float64
        case "I64": dtype = .int64
        default:
            throw SafeTensorsError(
                path: path, kind: .unsupportedDType,
                problem: "tensor '\(name)' has dtype \(entry.dtype), an unsupported dtype for this engine "
                    + "(it loads F32, F64, I64, and F16 and BF16 as float32)")
        }
        let start = dataStart + entry.dataOffsets.lowerBound
        let byteCount = entry.dataOffsets.count
        return bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Tensor in
            let source = UnsafeRawBufferPointer(rebasing: raw[start ..< start + byteCount])
            switch entry.dtype {
            case "F16":
                let values = (0 ..< byteCount / 2).map { i in
                    Self.halfToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
                return Tensor(values, shape: entry.shape)
            case "BF16":
                let values = (0 ..< byteCount / 2).map { i in
                    Self.bfloat16ToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                }
                return Tensor(values, shape: entry.shape)
            default:
                return Tensor(copying: source, shape: entry.shape, dtype: dtype)
            }
        }
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
}
