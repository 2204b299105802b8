import CZlib
import Foundation
import GenTensor

/// A streaming zlib inflater over an in-memory compressed buffer: `read(into:)` fills the caller's
/// buffer, so readers that know the decompressed size from a header allocate exactly that much and a
/// "decompression bomb" never allocates more than its header admits.
final class Inflater {
    /// Which container the compressed bytes are in.
    enum Format {
        /// gzip (RFC 1952), including files of several concatenated gzip members.
        case gzip
        /// zlib (RFC 1950), as in PNG IDAT chunks.
        case zlib
        /// Raw deflate (RFC 1951) without header or checksum, as in zip entries.
        case raw
    }

    private var stream = z_stream()
    private let input: UnsafeMutableRawBufferPointer
    private let format: Format
    private let path: String
    private var isOpen = false
    private var finished = false

    /// Starts inflating a copy of `bytes`; `path` names the file in errors.
    init<Bytes: Collection>(_ bytes: Bytes, format: Format, path: String) throws where Bytes.Element == UInt8 {
        self.format = format
        self.path = path
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = input.initializeMemory(as: UInt8.self, from: bytes)
        stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = 0
        let windowBits: Int32 = format == .gzip ? 15 + 32 : format == .raw ? -15 : 15
        let status = inflateInit2_(&stream, windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            input.deallocate()
            throw DataError(path: path, kind: .io, problem: "cannot start zlib's inflater (error \(status))")
        }
        isOpen = true
        remainingInput = bytes.count
    }

    /// Compressed bytes not yet handed to zlib (zlib's `avail_in` is 32-bit, so large inputs are fed
    /// in pieces).
    private var remainingInput: Int

    deinit {
        if isOpen { inflateEnd(&stream) }
        input.deallocate()
    }

    private var containerName: String { [.gzip: "gzip", .zlib: "zlib", .raw: "deflate"][format]! }

    /// Fills `buffer` with decompressed bytes; returns how many it wrote, which is less than the
    /// buffer's size only when the compressed stream has ended.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        var written = 0
        while written < buffer.count && !finished {
            if stream.avail_in == 0 && remainingInput > 0 {
                let piece = min(remainingInput, 1 << 30)
                stream.avail_in = UInt32(piece)
                remainingInput -= piece
            }
            let wanted = min(buffer.count - written, 1 << 30)
            stream.next_out = (base + written).assumingMemoryBound(to: Bytef.self)
            stream.avail_out = UInt32(wanted)
            let status = inflate(&stream, Z_NO_FLUSH)
            written += wanted - Int(stream.avail_out)
            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                // A gzip file may hold several members; anything else after the end is an error for
                // gzip and ignored for zlib (as libpng does with extra IDAT data).
                let left = Int(stream.avail_in) + remainingInput
                if format == .gzip && left > 0 {
                    let next = UnsafeRawPointer(stream.next_in!)
                    if left >= 2 && next.load(as: UInt8.self) == 0x1f && next.load(fromByteOffset: 1, as: UInt8.self) == 0x8b {
                        inflateReset(&stream)
                        continue
                    }
                    throw DataError(path: path, kind: .corruptCompressedData,
                                    problem: "corrupt gzip file: \(left) unexpected bytes after the end of the compressed data")
                }
                finished = true
            case Z_BUF_ERROR:
                if stream.avail_in == 0 && remainingInput == 0 {
                    throw DataError(path: path, kind: .corruptCompressedData,
                                    problem: "corrupt \(containerName) data: the compressed stream ends early (the file is truncated)")
                }
                continue
            case Z_MEM_ERROR:
                throw DataError(path: path, kind: .io, problem: "out of memory while inflating \(containerName) data")
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw DataError(path: path, kind: .corruptCompressedData, problem: "corrupt \(containerName) data (zlib: \(message))")
            }
        }
        return written
    }

    /// Whether the compressed stream holds more data (reads at most one byte, which is lost).
    func hasMoreData() throws -> Bool {
        var byte: UInt8 = 0
        return try withUnsafeMutableBytes(of: &byte) { try read(into: $0) } > 0
    }
}

/// Whether `bytes` start with the gzip magic number 1f 8b.
func isGzip<Bytes: Collection>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
    var iterator = bytes.makeIterator()
    return iterator.next() == 0x1f && iterator.next() == 0x8b
}

/// Deflates `bytes` into a zlib stream (`gzip: false`, as PNG wants) or a gzip file.
func deflateBytes(_ bytes: UnsafeRawBufferPointer, gzip: Bool, level: Int32 = 6) -> Data {
    var stream = z_stream()
    let status = deflateInit2_(&stream, level, Z_DEFLATED, gzip ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY,
                               zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    precondition(status == Z_OK, "deflateInit2 failed with \(status)")
    defer { deflateEnd(&stream) }
    var out = Data()
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var offset = 0
    while true {
        let piece = min(bytes.count - offset, 1 << 30)
        stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress.map { ($0 + offset).assumingMemoryBound(to: Bytef.self) })
        stream.avail_in = UInt32(piece)
        offset += piece
        let flush = offset == bytes.count ? Z_FINISH : Z_NO_FLUSH
        var result: Int32 = Z_OK
        repeat {
            chunk.withUnsafeMutableBufferPointer { buffer in
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(buffer.count)
                result = deflate(&stream, flush)
                out.append(buffer.baseAddress!, count: buffer.count - Int(stream.avail_out))
            }
        } while stream.avail_out == 0 || (flush == Z_FINISH && result != Z_STREAM_END)
        if flush == Z_FINISH { break }
    }
    return out
}

/// The CRC-32 of `bytes` continued from `crc` (zlib's, as PNG chunks use).
func crc32Of(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt = 0) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return UInt32(truncatingIfNeeded: crc) }
    var value = crc
    var offset = 0
    while offset < bytes.count {
        let piece = min(bytes.count - offset, 1 << 30)
        value = crc32(value, (base + offset).assumingMemoryBound(to: Bytef.self), uInt(piece))
        offset += piece
    }
    return UInt32(truncatingIfNeeded: value)
}
