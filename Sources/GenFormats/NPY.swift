import Foundation
import GenTensor

// The NumPy .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
//
//   "\x93NUMPY" [major] [minor] [header length: u16 LE (1.0) or u32 LE (2.0, 3.0)]
//   [header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, 28, 28), }
//    padded with spaces and a final newline so that the data starts at a multiple of 64]
//   [data, C order]

#if _endian(big)
#error("NPY.swift copies little-endian element bytes as they are: it needs a little-endian host")
#endif

/// An array read from a .npy file, before conversion: its dtype, shape and raw little-endian bytes.
public struct NPYArray: Sendable {
    /// The element types read and written.
    public enum ElementType: String, Sendable, CaseIterable {
        case float32 = "<f4", float64 = "<f8", uint8 = "|u1", int64 = "<i8"

        /// Bytes per element.
        public var byteSize: Int { [.float32: 4, .float64: 8, .uint8: 1, .int64: 8][self]! }
    }

    /// The element type.
    public let elementType: ElementType
    /// The size of each axis (empty for a scalar).
    public let shape: [Int]
    /// The elements, C order, little-endian.
    public let data: Data

    /// Makes an array; `data` must hold exactly the elements of `shape`.
    public init(elementType: ElementType, shape: [Int], data: Data) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) * elementType.byteSize == data.count,
                     "NPYArray: \(data.count) bytes for shape \(shape) of \(elementType.rawValue)")
        self.elementType = elementType
        self.shape = shape
        self.data = data
    }
}

/// Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0; dtypes `<f4`, `<f8`,
/// `|u1`, `<i8`; C order only).
public enum NPY {
    /// Reads and validates a .npy file. Errors (naming the file): a missing file, a bad magic string,
    /// a malformed header, an unsupported dtype or Fortran order, data shorter or longer than the shape.
    public static func readArray(_ url: URL) throws -> NPYArray {
        try decode(FileIO.read(url), path: url.path)
    }

    /// Reads a .npy file as a tensor of the same shape: `<f4` gives float32, `<f8` float64, `<i8`
    /// and `|u1` int64 (the integer values as they are).
    public static func read(_ url: URL) throws -> Tensor {
        tensor(try readArray(url))
    }

    /// The tensor of a decoded array, as `read(_:)` returns it.
    static func tensor(_ array: NPYArray) -> Tensor {
        switch array.elementType {
        case .float32, .float64, .int64:
            let dtype: DType = array.elementType == .float32 ? .float32 : array.elementType == .float64 ? .float64 : .int64
            return array.data.withUnsafeBytes { Tensor(copying: $0, shape: array.shape, dtype: dtype) }
        case .uint8:
            return Tensor(array.data.map { Int64($0) }, shape: array.shape)
        }
    }

    /// Reads a batch of grey images stored as float32, float64 or uint8 of shape (N, H, W),
    /// (N, 1, H, W) or (N, H, W, 1) into a float32 tensor (N, H, W, 1); uint8 values are divided by
    /// 255, floats are kept as they are.
    public static func readImages(_ url: URL) throws -> Tensor {
        try images(try readArray(url), path: url.path)
    }

