import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Settings every training run shares (the CLI's common flags).
public struct TrainingOptions: Codable, Equatable, Sendable {
    /// Total epochs (with `--resume`, training continues up to this total).
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var seed: UInt64
    /// Write a checkpoint every this many steps (0: only at the end of each epoch).
    public var saveEvery: Int
    /// Stop after this many steps in total (0: no limit); the run still ends with a checkpoint.
    public var maxSteps: Int
    /// Stop after this many seconds of this invocation's training (0: no limit), with a checkpoint.
    public var maxSeconds: Double = 0
    /// Keep the last N periodic checkpoints (`checkpoint-stepS.safetensors`) beside the latest (0: none).
    public var keepCheckpoints: Int = 0
    /// Check every op for NaN and infinity while training (`AnomalyDetection`), to name the first bad op.
    public var detectAnomaly = false
    /// Write a step line to the metrics log every N steps (0: epoch lines only).
    public var logEvery = 50
    /// Also write the step and epoch scalars to a TensorBoard event file under `RUN/tensorboard/`.
    public var tensorboard = false
    /// PyTorch state_dicts that networks start from (`--init-from`), on a fresh start only: a
    /// resumed run continues from its checkpoint.
    public var initFrom: [InitialWeights] = []
    /// Clip each optimiser's gradients at this global L2 norm (`--clip-grad-norm`; nil: no clipping).
    public var clipGradientNorm: Double?

    public init(epochs: Int = 10, batchSize: Int = 128, learningRate: Double = 1e-3, seed: UInt64 = 0,
                saveEvery: Int = 0, maxSteps: Int = 0) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.seed = seed
        self.saveEvery = saveEvery
        self.maxSteps = maxSteps
    }
}

/// What a model contributes to the shared training loop: one optimisation step on a batch, its
/// checkpoint contents, and a picture of what it makes.
public protocol TrainableModel: AnyObject {
    /// The model's name in checkpoints and logs ("vae", ...).
    static var kind: String { get }
    /// One optimisation step; returns named scalar losses (the first is the one shown).
    func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)]
    /// Adds networks, EMA and optimizer state to a checkpoint.
    func store(into checkpoint: inout Checkpoint)
    /// Restores what `store` wrote.
    func restore(from checkpoint: Checkpoint) throws
    /// A grid of samples from fixed noise (so successive grids show learning), (H, W, 1) in [0, 1].
    func sampleGrid(seed: UInt64) -> Tensor
    /// Whether the model makes images (a sample grid per epoch); true unless a model says otherwise.
    var makesImages: Bool { get }
    /// The model's optimisers, by name: "" for a model with one, or a suffix each ("g" and "d"). The
    /// step log records their learning rate and last gradient norm (`lr`, `grad_norm`; `lr_g`,
    /// `grad_norm_d`), and `--clip-grad-norm` applies to each.
    var namedOptimizers: [(name: String, optimizer: any Optimizer)] { get }
    /// The networks of its checkpoint, by prefix, the main one first (`--init-from` loads them;
    /// a `GenerativeModel`'s exportable networks take precedence).
    var networkNames: [String] { get }
    /// The classes its training labels index (each label in 0..<n); nil when it reads no labels (a
    /// class-conditional `GenerativeModel` needs none: its `classCount` is used).
    var labelClasses: Int? { get }
    /// The buffers a step changes besides the optimisers' parameters (BatchNorm's running
    /// statistics): data-parallel replicas average them after every step.
    var replicatedBuffers: [Parameter] { get }
    /// Why the next step would initialise weights from its batch (Glow's ActNorm), which replicas
    /// holding different rows cannot do alike; nil when it would not.
    var dataDependentInitialisation: String? { get }
}

extension TrainableModel {
    public var makesImages: Bool { true }
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [] }
    public var networkNames: [String] { ["model"] }
    public var labelClasses: Int? { nil }
    public var replicatedBuffers: [Parameter] { [] }
    public var dataDependentInitialisation: String? { nil }
}

