import Foundation

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TensorFlow's record files.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes` ("123456789" gives 0xE3069283).
    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// The masked form the record files store: rotated right by 15, plus 0xA282EAD8.
    public static func masked<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        let crc = checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// One event of a TensorBoard event file: a time, a step, and scalars by tag (or, first in every
/// file, the file version "brain.Event:2").
public struct TFEvent: Equatable, Sendable {
    /// Seconds since 1970.
    public var wallTime: Double
    public var step: Int64
    /// The file version, set only on a file's first event.
    public var fileVersion: String?
    /// Scalar summaries (`simple_value`, float32), in order.
    public var scalars: [(tag: String, value: Float)]

    public init(wallTime: Double, step: Int64, fileVersion: String? = nil, scalars: [(tag: String, value: Float)] = []) {
        self.wallTime = wallTime
        self.step = step
        self.fileVersion = fileVersion
        self.scalars = scalars
    }

    public static func == (a: TFEvent, b: TFEvent) -> Bool {
        a.wallTime == b.wallTime && a.step == b.step && a.fileVersion == b.fileVersion
            && a.scalars.map(\.tag) == b.scalars.map(\.tag) && a.scalars.map(\.value) == b.scalars.map(\.value)
    }

    /// The `tensorflow.Event` protocol buffer: wall_time (1, double), step (2, int64), file_version
    /// (3, string), summary (5: a `Summary` of `Value`s, each tag (1, string) and simple_value (2, float)).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0x09]
        out += withUnsafeBytes(of: wallTime.bitPattern.littleEndian, Array.init)
        out.append(0x10)
        Protobuf.appendVarint(UInt64(bitPattern: step), to: &out)
        if let fileVersion { Protobuf.appendField(3, bytes: Array(fileVersion.utf8), to: &out) }
        if !scalars.isEmpty {
            var summary: [UInt8] = []
            for (tag, value) in scalars {
                var v: [UInt8] = []
                Protobuf.appendField(1, bytes: Array(tag.utf8), to: &v)
                v.append(0x15)
                v += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
                Protobuf.appendField(1, bytes: v, to: &summary)
            }
            Protobuf.appendField(5, bytes: summary, to: &out)
        }
        return out
    }

    /// Decodes what `encoded` writes (other fields are skipped); nil for a malformed message.
    public static func decode(_ bytes: ArraySlice<UInt8>) -> TFEvent? {
        var event = TFEvent(wallTime: 0, step: 0)
        var reader = Protobuf.Reader(bytes)
        while !reader.atEnd {
            guard let (field, wire) = reader.key() else { return nil }
            switch (field, wire) {
            case (1, 1): guard let bits = reader.fixed64() else { return nil }; event.wallTime = Double(bitPattern: bits)
            case (2, 0): guard let v = reader.varint() else { return nil }; event.step = Int64(bitPattern: v)
            case (3, 2): guard let b = reader.lengthDelimited() else { return nil }; event.fileVersion = String(decoding: b, as: UTF8.self)
            case (5, 2):
                guard let summary = reader.lengthDelimited() else { return nil }
                var s = Protobuf.Reader(summary)
                while !s.atEnd {
                    guard let (f, w) = s.key() else { return nil }
                    guard f == 1, w == 2, let value = s.lengthDelimited() else { guard s.skip(wire: w) else { return nil }; continue }
                    var v = Protobuf.Reader(value)
                    var tag = "", number: Float = .nan
                    while !v.atEnd {
                        guard let (vf, vw) = v.key() else { return nil }
                        if vf == 1, vw == 2, let t = v.lengthDelimited() { tag = String(decoding: t, as: UTF8.self) }
                        else if vf == 2, vw == 5, let bits = v.fixed32() { number = Float(bitPattern: bits) }
                        else if !v.skip(wire: vw) { return nil }
                    }
                    event.scalars.append((tag, number))
                }
            default: guard reader.skip(wire: wire) else { return nil }
            }
        }
        return event
    }
}

/// TensorBoard's event files (`events.out.tfevents.TIME.HOST`): TFRecord framing (length, masked
/// CRC-32C of the length, data, masked CRC-32C of the data, all little-endian) around `TFEvent`s.
public enum TFEventFile {
    /// One record: the framing around `data`.
    public static func record(_ data: [UInt8]) -> [UInt8] {
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        return length + withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
            + data + withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
    }

