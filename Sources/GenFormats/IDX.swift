import Foundation
import GenTensor

// The IDX format (http://yann.lecun.com/exdb/mnist/), used by MNIST and Fashion-MNIST:
//
//   [2 zero bytes] [type code: 0x08 = unsigned byte] [number of dimensions]
//   [each dimension: big-endian u32] [the data, row-major]
//
// so unsigned-byte images (N x H x W) have the magic number 0x00000803 and labels (N) 0x00000801.
// Files are read raw or gzipped (detected by the 1f 8b gzip magic, not by the file name).

/// An unsigned-byte IDX array: its dimensions and its bytes in row-major order.
public struct IDXArray: Sendable, Equatable {
    /// The magic number: 0x0000_08nn for unsigned bytes with nn dimensions.
    public var magic: UInt32 { 0x0800 | UInt32(dimensions.count) }
    /// The size of each axis (for images N, H, W; for labels N).
    public let dimensions: [Int]
    /// The elements, row-major.
    public let bytes: [UInt8]

    /// Makes an array; `bytes.count` must equal the product of `dimensions`.
    public init(dimensions: [Int], bytes: [UInt8]) {
        precondition(dimensions.count >= 1 && dimensions.count <= 255 && dimensions.allSatisfy { $0 >= 0 && $0 <= Int(UInt32.max) },
                     "IDXArray: bad dimensions \(dimensions)")
        precondition(dimensions.reduce(1, *) == bytes.count,
                     "IDXArray: \(bytes.count) bytes do not fill dimensions \(dimensions)")
        self.dimensions = dimensions
        self.bytes = bytes
    }
}

/// Reading and writing IDX files of unsigned bytes, raw or gzipped.
public enum IDX {
    /// The magic number of an image file (unsigned bytes, 3 dimensions: N, H, W).
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// The magic number of a label file (unsigned bytes, 1 dimension: N).
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// Reads an image file (magic 0x00000803): dimensions N, H, W.
    public static func readImages(_ url: URL) throws -> IDXArray {
        try read(url, expectedMagic: imagesMagic)
    }

    /// Reads a label file (magic 0x00000801): dimension N.
    public static func readLabels(_ url: URL) throws -> IDXArray {
        try read(url, expectedMagic: labelsMagic)
    }

    /// Reads an IDX file of unsigned bytes, raw or gzipped, whose magic number must be `expectedMagic`.
    ///
    /// Errors: a missing file, a corrupt gzip stream, a wrong magic number (the description gives the
    /// one found and the one expected), a file shorter than its header promises, and bytes left over
    /// after the data the header declares.
    public static func read(_ url: URL, expectedMagic: UInt32) throws -> IDXArray {
        try decode(FileIO.read(url), expectedMagic: expectedMagic, path: url.path)
    }

    /// Parses and validates the bytes of an IDX file (raw or gzipped) whose magic number must be
    /// `expectedMagic`; `path` names the source in errors. The errors are those of `read(_:expectedMagic:)`.
    public static func decode(_ data: Data, expectedMagic: UInt32, path: String) throws -> IDXArray {
        let source: ByteSource = isGzip(data) ? .gzip(try Inflater(data, format: .gzip, path: path), data.count) : .raw(data)

        var magicBytes = [UInt8](repeating: 0, count: 4)
        let got = try source.read(into: &magicBytes, at: 0)
        guard got == 4 else {
            throw DataError(path: path, kind: .truncated,
                            problem: "truncated IDX file: \(got) bytes, too short for the 4-byte magic number")
        }
        let magic = bigEndianUInt32(magicBytes, 0)
        guard magic == expectedMagic else {
            throw DataError(path: path, kind: .wrongMagic,
                            problem: "wrong IDX magic number \(hex(magic)), expected \(hex(expectedMagic)) (\(describe(expectedMagic)))"
                                + (magic & 0xffff_ff00 == 0x0800 ? "" : "; this is not an IDX file of unsigned bytes"))
        }
        let rank = Int(magic & 0xff)
        guard rank >= 1 else {
            throw DataError(path: path, kind: .invalidHeader,
                            problem: "invalid IDX header: magic number \(hex(magic)) declares 0 dimensions, at least 1 is needed")
        }
        var dimensionBytes = [UInt8](repeating: 0, count: 4 * rank)
        let gotDimensions = try source.read(into: &dimensionBytes, at: 4)
        guard gotDimensions == 4 * rank else {
            throw DataError(path: path, kind: .truncated,
                            problem: "truncated IDX file: the header declares \(rank) dimensions but the file ends after \(4 + gotDimensions) bytes")
        }
        let dimensions = (0..<rank).map { Int(bigEndianUInt32(dimensionBytes, 4 * $0)) }
        var count = 1
        for d in dimensions {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw DataError(path: path, kind: .invalidHeader, problem: "IDX dimensions \(dimensions) overflow")
            }
            count = product
        }
        let headerSize = 4 + 4 * rank