/// Where a run writes its files.
public struct RunDirectory {
    public let url: URL
    public init(_ url: URL) { self.url = url }
    public var checkpoint: URL { url.appendingPathComponent("checkpoint.safetensors") }
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    /// The folder of TensorBoard event files (`--tensorboard`).
    public var tensorboard: URL { url.appendingPathComponent("tensorboard") }
    public var lossPlot: URL { url.appendingPathComponent("loss.png") }
    public func samples(epoch: Int) -> URL { url.appendingPathComponent(String(format: "samples_epoch%03d.png", epoch)) }
    public var latestSamples: URL { url.appendingPathComponent("samples.png") }
    /// A periodic checkpoint kept by `--keep-checkpoints`.
    public func checkpoint(step: Int) -> URL { url.appendingPathComponent("checkpoint-step\(step).safetensors") }
    /// The kept periodic checkpoints, oldest first.
    public func keptCheckpoints() -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("checkpoint-step"), name.hasSuffix(".safetensors"),
                  let step = Int(name.dropFirst("checkpoint-step".count).dropLast(".safetensors".count)) else { return nil }
            return (step, url.appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }
}

/// One epoch line of the metrics log: a flat JSON object, as the step lines are (`kind` "epoch",
/// `epoch`, `step`, each loss term's mean under its own name, `images_per_s`, `seconds`), so that a
/// data frame gets one column per quantity. Logs of older versions (the loss means nested under
/// `losses`, `imagesPerSecond`; no `kind` before step lines existed) read the same.
public struct EpochRecord: Codable, Equatable {
    public var kind: String? = "epoch"
    public var epoch: Int
    public var step: Int
    /// Mean of each loss over the epoch's examples.
    public var losses: [String: Double]
    public var imagesPerSecond: Double
    public var seconds: Double

    public init(epoch: Int, step: Int, losses: [String: Double], imagesPerSecond: Double, seconds: Double) {
        self.epoch = epoch
        self.step = step
        self.losses = losses
        self.imagesPerSecond = imagesPerSecond
        self.seconds = seconds
    }

    /// Any key of a JSON object.
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    /// The keys that are not loss terms.
    static let fixedKeys: Set<String> = ["kind", "epoch", "step", "images_per_s", "seconds", "losses", "imagesPerSecond"]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        kind = try c.decodeIfPresent(String.self, forKey: Key("kind"))
        epoch = try c.decode(Int.self, forKey: Key("epoch"))
        step = try c.decode(Int.self, forKey: Key("step"))
        seconds = try c.decode(Double.self, forKey: Key("seconds"))
        if let nested = try c.decodeIfPresent([String: Double].self, forKey: Key("losses")) {
            losses = nested
            imagesPerSecond = try c.decode(Double.self, forKey: Key("imagesPerSecond"))
        } else {
            imagesPerSecond = try c.decode(Double.self, forKey: Key("images_per_s"))
            var flat: [String: Double] = [:]
            for key in c.allKeys where !Self.fixedKeys.contains(key.stringValue) {
                flat[key.stringValue] = try c.decode(Double.self, forKey: key)
            }
            losses = flat
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encodeIfPresent(kind, forKey: Key("kind"))
        try c.encode(epoch, forKey: Key("epoch"))
        try c.encode(step, forKey: Key("step"))
        for (name, value) in losses where !Self.fixedKeys.contains(name) { try c.encode(value, forKey: Key(name)) }
        try c.encode(imagesPerSecond, forKey: Key("images_per_s"))
        try c.encode(seconds, forKey: Key("seconds"))
    }
}

