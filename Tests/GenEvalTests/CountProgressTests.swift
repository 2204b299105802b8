import Foundation
@testable import GenEval
import XCTest

/// `CountProgress`: the line (bar, counts, elapsed, time left), and how often it prints when the
/// output is not a terminal (every `interval` seconds, and always at the end).
final class CountProgressTests: XCTestCase {
    func testLineShowsTheBarCountsAndTimeLeft() {
        let t0 = Date(timeIntervalSince1970: 1_000)
        let progress = CountProgress("sampling", total: 400, isTerminal: false, start: t0, log: { _ in })
        // 100 of 400 in 30 s: 90 s left at that rate.
        XCTAssertEqual(progress.line(done: 100, now: t0.addingTimeInterval(30)),
                       "sampling [######------------------] 100/400 images, 0:30 elapsed, eta 1:30")
        XCTAssertEqual(progress.line(done: 0, now: t0.addingTimeInterval(5)),
                       "sampling [------------------------] 0/400 images, 0:05 elapsed, eta ?")
        XCTAssertEqual(progress.line(done: 400, now: t0.addingTimeInterval(7_384)),
                       "sampling [########################] 400/400 images, 2h03m elapsed")
    }

    func testPipedOutputPrintsEveryIntervalAndAtTheEnd() {
        let t0 = Date(timeIntervalSince1970: 1_000)
        var lines: [String] = []
        let progress = CountProgress("features", total: 10, interval: 10, isTerminal: false, start: t0, log: { lines.append($0) })
        for (done, second) in [(1, 1.0), (2, 5), (3, 10.5), (4, 12), (9, 30), (10, 31)] {
            progress.update(done, now: t0.addingTimeInterval(second))
        }
        XCTAssertEqual(lines.map { $0.split(separator: " ")[2] }, ["1/10", "4/10", "9/10", "10/10"])
    }
}