    /// The images of a decoded array, as `readImages(_:)` returns them; `path` names the source in errors.
    static func images(_ array: NPYArray, path: String) throws -> Tensor {
        let s = array.shape
        let (n, h, w): (Int, Int, Int)
        if s.count == 3 { (n, h, w) = (s[0], s[1], s[2]) }
        else if s.count == 4 && s[1] == 1 { (n, h, w) = (s[0], s[2], s[3]) }
        else if s.count == 4 && s[3] == 1 { (n, h, w) = (s[0], s[1], s[2]) }
        else {
            throw DataError(path: path, kind: .unsupported,
                            problem: "NPY array of shape \(s) is not a batch of grey images: expected (N, H, W), (N, 1, H, W) or (N, H, W, 1)")
        }
        let count = n * h * w, shape = [n, h, w, 1]
        return try array.data.withUnsafeBytes { raw in
            switch array.elementType {
            case .float32: return Tensor(copying: raw, shape: shape, dtype: .float32)
            case .float64: return Tensor((0..<count).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }, shape: shape)
            case .uint8: return Tensor(raw.map { Float($0) / 255 }, shape: shape)
            case .int64: throw DataError(path: path, kind: .unsupported, problem: "NPY images of dtype <i8: expected <f4, <f8 or |u1")
            }
        }
    }

    /// Writes `tensor` with its shape and dtype (`<f4`, `<f8` or `<i8`), atomically.
    public static func write(_ tensor: Tensor, to url: URL) throws {
        let type: NPYArray.ElementType = tensor.dtype == .float32 ? .float32 : tensor.dtype == .float64 ? .float64 : .int64
        let data = tensor.withUnsafeBytes { Data($0) }
        try FileIO.writeAtomically(encode(NPYArray(elementType: type, shape: tensor.shape, data: data)), to: url)
    }

    /// Writes a batch of grey images (N, H, W, 1) float32 as a float32 array (N, H, W), atomically.
    public static func writeImages(_ images: Tensor, to url: URL) throws {
        guard images.dtype == .float32, images.rank == 4, images.shape[3] == 1 else {
            throw DataError(path: url.path, kind: .invalidArgument,
                            problem: "cannot write a \(images.dtype) tensor of shape \(images.shape) as NPY images: expected float32 (N, H, W, 1)")
        }
        let data = images.withUnsafeBytes { Data($0) }
        try FileIO.writeAtomically(encode(NPYArray(elementType: .float32, shape: Array(images.shape.prefix(3)), data: data)), to: url)
    }

    /// The bytes of a .npy file holding `array` (version 1.0, or 2.0 when the header needs it).
    public static func encode(_ array: NPYArray) -> Data {
        let shape = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(array.elementType.rawValue)', 'fortran_order': False, 'shape': \(shape), }"
        let version: UInt8 = header.utf8.count + 12 > 65535 ? 2 : 1
        let prefix = version == 1 ? 10 : 12
        header += String(repeating: " ", count: (64 - (prefix + header.utf8.count + 1) % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [version, 0])
        let length = header.utf8.count
        if version == 1 {
            out.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        } else {
            out.append(contentsOf: (0..<4).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) })
        }
        out.append(contentsOf: Array(header.utf8))
        out.append(array.data)
        return out
    }

    /// Parses and validates .npy bytes; `path` names the source in errors.
    public static func decode(_ bytes: Data, path: String) throws -> NPYArray {
        let b = [UInt8](bytes.prefix(12))
        guard b.count >= 8, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else {
            throw DataError(path: path, kind: .wrongMagic, problem: "not a .npy file: the magic string \\x93NUMPY is missing")
        }
        let major = b[6]
        guard (1...3).contains(major) else {
            throw DataError(path: path, kind: .unsupported, problem: "unsupported .npy format version \(major).\(b[7])")
        }
        let lengthSize = major == 1 ? 2 : 4
        guard b.count >= 8 + lengthSize else {
            throw DataError(path: path, kind: .truncated, problem: "truncated .npy file: it ends inside the header length")
        }
        let headerLength = (0..<lengthSize).reduce(0) { $0 | Int(b[8 + $1]) << (8 * $1) }
        let headerStart = 8 + lengthSize
        guard bytes.count - headerStart >= headerLength else {
            throw DataError(path: path, kind: .truncated,
                            problem: "truncated .npy file: the header declares \(headerLength) bytes but the file ends first")
        }
        let headerBytes = bytes.subdata(in: (bytes.startIndex + headerStart)..<(bytes.startIndex + headerStart + headerLength))
        let text = major == 3 ? String(decoding: headerBytes, as: UTF8.self) : String(headerBytes.map { Character(Unicode.Scalar($0)) })
        let dict: [String: HeaderValue]
        do {
            var parser = HeaderParser(text)
            dict = try parser.parseDictionary()
        } catch let message as HeaderParser.Failure {
            throw DataError(path: path, kind: .invalidHeader, problem: "invalid .npy header: \(message.text) in \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard case .string(let descr)? = dict["descr"], case .bool(let fortran)? = dict["fortran_order"],
              case .tuple(let shape)? = dict["shape"] else {
            throw DataError(path: path, kind: .invalidHeader,
                            problem: "invalid .npy header: it needs 'descr' (a string), 'fortran_order' (a bool) and 'shape' (a tuple of integers)")
        }
        let aliases: [String: NPYArray.ElementType] = ["<f4": .float32, "<f8": .float64, "|u1": .uint8, "<u1": .uint8, ">u1": .uint8,
                                                       "u1": .uint8, "<i8": .int64]
        guard let type = aliases[descr] else {
            throw DataError(path: path, kind: .unsupported,
                            problem: "unsupported .npy dtype '\(descr)' (supported: <f4, <f8, |u1, <i8)")
        }
        guard !fortran else {
            throw DataError(path: path, kind: .unsupported,
                            problem: "unsupported .npy file: fortran_order is True (only C order is read; save with np.ascontiguousarray)")
        }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow, product <= Int.max / 8 else {
                throw DataError(path: path, kind: .invalidHeader, problem: "invalid .npy header: shape \(shape)")
            }
            count = product
        }
        let dataStart = headerStart + headerLength
        let expected = count * type.byteSize
        let available = bytes.count - dataStart
        guard available >= expected else {
            throw DataError(path: path, kind: .truncated,
                            problem: "truncated .npy file: shape \(shape) of \(descr) needs \(expected) bytes of data but only \(available) follow the header")
        }
        guard available == expected else {
            throw DataError(path: path, kind: .countMismatch,
                            problem: ".npy file has \(available - expected) bytes after the data of shape \(shape)")
        }
        return NPYArray(elementType: type, shape: shape, data: bytes.subdata(in: (bytes.startIndex + dataStart)..<bytes.endIndex))
    }
}

