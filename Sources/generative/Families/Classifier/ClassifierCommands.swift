import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Classifiers: the evaluation's feature network and the noisy classifier that guides a DDPM. They
/// make no images, so they have only `train` commands.
let classifierFamily = FamilyCommands(name: "classifier", train: [TrainNoisyClassifier.self, TrainClassifier.self],
                                      benchmarks: [WorkloadBenchmark.classifier])

/// `generative train noisy-classifier`.
struct TrainNoisyClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noisy-classifier",
        abstract: "Train a noise-aware classifier p(y | x_t, t) for classifier guidance of a DDPM (Dhariwal & Nichol 2021).")

    @OptionGroup var flags: TrainingFlags<StandardTrainingDefaults>

    @Option(help: "The diffusion's noise schedule: linear or cosine (must match the DDPM it guides).")
    var schedule: NoiseScheduleKind = .linear

    func run() throws {
        let (run, lock) = try flags.start("noisy-classifier")
        defer { lock.release() }
        let data = try flags.loadTraining()
        guard let labels = data.labels else { throw ValidationError("\(data.source) has no labels to classify") }
        let classes = Int(labels.scalars(as: Int64.self).max() ?? 0) + 1
        let model = NoisyClassifierTraining(classes: classes, schedule: schedule, learningRate: flags.lr, seed: flags.seed)
        let loop = TrainingLoop(model: model, options: flags.options(), run: run,
                                config: ["model": NoisyClassifierTraining.kind, "schedule": schedule.rawValue, "classes": String(classes),
                                         "lr": String(flags.lr), "batch_size": String(flags.batchSize), "seed": String(flags.seed)])
        try loop.train(images: data.images, labels: labels, resume: flags.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// `generative train classifier`: the evaluation's feature network.
struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Train the feature network of `generative eval` (the Classifier CNN) with Adam on cross-entropy.",
        discussion: """
            Images are mapped from [0, 1] to [-1, 1] (x * 2 - 1), as eval does. After every epoch the \
            test accuracy is printed and appended to accuracy.jsonl in the run folder. --export writes \
            the final weights as a plain PyTorch state_dict, usable with `generative eval --network`.
            """)

    @OptionGroup var flags: TrainingFlags<StandardTrainingDefaults>

    @Option(name: .customLong("init"), help: .hidden)
    var deprecatedInit: String?

    /// The loop's options, with the older spelling `--init FILE` of `--init-from FILE`.
    var options: TrainingOptions {
        var options = flags.options()
        if let deprecatedInit { options.initFrom = [InitialWeights(path: deprecatedInit)] }
        return options
    }

    @Flag(help: "Augment with random horizontal flips.")
    var flip = false

    @Option(help: "Augment with random shifts of up to this many pixels (0: none).")
    var maxShift: Int = 0

    @Option(help: "Also write the final weights as a plain state_dict (.safetensors) here.")
    var export: String?

    func validate() throws {
        try DeprecatedFlag.check(flags.initFrom.first, "--init-from", old: deprecatedInit, "--init")
        guard (0...8).contains(maxShift) else { throw ValidationError("--max-shift must be in 0...8") }
    }

    func run() throws {
        let (run, lock) = try flags.start("classifier")
        defer { lock.release() }
        if let export, sameFile(export, run.checkpoint.path) {
            throw ValidationError("--export \(export) is the run's checkpoint: choose another file")
        }
        let data = try flags.loadTraining()
        guard let labels = data.labels else {
            throw ValidationError("the training data (\(data.source)) has no labels: the classifier needs them")
        }
        let test = try flags.dataFlags.load(.test)
        guard let testLabels = test.labels else {
            throw ValidationError("the test data (\(test.source)) has no labels: test accuracy needs them")
        }
        let model = ClassifierTraining(learningRate: flags.lr, seed: flags.seed, flip: flip, maxShift: maxShift,
                                       previewImages: data.images.rows(Array(0..<min(64, data.count))))
        let loop = TrainingLoop(model: model, options: options, run: run,
                                config: ["model": "classifier", "lr": String(flags.lr), "batch_size": String(flags.batchSize),
                                         "seed": String(flags.seed), "flip": String(flip), "max_shift": String(maxShift)])
        logLine("training classifier on \(data.count) images (\(data.source)) for \(flags.epochs) epochs, batch \(flags.batchSize), lr \(flags.lr), seed \(flags.seed)")
        let accuracyLog = run.url.appendingPathComponent("accuracy.jsonl")
        let start = Date()
        var accuracy = Double.nan
        // One epoch per call, resuming from the checkpoint the previous call wrote (exact), so the
        // test accuracy can be measured between epochs.
        for target in 1...flags.epochs {
            var options = flags.options()
            options.epochs = target
            // --minutes bounds the whole run, not each epoch's call.
            if flags.length.minutes > 0 {
                let left = flags.length.minutes * 60 - Date().timeIntervalSince(start)
                if left <= 0 { break }
                options.maxSeconds = left
            }
            let epochLoop = TrainingLoop(model: model, options: options, run: run, config: loop.config)
            // Resuming from the previous epoch's own checkpoint is an implementation detail: say nothing.
            if target > 1 { epochLoop.log = { if !$0.hasPrefix("resuming") { logLine($0) } } }
            let records = try epochLoop.train(images: data.images, labels: labels, resume: flags.resume || target > 1)
            guard let record = records.last else { continue }
            accuracy = model.accuracy(images: test.images, labels: testLabels)
            logLine(String(format: "epoch %d: test accuracy %.2f%% (%d of %d)", record.epoch, 100 * accuracy,
                         Int((accuracy * Double(test.count)).rounded()), test.count))
            fflush(stdout)
            let line = String(format: "{\"epoch\":%d,\"step\":%d,\"test_accuracy\":%.6f}\n", record.epoch, record.step, accuracy)
            if target == 1 && !flags.resume { try? FileManager.default.removeItem(at: accuracyLog) }
            if let handle = try? FileHandle(forWritingTo: accuracyLog) {
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(line.utf8))
                try handle.close()
            } else {
                try Data(line.utf8).write(to: accuracyLog)
            }
            if flags.maxSteps > 0 && record.step >= flags.maxSteps { break }
        }
        if accuracy.isNaN { accuracy = model.accuracy(images: test.images, labels: testLabels) }
        print(String(format: "final test accuracy %.2f%% on %d test images", 100 * accuracy, test.count))
        if let export {
            let url = URL(fileURLWithPath: export)
            try SafeTensorsFile.write(model.model.stateDict(), metadata: [
                "model": "classifier", "test_accuracy": String(format: "%.4f", accuracy),
                "epochs": String(flags.epochs), "seed": String(flags.seed),
            ], to: url)
            print("wrote the weights (plain state_dict) to \(url.path), sha256 \(try SHA256.hex(contentsOf: url))")
        }
        print(String(format: "done in %.1f s. checkpoint: %@\n  metrics: %@\n  test accuracy: %@\n  training images: %@",
                     Date().timeIntervalSince(start), run.checkpoint.path, run.metrics.path, accuracyLog.path,
                     run.latestSamples.path))
    }
}
