import Foundation
import GenTensor

// NumPy's .npz (`np.savez`, `np.savez_compressed`): a zip archive (PKWARE APPNOTE) whose members are
// .npy files named KEY.npy. The reader works from the central directory at the end of the archive:
//
//   [local header "PK\3\4" + name + extra] [member data] ...   (one per member)
//   [central directory entry "PK\1\2": method, CRC-32, sizes, local header offset, name] ...
//   [zip64 end record "PK\6\6" and its locator "PK\6\7", when a count or offset overflows]
//   [end of central directory "PK\5\6": entry count, directory size and offset]
//
// NumPy writes every member with `force_zip64=True`, so its local headers hold 0xFFFFFFFF sizes and
// a zip64 extra field; the sizes are taken from the central directory (and its zip64 extra field
// where a size there is 0xFFFFFFFF). Members are stored (method 0, `np.savez`) or deflated (method
// 8, `np.savez_compressed`, raw deflate); each one's CRC-32 is checked. The writer stores members
// uncompressed, as `np.savez` does, without zip64 (members must be under 4 GiB).

#if _endian(big)
#error("NPZ.swift reads little-endian fields with byte loads that assume a little-endian host")
#endif

/// Reading and writing NumPy `.npz` archives of `.npy` members.
public enum NPZ {
    /// Reads every member of the .npz at `url`, keyed by name without the `.npy` suffix (as
    /// `np.load(url).files` lists them). Errors (`DataError`, naming the file and the member): not a
    /// zip archive, a truncated or inconsistent directory, an unsupported compression method or
    /// encryption, a CRC-32 mismatch, a member that is not a valid .npy.
    public static func read(_ url: URL) throws -> [String: NPYArray] {
        try decode(FileIO.read(url), path: url.path)
    }

    /// Writes `arrays` as an uncompressed .npz (members `KEY.npy`, in key order), atomically.
    public static func write(_ arrays: [String: NPYArray], to url: URL) throws {
        try FileIO.writeAtomically(encode(arrays, path: url.path), to: url)
    }

    /// The bytes of an uncompressed .npz holding `arrays` (members `KEY.npy`, in key order).
    public static func encode(_ arrays: [String: NPYArray], path: String = "<npz>") throws -> Data {
        var out = Data()
        var central = Data()
        let keys = arrays.keys.sorted()
        for key in keys {
            let name = Array((key + ".npy").utf8)
            let member = NPY.encode(arrays[key]!)
            let offset = out.count
            guard member.count < 0xFFFF_FFFF, offset < 0xFFFF_FFFF, name.count <= 0xFFFF else {
                throw DataError(path: path, kind: .invalidArgument,
                                problem: "cannot write '\(key)' to a .npz: members and archives of 4 GiB or more need zip64, which is not written")
            }
            let crc = member.withUnsafeBytes { crc32Of($0) }
            // Version 2.0, no flags, stored, 1980-01-01 00:00 (the earliest DOS date).
            var common = Data()
            common.appendLE(UInt16(20)); common.appendLE(UInt16(0)); common.appendLE(UInt16(0))
            common.appendLE(UInt16(0)); common.appendLE(UInt16(0x21))
            common.appendLE(crc); common.appendLE(UInt32(member.count)); common.appendLE(UInt32(member.count))
            common.appendLE(UInt16(name.count)); common.appendLE(UInt16(0))
            out.appendLE(UInt32(0x0403_4b50))
            out.append(common)
            out.append(contentsOf: name)
            out.append(member)

            central.appendLE(UInt32(0x0201_4b50))
            central.appendLE(UInt16(20))  // made by: version 2.0, MS-DOS attributes
            central.append(common)
            central.appendLE(UInt16(0)); central.appendLE(UInt16(0)); central.appendLE(UInt16(0))  // comment, disk, internal attributes
            central.appendLE(UInt32(0)); central.appendLE(UInt32(offset))  // external attributes, local header offset
            central.append(contentsOf: name)
        }
        let directoryOffset = out.count
        guard directoryOffset < 0xFFFF_FFFF, keys.count < 0xFFFF else {
            throw DataError(path: path, kind: .invalidArgument, problem: "cannot write a .npz of 4 GiB or 65,535 members or more (zip64 is not written)")
        }
        out.append(central)
        out.appendLE(UInt32(0x0605_4b50))
        out.appendLE(UInt16(0)); out.appendLE(UInt16(0))
        out.appendLE(UInt16(keys.count)); out.appendLE(UInt16(keys.count))
        out.appendLE(UInt32(central.count)); out.appendLE(UInt32(directoryOffset))
        out.appendLE(UInt16(0))
        return out
    }

