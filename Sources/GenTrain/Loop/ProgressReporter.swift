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
    /// elapsed time per batch done since then, times the batches still to do.
    private var firstPosition: (epoch: Int, batch: Int)?
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
        if firstPosition == nil { firstPosition = (epoch, batch - 1) }
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
        let first = firstPosition ?? (epoch, batch - 1)
        let done = (epoch - first.epoch) * batches + batch - first.batch
        var remainingBatches = Double(batches - batch) + Double(epochs - epoch) * Double(batches)
        if let stepsLeft { remainingBatches = min(remainingBatches, Double(max(0, stepsLeft))) }
        var remaining = remainingBatches * now.timeIntervalSince(started) / Double(max(done, 1))
        if let deadline { remaining = min(remaining, max(0, deadline.timeIntervalSince(now))) }
        return remaining
    }

    public func finish(_ record: EpochRecord) {
        if isTerminal { fputs("\n", stderr) }
        let losses = record.losses.keys.sorted().map { String(format: "%@ %.4f", $0, record.losses[$0]!) }.joined(separator: " ")
        log(String(format: "epoch %d done: %@ (%.1f s, %.0f img/s)", record.epoch, losses, record.seconds, record.imagesPerSecond))
    }

    static func duration(_ seconds: Double) -> String { CountProgress.duration(seconds) }
}
