import Foundation
@testable import GenTrain
import XCTest
import GenTensor
import GenNN
import GenModels
import GenData
import GenEval

/// The time left counts batches done since the reporter started, across epochs and after a resume,
/// at the speed of the last minute.
final class ProgressReporterTests: XCTestCase {
    /// A run that was slow for its first 100 s (another job shared the machine) and then fast: the
    /// time left follows the fast speed once it has lasted a minute, not the whole run's average.
    func testTimeLeftFollowsTheSpeedOfTheLastMinute() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let reporter = ProgressReporter(log: { _ in }, started: t0)
        var time = 0.0, batch = 0
        func step(_ seconds: Double) {
            time += seconds
            batch += 1
            reporter.update(epoch: 1, epochs: 1, batch: batch, batches: 1000, losses: [], imagesPerSecond: 1,
                            now: t0.addingTimeInterval(time))
        }
        for _ in 0..<50 { step(2) }      // 100 s at 2 s per batch
        XCTAssertEqual(reporter.secondsLeft(epoch: 1, epochs: 1, batch: batch, batches: 1000, now: t0.addingTimeInterval(time)),
                       950 * 2, accuracy: 2 * 2)
        for _ in 0..<300 { step(0.25) }  // then 75 s at 0.25 s per batch
        // 650 batches left at 0.25 s: 162.5 s (the whole run's average, 0.5 s per batch, says 325 s).
        XCTAssertEqual(reporter.secondsLeft(epoch: 1, epochs: 1, batch: batch, batches: 1000, now: t0.addingTimeInterval(time)),
                       650 * 0.25, accuracy: 650 * 0.25 * 0.05)
    }

    func testTimeLeftAcrossEpochsAndAfterResume() {
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        // Resumed at epoch 3 after batch 4 of 10; one second per batch since.
        let reporter = ProgressReporter(log: { _ in }, started: t0)
        reporter.update(epoch: 3, epochs: 5, batch: 5, batches: 10, losses: [], imagesPerSecond: 1,
                        now: t0.addingTimeInterval(1))
        // 7 batches done (5...10 of epoch 3, then 1 of epoch 4) in 7 s: 9 + 10 batches left, 19 s.
        let left = reporter.secondsLeft(epoch: 4, epochs: 5, batch: 1, batches: 10, now: t0.addingTimeInterval(7))
        XCTAssertEqual(left, 19, accuracy: 1e-9)
        // A step limit 3 batches away: 3 s.
        XCTAssertEqual(reporter.secondsLeft(epoch: 4, epochs: 5, batch: 1, batches: 10, stepsLeft: 3,
                                            now: t0.addingTimeInterval(7)), 3, accuracy: 1e-9)
        // A wall-clock budget ending sooner caps it.
        let budgeted = ProgressReporter(log: { _ in }, deadline: t0.addingTimeInterval(8), started: t0)
        budgeted.update(epoch: 1, epochs: 5, batch: 1, batches: 10, losses: [], imagesPerSecond: 1,
                        now: t0.addingTimeInterval(1))
        XCTAssertEqual(budgeted.secondsLeft(epoch: 1, epochs: 5, batch: 2, batches: 10, now: t0.addingTimeInterval(2)), 6,
                       accuracy: 1e-9)
    }

    func testProgressLinesShowTheTimeLeft() {
        var lines: [String] = []
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let reporter = ProgressReporter(log: { lines.append($0) }, started: t0)
        for epoch in 1...2 {
            for batch in 1...4 {
                reporter.update(epoch: epoch, epochs: 2, batch: batch, batches: 4, losses: [("loss", 0.5)],
                                imagesPerSecond: 64, now: t0.addingTimeInterval(Double((epoch - 1) * 4 + batch) * 30))
            }
        }
        // Non-terminal output logs at most every 10 s and at each epoch's last batch: 30 s per batch.
        XCTAssertEqual(lines.count, 8)
        XCTAssertTrue(lines[4].hasPrefix("epoch 2/2 [######------------------] 1/4 loss 0.5 64 img/s eta 1:30"), lines[4])
        XCTAssertTrue(lines[7].hasSuffix("eta 0:00"), lines[7])
    }
}