/// Why a training run stopped or would not start.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// Whether a signal stopped the run (`interrupted`).
    public var isInterruption: Bool {
        if case .interrupted = self { return true }
        return false
    }

    /// The exit status a command reports for this error: 128 + the signal when interrupted, else 1.
    public var exitStatus: Int32 {
        if case let .interrupted(signal, _, _) = self { return 128 + signal }
        return 1
    }

    /// A loss term or a tensor to be saved became NaN or infinite at `step`; nothing after
    /// `lastCheckpointStep` was saved (nil: no checkpoint of this run exists).
    case nonFinite(step: Int, what: String, lastCheckpointStep: Int?)
    /// Resuming would continue a run of another configuration.
    case configurationChanged(path: String, differences: [String])
    /// SIGINT or SIGTERM stopped the run after `step`, whose checkpoint was saved.
    case interrupted(signal: Int32, step: Int, checkpoint: String)
    /// The run folder's file system has too little room for a checkpoint written beside the last.
    case diskSpace(folder: String, free: Int64, needed: Int64)
    /// A training label outside the model's classes (checked before the first step).
    case labelOutOfRange(index: Int, label: Int64, classes: Int)
    /// `--resume` of a checkpoint without optimiser state (`export --weights-only`).
    case weightsOnly(path: String)
    /// Data-parallel replicas whose weights differ after a step (compared by a hash every step).
    case replicasDiverged(step: Int)
    /// A batch with fewer examples than data-parallel replicas.
    case batchSmallerThanReplicas(batch: Int, replicas: Int)
    /// `--grad-shards` for a model whose command cannot build a second replica.
    case noReplicas(model: String)
    /// Data-parallel replicas asked to take a step that initialises weights from the batch.
    case dataDependentInitialisation(what: String)

    public var description: String {
        switch self {
        case let .nonFinite(step, what, last):
            let kept = last.map { "the last checkpoint (step \($0)) is kept" } ?? "no checkpoint of this run was written"
            return "step \(step): \(what); stopped, \(kept)"
        case let .interrupted(signal, step, checkpoint):
            return "\(signal == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)") after step \(step); saved \(checkpoint) "
                + "(continue with --resume)"
        case let .labelOutOfRange(index, label, classes):
            return "training label \(label) (image \(index)) is outside 0..<\(classes): the model has \(classes) classes; check the labels file of --data"
        case let .diskSpace(folder, free, needed):
            return String(format: "%@ has %.1f MB free; a checkpoint is written beside the last, so training needs %.1f MB: free some space or choose another --out",
                          folder, Double(free) / 1e6, Double(needed) / 1e6)
        case let .weightsOnly(path):
            return "--resume: \(path) holds weights only (no optimiser or random-generator state), so it cannot be resumed; "
                + "start a new run from its weights with --init-from, or choose another --out"
        case let .replicasDiverged(step):
            return "the data-parallel replicas hold different weights after step \(step); stopped (a bug: please report it with the command)"
        case let .batchSmallerThanReplicas(batch, replicas):
            return "a batch of \(batch) examples cannot be split over \(replicas) replicas (ranks or --grad-shards): choose a --batch-size "
                + "(and a last batch of an epoch) of at least \(replicas)"
        case let .dataDependentInitialisation(what):
            return "\(what) initialises from the first batch, which data-parallel replicas (ranks or --grad-shards) see in parts: "
                + "train the first step in one process (--max-steps 1), then --resume on the ranks"
        case let .noReplicas(model):
            return "--grad-shards: \(model) training cannot build a second replica in one process; use mpirun"
        case let .configurationChanged(path, differences):
            return "--resume: \(differences.joined(separator: "; ")) (stored in \(path)). A resumed run keeps its configuration "
                + "(--help lists what may change); to start afresh use --overwrite"
        }
    }
}

