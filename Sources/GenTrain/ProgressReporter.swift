import Foundation

/// Progress of long work: a one-line bar redrawn in place on a terminal (epoch, step, loss,
/// images/s, time left), or a plain log line every few seconds when output is not a terminal.
public final class ProgressReporter {
    let isTerminal = isatty(fileno(stdout)) != 0
    let log: (String) -> Void
    var lastPrint = Date.distantPast
    let started = Date()
    /// When training stops at a wall-clock budget, the time left is at most the budget's remainder.
    let deadline: Date?

    public init(log: @escaping (String) -> Void, deadline: Date? = nil) {
        self.log = log
        self.deadline = deadline
    }

    public func update(epoch: Int, epochs: Int, batch: Int, batches: Int, losses: [(String, Double)], imagesPerSecond: Double) {
        let now = Date()
        guard now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.2 : 10) || batch == batches else { return }
        lastPrint = now
        let fraction = Double(batch) / Double(max(batches, 1))
        let width = 24, filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let lossText = losses.map { String(format: "%@ %.4g", $0.0, $0.1) }.joined(separator: " ")
        let remainingBatches = Double(batches - batch) + Double(epochs - epoch) * Double(batches)
        let secondsPerBatch = now.timeIntervalSince(started) / Double(max(batch, 1))
        var remaining = remainingBatches * secondsPerBatch
        if let deadline { remaining = min(remaining, max(0, deadline.timeIntervalSince(now))) }
        let eta = Self.duration(remaining)
        let line = String(format: "epoch %d/%d [%@] %d/%d %@ %.0f img/s eta %@", epoch, epochs, bar, batch, batches,
                          lossText, imagesPerSecond, eta)
        if isTerminal {
            print("\r" + line + "\u{1B}[K", terminator: "")
            fflush(stdout)
        } else {
            log(line)
        }
    }

    public func finish(_ record: EpochRecord) {
        if isTerminal { print("") }
        let losses = record.losses.keys.sorted().map { String(format: "%@ %.4f", $0, record.losses[$0]!) }.joined(separator: " ")
        log(String(format: "epoch %d done: %@ (%.1f s, %.0f img/s)", record.epoch, losses, record.seconds, record.imagesPerSecond))
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
