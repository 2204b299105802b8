import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// Sampling a GAN: z ~ N(0, I) through the generator in eval mode, with the EMA weights (whose
/// BatchNorm statistics are re-measured) unless asked for the raw ones.
extension GANTraining: GenerativeModel {
    /// Copies the EMA shadows into `emaGenerator` and re-measures its BatchNorm running statistics
    /// (the raw generator's describe the raw weights, not their average; the FID it gains:
    /// docs/architecture.md, Measurements and history).
    /// Done once per EMA state: sampling in batches reuses it until the next update or restore.
    func syncEMAGenerator() {
        if emaGeneratorSyncedAt == ema.updates { return }
        for ((_, target), shadow) in zip(emaGenerator.namedParameters, ema.shadows) { target.assign(shadow.copied()) }
        recalibrateBatchNorm(of: emaGenerator, batches: Self.recalibrationBatches)
        emaGeneratorSyncedAt = ema.updates
    }

    /// Training-mode batches whose statistics the EMA generator's BatchNorm layers average.
    static let recalibrationBatches = 100

    /// Re-measures the BatchNorm running statistics of `g` on its own training-mode forwards:
    /// `batches` batches of the training batch size (64) from fixed noise (and uniform labels).
    func recalibrateBatchNorm(of g: any GANGenerator, batches: Int, batchSize: Int = 64) {
        let norms = g.batchNorms
        guard !norms.isEmpty else { return }
        let rng = RandomGenerator(seed: 0x5EED_B4)
        BatchNorm.recalibrate(norms, batches: batches) { _ in
            let z = Tensor.normal([batchSize, config.zDim], generator: rng)
            if let c = g as? ConditionalDCGANGenerator {
                _ = c(z, labels: Tensor.randomIntegers([batchSize], low: 0, high: c.classCount, generator: rng), training: true)
            } else {
                _ = g(z, training: true)
            }
        }
    }

    /// The generator that sampling uses: the EMA weights (default) or the raw ones.
    public func samplingGenerator(ema useEMA: Bool = true) -> any GANGenerator {
        if useEMA { syncEMAGenerator(); return emaGenerator }
        return generator
    }

    /// Images for latent codes z (N, zDim), in eval mode, in [0, 1]: (N, 28, 28, 1). The
    /// conditional GAN draws classes `labels` (int64 (N)), or class i mod classCount for image i.
    public func images(for z: Tensor, labels: Tensor? = nil, ema useEMA: Bool = true) -> Tensor {
        let g = samplingGenerator(ema: useEMA)
        return withoutGradients {
            var parts: [Tensor] = []
            for start in stride(from: 0, to: z.shape[0], by: 500) {
                let range = start..<min(z.shape[0], start + 500)
                let zPart = z.sliced(axis: 0, range)
                let x: Tensor
                if let c = g as? ConditionalDCGANGenerator {
                    let y = labels?.sliced(axis: 0, range) ?? balancedLabels(z.shape[0], c.classCount).sliced(axis: 0, range)
                    x = c(zPart, labels: y, training: false)
                } else {
                    x = g(zPart, training: false)
                }
                parts.append(((x + 1) * 0.5).clamped(min: 0, max: 1))
            }
            return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
        }
    }

    /// `count` samples from z ~ N(0, I) drawn from `generator`, (count, 28, 28, 1) in [0, 1]; the
    /// conditional GAN draws class `label` for all, or class i mod classCount for image i.
    public func sample(count: Int, generator rng: RandomGenerator, ema useEMA: Bool = true, label: Int? = nil) -> Tensor {
        precondition(label == nil || isConditional, "GANTraining.sample: a class label needs the conditional GAN")
        let labels = label.map { k in Tensor([Int64](repeating: Int64(k), count: count), shape: [count]) }
        return images(for: Tensor.normal([count, config.zDim], generator: rng), labels: labels, ema: useEMA)
    }

    /// Samples of the EMA generator from noise fixed by `seed`: an 8x8 grid, or for the
    /// conditional GAN a grid with one column per class (10 rows).
    public func sampleGrid(seed: UInt64) -> Tensor {
        let rng = RandomGenerator(seed: seed &+ 0x6A7)
        if isConditional {
            return imageGrid(sample(count: 10 * config.classCount, generator: rng, ema: true), columns: config.classCount)
        }
        return imageGrid(sample(count: 64, generator: rng, ema: true), columns: 8)
    }

    /// The generator's output: Fashion-MNIST's 28 x 28 x 1 for every GAN generator here.
    public var imageShape: [Int] { generator.imageShape }

    public var classCount: Int { isConditional ? config.classCount : 0 }

    /// The conditional GAN draws class i mod classCount for image i when given no labels.
    public func unconditionalLabels(count: Int) -> [Int]? {
        isConditional ? balancedClassLabels(count: count, classes: config.classCount) : nil
    }

    /// Codes z drawn at once from one counter-based stream (row i is image i's, whatever the count
    /// and the first index: a normal takes two draws), through the generator 500 at a time; the
    /// conditional GAN draws `labels`, or class i mod classCount for image i.
    public func sample(count: Int, startIndex: Int, seed: UInt64, labels: [Int]?, options: SamplingOptions,
                       progress: ((Int, Int) -> Void)?) throws -> Tensor {
        if labels != nil && !isConditional { throw ModelError("a \(config.variant.rawValue) generator takes no class labels") }
        let balanced = isConditional ? balancedClassLabels(count: count, classes: config.classCount, startIndex: startIndex) : nil
        let y = (labels ?? balanced).map { Tensor($0.map { Int64($0) }, shape: [$0.count]) }
        let z = Tensor.normal([count, config.zDim], generator: RandomGenerator(seed: seed, counter: UInt64(2 * config.zDim * startIndex)))
        let batch = effectiveBatchSize(options)
        var parts: [Tensor] = []
        for start in stride(from: 0, to: count, by: batch) {
            let range = start..<min(count, start + batch)
            parts.append(images(for: z.sliced(axis: 0, range), labels: y?.sliced(axis: 0, range),
                                ema: options.ema))
            progress?(range.upperBound, count)
        }
        return parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0)
    }

    /// The generator runs at most 500 images at a time.
    public func effectiveBatchSize(_ options: SamplingOptions) -> Int { min(options.batchSize, 500) }

    public func samplingSummary(_ options: SamplingOptions) -> String {
        config.variant.rawValue + (options.ema ? " (EMA generator)" : " (raw generator)")
    }

    public var exportableNetworks: [String] { ["generator", "discriminator"] }
}
