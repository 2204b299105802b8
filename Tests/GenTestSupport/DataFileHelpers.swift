import CPNG
import Foundation
import GenFormats
import XCTest

// Helpers of the data-file tests (GenFormatsTests, GenDataTests): temporary folders, DataError
// assertions, deterministic test bytes, and libpng as an independent PNG encoder and decoder.

/// A fresh temporary folder, removed by `removeTemporaryFolder`.
public func makeTemporaryFolder() throws -> URL {
    let url = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
        .appendingPathComponent("GenDataTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Asserts that `body` throws a `DataError` of `kind` whose description names `path`.
public func assertDataError<T>(_ kind: DataError.Kind, naming path: String, _ body: () throws -> T,
                        file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a \(kind) error naming \(path), got success", file: file, line: line)
    } catch let error as DataError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        XCTAssertTrue(error.description.contains(path), "\(error) does not name \(path)", file: file, line: line)
        XCTAssertEqual(error.path, path, file: file, line: line)
    } catch {
        XCTFail("expected a DataError, got \(error)", file: file, line: line)
    }
}

/// Runs `body`, which may succeed or throw a `DataError` but nothing else (for fuzzing).
public func assertDataErrorOrSuccess(_ label: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
    do { try body() } catch is DataError {} catch {
        XCTFail("\(label): expected success or a DataError, got \(error)", file: file, line: line)
    }
}

/// Writes `data` to `url`.
public func writeFile(_ data: Data, _ url: URL) throws {
    try data.write(to: url)
}

/// A small deterministic generator for test data.
public struct TestRandom {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    public mutating func int(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

// MARK: - libpng as the reference encoder and decoder

/// Output sink of the libpng write callback.
private final class PNGSink { var data = Data() }

/// Encodes rows of packed samples with libpng: independent test vectors for every colour type, bit
/// depth and interlace method the Swift decoder claims to read. libpng picks its filters adaptively
/// (all five filter types); `allFilters` forces the full set for 8- and 16-bit images.
public func libpngEncode(width: Int, height: Int, bitDepth: Int32, colorType: Int32, interlaced: Bool, rows: [[UInt8]],
                  palette: [(UInt8, UInt8, UInt8)] = [], transparency: [UInt8] = []) -> Data {
    var png: png_structp? = png_create_write_struct(png_get_libpng_ver(nil), nil, nil, nil)
    var info: png_infop? = png_create_info_struct(png)
    let sink = PNGSink()
    png_set_write_fn(png, Unmanaged.passUnretained(sink).toOpaque(), { pointer, bytes, count in
        let sink = Unmanaged<PNGSink>.fromOpaque(png_get_io_ptr(pointer)!).takeUnretainedValue()
        sink.data.append(bytes!, count: count)
    }, { _ in })
    png_set_IHDR(png, info, UInt32(width), UInt32(height), bitDepth, colorType, interlaced ? 1 : 0, 0, 0)
    if bitDepth >= 8 && colorType != 3 { png_set_filter(png, 0, 0xF8) }
    if !palette.isEmpty {
        var colours = palette.map { png_color(red: $0.0, green: $0.1, blue: $0.2) }
        png_set_PLTE(png, info, &colours, Int32(colours.count))
    }
    if !transparency.isEmpty {
        var alpha = transparency
        png_set_tRNS(png, info, &alpha, Int32(alpha.count), nil)
    }
    png_write_info(png, info)
    var flat = rows.flatMap { $0 }
    let rowBytes = rows.first?.count ?? 0
    flat.withUnsafeMutableBufferPointer { all in
        var pointers: [UnsafeMutablePointer<UInt8>?] = (0..<rows.count).map { all.baseAddress! + $0 * rowBytes }
        pointers.withUnsafeMutableBufferPointer { png_write_image(png, $0.baseAddress) }
    }
    png_write_end(png, nil)
    png_destroy_write_struct(&png, &info)
    return sink.data
}

/// Decodes an 8-bit grey or RGB PNG with libpng's simplified API (which reports errors instead of
/// longjmp-ing out), returning the samples; nil when libpng rejects the file.
public func libpngDecode(_ data: Data, rgb: Bool) -> (width: Int, height: Int, samples: [UInt8])? {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
    guard ok != 0 else { return nil }
    image.format = rgb ? 2 : 0  // PNG_FORMAT_RGB, PNG_FORMAT_GRAY
    let channels = rgb ? 3 : 1
    var samples = [UInt8](repeating: 0, count: Int(image.width) * Int(image.height) * channels)
    let finished = samples.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
    png_image_free(&image)
    return finished != 0 ? (Int(image.width), Int(image.height), samples) : nil
}
