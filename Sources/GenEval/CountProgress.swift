import Foundation
import GenTensor

/// Progress through a count of items (images sampled, images scored): on a terminal, a bar redrawn
/// in place; otherwise a line every `interval` seconds and one at the end. The time left assumes
/// the rate so far.
public final class CountProgress {
    let label: String
    let total: Int
    let unit: String
    let interval: TimeInterval
    let isTerminal: Bool
    let log: (String) -> Void
    let start: Date
    private var lastPrint = Date.distantPast

    /// `log` gets the plain lines (a terminal gets the bar on stderr instead).
    public init(_ label: String, total: Int, unit: String = "images", interval: TimeInterval = 10,
                isTerminal: Bool = isatty(fileno(stderr)) != 0, start: Date = Date(), log: @escaping (String) -> Void) {
        self.label = label
        self.total = total
        self.unit = unit
        self.interval = interval
        self.isTerminal = isTerminal
        self.start = start
        self.log = log
    }

    /// `done` of the `total` items are finished.
    public func update(_ done: Int, now: Date = Date()) {
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.2 : interval) else { return }
        lastPrint = now
        if isTerminal {
            fputs("\r" + line(done: done, now: now) + "\u{1B}[K" + (finished ? "\n" : ""), stderr)
        } else {
            log(line(done: done, now: now))
        }
    }

    /// "LABEL [#####---] DONE/TOTAL UNIT, M:SS elapsed, eta M:SS" (no eta once finished).
    public func line(done: Int, now: Date) -> String {
        let fraction = Double(min(done, total)) / Double(max(total, 1))
        let width = 24, filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let elapsed = now.timeIntervalSince(start)
        var text = "\(label) [\(bar)] \(done)/\(total) \(unit), \(Self.duration(elapsed)) elapsed"
        if done < total {
            text += ", eta " + (done > 0 ? Self.duration(elapsed / Double(done) * Double(total - done)) : "?")
        }
        return text
    }

    /// "M:SS", or "HhMMm" from an hour on.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

extension FeatureNetwork {
    /// `outputs`, reporting its progress through `log` every 10 s and at the end ("LABEL [###---] ...").
    func outputs(_ images: Tensor, batchSize: Int, label: String, log: (String) -> Void) -> FeatureOutputs {
        withoutActuallyEscaping(log) { log in
            let progress = CountProgress(label, total: images.shape[0], isTerminal: false, log: log)
            return outputs(images, batchSize: batchSize) { progress.update($0) }
        }
    }
}
