@testable import GenFormats
import Foundation
import GenTestSupport
import XCTest
@testable import GenTensor
import GenData

final class SafeTensorsTests: XCTestCase {
    /// A fresh folder per test for the files the test writes.
    private var directory = URL(fileURLWithPath: NSTemporaryDirectory())

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("SafeTensorsTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Helpers

    /// Writes `bytes` to a file named `name` in the test folder.
    private func rawFile(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// A safetensors file made by hand: the header length (the header's size unless `declaredLength`
    /// says otherwise), the header text, then `data`.
    private func craftedFile(_ name: String, header: String, data: [UInt8] = [],
                             declaredLength: UInt64? = nil) throws -> URL {
        let headerBytes = Array(header.utf8)
        let length = declaredLength ?? UInt64(headerBytes.count)
        var bytes = withUnsafeBytes(of: length.littleEndian) { Array($0) }
        bytes += headerBytes
        bytes += data
        return try rawFile(name, bytes)
    }

    /// The little-endian bytes of `values`.
    private func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    }

    /// Asserts that `body` throws a `SafeTensorsError` of `kind` whose description names the file and
    /// contains each of `words` (case-insensitively).
    private func assertFails(_ url: URL, _ kind: SafeTensorsError.Kind, mentioning words: [String],
                             file: StaticString = #filePath, line: UInt = #line,
                             _ body: (URL) throws -> Void = { _ = try SafeTensorsFile(contentsOf: $0) }) {
        do {
            try body(url)
            XCTFail("expected a \(kind) error for \(url.lastPathComponent), got none", file: file, line: line)
        } catch let error as SafeTensorsError {
            let text = error.description
            XCTAssertEqual(error.kind, kind, "wrong kind: \(text)", file: file, line: line)
            XCTAssertTrue(text.contains(url.lastPathComponent), "the message does not name the file: \(text)",
                          file: file, line: line)
            for word in words {
                XCTAssertTrue(text.lowercased().contains(word.lowercased()),
                              "the message does not mention '\(word)': \(text)", file: file, line: line)
            }
        } catch {
            XCTFail("expected a SafeTensorsError, got \(error)", file: file, line: line)
        }
    }

    /// The raw bytes of a tensor's elements.
    private func elementBytes(_ tensor: Tensor) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: tensor.storage.pointer, count: tensor.elementCount * tensor.dtype.byteSize))
    }

    /// The fixtures folder: `FIXTURES_DIR`, else the repository's `Tests/Fixtures`.
    /// Throws (failing the test with a clear message) when the folder is missing.
    private func fixturesDirectory() throws -> URL {
        let url = FixtureFiles.directory.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            let message = FixtureFiles.missingMessage(url.path)
            throw FixturesMissing(message: message)
        }
        return url
    }

    private struct FixturesMissing: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    // MARK: Round trip

    func testRoundTripIsBitExact() throws {
        let nanWithPayload = Float(bitPattern: 0x7fc0_1234)
        let tensors: [String: Tensor] = [
            "f32": Tensor([1.5, -0.0, .infinity, -.infinity, nanWithPayload, .leastNonzeroMagnitude] as [Float], shape: [2, 3]),
            "f64": Tensor([.pi, -1e300, .leastNonzeroMagnitude, Double(bitPattern: 0x7ff8_0000_dead_beef)] as [Double],
                          shape: [2, 1, 2]),
            "i64": Tensor([.min, -1, 0, .max] as [Int64], shape: [4]),
            "scalar.f32": Tensor(scalar: Float(42.25)),
            "scalar.i64": Tensor(scalar: Int64(-7)),
            "empty.f32": Tensor(uninitializedShape: [0, 5], dtype: .float32),
            "empty.f64": Tensor(uninitializedShape: [0], dtype: .float64),
            "odd \"name\" é": Tensor([3] as [Float], shape: [1]),
        ]
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t bell \u{7} unicode é 日本 😀"]
        let url = directory.appendingPathComponent("round trip.safetensors")
        try SafeTensorsFile.write(tensors, metadata: metadata, to: url)

        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.names, tensors.keys.sorted())
        XCTAssertEqual(file.metadata, metadata)
        for (name, original) in tensors {
            XCTAssertTrue(file.contains(name))
            let read = try file.tensor(name)
            XCTAssertEqual(read.dtype, original.dtype, name)
            XCTAssertEqual(read.shape, original.shape, name)
            XCTAssertEqual(elementBytes(read), elementBytes(original), "\(name) is not bit-exact")
        }
        let all = try file.allTensors()
        XCTAssertEqual(all.keys.sorted(), file.names)
        XCTAssertEqual(try file.entry("scalar.i64").shape, [])
        XCTAssertFalse(file.contains("missing"))

        // The layout: 8-byte aligned header padded with spaces, data in name order, tightly packed.
        let bytes = try Data(contentsOf: url)
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(headerLength % 8, 0)
        let header = bytes.subdata(in: 8 ..< 8 + headerLength)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: header) as? [String: Any])
        XCTAssertEqual(json["__metadata__"] as? [String: String], metadata)
        var offset = 0
        for name in tensors.keys.sorted() {
            let entry = try XCTUnwrap(json[name] as? [String: Any], name)
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int], name)
            XCTAssertEqual(offsets.first, offset, name)
            offset = offsets.last ?? -1
        }
        XCTAssertEqual(bytes.count, 8 + headerLength + offset)
    }

    func testWriteWithoutMetadataOmitsIt() throws {
        let url = directory.appendingPathComponent("plain.safetensors")
        try SafeTensorsFile.write(["w": Tensor([1, 2] as [Float])], to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, [:])
        let text = String(decoding: try Data(contentsOf: url).dropFirst(8), as: UTF8.self)
        XCTAssertFalse(text.contains("__metadata__"))
    }

    func testWritingAReservedNameFails() {
        let url = directory.appendingPathComponent("reserved.safetensors")
        assertFails(url, .invalidArgument, mentioning: ["__metadata__"]) { url in
            try SafeTensorsFile.write(["__metadata__": Tensor([1] as [Float])], to: url)
        }
    }

    // MARK: Fixtures

    func testVAEParamsFixture() throws {
        let url = try fixturesDirectory().appendingPathComponent("vae.params.safetensors")
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertTrue(file.contains("fc1.weight"))
        let weight = try file.tensor("fc1.weight")
        XCTAssertEqual(weight.shape, [400, 784])
        XCTAssertEqual(weight.dtype, .float32)
        let values = weight.scalars(as: Float.self)
        XCTAssertTrue(values.allSatisfy { $0.isFinite })
        XCTAssertTrue(values.contains { $0 != 0 })

        XCTAssertEqual(try file.loadTensor("fc1.weight", expectedShape: [400, 784]).shape, [400, 784])
        assertFails(url, .shapeMismatch, mentioning: [
            "tensor fc1.weight has shape [400,784] in \(url.path) but the model expects [784,400]",
        ]) { _ in _ = try file.loadTensor("fc1.weight", expectedShape: [784, 400]) }
    }

    func testVAEParamsRewriteMatchesTheReferenceWriterByteForByte() throws {
        // vae.params holds only F32 tensors and no metadata, so the reference writer's order
        // (dtype, then name) is name order and its header is the one this writer produces.
        let url = try fixturesDirectory().appendingPathComponent("vae.params.safetensors")
        let copy = directory.appendingPathComponent("vae.copy.safetensors")
        try SafeTensorsFile.write(try SafeTensorsFile(contentsOf: url).allTensors(), to: copy)
        XCTAssertEqual(try Data(contentsOf: copy), try Data(contentsOf: url))
    }

    func testDCGANGeneratorHasInt64NumBatchesTracked() throws {
        let url = try fixturesDirectory().appendingPathComponent("dcgan_g.params.safetensors")
        let file = try SafeTensorsFile(contentsOf: url)
        let counters = file.names.filter { $0.hasSuffix("num_batches_tracked") }
        XCTAssertFalse(counters.isEmpty, "no num_batches_tracked in \(file.names)")
        for name in counters {
            XCTAssertEqual(try file.entry(name).dtype, "I64")
            let counter = try file.tensor(name)
            XCTAssertEqual(counter.dtype, .int64, name)
            XCTAssertEqual(counter.shape, [], name)
            XCTAssertGreaterThanOrEqual(counter.item, 0, name)
        }
    }

    func testEveryFixtureFileLoadsAndRoundTrips() throws {
        let folder = try fixturesDirectory()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10, "fixtures: \(files)")
        for name in files {
            let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent(name))
            XCTAssertFalse(file.names.isEmpty, name)
            let tensors = try file.allTensors()
            for (tensorName, tensor) in tensors {
                XCTAssertEqual(tensor.shape, try file.entry(tensorName).shape, "\(name): \(tensorName)")
            }
            // Rewriting and rereading keeps every value, bit for bit, and the metadata.
            let copy = directory.appendingPathComponent(name)
            try SafeTensorsFile.write(tensors, metadata: file.metadata, to: copy)
            let reread = try SafeTensorsFile(contentsOf: copy)
            XCTAssertEqual(reread.metadata, file.metadata, name)
            for (tensorName, tensor) in tensors {
                let again = try reread.tensor(tensorName)
                XCTAssertEqual(again.dtype, tensor.dtype, "\(name): \(tensorName)")
                XCTAssertEqual(elementBytes(again), elementBytes(tensor), "\(name): \(tensorName)")
            }
        }
        let metrics = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("metrics.io.safetensors"))
        XCTAssertNotNil(metrics.metadata["fid"])
        XCTAssertEqual(try metrics.tensor("fid").dtype, .float64)
        let vaeIO = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("vae.io.safetensors"))
        let x = try vaeIO.tensor("x")
        XCTAssertEqual(Array(x.shape.dropFirst()), [1, 28, 28])
        XCTAssertTrue(x.scalars(as: Float.self).allSatisfy { (0 ... 1).contains($0) }, "vae.io x must lie in [0, 1]")
    }

    // MARK: Half precision

    func testFloat16Decoding() throws {
        let bits: [UInt16] = [0x3c00, 0xc100, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x0000, 0x8000, 0x03ff, 0x0400, 0x8001]
        let url = try craftedFile("half.safetensors",
                                  header: #"{"h":{"dtype":"F16","shape":[3,4],"data_offsets":[0,24]}}"#,
                                  data: littleEndianBytes(bits))
        let tensor = try SafeTensorsFile(contentsOf: url).tensor("h")
        XCTAssertEqual(tensor.dtype, .float32)
        XCTAssertEqual(tensor.shape, [3, 4])
        let v = tensor.scalars(as: Float.self)
        XCTAssertEqual(v[0], 1.0)
        XCTAssertEqual(v[1], -2.5)
        XCTAssertEqual(v[2], 65504)
        XCTAssertEqual(v[3], Float(sign: .plus, exponent: -24, significand: 1))  // smallest subnormal
        XCTAssertEqual(v[4], .infinity)
        XCTAssertEqual(v[5], -.infinity)
        XCTAssertTrue(v[6].isNaN)
        XCTAssertEqual(v[7].bitPattern, 0)  // +0
        XCTAssertEqual(v[8].bitPattern, 0x8000_0000)  // -0
        XCTAssertEqual(v[9], 1023 * Float(sign: .plus, exponent: -24, significand: 1))  // largest subnormal
        XCTAssertEqual(v[10], Float(sign: .plus, exponent: -14, significand: 1))  // smallest normal
        XCTAssertEqual(v[11], -Float(sign: .plus, exponent: -24, significand: 1))
    }

    func testFloat16ConversionMatchesTheStandardLibraryForEveryBitPattern() throws {
        #if arch(x86_64) && (os(macOS) || targetEnvironment(macCatalyst))
        throw XCTSkip("Float16 is unavailable on x86_64 macOS")
        #else
        var mismatches: [String] = []
        for raw in 0 ... UInt16.max {
            let mine = SafeTensorsFile.halfToFloat(raw)
            let reference = Float(Float16(bitPattern: raw))
            let same = reference.isNaN ? mine.isNaN && mine.sign == reference.sign : mine.bitPattern == reference.bitPattern
            if !same { mismatches.append("0x\(String(raw, radix: 16)): \(mine) instead of \(reference)") }
        }
        XCTAssertEqual(mismatches.count, 0, "first mismatches: \(mismatches.prefix(5))")
        #endif
    }

    /// Narrowing to float16 rounds as the standard library does: every half's exact value, the
    /// midpoints between neighbouring halves (ties to even), values just off them, and the ranges
    /// beyond (infinity, subnormals, zero).
    func testFloat16EncodingMatchesTheStandardLibrary() throws {
        #if arch(x86_64) && (os(macOS) || targetEnvironment(macCatalyst))
        throw XCTSkip("Float16 is unavailable on x86_64 macOS")
        #else
        var values: [Float] = [70_000, -1e9, .infinity, -.infinity, 1e-9, -3e-8, 2.98e-8, 65_520, 65_519.99]
        for raw in 0 ..< UInt16.max where Float16(bitPattern: raw).isFinite {
            let here = Float(Float16(bitPattern: raw)), next = Float(Float16(bitPattern: raw + 1))
            values.append(here)
            if next.isFinite && (here.sign == next.sign) {
                let middle = (here + next) / 2
                values += [middle, middle.nextUp, middle.nextDown]
            }
        }
        var mismatches: [String] = []
        for value in values where SafeTensorsFile.floatToHalf(value) != Float16(value).bitPattern {
            mismatches.append("\(value): 0x\(String(SafeTensorsFile.floatToHalf(value), radix: 16)) instead of 0x\(String(Float16(value).bitPattern, radix: 16))")
        }
        XCTAssertEqual(mismatches.count, 0, "first mismatches: \(mismatches.prefix(5))")
        XCTAssertTrue(Float(Float16(bitPattern: SafeTensorsFile.floatToHalf(.nan))).isNaN)
        #endif
    }

    /// `write(float16: true)` stores float32 tensors as F16 (half the bytes) that read back as the
    /// nearest halves; other dtypes are kept; a finite value beyond float16's range is refused.
    func testWritingFloat16HalvesTheFloatsAndReadsBackTheNearestHalves() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st16-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let weights = Tensor.normal([64, 32], generator: RandomGenerator(seed: 3))
        let steps = Tensor([Int64(7), 1 << 40], shape: [2])
        let full = dir.appendingPathComponent("full.safetensors"), half = dir.appendingPathComponent("half.safetensors")
        try SafeTensorsFile.write(["w": weights, "n": steps], to: full)
        try SafeTensorsFile.write(["w": weights, "n": steps], to: half, float16: true)
        let size = { (url: URL) in try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) }
        XCTAssertEqual(Double(try size(full) - (try size(half))), Double(64 * 32 * 2), accuracy: 8, "two bytes fewer per float, up to the header")
        let file = try SafeTensorsFile(contentsOf: half)
        XCTAssertEqual(try file.entry("w").dtype, "F16")
        let read = try file.tensor("w")
        XCTAssertEqual(read.dtype, .float32)
        XCTAssertEqual(read.shape, [64, 32])
        for (value, back) in zip(weights.scalars(as: Float.self), read.scalars(as: Float.self)) {
            XCTAssertEqual(back, SafeTensorsFile.halfToFloat(SafeTensorsFile.floatToHalf(value)))
            XCTAssertLessThanOrEqual(abs(back - value), abs(value) * 0x1p-11 + 0x1p-25)
        }
        XCTAssertEqual(try file.tensor("n").scalars(as: Int64.self), [7, 1 << 40], "int64 kept")
        XCTAssertThrowsError(try SafeTensorsFile.write(["big": Tensor([Float(1e5)], shape: [1])], to: dir.appendingPathComponent("big.safetensors"),
                                                       float16: true)) { error in
            XCTAssertTrue("\(error)".contains("beyond float16's range"), "\(error)")
        }
    }

    func testBFloat16Decoding() throws {
        let bits: [UInt16] = [0x3f80, 0xc020, 0x477f, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x0000, 0x8000]
        let url = try craftedFile("bf16.safetensors",
                                  header: #"{"b":{"dtype":"BF16","shape":[9],"data_offsets":[0,18]}}"#,
                                  data: littleEndianBytes(bits))
        let tensor = try SafeTensorsFile(contentsOf: url).tensor("b")
        XCTAssertEqual(tensor.dtype, .float32)
        let v = tensor.scalars(as: Float.self)
        XCTAssertEqual(v[0], 1.0)
        XCTAssertEqual(v[1], -2.5)
        XCTAssertEqual(v[2], 65280)  // 65504 rounded down to bfloat16's 8-bit significand
        XCTAssertEqual(v[3], Float(sign: .plus, exponent: -133, significand: 1))  // smallest subnormal
        XCTAssertEqual(v[4], .infinity)
        XCTAssertEqual(v[5], -.infinity)
        XCTAssertTrue(v[6].isNaN)
        XCTAssertEqual(v[7].bitPattern, 0)
        XCTAssertEqual(v[8].bitPattern, 0x8000_0000)
    }

    // MARK: Bad inputs

    func testFileShorterThanEightBytes() throws {
        assertFails(try rawFile("tiny.safetensors", [1, 2, 3]), .truncated, mentioning: ["truncated", "3 bytes"])
        assertFails(try rawFile("empty.safetensors", []), .truncated, mentioning: ["truncated"])
    }

    func testFileShorterThanHeaderPlusData() throws {
        let url = directory.appendingPathComponent("cut.safetensors")
        try SafeTensorsFile.write(["a": Tensor([1, 2, 3, 4] as [Float]), "b": Tensor([5, 6] as [Double])], to: url)
        let whole = try Data(contentsOf: url)
        try whole.dropLast(5).write(to: url)
        assertFails(url, .truncated, mentioning: ["truncated", "'b'"])
        // Cut inside the header too.
        try whole.prefix(20).write(to: url)
        assertFails(url, .truncated, mentioning: ["truncated", "header length"])
    }

    func testHeaderLengthLongerThanTheFile() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        assertFails(try craftedFile("long.safetensors", header: header, data: [0, 0, 0, 0], declaredLength: 1000),
                    .truncated, mentioning: ["header length 1000"])
        // Lengths near the top of the range must not overflow any arithmetic.
        for length in [UInt64.max, UInt64(Int64.max), UInt64(Int64.max) + 1, UInt64.max - 7] {
            assertFails(try craftedFile("huge.safetensors", header: header, data: [0, 0, 0, 0], declaredLength: length),
                        .truncated, mentioning: ["header length \(length)"])
        }
    }

    func testInvalidJSON() throws {
        let cases = [
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#,  // unterminated
            #"{"a" {"dtype":"F32"}}"#,
            #"{not json}"#,
            "",
            "{\"a\":1} trailing",
            "{\"a\":\"bad \u{1} control\"}",
            #"{"a":"\ud800"}"#,  // unpaired surrogate
            #"{"a":tru}"#,
            #"{"a":-}"#,
            #"{"a":01}"#,
            String(repeating: "[", count: 100_000),  // deep nesting must not overflow the stack
        ]
        for (i, header) in cases.enumerated() {
            assertFails(try craftedFile("json\(i).safetensors", header: header), .invalidHeader, mentioning: ["JSON"])
        }
        // Invalid UTF-8.
        var bytes = withUnsafeBytes(of: UInt64(4).littleEndian) { Array($0) }
        bytes += [0x7b, 0xff, 0xfe, 0x7d]
        assertFails(try rawFile("utf8.safetensors", bytes), .invalidHeader, mentioning: ["UTF-8"])
    }

    func testHeaderThatIsNotAnObject() throws {
        for (i, header) in ["[1, 2]", "\"text\"", "42", "null"].enumerated() {
            assertFails(try craftedFile("notobject\(i).safetensors", header: header), .invalidHeader,
                        mentioning: ["not a JSON object"])
        }
    }

    func testEntriesWithMissingFields() throws {
        let cases = [
            (#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, "dtype"),
            (#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, "shape"),
            (#"{"a":{"dtype":"F32","shape":[1]}}"#, "data_offsets"),
        ]
        for (i, (header, field)) in cases.enumerated() {
            assertFails(try craftedFile("missing\(i).safetensors", header: header, data: [0, 0, 0, 0]),
                        .invalidHeader, mentioning: ["missing", "'\(field)'", "'a'"])
        }
    }

    func testEntriesWithWrongTypes() throws {
        let cases = [
            (#"{"a":[1,2]}"#, "must be an object"),
            (#"{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#, "'dtype' must be a string"),
            (#"{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, "'shape' must be an array"),
            (#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, "'shape' must be an array"),
            (#"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, "'shape' must be an array"),
            (#"{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}"#, "'shape' must be an array"),
            (#"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}"#, "'shape' must be an array"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}}"#, "'data_offsets' must be an array"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, "'data_offsets' must hold 2"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"k":1}}"#, "must be strings"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":[]}"#, "must be an object"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
             "twice"),
        ]
        for (i, (header, words)) in cases.enumerated() {
            assertFails(try craftedFile("types\(i).safetensors", header: header, data: [0, 0, 0, 0]),
                        .invalidHeader, mentioning: [words])
        }
    }

    func testDataOffsetsWithBeginAfterEnd() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#
        assertFails(try craftedFile("reversed.safetensors", header: header, data: Array(repeating: 0, count: 8)),
                    .invalidOffsets, mentioning: ["begin is after its end"])
        let negative = #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[-4,-4]}}"#
        assertFails(try craftedFile("negative-offsets.safetensors", header: negative), .invalidOffsets,
                    mentioning: ["negative data_offsets"])
    }

    func testDataOffsetsBeyondTheData() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertFails(try craftedFile("beyond.safetensors", header: header, data: Array(repeating: 0, count: 8)),
                    .truncated, mentioning: ["out of range", "'b'"])
        let huge = #"{"a":{"dtype":"U8","shape":[576460752303423488],"data_offsets":[0,576460752303423488]}}"#
        assertFails(try craftedFile("beyond-huge.safetensors", header: huge, data: [0]), .truncated,
                    mentioning: ["out of range"])
    }

    func testOverlappingDataOffsets() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertFails(try craftedFile("overlap.safetensors", header: header, data: Array(repeating: 0, count: 12)),
                    .invalidOffsets, mentioning: ["overlap", "'a'", "'b'"])
        let same = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        assertFails(try craftedFile("overlap-same.safetensors", header: same, data: Array(repeating: 0, count: 4)),
                    .invalidOffsets, mentioning: ["overlap"])
    }

    func testDataNotCoveredContiguously() throws {
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        assertFails(try craftedFile("gap.safetensors", header: gap, data: Array(repeating: 0, count: 12)),
                    .invalidOffsets, mentioning: ["gap"])
        let trailing = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        assertFails(try craftedFile("trailing.safetensors", header: trailing, data: Array(repeating: 0, count: 6)),
                    .invalidOffsets, mentioning: ["2 bytes at the end"])
    }

    func testUnknownDTypeFailsAtOpen() throws {
        let header = #"{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#
        assertFails(try craftedFile("unknown.safetensors", header: header, data: [0, 0, 0, 0]), .unknownDType,
                    mentioning: ["unknown dtype 'F17'", "'a'"])
    }

    func testValidButUnsupportedDTypeFailsWhenRead() throws {
        let header = #"{"i":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"f":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"# + #""q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[8,10]},"p":{"dtype":"F4","shape":[4],"data_offsets":[10,12]}}"#
        let url = try craftedFile("unsupported.safetensors", header: header,
                                  data: littleEndianBytes([Int32(7)]) + littleEndianBytes([Float(2).bitPattern]) + [1, 2, 3, 4])
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(try file.tensor("f").scalars(as: Float.self), [2])
        for name in ["i", "q", "p"] {
            assertFails(url, .unsupportedDType, mentioning: ["unsupported dtype", "'\(name)'"]) { _ in
                _ = try file.tensor(name)
            }
        }
        assertFails(url, .unsupportedDType, mentioning: ["I32"]) { _ in _ = try file.allTensors() }
    }

    func testShapeDisagreesWithByteCount() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#
        assertFails(try craftedFile("size.safetensors", header: header, data: Array(repeating: 0, count: 20)),
                    .sizeMismatch, mentioning: ["'a'", "[2,3]", "24 bytes", "span 20 bytes"])
        let bits = #"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#
        assertFails(try craftedFile("size-bits.safetensors", header: bits, data: [0]), .sizeMismatch,
                    mentioning: ["not a whole number of bytes"])
    }

    func testElementCountOverflow() throws {
        let header = #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#
        assertFails(try craftedFile("overflow.safetensors", header: header, data: [0, 0, 0, 0]), .invalidShape,
                    mentioning: ["overflows"])
        let bytesOverflow = #"{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}}"#
        assertFails(try craftedFile("overflow-bytes.safetensors", header: bytesOverflow, data: [0, 0, 0, 0]),
                    .invalidShape, mentioning: ["overflows"])
    }

    func testNegativeDimension() throws {
        let header = #"{"a":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}"#
        assertFails(try craftedFile("negative.safetensors", header: header, data: Array(repeating: 0, count: 16)),
                    .invalidShape, mentioning: ["negative dimension -1", "[-1,-4]"])
    }

    func testMissingTensorListsAvailableNames() throws {
        let url = directory.appendingPathComponent("names.safetensors")
        var tensors: [String: Tensor] = [:]
        for name in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias", "zeta"] {
            tensors[name] = Tensor([1] as [Float])
        }
        try SafeTensorsFile.write(tensors, to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        assertFails(url, .missingTensor, mentioning: ["no tensor named 'fc1.weigth'", "7 tensors", "'fc1.weight'", "..."]) { _ in
            _ = try file.tensor("fc1.weigth")
        }
        assertFails(url, .missingTensor, mentioning: ["no tensor named 'nope'"]) { _ in
            _ = try file.loadTensor("nope", expectedShape: [1])
        }
        let emptyURL = directory.appendingPathComponent("no-tensors.safetensors")
        try SafeTensorsFile.write([:], to: emptyURL)
        let empty = try SafeTensorsFile(contentsOf: emptyURL)
        XCTAssertEqual(empty.names, [])
        assertFails(emptyURL, .missingTensor, mentioning: ["holds no tensors"]) { _ in _ = try empty.tensor("x") }
    }

    func testShapeDisagreesWithTheModel() throws {
        let url = directory.appendingPathComponent("model.safetensors")
        try SafeTensorsFile.write(["layer.weight": Tensor(repeating: 1, shape: [2, 3])], to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        assertFails(url, .shapeMismatch, mentioning: [
            "tensor layer.weight has shape [2,3] in \(url.path) but the model expects [3,2]",
        ]) { _ in _ = try file.loadTensor("layer.weight", expectedShape: [3, 2]) }
        XCTAssertEqual(try file.loadTensor("layer.weight", expectedShape: [2, 3]).shape, [2, 3])
    }

    func testCorruptedFilesNeverCrash() throws {
        // Every truncation and many random byte corruptions of a valid file either load or throw a
        // SafeTensorsError; none may trap.
        let url = directory.appendingPathComponent("fuzz.safetensors")
        try SafeTensorsFile.write(["a": Tensor([1, 2, 3] as [Float], shape: [3, 1]), "b": Tensor([4, 5] as [Int64]),
                                   "c": Tensor(scalar: 6.0)], metadata: ["k": "v"], to: url)
        let valid = [UInt8](try Data(contentsOf: url))
        func attempt(_ bytes: [UInt8]) {
            do {
                let file = try SafeTensorsFile(data: Data(bytes), path: "fuzz.safetensors")
                for name in file.names { _ = try? file.tensor(name) }
            } catch let error as SafeTensorsError {
                XCTAssertTrue(error.description.contains("fuzz.safetensors"), error.description)
            } catch {
                XCTFail("unexpected error \(error)")
            }
        }
        for length in 0 ..< valid.count { attempt(Array(valid.prefix(length))) }
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let interesting: [UInt8] = Array("{}[]\",:-0123456789eE.tfn \\".utf8) + [0x00, 0xff, 0x80]
        for _ in 0 ..< 3000 {
            var bytes = valid
            for _ in 0 ... next(3) {
                let position = next(bytes.count)
                bytes[position] = next(2) == 0 ? UInt8(next(256)) : interesting[next(interesting.count)]
            }
            attempt(bytes)
        }
    }

    func testUnreadableFile() throws {
        let url = directory.appendingPathComponent("does-not-exist.safetensors")
        assertFails(url, .io, mentioning: ["cannot read"])
    }

    // MARK: Atomic write

    private struct InjectedFailure: Error {}

    /// The names in the test folder.
    private func folderContents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    func testFailedWriteLeavesThePreviousFileIntact() throws {
        let url = directory.appendingPathComponent("model.safetensors")
        try SafeTensorsFile.write(["w": Tensor([1, 2, 3] as [Float])], metadata: ["version": "1"], to: url)
        let original = try Data(contentsOf: url)

        // Fail after the header and the first tensor reached the temporary file.
        let replacement: [String: Tensor] = ["a": Tensor(repeating: 7, shape: [100]), "b": Tensor(repeating: 8, shape: [100])]
        var calls = 0
        XCTAssertThrowsError(try SafeTensorsFile.write(replacement, metadata: ["version": "2"], to: url) { _ in
            calls += 1
            if calls == 2 { throw InjectedFailure() }
        }) { error in XCTAssertTrue(error is InjectedFailure, "\(error)") }
        XCTAssertEqual(calls, 2)
        XCTAssertEqual(try Data(contentsOf: url), original, "the previous file changed")
        XCTAssertEqual(try folderContents(), ["model.safetensors"], "a temporary file was left behind")
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).metadata, ["version": "1"])

        // A write that succeeds replaces the file and leaves nothing else.
        try SafeTensorsFile.write(replacement, metadata: ["version": "2"], to: url)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).names, ["a", "b"])
        XCTAssertEqual(try folderContents(), ["model.safetensors"])
    }

    func testWriteThatCannotRenameCleansUp() throws {
        // The destination is a directory: the temporary file is written, the rename fails.
        let url = directory.appendingPathComponent("taken.safetensors", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(at: url.appendingPathComponent("child"), withIntermediateDirectories: false)
        assertFails(url, .io, mentioning: ["cannot rename"]) { url in
            try SafeTensorsFile.write(["w": Tensor([1] as [Float])], to: url)
        }
        XCTAssertEqual(try folderContents(), ["taken.safetensors"], "a temporary file was left behind")
    }

    func testWriteIntoAMissingFolderFails() {
        let url = directory.appendingPathComponent("no/such/folder/out.safetensors")
        assertFails(url, .io, mentioning: ["cannot create the temporary file"]) { url in
            try SafeTensorsFile.write(["w": Tensor([1] as [Float])], to: url)
        }
    }
}
