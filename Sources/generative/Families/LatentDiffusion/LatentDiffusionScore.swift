import ArgumentParser
import Foundation
import GenDistributed
import GenTrain
import GenTensor
import GenData
import GenEval
import GenModels

/// One line of `generative ldm score`: a set of images made one way, scored by the evaluator.
struct ConditioningScore: Encodable {
    /// What made the images ("guidance 3", "ldm inpaint", "bicubic").
    var method: String
    var images: Int
    /// The share of images the evaluator's classifier assigns to the class asked for (or the test
    /// image's class, for inpainting and upscaling).
    var classAgreement: Double
    /// Mean PSNR in dB against the test originals (inpainting and upscaling).
    var psnr: Double?
    var fid: Double
    var inceptionScore: Double
    /// Images/s of the model (sampling and decoding), nil for a baseline.
    var imagesPerSecond: Double?
}

/// `generative ldm score`: what a conditioned latent model's condition is worth, against its baseline.
struct ScoreLDM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Measure how well a conditioned ldm follows its condition, beside a baseline.",
        discussion: """
            By the checkpoint's condition:
            - class or prompt: class agreement (and FID against the training split, IS) of COUNT samples with \
            balanced classes (image i of class i mod 10; a prompt model is asked "a sneaker", ...) at each \
            --guidance-scales value (0 is unconditional, 1 conditional);
            - inpaint: the first COUNT test images with their centre half masked, inpainted, against the \
            mask filled with the training split's mean image: class agreement with the test labels, PSNR \
            against the originals, FID against the test split;
            - upscale: the first COUNT test images halved to 14x14 (area average), upscaled by the model, \
            against bicubic and bilinear interpolation: PSNR, FID against the test split, class agreement.
            The test images themselves are a row of the last two, for scale. A markdown table on stdout, \
            or with --json one object {"checkpoint", "condition", "rows": [{"method", "images", \
            "class_agreement", "psnr", "fid", "inception_score", "images_per_second"}]}.
            """)

    @Option(help: "The ldm checkpoint (trained with --condition class, prompt, inpaint or upscale).")
    var checkpoint: String

    @OptionGroup var flags: LatentSamplingFlags

    @Option(help: "Images per row: samples, or test images.")
    var count: Int = 1000

    @Option(parsing: .upToNextOption, help: "Class and prompt models: the classifier-free guidance scales.")
    var guidanceScales: [Double] = [0, 1, 3, 5]

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @OptionGroup var dataFlags: DataFlags

    func validate() throws {
        guard count >= 2 else { throw ValidationError("--count must be at least 2 (the statistics need two images)") }
        guard !guidanceScales.isEmpty, guidanceScales.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw ValidationError("--guidance-scales must be non-negative numbers")
        }
    }

    func run() throws {
        let model = try loadModel(checkpoint, as: LatentDiffusionTraining.self)
        let network = try FeatureNetwork.shared()
        let data = dataFlags.data.map { URL(fileURLWithPath: $0) }
        let rows: [ConditioningScore]
        switch model.config.condition {
        case .none:
            throw ValidationError("--checkpoint \(checkpoint) is an unconditional ldm: score it with generative eval")
        case .class, .prompt:
            let reference = try Evaluator.reference(.train, network: network, dataDirectory: data, log: { logLine($0) })
            rows = try guidanceRows(model, network: network, reference: reference)
        case .inpaint, .upscale:
            let test = try dataFlags.load(.test)
            guard let labels = test.labels else { throw ValidationError("\(test.source): the test split has no labels for class agreement") }
            let n = min(count, test.count)
            if n < count { logLine("warning: \(test.source) holds \(test.count) test images, fewer than --count \(count); scored \(n)") }
            let originals = test.images.sliced(axis: 0, 0..<n), truth = labels.sliced(axis: 0, 0..<n)
            let reference = try Evaluator.reference(.test, network: network, dataDirectory: data, log: { logLine($0) })
            let made = model.config.condition == .inpaint
                ? try inpaintingSets(model, originals: originals, training: try dataFlags.load(.train).images)
                : try upscalingSets(model, originals: originals)
            rows = try made.map { method, images, speed in
                try score(method, images: images, labels: truth, originals: originals, speed: speed, network: network, reference: reference)
            } + [try score("test images", images: originals, labels: truth, originals: nil, speed: nil, network: network, reference: reference)]
        }
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            struct Output: Encodable { var checkpoint: String; var condition: String; var rows: [ConditioningScore] }
            let output = Output(checkpoint: checkpoint, condition: model.config.condition.rawValue, rows: rows)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
        } else {
            print(Self.table(rows, summary: model.samplingSummary(try flags.options())))
        }
    }

    /// Balanced classes at each guidance scale.
    func guidanceRows(_ model: LatentDiffusionTraining, network: FeatureNetwork, reference: ReferenceSet) throws -> [ConditioningScore] {
        let labels = balancedClassLabels(count: count, classes: model.classCount)
        let truth = Tensor(labels.map { Int64($0) }, shape: [count])
        return try guidanceScales.map { scale in
            var options = try flags.options()
            options.guidance = scale
            logLine("sampling \(count) images at guidance \(scale) (\(model.samplingSummary(options)))")
            let start = Date()
            let images = try withProgress(count: count) { progress in
                try model.sample(count: count, seed: flags.seed, labels: labels, options: options, progress: progress)
            }
            let speed = Double(count) / max(Date().timeIntervalSince(start), 1e-9)
            return try score(String(format: "guidance %g", scale), images: images, labels: truth, originals: nil, speed: speed,
                             network: network, reference: reference)
        }
    }

    /// The centre half of each image masked, filled by the model and by the training split's mean image.
    func inpaintingSets(_ model: LatentDiffusionTraining, originals: Tensor,
                        training: Tensor) throws -> [(String, Tensor, Double?)] {
        let shape = model.imageShape
        let masks = InpaintingMasks.centre(count: originals.shape[0], height: shape[0], width: shape[1], side: shape[0] / 2)
        let options = try flags.options()
        logLine("inpainting \(originals.shape[0]) test images, the centre \(shape[0] / 2)x\(shape[1] / 2) masked (\(model.samplingSummary(options)))")
        let start = Date()
        let filled = try withProgress(count: originals.shape[0], label: "inpainting") { progress in
            try model.inpaint(images: originals, masks: masks, seed: flags.seed, options: options, progress: progress)
        }
        let speed = Double(originals.shape[0]) / max(Date().timeIntervalSince(start), 1e-9)
        let mean = withoutGradients { training.mean(axis: 0, keepDims: true) }
        let meanFilled = withoutGradients { originals * (1 - masks) + masks * mean }
        return [("ldm inpaint", filled, speed), ("mean-image fill", meanFilled, nil)]
    }

    /// Each image halved to 14x14, upscaled by the model and by interpolation.
    func upscalingSets(_ model: LatentDiffusionTraining, originals: Tensor) throws -> [(String, Tensor, Double?)] {
        let low = resizeImages(originals, height: model.lowResolutionShape[0], width: model.lowResolutionShape[1])
        let options = try flags.options()
        logLine("upscaling \(originals.shape[0]) test images from \(model.lowResolutionShape[0])x\(model.lowResolutionShape[1]) (\(model.samplingSummary(options)))")
        let start = Date()
        let upscaled = try withProgress(count: originals.shape[0], label: "upscaling") { progress in
            try model.upscale(low, seed: flags.seed, options: options, progress: progress)
        }
        let speed = Double(originals.shape[0]) / max(Date().timeIntervalSince(start), 1e-9)
        let interpolated = [UpsamplingFilter.bicubic, .bilinear].map { filter in
            (filter.rawValue, resizeImages(low, height: model.imageShape[0], width: model.imageShape[1], filter: filter).clamped(min: 0, max: 1),
             Double?.none)
        }
        return [("ldm upscale", upscaled, speed)] + interpolated
    }

    func score(_ method: String, images: Tensor, labels: Tensor, originals: Tensor?, speed: Double?,
               network: FeatureNetwork, reference: ReferenceSet) throws -> ConditioningScore {
        let report = try Evaluator.evaluate(images: images, labels: labels, input: method, inputKind: "memory", network: network,
                                            reference: reference, log: { logLine($0) })
        let psnr = originals.map { peakSignalToNoiseRatio(images, originals: $0) }.map { $0.reduce(0, +) / Double($0.count) }
        return ConditioningScore(method: method, images: images.shape[0], classAgreement: report.classAgreement ?? 0, psnr: psnr,
                                 fid: report.fid, inceptionScore: report.inceptionScore, imagesPerSecond: speed)
    }

    /// The markdown table of `rows`.
    static func table(_ rows: [ConditioningScore], summary: String) -> String {
        var lines = ["| method | images | class agreement | PSNR (dB) | FID | IS | images/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in rows {
            lines.append("| \(row.method) | \(row.images) | " + String(format: "%.1f%%", 100 * row.classAgreement)
                         + " | \(row.psnr.map { String(format: "%.2f", $0) } ?? "") | " + String(format: "%.2f | %.2f", row.fid, row.inceptionScore)
                         + " | \(row.imagesPerSecond.map { String(format: "%.1f", $0) } ?? "") |")
        }
        lines.append("\nModel rows: \(summary). FID with \(rows.first?.images ?? 0) images is biased upward; compare rows of one count.")
        return lines.joined(separator: "\n")
    }
}
