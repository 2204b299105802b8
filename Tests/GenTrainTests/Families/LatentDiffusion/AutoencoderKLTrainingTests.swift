import Foundation
import GenTestSupport
@testable import GenTrain
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The KL autoencoder's training: its loss terms, learning, the latent scale in checkpoints, resume.
final class AutoencoderKLTrainingTests: XCTestCase {
    static let images: Tensor = try! ImageDataset.fashionMNIST(split: .train).subset(Array(0..<64)).images

    func small(seed: UInt64 = 0) -> AutoencoderKLTraining {
        var config = AutoencoderKLConfiguration()
        config.width = 8
        return AutoencoderKLTraining(config: config, learningRate: 2e-3, seed: seed)
    }

    /// The loss is the summed reconstruction error per image plus the weighted mean KL.
    func testLossTermsAreTheirDefinitions() {
        let model = small()
        let x = Self.images.rows(Array(0..<4)) * 2 - 1
        let noise = Tensor.normal([4, 7, 7, 4], generator: RandomGenerator(seed: 3))
        let (total, reconstruction, kl) = model.losses(x, noise: noise)
        let posterior = model.model.encode(x)
        let decoded = model.model.decode(posterior.sample(noise: noise))
        let l1 = (decoded - x).abs().doubleScalars().reduce(0, +) / 4
        XCTAssertEqual(reconstruction.item, l1, accuracy: 1e-4 * l1)
        XCTAssertEqual(kl.item, posterior.kl.doubleScalars().reduce(0, +) / 4, accuracy: 1e-4 * max(1, kl.item))
        XCTAssertEqual(total.item, reconstruction.item + 1e-6 * kl.item, accuracy: 1e-4 * total.item)
    }

    func testReconstructionImprovesWithTraining() {
        let model = small()
        let before = peakSignalToNoiseRatio(model.reconstruct(Self.images), originals: Self.images).reduce(0, +) / 64
        let rng = RandomGenerator(seed: 1)
        for step in 0..<60 { _ = model.trainStep(images: Self.images.rows(Array((step % 4 * 16)..<(step % 4 * 16 + 16))), labels: nil, rng: rng, step: step) }
        let after = peakSignalToNoiseRatio(model.reconstruct(Self.images), originals: Self.images).reduce(0, +) / 64
        XCTAssertGreaterThan(after, before + 3, "PSNR \(before) -> \(after) dB")
    }

    /// The latent scale is measured on the training images when a checkpoint is written and comes
    /// back with the model; it is 1 / the standard deviation of the posterior means.
    func testLatentScaleRoundTripsThroughTheCheckpoint() throws {
        let model = small()
        model.scaleImages = Self.images
        var checkpoint = Checkpoint()
        checkpoint.metadata["model"] = AutoencoderKLTraining.kind
        model.store(into: &checkpoint)
        let scale = try XCTUnwrap(model.latentScale)
        let means = model.latentMeans(Self.images).doubleScalars()
        let mean = means.reduce(0, +) / Double(means.count)
        let std = (means.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(means.count - 1)).squareRoot()
        XCTAssertEqual(scale, 1 / std, accuracy: 1e-4 * scale)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ae-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try checkpoint.write(to: url)
        let loaded = try AutoencoderKLTraining.load(try Checkpoint(contentsOf: url))
        XCTAssertEqual(try XCTUnwrap(loaded.latentScale), scale, accuracy: 1e-6 * scale)
        XCTAssertEqual(loaded.config, model.config)
        XCTAssertEqual(loaded.reconstruct(Self.images.rows([0, 1])).scalars(as: Float.self),
                       model.reconstruct(Self.images.rows([0, 1])).scalars(as: Float.self))
    }

    func testResumeIsBitExact() throws {
        let a = small(seed: 4), b = small(seed: 4)
        let batch = Self.images.rows(Array(0..<8))
        _ = a.trainStep(images: batch, labels: nil, rng: RandomGenerator(seed: 5), step: 0)
        var checkpoint = Checkpoint()
        checkpoint.metadata["model"] = AutoencoderKLTraining.kind
        a.store(into: &checkpoint)
        try b.restore(from: checkpoint)
        let la = a.trainStep(images: batch, labels: nil, rng: RandomGenerator(seed: 6), step: 1)
        let lb = b.trainStep(images: batch, labels: nil, rng: RandomGenerator(seed: 6), step: 1)
        XCTAssertEqual(la.map { $0.1 }, lb.map { $0.1 })
        XCTAssertEqual(a.model.namedParameters.map { $0.1.value.doubleScalars() }, b.model.namedParameters.map { $0.1.value.doubleScalars() })
    }

    func testPSNR() {
        let x = Tensor([Float(0), 0.5, 1, 0.25], shape: [1, 2, 2, 1])
        let y = Tensor([Float(0.1), 0.5, 0.9, 0.25], shape: [1, 2, 2, 1])
        XCTAssertEqual(peakSignalToNoiseRatio(y, originals: x)[0], 10 * log10(1 / 0.005), accuracy: 1e-4)
    }
}