/// The shared training loop: seeded shuffles per epoch, progress, checkpoints (every `saveEvery`
/// steps and at each epoch's end), exact resume, a metrics log, a loss plot and sample grids.
///
/// Exact resume: the batch order of epoch e is a permutation drawn from `RandomGenerator(seed: seed
/// ^ e)`, the model's own noise comes from one generator whose counter is checkpointed, and the
/// optimizer state is saved; so stopping anywhere and resuming gives bit-for-bit the weights of an
/// uninterrupted run.
///
/// Guards: a NaN or infinite loss term or gradient, or a non-finite tensor about to be saved, stops the run
/// with `TrainingError.nonFinite` and leaves the last checkpoint as it was; resuming refuses a
/// checkpoint whose stored model kind or `config` differs (`TrainingError.configurationChanged`).
public final class TrainingLoop {
    public let model: TrainableModel
    public let options: TrainingOptions
    public let run: RunDirectory
    /// Extra configuration stored in the checkpoint's `config` metadata (JSON).
    public let config: [String: String]
    /// Where log lines go: stderr (results go to stdout).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// The free bytes of the file system holding a folder (replaceable by tests).
    public var freeSpace: (URL) -> Int64? = { freeDiskSpace(at: $0) }
    /// The data-parallel replicas this loop is one of (nil, or a group of one: this process computes
    /// whole batches). Replica r computes rows `replicaRows` of each global batch of
    /// `options.batchSize`, with the random numbers those rows get in one process
    /// (`RandomGenerator.shard`); every optimiser step sums the replicas' gradients, each weighted by
    /// its share of the batch; BatchNorm's batch statistics are the replica's rows', and its running
    /// statistics are averaged over the replicas after every step. Only rank 0 writes files and logs.
    public var replicas: ReplicaGroup? = TrainingLoop.worldReplicas
    /// The replicas every new loop belongs to: the ranks of `mpirun`, set once by the command line
    /// when it starts under `mpirun` (nil: one process).
    nonisolated(unsafe) public static var worldReplicas: ReplicaGroup?
    /// `--grad-shards K`: computes each batch as K replicas in this process would (`makeReplica`
    /// builds the others), ending with the bits K ranks of `mpirun` end with (K = 2).
    public var gradientShards = 1
    /// Builds another replica of `model`: the same architecture, seed and settings.
    public var makeReplica: (() throws -> TrainableModel)?
    /// Whether to keep `stepTimings` (for `bench --distributed`).
    public var recordsStepTimings = false
    /// Each step of the last `train` when `recordsStepTimings`.
    public private(set) var stepTimings: [StepTiming] = []

    public init(model: TrainableModel, options: TrainingOptions, run: RunDirectory, config: [String: String]) {
        self.model = model
        self.options = options
        self.run = run
        self.config = config
    }

    /// The batch order of an epoch.
    public static func order(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        RandomGenerator(seed: seed ^ (UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)).permutation(count)
    }

    /// Trains on `images` (N, H, W, C) with optional labels (N), resuming from the run's checkpoint
    /// when `resume` is true and one exists (of the same configuration). Returns the epoch records
    /// written this time.
    @discardableResult
    public func train(images: Tensor, labels: Tensor?, resume: Bool) throws -> [EpochRecord] {
        if gradientShards > 1 && (replicas?.size ?? 1) == 1 { return try trainInProcessReplicas(images: images, labels: labels, resume: resume) }
        let records = try AnomalyDetection.with(enabled: options.detectAnomaly) {
            try trainDetectingAnomalies(images: images, labels: labels, resume: resume)
        }
        if let replicas, replicas === Self.worldReplicas, replicas.size > 1, !replicas.isWriter { throw ReplicaFinished() }
        return records
    }

