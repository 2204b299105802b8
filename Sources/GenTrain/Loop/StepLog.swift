import Foundation
import GenFormats
import GenNN

/// The training loop's per-step log: every `logEvery` steps a line in `metrics.jsonl` (`kind`
/// "step", `step`, `epoch`, each loss term, `lr` and `grad_norm` of each optimiser the model names,
/// `images_per_s` since the previous line, `wall_time`), and with `tensorboard` the same scalars,
/// and the epoch means, in a TensorBoard event file under `RUN/tensorboard/`.
final class StepLog {
    let url: URL
    let every: Int
    let model: TrainableModel
    let events: TFEventWriter?
    private var intervalStart = Date()
    private var intervalImages = 0

    init(run: RunDirectory, options: TrainingOptions, model: TrainableModel) throws {
        url = run.metrics
        every = options.logEvery
        self.model = model
        events = options.tensorboard ? try TFEventWriter(folder: run.tensorboard) : nil
    }

    /// The scalars of a step line, by name (loss terms first, in the model's order).
    func scalars(losses: [(String, Double)], imagesPerSecond: Double) -> [(String, Double)] {
        var values = losses
        for (name, optimizer) in model.namedOptimizers {
            let suffix = name.isEmpty ? "" : "_" + name
            values.append(("lr" + suffix, optimizer.learningRate))
            if let norm = optimizer.lastGradientNorm { values.append(("grad_norm" + suffix, norm)) }
        }
        values.append(("images_per_s", imagesPerSecond))
        return values
    }

    /// Called after every step: counts its images, and writes a line when `step` is a multiple of `every`.
    func record(step: Int, epoch: Int, losses: [(String, Double)], images: Int, now: Date = Date()) throws {
        intervalImages += images
        guard every > 0, step % every == 0 else { return }
        let rate = Double(intervalImages) / max(now.timeIntervalSince(intervalStart), 1e-9)
        intervalStart = now
        intervalImages = 0
        let values = scalars(losses: losses, imagesPerSecond: rate)
        var object: [String: Any] = ["kind": "step", "step": step, "epoch": epoch, "wall_time": now.timeIntervalSince1970]
        for (name, value) in values where object[name] == nil { object[name] = value.isFinite ? value : String(describing: value) }
        var line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        line.append(0x0A)
        try TrainingLoop.appendLine(line, to: url)
        try events?.write(TFEvent(wallTime: now.timeIntervalSince1970, step: Int64(step),
                                  scalars: values.map { ("train/" + $0.0, Float($0.1)) }))
    }

    /// Writes an epoch's means to the event file (the metrics log has its own epoch line).
    func record(_ epoch: EpochRecord, now: Date = Date()) throws {
        let scalars = epoch.losses.keys.sorted().map { ("epoch/" + $0, Float(epoch.losses[$0]!)) }
            + [("epoch/images_per_s", Float(epoch.imagesPerSecond))]
        try events?.write(TFEvent(wallTime: now.timeIntervalSince1970, step: Int64(epoch.step), scalars: scalars))
    }
}
