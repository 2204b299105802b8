import Foundation
import GenFormats
import GenTestSupport
import XCTest

/// TensorBoard event files: CRC-32C, the toolkit's round trip, a file written by TensorBoard's own
/// writer (`Tests/Fixtures/tensorboard`, made by `scripts/make-tensorboard-fixture.py`), and damage.
final class TFEventsTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tensorboard", isDirectory: true)

    func testCRC32CMatchesTheStandardCheckValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)  // RFC 3720, B.4
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
    }

    func testReadsTheFileTensorBoardWrote() throws {
        struct Expected: Decodable {
            var step: Int64
            var wall_time: Double
            var scalars: [[Scalar]]
            enum Scalar: Decodable {
                case tag(String), value(Double)
                init(from decoder: Decoder) throws {
                    let c = try decoder.singleValueContainer()
                    if let s = try? c.decode(String.self) { self = .tag(s) } else { self = .value(try c.decode(Double.self)) }
                }
            }
        }
        let expected = try JSONDecoder().decode([Expected].self,
                                                from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json")))
        let events = try TFEventFile.read(Self.fixtures.appendingPathComponent("events.out.tfevents.fixture"))
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        let scalarEvents = events.filter { !$0.scalars.isEmpty }
        XCTAssertEqual(scalarEvents.count, expected.count)
        for (event, want) in zip(scalarEvents, expected) {
            XCTAssertEqual(event.step, want.step)
            XCTAssertEqual(event.wallTime, want.wall_time)
            let pairs = want.scalars.map { pair -> (String, Float) in
                guard case let .tag(t) = pair[0], case let .value(v) = pair[1] else { return ("", .nan) }
                return (t, Float(v))
            }
            XCTAssertEqual(event.scalars.map(\.tag), pairs.map(\.0))
            XCTAssertEqual(event.scalars.map(\.value), pairs.map(\.1))
        }
    }

    func testWriterRoundTripsEveryEvent() throws {
        let writer = try TFEventWriter(folder: folder, now: Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertTrue(writer.url.lastPathComponent.hasPrefix("events.out.tfevents.1700000000."))
        let written = [
            TFEvent(wallTime: 1_700_000_001.5, step: 50, scalars: [("train/loss", 0.25), ("train/lr", 2e-4)]),
            TFEvent(wallTime: 1_700_000_002.5, step: 1 << 40, scalars: [("epoch/loss", -3.5)]),
        ]
        for e in written { try writer.write(e) }
        let read = try TFEventFile.read(writer.url)
        XCTAssertEqual(read.count, 3)
        XCTAssertEqual(read[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(read[0].wallTime, 1_700_000_000)
        XCTAssertEqual(Array(read.dropFirst()), written)
        // A second writer in the same second gets a file of its own.
        let second = try TFEventWriter(folder: folder, now: Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertNotEqual(second.url, writer.url)
    }

    func testDamagedFilesAreRefusedWithTheByteOffset() throws {
        let writer = try TFEventWriter(folder: folder, now: Date(timeIntervalSince1970: 1))
        try writer.write(TFEvent(wallTime: 2, step: 3, scalars: [("a", 1)]))
        let good = try Data(contentsOf: writer.url)
        func expectFailure(_ bytes: Data, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
            let url = folder.appendingPathComponent("bad-\(UUID().uuidString)")
            try? bytes.write(to: url)
            XCTAssertThrowsError(try TFEventFile.read(url), file: file, line: line) { error in
                XCTAssertEqual((error as? DataError)?.kind, .corruptRecord, file: file, line: line)
                XCTAssertTrue("\(error)".contains(needle), "\(error)", file: file, line: line)
            }
        }
        var flipped = good
        flipped[flipped.count - 6] ^= 0x01  // inside the second record's data
        expectFailure(flipped, "bad data checksum")
        var length = good
        length[0] ^= 0x01
        expectFailure(length, "bad length checksum at byte 0")
        expectFailure(good.dropLast(3), "cut short")
        expectFailure(good + Data([1, 2, 3]), "header is cut short")
    }
}
