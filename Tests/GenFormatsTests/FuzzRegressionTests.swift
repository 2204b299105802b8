import Foundation
@testable import GenFormats
import GenTestSupport
import XCTest
import GenTensor

/// The inputs that fuzzing (scripts/fuzz, docs/reliability.md) found crashing a parser, and the seed
/// corpora of the fuzz targets (Fuzz/Corpus), replayed through the same calls as the fuzz targets.
final class FuzzRegressionTests: XCTestCase {
    /// The repository's Fuzz/Corpus folder.
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus", isDirectory: true)

    /// `bytes` as a `Data` slice whose `startIndex` is 1, as the fuzz targets pass their input.
    private func sliced(_ bytes: Data) -> Data {
        (Data(count: 1) + bytes)[1...]
    }

    /// Whether `body` succeeds; a `DataError` or `SafeTensorsError` gives false, anything else fails the test.
    private func parses(_ label: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> Bool {
        do {
            try body()
            return true
        } catch is DataError {
        } catch is SafeTensorsError {
        } catch {
            XCTFail("\(label): expected success, a DataError or a SafeTensorsError, got \(error)", file: file, line: line)
        }
        return false
    }

    // MARK: - Crashes found by fuzzing

    /// Fuzz target idx, input 00 10 00 00 08 (crash-rank0-magic): a magic number whose low byte, the
    /// number of dimensions, is 0 passed the magic check when the caller expected that magic number, and
    /// IDXArray's precondition (at least one dimension) trapped. Now an invalid-header error.
    func testIDXMagicWithZeroDimensions() throws {
        let crash = Data([0x00, 0x10, 0x00, 0x00, 0x08])
        assertDataError(.invalidHeader, naming: "crash.idx") {
            try IDX.decode(crash, expectedMagic: 0x0010_0000, path: "crash.idx")
        }
        assertDataError(.invalidHeader, naming: "crash.idx") {
            try IDX.decode(sliced(crash), expectedMagic: 0x0010_0000, path: "crash.idx")
        }
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("scalar-idx0-ubyte")
        try writeFile(Data([0x00, 0x00, 0x08, 0x00, 0x07]), url)
        assertDataError(.invalidHeader, naming: url.path) { try IDX.read(url, expectedMagic: 0x0000_0800) }
    }

    // MARK: - Seed corpora

    /// Every seed of every fuzz target parses or throws the parser's error, whole and as a slice; the
    /// seeds named valid-* parse.
    func testSeedCorpora() throws {
        let targets = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        XCTAssertEqual(Set(targets), ["idx", "npy", "png", "safetensors", "safetensors-header"])
        for target in targets {
            let folder = Self.corpus.appendingPathComponent(target, isDirectory: true)
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            XCTAssertGreaterThan(names.count, 3, target)
            for name in names {
                let bytes = try Data(contentsOf: folder.appendingPathComponent(name))
                for data in [bytes, sliced(bytes)] {
                    let label = "\(target)/\(name)"
                    let ok: Bool
                    switch target {
                    case "safetensors":
                        // Opening must work for valid-*; decoding may refuse a dtype this engine does not load.
                        var file: SafeTensorsFile?
                        ok = parses(label) { file = try SafeTensorsFile(data: data, path: name) }
                        if let file { _ = parses(label) { _ = try file.allTensors() } }
                    case "safetensors-header":
                        ok = (try? HeaderJSON.parse([UInt8](data))) != nil
                    case "idx":
                        let own = data.count >= 4 ? data.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } : IDX.imagesMagic
                        let results = [IDX.imagesMagic, IDX.labelsMagic, own].map { magic in
                            parses(label) { _ = try IDX.decode(data, expectedMagic: magic, path: name) }
                        }
                        ok = results.contains(true)
                    case "png":
                        ok = parses(label) { _ = try PNGReader.decodeGray(data, path: name) }
                    case "npy":
                        ok = parses(label) {
                            let array = try NPY.decode(data, path: name)
                            _ = NPY.tensor(array)
                            if array.shape.count >= 3 { _ = try NPY.images(array, path: name) }
                        }
                    default:
                        XCTFail("unknown fuzz target \(target)")
                        ok = false
                    }
                    if name.hasPrefix("valid-") { XCTAssertTrue(ok, "\(label) should parse") }
                }
            }
        }
    }
}
