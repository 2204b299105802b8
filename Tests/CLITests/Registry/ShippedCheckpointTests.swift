import Foundation
@testable import generative
import GenTrain
import XCTest
import GenNN
import GenEval

/// The checkpoints shipped in `checkpoints/` are the files their cards in `checkpoints/README.md`
/// describe (by SHA-256), hold weights only, and load through the registry.
final class ShippedCheckpointTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("checkpoints")

    /// (file name, SHA-256) of every card.
    static func cards() throws -> [(String, String)] {
        try CheckpointCard.read(folder: folder).map { ($0.file, $0.sha256) }
    }

    func testEveryShippedFileMatchesItsCardAndLoads() throws {
        let cards = try Self.cards()
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".safetensors") }
        XCTAssertEqual(Set(cards.map(\.0)), Set(files), "every shipped file has a card, and every card a file")
        var bytes = 0
        for (name, hash) in cards {
            let url = Self.folder.appendingPathComponent(name)
            XCTAssertEqual(try SHA256.hex(contentsOf: url), hash, name)
            let checkpoint = try Checkpoint(contentsOf: url)
            XCTAssertTrue(checkpoint.isWeightsOnly, name)
            XCTAssertTrue(ComparisonTable.rowNames.contains(String(name.dropLast(".safetensors".count))), name)
            // CycleGAN translates and samples nothing from noise: it loads as its own family, not
            // through the registry of sampling models.
            if checkpoint.metadata["model"] == CycleGANTraining.kind {
                XCTAssertNoThrow(try CycleGANTraining.load(checkpoint), name)
            } else {
                XCTAssertNoThrow(try ModelRegistry.load(checkpoint), name)
            }
            bytes += try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        }
        XCTAssertLessThanOrEqual(bytes, 100_000_000, "the issue's budget for shipped checkpoints")
    }

    /// Every card's commands are command lines the toolkit accepts (what `table --retrain` runs):
    /// a training run, then the export that writes the card's file.
    func testEveryCardsCommandsParse() throws {
        for card in try CheckpointCard.read(folder: Self.folder) {
            XCTAssertEqual(card.commands.first?.first, "train", card.file)
            XCTAssertEqual(card.commands.last?.suffix(2), ["--out", "checkpoints/" + card.file], card.file)
            for arguments in card.commands { XCTAssertNoThrow(try Generative.parseAsRoot(arguments), arguments.joined(separator: " ")) }
        }
    }

    /// The logs and reports beside the checkpoints (what `generative report` draws) belong to a
    /// shipped checkpoint and read as their commands wrote them.
    func testTheLogsAndReportsBesideThemBelongToAShippedRowAndRead() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path)
        let rows = Set(names.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) })
        var found = 0
        for name in names {
            let url = Self.folder.appendingPathComponent(name)
            for suffix in [".metrics.jsonl", ".samplers.jsonl", ".likelihood.json"] where name.hasSuffix(suffix) {
                found += 1
                XCTAssertTrue(rows.contains(String(name.dropLast(suffix.count))), "\(name) belongs to no shipped checkpoint")
                switch suffix {
                case ".metrics.jsonl": XCTAssertGreaterThanOrEqual(try TrainingLoop.readStepMetrics(url).count, 5, name)
                case ".samplers.jsonl": XCTAssertTrue(try Plot.read(url.path).allSatisfy { $0.1.sampling != nil }, name)
                default: XCTAssertNoThrow(try JSONDecoder().decode(LikelihoodReport.self, from: Data(contentsOf: url)), name)
                }
            }
        }
        XCTAssertGreaterThan(found, 0)
    }
}
