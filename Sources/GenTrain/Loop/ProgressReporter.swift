import Foundation
import GenTensor
import GenNN
import GenModels
import GenData
import GenEval

/// Progress of long work: a one-line bar redrawn in place on a terminal (epoch, step, loss,
/// images/s, time left), or a plain log line every few seconds when output is not a terminal.
public final class ProgressReporter {
    let isTerminal = isatty(fileno(stderr)) != 0
    let log: (String) -> Void
    var lastPrint = Date.distantPast
    let started: Date
    /// Where the first update found training (a resumed run starts mid-way): the time left is the
    /// time per batch done since then, over the last `rateWindow` seconds, times the batches still to do.
    private var firstPosition: (epoch: Int, batch: Int)?
    /// (time, batches done since `firstPosition`), at most one a second, the oldest at least
    /// `rateWindow` before the newest where the run is that old.
    private var marks: [(time: Date, done: Int)] = []
    /// The seconds over which the speed is measured for the time left: short enough to follow a
    /// machine that became busier or idler within a minute, long enough to smooth single batches.
    static let rateWindow: TimeInterval = 60
    /// When training stops at a wall-clock budget, the time left is at most the budget's remainder.
    let deadline: Date?

    public init(log: @escaping (String) -> Void, deadline: Date? = nil, started: Date = Date()) {
        self.log = log
        self.deadline = deadline
        self.started = started
    }

    /// Reports that batch `batch` (1-based) of `batches` in epoch `epoch` of `epochs` is done.
    /// `stepsLeft`: the batches a step limit still allows, if there is one.
    public func update(epoch: Int, epochs: Int, batch: Int, batches: Int, losses: [(String, Double)], imagesPerSecond: Double,
                       stepsLeft: Int? = nil, now: Date = Date()) {
        if firstPosition == nil {
            firstPosition = (epoch, batch - 1)
            marks = [(started, 0)]
        }
        mark(done: batchesDone(epoch: epoch, batch: batch, batches: batches), now: now)
        guard now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.2 : 10) || batch == batches else { return }
        lastPrint = now
        let fraction = Double(batch) / Double(max(batches, 1))
        let width = 24, filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let lossText = losses.map { String(format: "%@ %.4g", $0.0, $0.1) }.joined(separator: " ")
        let eta = Self.duration(secondsLeft(epoch: epoch, epochs: epochs, batch: batch, batches: batches,
                                                   stepsLeft: stepsLeft, now: now))
        let line = String(format: "epoch %d/%d [%@] %d/%d %@ %.0f img/s eta %@", epoch, epochs, bar, batch, batches,
                          lossText, imagesPerSecond, eta)
        if isTerminal {
            fputs("\r" + line + "\u{1B}[K", stderr)
        } else {
            log(line)
        }
    }

    /// The estimated seconds to the end of training (or of the wall-clock budget, if sooner).
    func secondsLeft(epoch: Int, epochs: Int, batch: Int, batches: Int, stepsLeft: Int? = nil, now: Date) -> Double {
        let done = batchesDone(epoch: epoch, batch: batch, batches: batches)
        var remainingBatches = Double(batches - batch) + Double(epochs - epoch) * Double(batches)
        if let stepsLeft { remainingBatches = min(remainingBatches, Double(max(0, stepsLeft))) }
        // The newest mark at least a window old (else the oldest): the speed since then.
        let anchor = marks.last { now.timeIntervalSince($0.time) >= Self.rateWindow && $0.done < done }
            ?? marks.first { $0.done < done } ?? (started, 0)
        var remaining = remainingBatches * now.timeIntervalSince(anchor.time) / Double(max(done - anchor.done, 1))
        if let deadline { remaining = min(remaining, max(0, deadline.timeIntervalSince(now))) }
        return remaining
    }

    /// Batches done since the first update.
    private func batchesDone(epoch: Int, batch: Int, batches: Int) -> Int {
        let first = firstPosition ?? (epoch, batch - 1)
        return (epoch - first.epoch) * batches + batch - first.batch
    }

    /// Records the batches done at `now` (one mark a second at most), dropping the marks that a
    /// newer mark at least a window old makes unneeded.
    private func mark(done: Int, now: Date) {
        if let last = marks.last, now.timeIntervalSince(last.time) < 1 { return }
        marks.append((now, done))
        while marks.count > 2, now.timeIntervalSince(marks[1].time) >= Self.rateWindow { marks.removeFirst() }
    }

    public func finish(_ record: EpochRecord) {
        if isTerminal { fputs("\n", stderr) }
        let losses = record.losses.keys.sorted().map { String(format: "%@ %.4f", $0, record.losses[$0]!) }.joined(separator: " ")
        log(String(format: "epoch %d done: %@ (%.1f s, %.0f img/s)", record.epoch, losses, record.seconds, record.imagesPerSecond))
    }

    static func duration(_ seconds: Double) -> String { CountProgress.duration(seconds) }
}