/// A value of the .npy header dictionary.
private enum HeaderValue {
    case string(String)
    case bool(Bool)
    case tuple([Int])
}

/// A parser for the Python literal of a .npy header: a dict of string keys to strings, booleans
/// and tuples of integers (trailing commas allowed, as Python writes them).
private struct HeaderParser {
    struct Failure: Error { let text: String }
    private let characters: [Character]
    private var index = 0

    init(_ text: String) { characters = Array(text) }

    private mutating func skipSpace() {
        while index < characters.count, characters[index].isWhitespace { index += 1 }
    }

    private mutating func expect(_ c: Character) throws {
        skipSpace()
        guard index < characters.count, characters[index] == c else {
            throw Failure(text: "expected '\(c)' at character \(index)")
        }
        index += 1
    }

    private mutating func peek(_ c: Character) -> Bool {
        skipSpace()
        return index < characters.count && characters[index] == c
    }

    mutating func parseDictionary() throws -> [String: HeaderValue] {
        try expect("{")
        var out: [String: HeaderValue] = [:]
        while !peek("}") {
            let key = try parseString()
            try expect(":")
            out[key] = try parseValue()
            if !peek(",") { break }
            index += 1
        }
        try expect("}")
        skipSpace()
        guard index == characters.count else { throw Failure(text: "unexpected text after the dictionary") }
        return out
    }

    private mutating func parseString() throws -> String {
        skipSpace()
        guard index < characters.count, characters[index] == "'" || characters[index] == "\"" else {
            throw Failure(text: "expected a string at character \(index)")
        }
        let quote = characters[index]
        index += 1
        var out = ""
        while index < characters.count, characters[index] != quote {
            out.append(characters[index])
            index += 1
        }
        guard index < characters.count else { throw Failure(text: "unterminated string") }
        index += 1
        return out
    }

    private mutating func parseValue() throws -> HeaderValue {
        skipSpace()
        guard index < characters.count else { throw Failure(text: "missing value") }
        if characters[index] == "'" || characters[index] == "\"" { return .string(try parseString()) }
        if characters[index] == "(" {
            index += 1
            var values: [Int] = []
            while !peek(")") {
                values.append(try parseInteger())
                if !peek(",") { break }
                index += 1
            }
            try expect(")")
            return .tuple(values)
        }
        for (word, value) in [("True", true), ("False", false)] where characters[index...].starts(with: word) {
            index += word.count
            return .bool(value)
        }
        throw Failure(text: "unexpected value at character \(index)")
    }

    private mutating func parseInteger() throws -> Int {
        skipSpace()
        var digits = ""
        while index < characters.count, let d = characters[index].wholeNumberValue, characters[index].isASCII, d >= 0 {
            digits.append(characters[index])
            index += 1
        }
        // Python 2 wrote longs as 3L.
        if index < characters.count, characters[index] == "L" { index += 1 }
        guard let value = Int(digits) else { throw Failure(text: "expected an integer at character \(index)") }
        return value
    }
}