    /// Reads every event of a file, checking both checksums of every record.
    public static func read(_ url: URL) throws -> [TFEvent] {
        let bytes = [UInt8](try FileIO.read(url))
        func fail(_ problem: String) -> DataError { DataError(path: url.path, kind: .corruptRecord, problem: problem) }
        func u32(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        var events: [TFEvent] = [], at = 0
        while at < bytes.count {
            guard bytes.count - at >= 12 else { throw fail("a record header is cut short at byte \(at)") }
            let length = bytes[at..<at + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard u32(at + 8) == CRC32C.masked(bytes[at..<at + 8]) else { throw fail("bad length checksum at byte \(at)") }
            guard length <= UInt64(bytes.count - at - 16) else { throw fail("a record of \(length) bytes is cut short at byte \(at)") }
            let data = bytes[(at + 12)..<(at + 12 + Int(length))]
            guard u32(at + 12 + Int(length)) == CRC32C.masked(data) else { throw fail("bad data checksum at byte \(at)") }
            guard let event = TFEvent.decode(data) else { throw fail("a malformed event at byte \(at)") }
            events.append(event)
            at += 16 + Int(length)
        }
        return events
    }
}

/// Appends events to a new TensorBoard event file in `folder`, flushing after each.
public final class TFEventWriter {
    /// The file written.
    public let url: URL
    private let handle: FileHandle

    /// Creates `folder/events.out.tfevents.TIME.HOST` with the file-version event.
    public init(folder: URL, now: Date = Date()) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName
        var name = "events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host)"
        var suffix = 1
        while FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) {
            suffix += 1
            name = "events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host).\(suffix)"
        }
        url = folder.appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let handle = try? FileHandle(forWritingTo: url) else {
            throw DataError(path: url.path, kind: .io, problem: "cannot create the event file")
        }
        self.handle = handle
        try write(TFEvent(wallTime: now.timeIntervalSince1970, step: 0, fileVersion: "brain.Event:2"))
    }

    deinit { try? handle.close() }

    /// Appends one event.
    public func write(_ event: TFEvent) throws {
        do {
            try handle.write(contentsOf: TFEventFile.record(event.encoded()))
        } catch {
            throw DataError(path: url.path, kind: .io, problem: "cannot write (\(error.localizedDescription))")
        }
    }
}

/// The little of the protocol-buffer wire format the event files need.
enum Protobuf {
    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    /// A length-delimited field (wire type 2).
    static func appendField(_ field: Int, bytes: [UInt8], to out: inout [UInt8]) {
        appendVarint(UInt64(field << 3 | 2), to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out += bytes
    }

    /// Reads fields from a message; every accessor returns nil past the end.
    struct Reader {
        var bytes: ArraySlice<UInt8>
        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
        var atEnd: Bool { bytes.isEmpty }

        mutating func varint() -> UInt64? {
            var value: UInt64 = 0, shift: UInt64 = 0
            while let b = bytes.first, shift < 64 {
                bytes = bytes.dropFirst()
                value |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return value }
                shift += 7
            }
            return nil
        }

        mutating func key() -> (field: Int, wire: Int)? {
            guard let k = varint(), k >> 3 <= UInt64(Int32.max) else { return nil }
            return (Int(k >> 3), Int(k & 7))
        }

        mutating func fixed(_ count: Int) -> UInt64? {
            guard bytes.count >= count else { return nil }
            let value = bytes.prefix(count).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            bytes = bytes.dropFirst(count)
            return value
        }

        mutating func fixed64() -> UInt64? { fixed(8) }
        mutating func fixed32() -> UInt32? { fixed(4).map { UInt32($0) } }

        mutating func lengthDelimited() -> ArraySlice<UInt8>? {
            guard let n = varint(), n <= UInt64(bytes.count) else { return nil }
            let value = bytes.prefix(Int(n))
            bytes = bytes.dropFirst(Int(n))
            return value
        }

        /// Skips a field's value of wire type `wire`; false for a type it does not know.
        mutating func skip(wire: Int) -> Bool {
            switch wire {
            case 0: return varint() != nil
            case 1: return fixed64() != nil
            case 2: return lengthDelimited() != nil
            case 5: return fixed32() != nil
            default: return false
            }
        }
    }
}
