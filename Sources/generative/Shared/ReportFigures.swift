import Foundation
import GenTensor
import GenFormats
import GenData
import GenEval
import GenTrain
import GenNN

/// A figure a family draws on its checkpoint's card in `generative report`: an image grid (H, W, C)
/// in [0, 1], with what it shows.
struct ReportFigure {
    /// One of `ReportFigure.topics` where it is one of the chapter's figures.
    var topic: String
    /// What the grid's rows and columns are.
    var caption: String
    var grid: Tensor
}

/// How a family draws the figures of its checkpoints of one kind (the metadata `model`).
struct ReportFigureMaker {
    var kind: String
    var make: (_ checkpoint: Checkpoint, _ context: ReportFigureContext) throws -> [ReportFigure]
}

/// What every figure is drawn with: the report's seed and network batch.
struct ReportFigureContext {
    var seed: UInt64
    var batchSize: Int
    /// Images per row of a figure made from test images.
    var columns = 8
}

extension ReportFigure {
    /// The chapter's figures the report draws where a shipped checkpoint can, each with the
    /// checkpoint that would add it.
    static let topics: [(topic: String, needs: String)] = [
        ("classifier-free guidance", "a class-conditional diffusion model (train ddpm --classes, or ldm --condition class)"),
        ("classifier guidance", "a DDPM with a noisy classifier (sample ddpm --classifier); the report does not draw it yet"),
        ("prompt guidance", "a prompt-conditioned latent model (train ldm --condition prompt)"),
        ("inpainting", "an inpainting latent model (train ldm --condition inpaint)"),
        ("super-resolution", "an upscaling latent model (train ldm --condition upscale)"),
        ("translation", "a CycleGAN (train cyclegan)"),
    ]

    /// Classifier-free guidance of a class-conditional model that takes `--guidance`: one row per
    /// scale (0: unconditional, 1: conditional, 3, 5), one column per class, the same noise down
    /// each column; nil for a model without classes or guidance.
    static func guidanceGrid(_ model: any GenerativeModel, context: ReportFigureContext,
                             scales: [Double] = [0, 1, 3, 5]) throws -> ReportFigure? {
        guard model.classCount > 0, (try? model.validate(SamplingOptions(guidance: 1))) != nil else { return nil }
        let classes = Array(0..<model.classCount)
        let rows = try scales.map { scale in
            try model.sample(count: classes.count, seed: context.seed, labels: classes,
                             options: SamplingOptions(batchSize: context.batchSize, guidance: scale), progress: nil)
        }
        let summary = model.samplingSummary(SamplingOptions(batchSize: context.batchSize, guidance: scales.last))
        return ReportFigure(topic: "classifier-free guidance",
                            caption: "rows: guidance \(scales.map { String(format: "%g", $0) }.joined(separator: ", ")) "
                                + "(0 unconditional, 1 conditional); columns: classes 0 to \(classes.count - 1); \(summary)",
                            grid: imageGrid(Tensor.concatenate(rows, axis: 0), columns: classes.count))
    }

    /// The first `count` test images of each of Fashion-MNIST's classes `names`, from one read of
    /// the test split (nil when one is not a class).
    static func testImages(ofClasses names: [String], count: Int? = nil) throws -> [Tensor]? {
        let test = try ImageDataset.fashionMNIST(split: .test)
        guard let classNames = test.classNames, let labels = test.labels else { return nil }
        let classes = labels.scalars(as: Int64.self)
        var images: [Tensor] = []
        for name in names {
            guard let label = classNames.firstIndex(of: name) else { return nil }
            var rows = classes.indices.filter { classes[$0] == Int64(label) }
            if let count { rows = Array(rows.prefix(count)) }
            images.append(test.images.rows(rows))
        }
        return images
    }
}
