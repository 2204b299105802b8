import Foundation
import GenFormats
import GenTestSupport
import XCTest

/// .npz archives: the toolkit's own round trip, archives written by NumPy (stored and deflated,
/// `Tests/Fixtures/npz`, made by `scripts/make-npz-fixtures.py`), and damaged archives.
final class NPZTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    /// The NumPy-written fixtures (not `FIXTURES_DIR`: these belong to the repository).
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/npz", isDirectory: true)

    func fixture(_ name: String) throws -> URL {
        let url = Self.fixtures.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("\(url.path) is missing: run scripts/make-npz-fixtures.py")
            throw CocoaError(.fileNoSuchFile)
        }
        return url
    }

    static func bytes<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }

    /// The fixtures' statistics, as the script writes them.
    static let mu: [Double] = [-0.25, -0.125, 0, 0.125]
    static let sigma: [Double] = [0.2109375, -0.0078125, -0.2265625, -0.4453125, -0.0078125, 0.0234375, 0.0546875, 0.0859375,
                                  -0.2265625, 0.0546875, 0.3359375, 0.6171875, -0.4453125, 0.0859375, 0.6171875, 1.1484375]

    func testRoundTripIsBitExact() throws {
        let specials: [Double] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1.0 / 3]
        let arrays: [String: NPYArray] = [
            "mu": NPYArray(elementType: .float64, shape: [8], data: Self.bytes(specials)),
            "sigma": NPYArray(elementType: .float64, shape: [3, 3], data: Self.bytes((0..<9).map { Double($0).squareRoot() })),
            "f": NPYArray(elementType: .float32, shape: [2, 1, 2], data: Self.bytes([Float(0.1), -2, .pi, .nan])),
            "i": NPYArray(elementType: .int64, shape: [3], data: Self.bytes([Int64.min, 0, Int64.max])),
            "u": NPYArray(elementType: .uint8, shape: [0], data: Data()),
        ]
        let url = folder.appendingPathComponent("round.npz")
        try NPZ.write(arrays, to: url)
        let back = try NPZ.read(url)
        XCTAssertEqual(Set(back.keys), Set(arrays.keys))
        for (key, array) in arrays {
            let other = try XCTUnwrap(back[key])
            XCTAssertEqual(other.elementType, array.elementType, key)
            XCTAssertEqual(other.shape, array.shape, key)
            XCTAssertEqual(other.data, array.data, key)  // bit for bit, NaN payloads and -0 included
        }
        // Stored members, the whole .npy inside: the archive starts with a local header for mu.npy... in key order.
        let raw = try Data(contentsOf: url)
        XCTAssertEqual(Array(raw.prefix(4)), [0x50, 0x4b, 0x03, 0x04])
        XCTAssertEqual(String(decoding: raw[30..<35], as: UTF8.self), "f.npy")
    }

    func testReadsNumPyArchives() throws {
        for name in ["stats-stored.npz", "stats-compressed.npz"] {
            let arrays = try NPZ.read(try fixture(name))
            XCTAssertEqual(arrays.keys.sorted(), ["mu", "sigma"], name)
            let mu = try XCTUnwrap(arrays["mu"]), sigma = try XCTUnwrap(arrays["sigma"])
            XCTAssertEqual(mu.elementType, .float64, name)
            XCTAssertEqual(mu.shape, [4], name)
            XCTAssertEqual(mu.data, Self.bytes(Self.mu), name)
            XCTAssertEqual(sigma.shape, [4, 4], name)
            XCTAssertEqual(sigma.data, Self.bytes(Self.sigma), name)
        }
        let mixed = try NPZ.read(try fixture("mixed-compressed.npz"))
        XCTAssertEqual(mixed.keys.sorted(), ["a", "b", "c"])
        XCTAssertEqual(mixed["a"]?.elementType, .float32)
        XCTAssertEqual(mixed["a"]?.shape, [2, 3])
        XCTAssertEqual(mixed["a"]?.data, Self.bytes((0..<6).map { Float($0) / 4 }))
        XCTAssertEqual(mixed["b"]?.data, Self.bytes([Int64(3), -1, 7, 0, 1 << 40]))
        XCTAssertEqual(mixed["c"]?.elementType, .uint8)
        XCTAssertEqual(mixed["c"]?.data, Data((0..<9).map { UInt8($0 * 20) }))
    }

    func testDamagedArchivesGiveErrors() throws {
        let stored = try Data(contentsOf: try fixture("stats-stored.npz"))
        let deflated = try Data(contentsOf: try fixture("stats-compressed.npz"))
        func expect(_ kind: DataError.Kind, _ data: Data, _ text: String, line: UInt = #line) throws {
            let url = folder.appendingPathComponent("bad.npz")
            try writeFile(data, url)
            do {
                _ = try NPZ.read(url)
                XCTFail("expected a \(kind) error", line: line)
            } catch let error as DataError {
                XCTAssertEqual(error.kind, kind, "\(error)", line: line)
                XCTAssertTrue(error.description.contains(url.path) && error.description.contains(text), "\(error)", line: line)
            }
        }
        try expect(.wrongMagic, Data("{'mu': 0}".utf8), "zip signature")
        try expect(.truncated, stored.prefix(stored.count / 2), "end-of-directory")
        // A flipped bit in mu.npy's data (its last byte, before sigma's local header): the CRC-32 catches it.
        let sigmaHeader = try XCTUnwrap(stored.range(of: Data([0x50, 0x4b, 0x03, 0x04]), in: 4..<stored.count)).lowerBound
        var flipped = stored
        flipped[sigmaHeader - 1] ^= 0x01
        try expect(.corruptCompressedData, flipped, "CRC-32")
        // A deflated member cut short inside the archive: its stream ends early.
        let central = try XCTUnwrap(deflated.range(of: Data([0x50, 0x4b, 0x01, 0x02]))).lowerBound
        var garbled = deflated
        for i in 60..<80 where i < central { garbled[i] ^= 0x5a }
        XCTAssertThrowsError(try NPZ.decode(garbled, path: "garbled.npz")) { XCTAssertTrue("\($0)".contains("garbled.npz"), "\($0)") }
        // An unknown compression method in the central directory.
        var method = stored
        let entry = try XCTUnwrap(stored.range(of: Data([0x50, 0x4b, 0x01, 0x02]))).lowerBound
        method[entry + 10] = 12  // bzip2
        try expect(.unsupported, method, "method 12")
        // Random (seeded) damage anywhere never traps.
        var generator = SplitMix(state: 26)
        for _ in 0..<300 {
            var copy = Bool.random(using: &generator) ? stored : deflated
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                copy[Int.random(in: 0..<copy.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            assertDataErrorOrSuccess("damaged npz") { _ = try NPZ.decode(copy, path: "x.npz") }
        }
    }
}

/// SplitMix64, for reproducible damage.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