        // The most data the file can hold: its size when raw; when gzipped, deflate's best ratio
        // (about 1032:1), so that a corrupt header never makes us allocate more than that.
        let capacity: Int
        switch source {
        case .raw(let bytes): capacity = bytes.count - headerSize
        case .gzip(_, let compressedSize): capacity = compressedSize.multipliedReportingOverflow(by: 1100).partialValue
        }
        guard count <= capacity else {
            throw DataError(path: path, kind: .truncated,
                            problem: "truncated IDX file: the header promises \(count) bytes of data (dimensions \(dimensions)) "
                                + (source.isGzip ? "but the gzip file is too small to hold them"
                                                 : "but only \(max(capacity, 0)) follow it"))
        }

        var bytes = [UInt8](repeating: 0, count: count)
        let got2 = try source.read(into: &bytes, at: headerSize)
        guard got2 == count else {
            throw DataError(path: path, kind: .truncated,
                            problem: "truncated IDX file: the header promises \(count) bytes of data (dimensions \(dimensions)) but only \(got2) follow it")
        }
        let extra: Int
        switch source {
        case .raw(let all): extra = all.count - headerSize - count
        case .gzip(let inflater, _): extra = try inflater.hasMoreData() ? 1 : 0
        }
        guard extra == 0 else {
            throw DataError(path: path, kind: .countMismatch,
                            problem: "IDX file has data after the \(count) bytes its header declares (dimensions \(dimensions))")
        }
        return IDXArray(dimensions: dimensions, bytes: bytes)
    }

    /// Encodes `array` as an IDX file, gzipped when `gzip` is true.
    public static func encode(_ array: IDXArray, gzip: Bool = false) -> Data {
        var raw = [UInt8]()
        raw.reserveCapacity(4 + 4 * array.dimensions.count + array.bytes.count)
        appendBigEndian(array.magic, to: &raw)
        for d in array.dimensions { appendBigEndian(UInt32(d), to: &raw) }
        raw.append(contentsOf: array.bytes)
        return gzip ? raw.withUnsafeBytes { deflateBytes($0, gzip: true) } : Data(raw)
    }

    /// Writes `array` as an IDX file (gzipped when `gzip` is true), atomically.
    public static func write(_ array: IDXArray, to url: URL, gzip: Bool = false) throws {
        try FileIO.writeAtomically(encode(array, gzip: gzip), to: url)
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    private static func describe(_ magic: UInt32) -> String {
        switch magic {
        case imagesMagic: return "unsigned-byte images N x H x W"
        case labelsMagic: return "unsigned-byte labels N"
        default: return "unsigned bytes with \(magic & 0xff) dimensions"
        }
    }
}

/// Where IDX bytes come from: the raw file or a gzip stream read in order.
private enum ByteSource {
    case raw(Data)
    case gzip(Inflater, Int)

    var isGzip: Bool { if case .gzip = self { return true } else { return false } }

    /// Reads up to `buffer.count` bytes at `offset` (for gzip, offsets must be consecutive).
    func read(into buffer: inout [UInt8], at offset: Int) throws -> Int {
        switch self {
        case .raw(let data):
            let available = max(0, min(buffer.count, data.count - offset))
            if available > 0 {
                let start = data.startIndex + offset
                buffer.withUnsafeMutableBytes { target in
                    data.copyBytes(to: target.bindMemory(to: UInt8.self), from: start..<(start + available))
                }
            }
            return available
        case .gzip(let inflater, _):
            return try buffer.withUnsafeMutableBytes { try inflater.read(into: $0) }
        }
    }
}

@inline(__always)
func bigEndianUInt32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
}

@inline(__always)
func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
    bytes.append(UInt8(truncatingIfNeeded: value >> 24))
    bytes.append(UInt8(truncatingIfNeeded: value >> 16))
    bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    bytes.append(UInt8(truncatingIfNeeded: value))
}
