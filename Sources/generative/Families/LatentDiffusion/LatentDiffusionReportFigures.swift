import Foundation
import GenTensor
import GenData
import GenModels
import GenTrain

extension LatentDiffusionTraining {
    /// The report's figures for the model's condition, on test images or one prompt per class:
    /// - prompt: rows of guidance 0, 1, 3, 5, one column per class ("a sneaker"), the same noise
    ///   down each column;
    /// - inpaint: the first test images, with the centre 14x14 masked (grey), then inpainted;
    /// - upscale: the first test images halved to 14x14 and upsampled bicubically, then by the
    ///   model, then the 28x28 originals.
    /// The class model's guidance grid is the report's own (every class-conditional model's); an
    /// unconditional model has none.
    func reportFigures(context: ReportFigureContext) throws -> [ReportFigure] {
        let options = SamplingOptions(batchSize: context.batchSize)
        switch config.condition {
        case .none, .class:
            return []
        case .prompt:
            let prompts = FashionCaptions.names.indices.map { FashionCaptions.prompt(naming: $0) }
            let scales: [Double] = [0, 1, 3, 5]
            let rows = try scales.map { scale in
                var guided = options
                guided.guidance = scale
                return try sample(prompts: prompts, seed: context.seed, options: guided, progress: nil)
            }
            return [ReportFigure(topic: "prompt guidance",
                                 caption: "rows: guidance \(scales.map { String(format: "%g", $0) }.joined(separator: ", ")); columns: "
                                     + prompts.map { "\"\($0)\"" }.joined(separator: ", ") + "; \(samplingSummary(options))",
                                 grid: imageGrid(Tensor.concatenate(rows, axis: 0), columns: prompts.count))]
        case .inpaint:
            let images = try firstTestImages(context.columns)
            let masks = InpaintingMasks.centre(count: images.shape[0], height: imageShape[0], width: imageShape[1], side: imageShape[0] / 2)
            let filled = try inpaint(images: images, masks: masks, seed: context.seed, options: options)
            let masked = withoutGradients { images * (1 - masks) + masks * 0.5 }
            return [ReportFigure(topic: "inpainting",
                                 caption: "rows: the first \(images.shape[0]) test images with their centre \(imageShape[0] / 2)x\(imageShape[1] / 2) "
                                     + "masked (grey), then inpainted (the kept pixels are the input's); \(samplingSummary(options))",
                                 grid: imageGrid(Tensor.concatenate([masked, filled], axis: 0), columns: images.shape[0]))]
        case .upscale:
            let images = try firstTestImages(context.columns)
            let low = resizeImages(images, height: lowResolutionShape[0], width: lowResolutionShape[1])
            let bicubic = resizeImages(low, height: imageShape[0], width: imageShape[1], filter: .bicubic).clamped(min: 0, max: 1)
            let upscaled = try upscale(low, seed: context.seed, options: options)
            return [ReportFigure(topic: "super-resolution",
                                 caption: "rows: the first \(images.shape[0]) test images halved to \(lowResolutionShape[0])x\(lowResolutionShape[1]) "
                                     + "and upsampled bicubically; upscaled by the model; the originals; \(samplingSummary(options))",
                                 grid: imageGrid(Tensor.concatenate([bicubic, upscaled, images], axis: 0), columns: images.shape[0]))]
        }
    }

    /// The first `count` Fashion-MNIST test images.
    private func firstTestImages(_ count: Int) throws -> Tensor {
        let test = try ImageDataset.fashionMNIST(split: .test).images
        return test.sliced(axis: 0, 0..<min(count, test.shape[0]))
    }
}
