import Foundation
@testable import GenData
@testable import GenFormats
import GenTestSupport
import XCTest
@testable import GenTensor

/// The Swift PNG decoder against libpng-encoded vectors of every colour type, bit depth and
/// interlace method; the writer against libpng's decoder; PNG folders; corrupt files.
final class PNGTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    // MARK: Decoding libpng's files

    /// Packs samples of `depth` bits (big-endian, high bits first) into a scanline.
    private func pack(_ samples: [Int], depth: Int) -> [UInt8] {
        switch depth {
        case 16: return samples.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
        case 8: return samples.map { UInt8($0) }
        default:
            var out = [UInt8](repeating: 0, count: (samples.count * depth + 7) / 8)
            for (i, s) in samples.enumerated() {
                let bit = i * depth
                out[bit / 8] |= UInt8(s << (8 - depth - bit % 8))
            }
            return out
        }
    }

    /// Encodes a random image with libpng and checks the decoder's grey levels against `level`.
    private func checkVector(colorType: Int32, depth: Int, width: Int = 13, height: Int = 11, interlaced: Bool,
                             seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        var random = TestRandom(state: seed)
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]!
        let maxValue = colorType == 3 ? (1 << depth) - 1 : (1 << depth) - 1
        let palette: [(UInt8, UInt8, UInt8)] = colorType == 3
            ? (0..<(1 << depth)).map { _ in (random.byte(), random.byte(), random.byte()) } : []
        // Smooth gradients with noise, so that libpng's adaptive filters pick all filter types.
        var samples: [[Int]] = []
        for y in 0..<height {
            var row: [Int] = []
            for x in 0..<width {
                for c in 0..<channels {
                    let smooth = (x * 37 + y * 23 + c * 91) % (maxValue + 1)
                    let noisy = random.int(maxValue + 1)
                    row.append(random.int(4) == 0 ? noisy : smooth)
                }
            }
            samples.append(row)
        }
        let transparency: [UInt8] = colorType == 3 ? (0..<min(4, palette.count)).map { _ in random.byte() } : []
        let data = libpngEncode(width: width, height: height, bitDepth: Int32(depth), colorType: colorType, interlaced: interlaced,
                                rows: samples.map { pack($0, depth: depth) }, palette: palette, transparency: transparency)
        XCTAssertEqual(data[data.startIndex + 28], interlaced ? 1 : 0, "interlace byte", file: file, line: line)
        let image = try PNGReader.decodeGray(data, path: "vector")
        XCTAssertEqual(image.shape, [height, width, 1], file: file, line: line)
        var mismatches = 0
        for y in 0..<height {
            for x in 0..<width {
                let s = Array(samples[y][(x * channels)..<((x + 1) * channels)])
                let expected: Float
                switch colorType {
                case 0, 4: expected = Float(s[0]) / Float(maxValue)
                case 2, 6: expected = Float((299 * s[0] + 587 * s[1] + 114 * s[2] + 500) / 1000) / Float(maxValue)
                default:
                    let p = palette[s[0]]
                    expected = Float((299 * Int(p.0) + 587 * Int(p.1) + 114 * Int(p.2) + 500) / 1000) / 255
                }
                if image.floatPointer[y * width + x] != expected { mismatches += 1 }
            }
        }
        XCTAssertEqual(mismatches, 0, "colour type \(colorType), depth \(depth), interlaced \(interlaced)", file: file, line: line)
    }

    func testEveryColourTypeAndDepth() throws {
        let combinations: [(Int32, [Int])] = [(0, [1, 2, 4, 8, 16]), (2, [8, 16]), (3, [1, 2, 4, 8]), (4, [8, 16]), (6, [8, 16])]
        var seed: UInt64 = 1
        for (colorType, depths) in combinations {
            for depth in depths {
                for interlaced in [false, true] {
                    try checkVector(colorType: colorType, depth: depth, interlaced: interlaced, seed: seed)
                    seed += 1
                }
            }
        }
        // Images smaller than an Adam7 block leave some passes empty.
        for (w, h) in [(1, 1), (3, 2), (1, 9), (9, 1)] {
            try checkVector(colorType: 0, depth: 8, width: w, height: h, interlaced: true, seed: seed)
            try checkVector(colorType: 2, depth: 16, width: w, height: h, interlaced: false, seed: seed + 1)
            seed += 2
        }
    }

    // MARK: Writing

    func testGreyRoundTripIsExact() throws {
        var random = TestRandom(state: 3)
        let levels = (0..<(28 * 28)).map { _ in Float(random.int(256)) / 255 }
        let url = folder.appendingPathComponent("grey.png")
        try PNGWriter.write(Tensor(levels, shape: [28, 28, 1]), to: url)
        let back = try PNGReader.readGray(url)
        XCTAssertEqual(back.shape, [28, 28, 1])
        XCTAssertEqual(back.scalars(as: Float.self), levels)

        // libpng reads the same bytes.
        let decoded = try XCTUnwrap(libpngDecode(try Data(contentsOf: url), rgb: false))
        XCTAssertEqual(decoded.width, 28)
        XCTAssertEqual(decoded.samples, levels.map { UInt8(($0 * 255).rounded()) })

        // Rank-2 input, clamping, NaN, float64, and 8-bit quantisation (round to nearest).
        let odd = Tensor([-0.5, 0.25, 2, .nan, 0.5 / 255, 1.49 / 255], shape: [2, 3])
        let oddBack = try PNGReader.decodeGray(PNGWriter.encode(odd))
        XCTAssertEqual(oddBack.scalars(as: Float.self), [0, 64, 255, 0, 1, 1].map { Float($0) / 255 })
    }

    func testRGBWriterMatchesLibpng() throws {
        var random = TestRandom(state: 4)
        let (h, w) = (30, 40)
        let bytes = (0..<(h * w * 3)).map { _ in UInt8(random.int(256)) }
        let image = Tensor(bytes.map { Float($0) / 255 }, shape: [h, w, 3])
        let data = try PNGWriter.encode(image)
        let decoded = try XCTUnwrap(libpngDecode(data, rgb: true))
        XCTAssertEqual(decoded.width, w)
        XCTAssertEqual(decoded.height, h)
        XCTAssertEqual(decoded.samples, bytes)
        // Our decoder gives the luma.
        let grey = try PNGReader.decodeGray(data)
        let i = 17 * w + 33
        let luma = (299 * Int(bytes[3 * i]) + 587 * Int(bytes[3 * i + 1]) + 114 * Int(bytes[3 * i + 2]) + 500) / 1000
        XCTAssertEqual(grey.floatPointer[i], Float(luma) / 255)
    }

    func testWriterRejectsBadShapes() {
        let url = folder.appendingPathComponent("bad.png")
        for tensor in [Tensor.zeros([2, 2, 2]), Tensor.zeros([4]), Tensor.zeros([0, 3, 1]), Tensor.zeros([2, 2], dtype: .int64)] {
            assertDataError(.invalidArgument, naming: url.path) { try PNGWriter.write(tensor, to: url) }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: Folders of PNGs

    /// A 40 x 30 RGB PNG and a 28 x 28 grey one load as 28 x 28 grey images, sorted by name.
    func testFolderOfMixedSizes() throws {
        let (r, g, b) = (200, 100, 50)
        let rgb = Tensor(repeating: 0, shape: [30, 40, 3])
        for i in 0..<(30 * 40) {
            rgb.floatPointer[3 * i] = Float(r) / 255
            rgb.floatPointer[3 * i + 1] = Float(g) / 255
            rgb.floatPointer[3 * i + 2] = Float(b) / 255
        }
        try PNGWriter.write(rgb, to: folder.appendingPathComponent("b-colour.png"))
        let grey = Tensor((0..<784).map { Float($0 % 256) / 255 }, shape: [28, 28])
        try PNGWriter.write(grey, to: folder.appendingPathComponent("a-grey.PNG"))
        // A 16-bit grey+alpha 7 x 5 image written by libpng: enlarged bilinearly.
        let rows: [[UInt8]] = (0..<5).map { y in (0..<7).flatMap { x -> [UInt8] in [UInt8(x * 40), 0, UInt8(y * 50), 0] } }
        try writeFile(libpngEncode(width: 7, height: 5, bitDepth: 16, colorType: 4, interlaced: false, rows: rows),
                      folder.appendingPathComponent("c-small.png"))
        try writeFile(Data("ignored".utf8), folder.appendingPathComponent("notes.txt"))

        let data = try ImageDataset.load(directory: folder, split: .train)
        XCTAssertEqual(data.images.shape, [3, 28, 28, 1])
        XCTAssertNil(data.labels)
        let p = data.images.floatPointer
        XCTAssertEqual(Array(UnsafeBufferPointer(start: p, count: 784)), grey.scalars(as: Float.self))
        let luma = Float((299 * r + 587 * g + 114 * b + 500) / 1000) / 255
        for i in [0, 300, 783] { XCTAssertEqual(p[784 + i], luma, accuracy: 1e-6) }
        // The enlarged image keeps its left-to-right ramp: first column 0, last column 240 * 256 / 65535.
        XCTAssertEqual(p[2 * 784 + 14 * 28], 0, accuracy: 1e-6)
        XCTAssertEqual(p[2 * 784 + 14 * 28 + 27], Float(240 * 256) / 65535, accuracy: 1e-6)
        XCTAssertLessThan(p[2 * 784 + 14 * 28 + 10], p[2 * 784 + 14 * 28 + 11])
    }

    func testSplitAndClassFolders() throws {
        // dir/train/{a,b}/*.png and dir/test/*.png
        let image = Tensor(repeating: 0.5, shape: [28, 28])
        for (sub, names) in [("train/a", ["1.png"]), ("train/b", ["1.png", "2.png"]), ("test", ["x.png"])] {
            let dir = folder.appendingPathComponent(sub, isDirectory: true)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for name in names { try PNGWriter.write(image, to: dir.appendingPathComponent(name)) }
        }
        let train = try ImageDataset.load(directory: folder, split: .train)
        XCTAssertEqual(train.count, 3)
        XCTAssertEqual(train.labels?.scalars(as: Int64.self), [0, 1, 1])
        XCTAssertEqual(train.classNames, ["a", "b"])
        let test = try ImageDataset.load(directory: folder, split: .test)
        XCTAssertEqual(test.count, 1)
        XCTAssertNil(test.labels)
    }

    func testResampleWeights() {
        // Enlarging 2 -> 4 bilinearly with aligned centres: 0, 0.25, 0.75, 1.
        let up = resizeImages(Tensor([0, 1] as [Float], shape: [1, 1, 2, 1]), height: 1, width: 4)
        XCTAssertEqual(up.scalars(as: Float.self), [0, 0.25, 0.75, 1])
        // Shrinking 3 -> 2 by area: [a, b, c] -> [(a + b/2) / 1.5, (b/2 + c) / 1.5].
        let down = resizeImages(Tensor([0, 3, 6] as [Float], shape: [1, 3, 1, 1]), height: 2, width: 1)
        let d = down.scalars(as: Float.self)
        XCTAssertEqual(d[0], 1, accuracy: 1e-6)
        XCTAssertEqual(d[1], 5, accuracy: 1e-6)
    }

    // MARK: Corrupt files

    /// A valid 8 x 8 grey PNG.
    private var validPNG: Data {
        get throws { try PNGWriter.encode(Tensor((0..<64).map { Float($0) / 63 }, shape: [8, 8])) }
    }

    /// Rewrites the CRC of the chunk starting at `offset`, so that a corruption reaches the decoder.
    private func fixCRC(_ data: inout Data, chunkAt offset: Int) {
        let bytes = [UInt8](data)
        let length = Int(bigEndianUInt32(bytes, offset))
        let crc = bytes.withUnsafeBytes { crc32Of(UnsafeRawBufferPointer(rebasing: $0[(offset + 4)..<(offset + 8 + length)])) }
        for k in 0..<4 { data[data.startIndex + offset + 8 + length + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
    }

    func testCorruptPNGInFolder() throws {
        try PNGWriter.write(Tensor.zeros([28, 28]), to: folder.appendingPathComponent("0.png"))
        var bad = try validPNG
        bad[bad.startIndex + 45] ^= 0xff  // inside IDAT
        let url = folder.appendingPathComponent("1.png")
        try writeFile(bad, url)
        assertDataError(.corruptImage, naming: url.path) { try ImageDataset.load(directory: folder, split: .train) }
    }

    func testCorruptPNGCases() throws {
        let url = folder.appendingPathComponent("x.png")
        let good = try validPNG
        // Layout: signature (8), IHDR at 8 (25 bytes), IDAT at 33.
        func expect(_ kind: DataError.Kind, _ data: Data, _ text: String, line: UInt = #line) throws {
            try writeFile(data, url)
            assertDataError(kind, naming: url.path, { try PNGReader.readGray(url) }, line: line)
            do { _ = try PNGReader.readGray(url) } catch let error as DataError {
                XCTAssertTrue(error.problem.contains(text), "\(error)", line: line)
            }
        }
        try expect(.wrongMagic, Data("GIF89a......".utf8), "signature")
        try expect(.wrongMagic, Data(), "signature")
        try expect(.truncated, good.prefix(good.count / 2), "truncated")
        try expect(.truncated, good.prefix(good.count - 12), "IEND")
        try expect(.truncated, good.prefix(20), "truncated")
        var crc = good
        crc[crc.startIndex + 45] ^= 1
        try expect(.corruptImage, crc, "CRC mismatch in chunk IDAT")
        // An IHDR with colour type 1 (invalid) and a valid CRC.
        var header = good
        header[header.startIndex + 8 + 8 + 9] = 1
        fixCRC(&header, chunkAt: 8)
        try expect(.invalidHeader, header, "colour type 1")
        // Adam7 is fine, but interlace method 2 is not.
        var interlace = good
        interlace[interlace.startIndex + 8 + 8 + 12] = 2
        fixCRC(&interlace, chunkAt: 8)
        try expect(.invalidHeader, interlace, "interlace 2")
        // Compressed data that is not zlib, with a valid CRC.
        var zlib = good
        for i in 41..<45 { zlib[zlib.startIndex + i] = 0xAA }
        fixCRC(&zlib, chunkAt: 33)
        try expect(.corruptCompressedData, zlib, "zlib")
        // A bad filter type byte: re-encode the IDAT with filter 9 on the first row.
        var raw = [UInt8](repeating: 0, count: 8 * 9)
        raw[0] = 9
        var filtered = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        PNGWriter.appendChunk("IHDR", [0, 0, 0, 8, 0, 0, 0, 8, 8, 0, 0, 0, 0], to: &filtered)
        PNGWriter.appendChunk("IDAT", [UInt8](raw.withUnsafeBytes { deflateBytes($0, gzip: false) }), to: &filtered)
        PNGWriter.appendChunk("IEND", [], to: &filtered)
        try expect(.corruptImage, filtered, "filter type 9")
        // Too little image data for the header's size.
        var short = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        PNGWriter.appendChunk("IHDR", [0, 0, 0, 8, 0, 0, 0, 8, 8, 0, 0, 0, 0], to: &short)
        PNGWriter.appendChunk("IDAT", [UInt8](raw.prefix(20).withUnsafeBytes { deflateBytes($0, gzip: false) }), to: &short)
        PNGWriter.appendChunk("IEND", [], to: &short)
        try expect(.corruptImage, short, "inflates to")
        // A header claiming an enormous image.
        var huge = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        PNGWriter.appendChunk("IHDR", [0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 8, 0, 0, 0, 0], to: &huge)
        PNGWriter.appendChunk("IEND", [], to: &huge)
        try expect(.unsupported, huge, "larger than")
        // Palette image without PLTE.
        var noPalette = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        PNGWriter.appendChunk("IHDR", [0, 0, 0, 1, 0, 0, 0, 1, 8, 3, 0, 0, 0], to: &noPalette)
        PNGWriter.appendChunk("IDAT", [UInt8]([0, 0].withUnsafeBytes { deflateBytes($0, gzip: false) }), to: &noPalette)
        PNGWriter.appendChunk("IEND", [], to: &noPalette)
        try expect(.corruptImage, noPalette, "PLTE")
        // Missing file.
        let missing = folder.appendingPathComponent("missing.png")
        assertDataError(.notFound, naming: missing.path) { try PNGReader.readGray(missing) }
    }

    /// Random corruption (with and without repaired CRCs) and every truncation: a DataError or a
    /// decoded image, never a crash.
    func testFuzzedPNGsNeverCrash() throws {
        let interlaced = libpngEncode(width: 9, height: 7, bitDepth: 8, colorType: 6, interlaced: true,
                                      rows: (0..<7).map { y in (0..<36).map { UInt8(($0 * 7 + y * 13) & 0xff) } })
        let palette = libpngEncode(width: 9, height: 7, bitDepth: 2, colorType: 3, interlaced: false,
                                   rows: (0..<7).map { _ in [0x1B, 0xE4, 0x40] }, palette: [(1, 2, 3), (40, 50, 60), (200, 0, 9)])
        var random = TestRandom(state: 11)
        var outcomes: [String: Int] = [:]
        for (k, source) in [try validPNG, interlaced, palette].enumerated() {
            for n in stride(from: 0, to: source.count, by: 1) {
                assertDataErrorOrSuccess("source \(k) prefix \(n)") { _ = try PNGReader.decodeGray(source.prefix(n)) }
            }
            // Chunk offsets, to repair CRCs after corrupting a chunk's data.
            var chunks: [Int] = []
            var offset = 8
            let bytes = [UInt8](source)
            while offset + 12 <= bytes.count {
                chunks.append(offset)
                offset += 12 + Int(bigEndianUInt32(bytes, offset))
            }
            for trial in 0..<400 {
                var data = source
                for _ in 0..<(1 + random.int(3)) { data[data.startIndex + 8 + random.int(data.count - 8)] = random.byte() }
                if trial % 2 == 0 {
                    for chunk in chunks {
                        let length = Int(bigEndianUInt32([UInt8](data), chunk))
                        if chunk + 12 + length <= data.count { fixCRC(&data, chunkAt: chunk) }
                    }
                }
                do {
                    _ = try PNGReader.decodeGray(data)
                    outcomes["success", default: 0] += 1
                } catch let error as DataError {
                    outcomes[error.kind.rawValue + (error.problem.contains("CRC") ? " (CRC)" : ""), default: 0] += 1
                } catch {
                    XCTFail("source \(k) trial \(trial): \(error)")
                }
            }
        }
        // With repaired CRCs the corruption reaches the header checks, zlib and the unfiltering.
        for outcome in ["success", "corruptImage (CRC)", "corruptCompressedData", "invalidHeader"] {
            XCTAssertGreaterThan(outcomes[outcome] ?? 0, 0, "\(outcome) in \(outcomes)")
        }
    }
}
