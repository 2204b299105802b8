import Foundation
import GenFormats
import GenTestSupport
import XCTest
import GenTensor
import GenData

/// .npy files: round trips, files written by NumPy 2.4 (embedded), and every error case.
final class NPYTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    // Written by `np.save` (NumPy 2.4.6):
    /// np.arange(24, dtype=np.uint8).reshape(2, 1, 3, 4) * 10
    static let uint8N1HW = "k05VTVBZAQB2AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDEsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAChQeKDI8RlBaZG54goyWoKq0vsjS3OY="
    /// The same array with `np.lib.format.write_array(..., version=(2, 0))`.
    static let uint8Version2 = "k05VTVBZAgB0AAAAeydkZXNjcic6ICd8dTEnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMSwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAChQeKDI8RlBaZG54goyWoKq0vsjS3OY="
    /// (np.arange(24, dtype=np.float32) / 23).reshape(2, 3, 4)
    static let float32NHW = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAQxYyPUMWsj2ykAU+QxYyPtObXj6ykIU+etObPkMWsj4LWcg+05vePpze9D6ykAU/FrIQP3rTGz/f9CY/QxYyP6c3PT8LWUg/b3pTP9ObXj84vWk/nN50PwAAgD8="
    /// (np.arange(6, dtype=np.float64) / 7).reshape(1, 2, 3, 1)
    static let float64NHW1 = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDIsIDMsIDEpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAJIkSZIkScI/kiRJkiRJ0j/btm3btm3bP5IkSZIkSeI/t23btm3b5j8="
    /// np.asfortranarray of the float32 array
    static let fortran = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAspAFP0MWMj5DFjI/QxayPtObXj9DFjI9FrIQP9ObXj6nNz0/C1nIPji9aT9DFrI9etMbP7KQhT4LWUg/05vePpzedD+ykAU+3/QmP3rTmz5velM/nN70PgAAgD8="
    /// The float32 array as big-endian '>f4'
    static let bigEndian = "k05VTVBZAQB2AHsnZGVzY3InOiAnPmY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAPTIWQz2yFkM+BZCyPjIWQz5em9M+hZCyPpvTej6yFkM+yFkLPt6b0z703pw/BZCyPxCyFj8b03o/JvTfPzIWQz89N6c/SFkLP1N6bz9em9M/ab04P3TenD+AAAA="
    /// np.array([3, -1, 7], dtype=np.int64)
    static let int64Vector = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoDAAAAAAAAAP//////////BwAAAAAAAAA="

    private func file(_ base64: String, _ name: String) throws -> URL {
        let url = folder.appendingPathComponent(name)
        try writeFile(try XCTUnwrap(Data(base64Encoded: base64)), url)
        return url
    }

    func testReadsNumPyFiles() throws {
        let expectedBytes = (0..<24).map { Float($0 * 10) / 255 }
        for (base64, name) in [(Self.uint8N1HW, "u8.npy"), (Self.uint8Version2, "v2.npy")] {
            let images = try NPY.readImages(try file(base64, name))
            XCTAssertEqual(images.shape, [2, 3, 4, 1])
            XCTAssertEqual(images.scalars(as: Float.self), expectedBytes)
        }
        let floats = try NPY.readImages(try file(Self.float32NHW, "f4.npy"))
        XCTAssertEqual(floats.shape, [2, 3, 4, 1])
        XCTAssertEqual(floats.scalars(as: Float.self), (0..<24).map { Float($0) / 23 })
        let doubles = try NPY.readImages(try file(Self.float64NHW1, "f8.npy"))
        XCTAssertEqual(doubles.shape, [1, 2, 3, 1])
        XCTAssertEqual(doubles.scalars(as: Float.self), (0..<6).map { Float(Double($0) / 7) })
        let integers = try NPY.read(try file(Self.int64Vector, "i8.npy"))
        XCTAssertEqual(integers.shape, [3])
        XCTAssertEqual(integers.scalars(as: Int64.self), [3, -1, 7])
        let generic = try NPY.read(try file(Self.float64NHW1, "f8b.npy"))
        XCTAssertEqual(generic.dtype, .float64)
        XCTAssertEqual(generic.shape, [1, 2, 3, 1])
    }

    func testRoundTrip() throws {
        var random = TestRandom(state: 5)
        let values = (0..<(3 * 28 * 28)).map { _ in Float(random.next() % 1000) / 999 }
        let images = Tensor(values, shape: [3, 28, 28, 1])
        let url = folder.appendingPathComponent("images.npy")
        try NPY.writeImages(images, to: url)
        let back = try NPY.readImages(url)
        XCTAssertEqual(back.shape, [3, 28, 28, 1])
        XCTAssertEqual(back.scalars(as: Float.self), values)
        // The header is NumPy's, and the data starts at a multiple of 64.
        let bytes = try Data(contentsOf: url)
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        XCTAssertEqual(bytes.count, 10 + headerLength + values.count * 4)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 28, 28), }"), header)
        XCTAssertTrue(header.hasSuffix("\n"))
        // A 1-D int64 tensor round trips through the generic writer and reader.
        let labels = Tensor([Int64(4), -2, 9], shape: [3])
        let labelsURL = folder.appendingPathComponent("labels.npy")
        try NPY.write(labels, to: labelsURL)
        XCTAssertEqual(try NPY.read(labelsURL).scalars(as: Int64.self), [4, -2, 9])
        XCTAssertEqual(try NPY.readArray(labelsURL).shape, [3])
    }

    func testErrors() throws {
        let good = try XCTUnwrap(Data(base64Encoded: Self.float32NHW))
        let url = folder.appendingPathComponent("bad.npy")
        func expect(_ kind: DataError.Kind, _ data: Data, _ text: String, line: UInt = #line) throws {
            try writeFile(data, url)
            assertDataError(kind, naming: url.path, { try NPY.readImages(url) }, line: line)
            do { _ = try NPY.readImages(url) } catch let error as DataError {
                XCTAssertTrue(error.problem.contains(text), "\(error)", line: line)
            }
        }
        try expect(.truncated, good.dropLast(5), "truncated")
        try expect(.truncated, good.prefix(50), "truncated")
        try expect(.truncated, good.prefix(9), "truncated")
        try expect(.countMismatch, good + Data([0, 0, 0, 0]), "after the data")
        try expect(.wrongMagic, Data("PK\u{3}\u{4} a zip file".utf8), "magic")
        try expect(.wrongMagic, Data(), "magic")
        try expect(.unsupported, try XCTUnwrap(Data(base64Encoded: Self.fortran)), "fortran_order")
        try expect(.unsupported, try XCTUnwrap(Data(base64Encoded: Self.bigEndian)), "'>f4'")
        try expect(.unsupported, try XCTUnwrap(Data(base64Encoded: Self.int64Vector)), "shape [3]")
        var badHeader = good
        badHeader[badHeader.startIndex + 10] = UInt8(ascii: "[")
        try expect(.invalidHeader, badHeader, "invalid .npy header")
        var noShape = good
        let range = try XCTUnwrap(noShape.range(of: Data("'shape'".utf8)))
        noShape.replaceSubrange(range, with: Data("'shapo'".utf8))
        try expect(.invalidHeader, noShape, "'shape'")
        var version = good
        version[version.startIndex + 6] = 9
        try expect(.unsupported, version, "version 9")
        let missing = folder.appendingPathComponent("missing.npy")
        assertDataError(.notFound, naming: missing.path) { try NPY.readImages(missing) }
        assertDataError(.invalidArgument, naming: url.path) { try NPY.writeImages(Tensor.zeros([2, 3]), to: url) }
    }

    func testFuzzedFilesNeverCrash() throws {
        let good = try XCTUnwrap(Data(base64Encoded: Self.uint8N1HW))
        for n in 0..<good.count {
            assertDataErrorOrSuccess("prefix \(n)") { _ = try NPY.decode(good.prefix(n), path: "fuzz") }
        }
        var random = TestRandom(state: 9)
        for trial in 0..<500 {
            var data = good
            for _ in 0..<(1 + random.int(3)) { data[data.startIndex + random.int(80)] = random.byte() }
            assertDataErrorOrSuccess("trial \(trial)") { _ = try NPY.decode(data, path: "fuzz") }
        }
    }
}
