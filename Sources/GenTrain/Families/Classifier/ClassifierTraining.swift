import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The feature network of the evaluation (`Classifier`, the small CNN of scripts/torch_reference/models.py) as a
/// `TrainableModel`: cross-entropy on the labels, Adam, images mapped from [0, 1] to [-1, 1] by
/// x * 2 - 1 (the mapping `generative eval` applies). Optional light augmentation: random
/// horizontal flips and shifts of up to `maxShift` pixels (zero-padded), drawn from the loop's
/// checkpointed generator, so resume stays exact.
public final class ClassifierTraining: TrainableModel {
    public static let kind = "classifier"
    public let model: Classifier
    /// Labels index the classifier's outputs.
    public var labelClasses: Int? { model.fc2.weight.value.shape[0] }
    public let optimizer: Adam
    /// The step log's optimiser (`lr`, `grad_norm`).
    public var namedOptimizers: [(name: String, optimizer: any Optimizer)] { [("", optimizer)] }
    /// Flip half the images left to right.
    public let flip: Bool
    /// Shift each image by up to this many pixels in each direction (0: no shifts).
    public let maxShift: Int
    /// Images shown by `sampleGrid` (N, 28, 28, 1) in [0, 1], e.g. the first 64 training images.
    public var previewImages: Tensor?

    public init(learningRate: Double = 1e-3, seed: UInt64, flip: Bool = false, maxShift: Int = 0,
                previewImages: Tensor? = nil) {
        precondition(maxShift >= 0, "ClassifierTraining: maxShift \(maxShift)")
        model = Classifier(generator: RandomGenerator(seed: seed))
        optimizer = Adam(model.trainableParameters, learningRate: learningRate)
        self.flip = flip
        self.maxShift = maxShift
        self.previewImages = previewImages
    }

    public func trainStep(images: Tensor, labels: Tensor?, rng: RandomGenerator, step: Int) -> [(String, Double)] {
        guard let labels else { preconditionFailure("ClassifierTraining needs labels") }
        let x = augmented(images, rng: rng) * 2 - 1
        let logits = model(x)
        let loss = crossEntropy(logits, labels)
        optimizer.step(gradients(of: loss, wrt: optimizer.parameters.map { $0.value }))
        let accuracy = Double(correctPredictions(logits.detached(), labels)) / Double(labels.elementCount)
        return [("loss", loss.item), ("accuracy", accuracy)]
    }

    /// The batch with the configured flips and shifts (the batch itself when there are none).
    public func augmented(_ images: Tensor, rng: RandomGenerator) -> Tensor {
        guard flip || maxShift > 0 else { return images }
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        var dst = [Float](repeating: 0, count: n * h * w)
        images.withUnsafeBufferPointer(as: Float.self) { src in
            for b in 0..<n {
                let mirror = flip && rng.nextUnitDouble() < 0.5
                let dy = maxShift > 0 ? rng.nextInt(-maxShift, maxShift + 1) : 0
                let dx = maxShift > 0 ? rng.nextInt(-maxShift, maxShift + 1) : 0
                let base = b * h * w
                for i in 0..<h {
                    let si = i - dy
                    guard si >= 0 && si < h else { continue }
                    for j in 0..<w {
                        var sj = j - dx
                        guard sj >= 0 && sj < w else { continue }
                        if mirror { sj = w - 1 - sj }
                        dst[base + i * w + j] = src[base + si * w + sj]
                    }
                }
            }
        }
        return Tensor(dst, shape: [n, h, w, 1])
    }

    public func store(into checkpoint: inout Checkpoint) {
        checkpoint.store(model, as: "model")
        checkpoint.store(optimizer, of: model, as: "model")
    }

    public func restore(from checkpoint: Checkpoint) throws {
        try checkpoint.restore(model, from: "model")
        try checkpoint.restore(optimizer, of: model, from: "model")
    }

    /// The preview images (64 training images), or a blank grid without them.
    public func sampleGrid(seed: UInt64) -> Tensor {
        let images = previewImages ?? Tensor.zeros([1] + Classifier.imageShape)
        return imageGrid(images, columns: 8)
    }

    /// Test accuracy of the current weights (see `ClassifierAccuracy`).
    public func accuracy(images: Tensor, labels: Tensor, batchSize: Int = 500) -> Double {
        ClassifierAccuracy.evaluate(model, images: images, labels: labels, batchSize: batchSize).accuracy
    }
}
