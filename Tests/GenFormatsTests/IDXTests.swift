import Foundation
import GenData
@testable import GenFormats
import GenTestSupport
import XCTest
@testable import GenTensor

/// IDX files written by the test (raw and gzipped, both MNIST spellings) and every error case.
final class IDXTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    /// `count` images of `side` x `side` whose bytes follow a formula, and labels `i % 10`.
    private func sample(count: Int, side: Int = 28, offset: Int = 0) -> (IDXArray, IDXArray) {
        let bytes = (0..<(count * side * side)).map { UInt8(truncatingIfNeeded: $0 * 7 + offset) }
        let labels = (0..<count).map { UInt8(($0 + offset) % 10) }
        return (IDXArray(dimensions: [count, side, side], bytes: bytes), IDXArray(dimensions: [count], bytes: labels))
    }

    private func checkDataset(_ data: ImageDataset, _ images: IDXArray, _ labels: IDXArray) {
        XCTAssertEqual(data.images.shape, [images.dimensions[0], images.dimensions[1], images.dimensions[2], 1])
        XCTAssertEqual(data.images.scalars(as: Float.self), images.bytes.map { Float($0) / 255 })
        XCTAssertEqual(data.labels?.scalars(as: Int64.self), labels.bytes.map { Int64($0) })
    }

    /// The MNIST layout: raw files with the dotted names for train, gzipped standard names for test.
    func testRawAndGzippedFolder() throws {
        let (trainImages, trainLabels) = sample(count: 7)
        let (testImages, testLabels) = sample(count: 3, offset: 5)
        try IDX.write(trainImages, to: folder.appendingPathComponent("train-images.idx3-ubyte"))
        try IDX.write(trainLabels, to: folder.appendingPathComponent("train-labels.idx1-ubyte"))
        try IDX.write(testImages, to: folder.appendingPathComponent("t10k-images-idx3-ubyte.gz"), gzip: true)
        try IDX.write(testLabels, to: folder.appendingPathComponent("t10k-labels-idx1-ubyte.gz"), gzip: true)
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("t10k-images-idx3-ubyte.gz")).prefix(2), Data([0x1f, 0x8b]))

        checkDataset(try ImageDataset.load(directory: folder, split: .train), trainImages, trainLabels)
        checkDataset(try ImageDataset.load(directory: folder, split: .test), testImages, testLabels)
        XCTAssertEqual(try IDX.readImages(folder.appendingPathComponent("t10k-images-idx3-ubyte.gz")), testImages)
        XCTAssertEqual(try IDX.readLabels(folder.appendingPathComponent("train-labels.idx1-ubyte")), trainLabels)
    }

    /// Labels are optional; other sizes are resized.
    func testImagesWithoutLabelsAndResize() throws {
        let (images, _) = sample(count: 2, side: 8)
        try IDX.write(images, to: folder.appendingPathComponent("train-images-idx3-ubyte"))
        let data = try ImageDataset.load(directory: folder, split: .train, imageSize: 4)
        XCTAssertNil(data.labels)
        XCTAssertEqual(data.images.shape, [2, 4, 4, 1])
        let b = images.bytes.map { Float($0) / 255 }
        let mean = (b[0] + b[1] + b[8] + b[9]) / 4
        XCTAssertEqual(data.images.floatPointer[0], mean, accuracy: 1e-6)
    }

    /// A gzip file of several members (as `cat a.gz b.gz` makes) reads as their concatenation.
    func testMultiMemberGzip() throws {
        let (images, _) = sample(count: 4, side: 5)
        let raw = IDX.encode(images)
        let url = folder.appendingPathComponent("train-images-idx3-ubyte.gz")
        // Split the raw bytes in two and gzip each half on its own.
        let halfA = gzipOnly(Data(raw.prefix(50))), halfB = gzipOnly(Data(raw.dropFirst(50)))
        try writeFile(halfA + halfB, url)
        XCTAssertEqual(try IDX.readImages(url), images)
    }

    /// A gzip file of exactly `bytes`.
    private func gzipOnly(_ bytes: Data) -> Data {
        bytes.withUnsafeBytes { deflateBytes($0, gzip: true) }
    }

    func testMissingFolder() {
        let missing = folder.appendingPathComponent("nope")
        assertDataError(.notFound, naming: missing.path) { try ImageDataset.load(directory: missing, split: .train) }
        assertDataError(.notFound, naming: missing.path) { try ImageDataset.fashionMNIST(split: .test, directory: missing) }
    }

    func testEmptyFolder() throws {
        assertDataError(.emptyDirectory, naming: folder.path) { try ImageDataset.load(directory: folder, split: .train) }
        // Files that are neither IDX nor PNG do not count.
        try writeFile(Data("hello".utf8), folder.appendingPathComponent("README.txt"))
        assertDataError(.emptyDirectory, naming: folder.path) { try ImageDataset.load(directory: folder, split: .test) }
    }

    func testOtherSplitOnly() throws {
        let (images, labels) = sample(count: 2)
        try IDX.write(images, to: folder.appendingPathComponent("train-images-idx3-ubyte.gz"), gzip: true)
        try IDX.write(labels, to: folder.appendingPathComponent("train-labels-idx1-ubyte.gz"), gzip: true)
        assertDataError(.notFound, naming: folder.path) { try ImageDataset.load(directory: folder, split: .test) }
    }

    func testMissingFile() {
        let url = folder.appendingPathComponent("absent-idx3-ubyte")
        assertDataError(.notFound, naming: url.path) { try IDX.readImages(url) }
    }

    func testTruncatedRaw() throws {
        let (images, labels) = sample(count: 3)
        let url = folder.appendingPathComponent("train-images-idx3-ubyte")
        try writeFile(IDX.encode(images).dropLast(100), url)
        try IDX.write(labels, to: folder.appendingPathComponent("train-labels-idx1-ubyte"))
        assertDataError(.truncated, naming: url.path) { try ImageDataset.load(directory: folder, split: .train) }
        // Cut inside the header, and inside the magic number.
        try writeFile(IDX.encode(images).prefix(9), url)
        assertDataError(.truncated, naming: url.path) { try IDX.readImages(url) }
        try writeFile(Data([0, 0]), url)
        assertDataError(.truncated, naming: url.path) { try IDX.readImages(url) }
    }

    func testTruncatedGzip() throws {
        let (images, _) = sample(count: 3)
        let url = folder.appendingPathComponent("train-images-idx3-ubyte.gz")
        let gz = IDX.encode(images, gzip: true)
        try writeFile(gz.prefix(gz.count / 2), url)
        assertDataError(.corruptCompressedData, naming: url.path) { try ImageDataset.load(directory: folder, split: .train) }
        // A complete gzip file whose content is shorter than its IDX header promises.
        var short = IDX.encode(images)
        short = short.prefix(short.count - 5)
        try writeFile(gzipOnly(short), url)
        assertDataError(.truncated, naming: url.path) { try IDX.readImages(url) }
    }

    func testCorruptGzip() throws {
        let (images, _) = sample(count: 3)
        let url = folder.appendingPathComponent("t10k-images-idx3-ubyte.gz")
        var gz = IDX.encode(images, gzip: true)
        for i in 30..<40 { gz[gz.startIndex + i] ^= 0x5a }
        try writeFile(gz, url)
        assertDataError(.corruptCompressedData, naming: url.path) { try ImageDataset.load(directory: folder, split: .test) }
        // Only the gzip magic, then garbage.
        try writeFile(Data([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), url)
        assertDataError(.corruptCompressedData, naming: url.path) { try IDX.readImages(url) }
        // Garbage after a complete gzip member.
        try writeFile(IDX.encode(images, gzip: true) + Data([1, 2, 3]), url)
        assertDataError(.corruptCompressedData, naming: url.path) { try IDX.readImages(url) }
    }

    func testWrongMagic() throws {
        let (_, labels) = sample(count: 3)
        // A label file under the images' name.
        let url = folder.appendingPathComponent("train-images-idx3-ubyte.gz")
        try IDX.write(labels, to: url, gzip: true)
        assertDataError(.wrongMagic, naming: url.path) { try ImageDataset.load(directory: folder, split: .train) }
        do {
            _ = try IDX.readImages(url)
        } catch let error as DataError {
            XCTAssertTrue(error.description.contains("0x00000801"), error.description)
            XCTAssertTrue(error.description.contains("expected 0x00000803"), error.description)
        }
        // Something that is not IDX at all.
        try writeFile(Data("not an idx file".utf8), url)
        assertDataError(.wrongMagic, naming: url.path) { try IDX.readImages(url) }
    }

    func testMismatchedCounts() throws {
        let (images, _) = sample(count: 5)
        let (_, labels) = sample(count: 4)
        try IDX.write(images, to: folder.appendingPathComponent("train-images-idx3-ubyte"))
        let labelsURL = folder.appendingPathComponent("train-labels-idx1-ubyte.gz")
        try IDX.write(labels, to: labelsURL, gzip: true)
        assertDataError(.countMismatch, naming: labelsURL.path) { try ImageDataset.load(directory: folder, split: .train) }
        do {
            _ = try ImageDataset.load(directory: folder, split: .train)
        } catch let error as DataError {
            XCTAssertTrue(error.description.contains("train-images-idx3-ubyte"), error.description)
            XCTAssertTrue(error.description.contains("4 labels") && error.description.contains("5 images"), error.description)
        }
    }

    func testTrailingBytes() throws {
        let (images, _) = sample(count: 2)
        let url = folder.appendingPathComponent("raw-idx3-ubyte")
        try writeFile(IDX.encode(images) + Data([0]), url)
        assertDataError(.countMismatch, naming: url.path) { try IDX.readImages(url) }
    }

    /// A gzip header claiming far more data than the file could hold fails before allocating it.
    func testHugeHeaderDoesNotAllocate() throws {
        var raw: [UInt8] = [0, 0, 8, 3]
        for d in [UInt32(0xFFFF_FFFF), 0xFFFF, 0xFF] { appendBE(d, &raw) }
        let url = folder.appendingPathComponent("huge-idx3-ubyte.gz")
        try writeFile(gzipOnly(Data(raw)), url)
        assertDataError(.truncated, naming: url.path) { try IDX.readImages(url) }
        let rawURL = folder.appendingPathComponent("huge-idx3-ubyte")
        try writeFile(Data(raw), rawURL)
        assertDataError(.truncated, naming: rawURL.path) { try IDX.readImages(rawURL) }
        // Dimensions whose product overflows.
        raw = [0, 0, 8, 3]
        for d in [UInt32(0xFFFF_FFFF), 0xFFFF_FFFF, 0xFFFF] { appendBE(d, &raw) }
        try writeFile(Data(raw), rawURL)
        assertDataError(.invalidHeader, naming: rawURL.path) { try IDX.readImages(rawURL) }
    }

    /// Truncating or corrupting a gzipped IDX file anywhere gives a DataError, never a crash.
    func testFuzzedFilesNeverCrash() throws {
        let (images, _) = sample(count: 2, side: 6)
        let gz = IDX.encode(images, gzip: true), raw = IDX.encode(images)
        let url = folder.appendingPathComponent("fuzz-idx3-ubyte")
        for source in [gz, raw] {
            for n in 0..<source.count {
                try writeFile(source.prefix(n), url)
                assertDataErrorOrSuccess("prefix \(n)") { _ = try IDX.readImages(url) }
            }
        }
        var random = TestRandom(state: 7)
        for trial in 0..<300 {
            var bytes = trial % 2 == 0 ? gz : raw
            for _ in 0..<(1 + random.int(3)) { bytes[bytes.startIndex + random.int(bytes.count)] = random.byte() }
            try writeFile(bytes, url)
            assertDataErrorOrSuccess("trial \(trial)") { _ = try IDX.readImages(url) }
        }
    }

    private func appendBE(_ v: UInt32, _ out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
    }
}