    /// `train`, inside the anomaly-detection scope that `--detect-anomaly` asks for.
    private func trainDetectingAnomalies(images: Tensor, labels: Tensor?, resume: Bool) throws -> [EpochRecord] {
        let group = (replicas?.size ?? 1) > 1 ? replicas : nil
        let writes = group?.isWriter ?? true
        stepTimings = []
        if !writes { log = { _ in } }
        if writes { try FileManager.default.createDirectory(at: run.url, withIntermediateDirectories: true) }
        let n = images.shape[0]
        precondition(n > 0, "train: empty dataset")
        let batchesPerEpoch = (n + options.batchSize - 1) / options.batchSize
        if let group { try checkShards(examples: n, group: group) }
        var epoch = 0, batchIndex = 0, step = 0
        var sums: [String: Double] = [:]
        var names: [String] = []
        var rng = RandomGenerator(seed: options.seed &+ 0x5EED)
        var history: [EpochRecord] = (try? Self.readMetrics(run.metrics)) ?? []
        var lastSaved: Int?
        // Wall-clock seconds of training in the invocations before this one (checkpoints record the
        // sum as `train_seconds`).
        var earlierSeconds = 0.0
        if resume, FileManager.default.fileExists(atPath: run.checkpoint.path) {
            let checkpoint = try Checkpoint(contentsOf: run.checkpoint)
            if checkpoint.isWeightsOnly {
                throw TrainingError.weightsOnly(path: run.checkpoint.path)
            }
            try checkSameConfiguration(checkpoint)
            earlierSeconds = checkpoint.metadata["train_seconds"].flatMap(Double.init) ?? 0
            try model.restore(from: checkpoint)
            epoch = try checkpoint.integer("epoch")
            batchIndex = try checkpoint.integer("batch")
            step = try checkpoint.integer("step")
            lastSaved = step
            rng = try checkpoint.randomGenerator("rng")
            if let partial = checkpoint.metadata["epoch_sums"], let data = partial.data(using: .utf8) {
                sums = (try? JSONDecoder().decode([String: Double].self, from: data)) ?? [:]
            }
            history = history.filter { $0.epoch <= epoch }
            try Self.truncateMetrics(run.metrics, epochsDone: epoch, step: step)
            log("resuming \(run.checkpoint.path) at epoch \(epoch + 1), batch \(batchIndex), step \(step)")
        } else {
            if !resume {
                history = []
                if writes { try? FileManager.default.removeItem(at: run.metrics) }
            }
            for line in try model.initialise(from: options.initFrom) { log(line) }
        }
        if writes { try checkDiskSpace() }
        try checkLabels(labels)
        if let clip = options.clipGradientNorm { for (_, optimizer) in model.namedOptimizers { optimizer.maxGradientNorm = clip } }
        if group != nil, let what = model.dataDependentInitialisation { throw TrainingError.dataDependentInitialisation(what: what) }
        let timed = group.map { TimedReplicaGroup($0) }
        let reducer = timed.map { ShardGradientReducer(group: $0) }
        for (_, optimizer) in model.namedOptimizers { optimizer.gradientRecord.reducer = reducer }
        defer { for (_, optimizer) in model.namedOptimizers { optimizer.gradientRecord.reducer = nil } }
        StopSignal.install()
        defer { StopSignal.restore() }
        let started = Date()
        let progress = ProgressReporter(log: log, deadline: options.maxSeconds > 0 ? started.addingTimeInterval(options.maxSeconds) : nil)
        var clockSaysStop: Bool { options.maxSeconds > 0 && Date().timeIntervalSince(started) >= options.maxSeconds }
        // Replicas stop together: on rank 0's clock and any rank's signal, agreed after every step.
        var agreedOutOfTime = false, agreedSignal: Int32 = 0
        var outOfTime: Bool { group == nil ? clockSaysStop : agreedOutOfTime }
        var stopSignal: Int32 { group == nil ? StopSignal.received : agreedSignal }
        var written: [EpochRecord] = []
        let steps = writes ? try StepLog(run: run, options: options, model: model) : nil
        func save() throws {
            guard writes else { return }
            var c = Checkpoint()
            model.store(into: &c)
            c.metadata["epoch"] = String(epoch)
            c.metadata["batch"] = String(batchIndex)
            c.metadata["step"] = String(step)
            c.metadata["model"] = type(of: model).kind
            c.metadata["generative_version"] = ToolkitVersion.line
            c.metadata["train_seconds"] = String(format: "%.1f", earlierSeconds + Date().timeIntervalSince(started))
            c.store(rng, as: "rng")
            if let data = try? JSONEncoder().encode(sums) { c.metadata["epoch_sums"] = String(decoding: data, as: UTF8.self) }
            if let data = try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]) {
                c.metadata["config"] = String(decoding: data, as: UTF8.self)
            }
            if let bad = c.firstNonFiniteTensor() {
                throw TrainingError.nonFinite(step: step, what: "tensor \(bad.key) holds \(nonFiniteText(bad.value))",
                                              lastCheckpointStep: lastSaved)
            }
            try c.write(to: run.checkpoint)
            lastSaved = step
        }
        /// A periodic checkpoint: also kept as `checkpoint-stepS` (a hard link, no copy) when asked,
        /// the oldest beyond `keepCheckpoints` removed.
        func savePeriodic() throws {
            try save()
            guard writes, options.keepCheckpoints > 0 else { return }
            let kept = run.checkpoint(step: step)
            unlink(kept.path)
            if link(run.checkpoint.path, kept.path) != 0 { try FileManager.default.copyItem(at: run.checkpoint, to: kept) }
            for (_, old) in run.keptCheckpoints().dropLast(options.keepCheckpoints) { try? FileManager.default.removeItem(at: old) }
        }
        while epoch < options.epochs {
            let order = Self.order(count: n, seed: options.seed, epoch: epoch)
            let start = Date()
            var seen = 0
            while batchIndex < batchesPerEpoch {
                if (options.maxSteps > 0 && step >= options.maxSteps) || outOfTime { break }
                let lo = batchIndex * options.batchSize, hi = min(n, lo + options.batchSize)
                let idx = Array(order[lo..<hi])
                var losses: [(String, Double)]
                let stepStart = Date()
                if let group = timed, let reducer {
                    let rows = replicaRows(count: idx.count, rank: group.rank, size: group.size)
                    let mine = Array(idx[rows])
                    reducer.share = Float(rows.count) / Float(idx.count)
                    rng.shard = BatchShard(batch: idx.count, rows: rows)
                    losses = model.trainStep(images: images.rows(mine), labels: labels?.rows(mine), rng: rng, step: step)
                    rng.shard = nil
                    if let failure = reducer.failure { throw failure }
                    (losses, agreedOutOfTime, agreedSignal) = try agree(losses, share: Double(rows.count) / Double(idx.count),
                                                                        group: group, step: step + 1,
                                                                        outOfTime: clockSaysStop, signal: StopSignal.received)
                } else {
                    losses = model.trainStep(images: images.rows(idx), labels: labels?.rows(idx), rng: rng, step: step)
                }
                if recordsStepTimings {
                    stepTimings.append(StepTiming(seconds: Date().timeIntervalSince(stepStart), collectiveSeconds: timed?.seconds ?? 0,
                                                  collectiveBytes: timed?.bytes ?? 0))
                    timed?.reset()
                }
                if let bad = losses.first(where: { !$0.1.isFinite }) {
                    let origin = AnomalyDetection.first.map { " (the first non-finite value: \($0))" } ?? ""
                    throw TrainingError.nonFinite(step: step + 1, what: "\(bad.0) is \(nonFiniteText(bad.1))" + origin,
                                                  lastCheckpointStep: lastSaved)
                }
                if let bad = model.namedOptimizers.first(where: { !$0.optimizer.lastGradientsAreFinite }) {
                    let origin = AnomalyDetection.first.map { " (the first non-finite value: \($0))" } ?? ""
                    let owner = bad.name.isEmpty ? "the gradient" : "the gradient of optimiser \(bad.name)"
                    throw TrainingError.nonFinite(step: step + 1, what: "\(owner) is not finite" + origin,
                                                  lastCheckpointStep: lastSaved)
                }
                if names.isEmpty { names = losses.map { $0.0 } }
                for (name, value) in losses { sums[name, default: 0] += value * Double(idx.count) }
                batchIndex += 1
                step += 1
                seen += idx.count
                let elapsed = Date().timeIntervalSince(start)
                try steps?.record(step: step, epoch: epoch + 1, losses: losses, images: idx.count)
                progress.update(epoch: epoch + 1, epochs: options.epochs, batch: batchIndex, batches: batchesPerEpoch,
                                losses: losses, imagesPerSecond: Double(seen) / max(elapsed, 1e-9),
                                stepsLeft: options.maxSteps > 0 ? options.maxSteps - step : nil)
                if options.saveEvery > 0 && step % options.saveEvery == 0 { try savePeriodic() }
                if stopSignal != 0 {
                    try save()
                    throw TrainingError.interrupted(signal: stopSignal, step: step, checkpoint: run.checkpoint.path)
                }
            }
            if batchIndex < batchesPerEpoch { break }  // stopped by maxSteps or maxSeconds mid-epoch
            let elapsed = Date().timeIntervalSince(start)
            var means: [String: Double] = [:]
            for (k, v) in sums { means[k] = v / Double(n) }
            let record = EpochRecord(epoch: epoch + 1, step: step, losses: means,
                                     imagesPerSecond: Double(seen) / max(elapsed, 1e-9), seconds: elapsed)
            progress.finish(record)
            history.append(record)
            written.append(record)
            if writes { try Self.appendMetrics(record, to: run.metrics) }
            try steps?.record(record)
            epoch += 1
            batchIndex = 0
            sums = [:]
            try save()
            if writes { try writePictures(history: history, epoch: epoch) }
        }
        if (options.maxSteps > 0 && step >= options.maxSteps) || outOfTime {
            try save()
            // The loss plot as it stands (step lines, or the epochs so far); sample grids come at epochs' ends.
            if writes { try writeLossPlot(history: history) }
            log("stopped at step \(step) (epoch \(epoch + 1), batch \(batchIndex)); checkpoint \(run.checkpoint.path)")
        }
        return written
    }

    /// Refuses to start when the run folder's file system cannot hold a new checkpoint beside the
    /// last one (the atomic write needs both at once): twice the checkpoint's size.
    func checkDiskSpace() throws {
        var c = Checkpoint()
        model.store(into: &c)
        let bytes = c.tensors.values.reduce(Int64(0)) { $0 + Int64($1.elementCount * $1.dtype.byteSize) }
        let needed = 2 * bytes + (1 << 20)
        try FileManager.default.createDirectory(at: run.url, withIntermediateDirectories: true)
        if let free = freeSpace(run.url), free < needed {
            throw TrainingError.diskSpace(folder: run.url.path, free: free, needed: needed)
        }
    }

    /// Refuses labels outside the model's classes before the first step (an out-of-range label
    /// would index past an embedding or a logit row).
    func checkLabels(_ labels: Tensor?) throws {
        let conditional = (model as? any GenerativeModel).flatMap { $0.classCount > 0 ? $0.classCount : nil }
        guard let labels, let classes = model.labelClasses ?? conditional else { return }
        let values = labels.dtype == .int64 ? labels.scalars(as: Int64.self) : labels.doubleScalars().map { Int64($0) }
        if let index = values.firstIndex(where: { $0 < 0 || $0 >= Int64(classes) }) {
            throw TrainingError.labelOutOfRange(index: index, label: values[index], classes: classes)
        }
    }

    /// Refuses to resume from a checkpoint of another model kind or configuration.
    func checkSameConfiguration(_ checkpoint: Checkpoint) throws {
        var differences: [String] = []
        let kind = type(of: model).kind
        if let stored = checkpoint.metadata["model"], stored != kind { differences.append("model was \(stored), now \(kind)") }
        if differences.isEmpty, let text = checkpoint.metadata["config"],
           let stored = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] {
            differences = Self.configurationDifferences(stored: stored, current: config)
        }
        guard differences.isEmpty else {
            throw TrainingError.configurationChanged(path: checkpoint.path, differences: differences)
        }
    }

    /// The settings that differ between a stored configuration and this run's, as "KEY was OLD, now
    /// NEW" in key order; values that are JSON objects are compared key by key ("gan_config.beta1").
    /// Keys either side lacks are not compared, so checkpoints that stored fewer settings resume.
    public static func configurationDifferences(stored: [String: Any], current: [String: Any], prefix: String = "") -> [String] {
        var differences: [String] = []
        for key in stored.keys.sorted() {
            guard let old = stored[key], let new = current[key] else { continue }
            if let oldObject = jsonObject(old), let newObject = jsonObject(new) {
                differences += configurationDifferences(stored: oldObject, current: newObject, prefix: prefix + key + ".")
            } else if render(old) != render(new) {
                differences.append("\(prefix)\(key) was \(render(old)), now \(render(new))")
            }
        }
        return differences
    }

    /// A configuration value that is a JSON object, or a string holding one.
    private static func jsonObject(_ value: Any) -> [String: Any]? {
        if let object = value as? [String: Any] { return object }
        guard let text = value as? String, text.hasPrefix("{") else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    /// A configuration value as text: strings as they are, anything else as JSON.
    private static func render(_ value: Any) -> String {
        if let text = value as? String { return text }
        guard let data = try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys]) else { return "\(value)" }
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }

    func writePictures(history: [EpochRecord], epoch: Int) throws {
        if model.makesImages {
            let grid = withoutGradients { model.sampleGrid(seed: options.seed) }
            try PNGWriter.write(grid, to: run.samples(epoch: epoch))
            try PNGWriter.write(grid, to: run.latestSamples)
        }
        try writeLossPlot(history: history)
    }

    /// Writes `loss.png` from the epoch records and the metrics log's step lines.
    func writeLossPlot(history: [EpochRecord]) throws {
        try PNGWriter.write(Self.lossPlot(epochs: history, steps: (try? Self.readStepMetrics(run.metrics)) ?? []), to: run.lossPlot)
    }

    /// The loss plot of a run's metrics log (`RUN/metrics.jsonl`), as training draws `loss.png`.
    public static func lossPlot(metrics url: URL) throws -> Tensor {
        lossPlot(epochs: try readMetrics(url), steps: try readStepMetrics(url))
    }

    /// The loss plot: each loss term against the step, from the step lines when there are at least
    /// two (one batch's value every `--log-every` steps), else the epoch means against the epoch;
    /// on a log scale when the values span decades.
    static func lossPlot(epochs: [EpochRecord], steps: [[String: Double]]) -> Tensor {
        // The loss terms: the epoch lines', else the step lines' keys other than the bookkeeping.
        let bookkeeping = ["step", "epoch", "wall_time", "images_per_s"]
        let names = (epochs.first?.losses.keys).map { Array($0).sorted() }
            ?? (steps.first?.keys.filter { key in !bookkeeping.contains(key) && !key.hasPrefix("lr") && !key.hasPrefix("grad_norm") }.sorted() ?? [])
        let series: [PlotSeries]
        var xLabel: String, yLabel: String
        if steps.count >= 2, !names.isEmpty {
            series = names.map { name in PlotSeries(name: name, points: steps.map { ($0["step"] ?? .nan, $0[name] ?? .nan) }) }
            let every = Int((steps[1]["step"] ?? 0) - (steps[0]["step"] ?? 0))
            xLabel = "step"
            yLabel = "loss (one batch every \(every) steps)"
        } else {
            series = names.map { name in PlotSeries(name: name, points: epochs.map { (Double($0.epoch), $0.losses[name] ?? .nan) }) }
            xLabel = "epoch"
            yLabel = "loss (mean over the epoch)"
        }
        let logScale = spansDecades(series.flatMap { $0.points.map(\.y) })
        if logScale { yLabel += ", log scale" }
        return renderPlot(series: series, xLabel: xLabel, yLabel: yLabel, yScale: logScale ? .log : .linear)
    }

    static func appendMetrics(_ record: EpochRecord, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(record)
        line.append(0x0A)
        try appendLine(line, to: url)
    }

    /// Appends a line (ending in a newline) to a log, creating it if need be.
    static func appendLine(_ line: Data, to url: URL) throws {
        if let handle = try? FileHandle(forWritingTo: url) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        } else {
            try line.write(to: url)
        }
    }

    /// Reads a metrics log's epoch lines.
    public static func readMetrics(_ url: URL) throws -> [EpochRecord] {
        try metricsLines(url).filter { kind(of: $0) != "step" }.map { try JSONDecoder().decode(EpochRecord.self, from: Data($0.utf8)) }
    }

    /// Reads a metrics log's step lines (`--log-every`), each a flat object of numbers: `step`,
    /// `epoch`, the loss terms, `lr`, `grad_norm`, `images_per_s`, `wall_time`.
    public static func readStepMetrics(_ url: URL) throws -> [[String: Double]] {
        try metricsLines(url).filter { kind(of: $0) == "step" }.map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    private static func metricsLines(_ url: URL) throws -> [Substring] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
    }

    /// A line's `kind` ("epoch", "step"; nil in logs of older versions, which hold epoch lines only).
    private static func kind(of line: Substring) -> String? {
        struct Kind: Decodable { var kind: String? }
        return (try? JSONDecoder().decode(Kind.self, from: Data(line.utf8)))?.kind
    }

    /// On resume, drops what a run wrote after its checkpoint (it is written again, identically):
    /// epoch lines past `epochsDone` and step lines past `step`.
    static func truncateMetrics(_ url: URL, epochsDone: Int, step: Int) throws {
        guard let lines = try? metricsLines(url) else { return }
        let kept = lines.filter { line in
            if kind(of: line) == "step" {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return ((object?["step"] as? NSNumber)?.intValue ?? 0) <= step
            }
            return ((try? JSONDecoder().decode(EpochRecord.self, from: Data(line.utf8)))?.epoch ?? 0) <= epochsDone
        }
        guard kept.count != lines.count else { return }
        try Data(kept.map { $0 + "\n" }.joined().utf8).write(to: url, options: .atomic)
    }
}
