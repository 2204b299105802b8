import Foundation
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The reference MLP VAE trained for one epoch on Fashion-MNIST (Adam 1e-3, batch 128) reaches the
/// PyTorch reference's quality: an epoch-1 average loss per image below 290, just above PyTorch's
/// (its reading: docs/architecture.md, Measurements and history).
final class VAETrainingTests: XCTestCase {
    func testOneEpochOnFashionMNISTBeatsTheBar() throws {
        let data = try ImageDataset.fashionMNIST(split: .train)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gen-vae-epoch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = VAETraining(learningRate: 1e-3, seed: 0)
        let loop = TrainingLoop(model: model, options: TrainingOptions(epochs: 1, batchSize: 128, learningRate: 1e-3, seed: 0),
                                run: RunDirectory(dir), config: ["model": "vae"])
        loop.log = { _ in }
        let records = try loop.train(images: data.images, labels: nil, resume: false)
        let loss = try XCTUnwrap(records.first?.losses["loss"])
        XCTAssertLessThan(loss, 290, "epoch-1 average loss per image")
        XCTAssertGreaterThan(loss, 200, "implausibly low: is the loss still a per-image sum?")
        for file in ["checkpoint.safetensors", "metrics.jsonl", "loss.png", "samples.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path), file)
        }
    }
}