    /// Parses .npz bytes; `path` names the source in errors.
    public static func decode(_ data: Data, path: String) throws -> [String: NPYArray] {
        let bytes = [UInt8](data)
        func fail(_ kind: DataError.Kind, _ problem: String) -> DataError { DataError(path: path, kind: kind, problem: problem) }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
        func int64(_ at: Int) throws -> Int {
            let v = u64(at)
            guard v <= UInt64(bytes.count) else { throw fail(.invalidHeader, "invalid .npz: a zip64 size or offset of \(v) in a file of \(bytes.count) bytes") }
            return Int(v)
        }

        guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4b else {
            throw fail(.wrongMagic, "not a .npz file: it does not start with a zip signature (PK)")
        }
        // The end of central directory record: 22 bytes plus a comment of up to 65,535.
        var end = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 22 - 0xFFFF) {
            if u32(i) == 0x0605_4b50 && i + 22 + u16(i + 20) == bytes.count { end = i; break }
            i -= 1
        }
        guard end >= 0 else {
            throw fail(.truncated, "not a complete .npz file: the zip end-of-directory record is missing (truncated?)")
        }
        var count = u16(end + 10)
        var directorySize = u32(end + 12)
        var directoryOffset = u32(end + 16)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // Zip64: the locator sits just before the end record and points at the zip64 end record.
            let locator = end - 20
            guard locator >= 0, u32(locator) == 0x0706_4b50 else {
                throw fail(.invalidHeader, "invalid .npz: the zip64 end-of-directory locator is missing")
            }
            let record = try int64(locator + 8)
            guard record + 56 <= locator, u32(record) == 0x0606_4b50 else {
                throw fail(.invalidHeader, "invalid .npz: the zip64 end-of-directory record is missing")
            }
            count = try int64(record + 32)
            directorySize = try int64(record + 40)
            directoryOffset = try int64(record + 48)
        }
        guard directoryOffset + directorySize <= end else {
            throw fail(.truncated, "invalid .npz: the zip directory (\(directorySize) bytes at \(directoryOffset)) lies beyond the end of the file")
        }

        var arrays: [String: NPYArray] = [:]
        var p = directoryOffset
        for _ in 0..<count {
            guard p + 46 <= directoryOffset + directorySize, u32(p) == 0x0201_4b50 else {
                throw fail(.invalidHeader, "invalid .npz: a zip directory entry is malformed")
            }
            let flags = u16(p + 8), method = u16(p + 10)
            let crc = UInt32(u32(p + 16))
            var compressedSize = u32(p + 20), size = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var localOffset = u32(p + 42)
            let next = p + 46 + nameLength + extraLength + commentLength
            guard next <= directoryOffset + directorySize else {
                throw fail(.invalidHeader, "invalid .npz: a zip directory entry runs past the directory")
            }
            let name = String(decoding: bytes[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            // The zip64 extra field holds, in this order, whichever of the sizes and offset are 0xFFFFFFFF.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), length = u16(e + 2)
                guard e + 4 + length <= extraEnd else { break }
                if id == 0x0001 {
                    var f = e + 4
                    func take() throws -> Int {
                        guard f + 8 <= e + 4 + length else { throw fail(.invalidHeader, "invalid .npz: a short zip64 extra field for '\(name)'") }
                        defer { f += 8 }
                        return try int64(f)
                    }
                    if size == 0xFFFF_FFFF { size = try take() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try take() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try take() }
                }
                e += 4 + length
            }
            p = next
            let member = "\(path) (member \(name))"
            guard flags & 1 == 0 else { throw fail(.unsupported, "unsupported .npz: member \(name) is encrypted") }
            guard name.hasSuffix(".npy") else { continue }  // np.load skips nothing, but only .npy members are arrays
            guard localOffset + 30 <= directoryOffset, u32(localOffset) == 0x0403_4b50 else {
                throw fail(.invalidHeader, "invalid .npz: the local header of member \(name) is missing")
            }
            let start = localOffset + 30 + u16(localOffset + 26) + u16(localOffset + 28)
            guard start + compressedSize <= directoryOffset else {
                throw fail(.truncated, "truncated .npz: member \(name) declares \(compressedSize) bytes that run past its data")
            }
            let raw = bytes[start..<(start + compressedSize)]
            let contents: Data
            switch method {
            case 0:
                guard size == compressedSize else {
                    throw fail(.invalidHeader, "invalid .npz: stored member \(name) has sizes \(compressedSize) and \(size)")
                }
                contents = Data(raw)
            case 8:
                // Deflate expands at most 1032:1, which bounds what a forged size can make us allocate.
                guard size <= compressedSize * 1032 + 1024 else {
                    throw fail(.corruptCompressedData, "invalid .npz: member \(name) claims \(size) bytes from \(compressedSize) compressed")
                }
                let inflater = try Inflater(raw, format: .raw, path: member)
                var out = Data(count: size)
                let got = try out.withUnsafeMutableBytes { try inflater.read(into: $0) }
                guard got == size, !(try inflater.hasMoreData()) else {
                    throw fail(.corruptCompressedData, "corrupt .npz: member \(name) inflates to \(got == size ? "more" : "\(got)") bytes, not \(size)")
                }
                contents = out
            default:
                throw fail(.unsupported, "unsupported .npz: member \(name) uses zip compression method \(method) (only stored and deflate are read)")
            }
            let actual = contents.withUnsafeBytes { crc32Of($0) }
            guard actual == crc else {
                throw fail(.corruptCompressedData, "corrupt .npz: member \(name) has CRC-32 \(hex(actual)), the directory says \(hex(crc))")
            }
            arrays[String(name.dropLast(4))] = try NPY.decode(contents, path: member)
        }
        return arrays
    }
}

/// Eight hex digits.
private func hex(_ v: UInt32) -> String {
    let digits = String(v, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}

extension Data {
    /// Appends an integer's little-endian bytes.
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
