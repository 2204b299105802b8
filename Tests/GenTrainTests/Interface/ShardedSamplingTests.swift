import GenModels
import GenTensor
@testable import GenTrain
import XCTest

/// `GenerativeModel.sample(count:startIndex:...)`, which splits a run over processes: images
/// 2..<6 sampled from index 2 are those of one call from 0, bit for bit when the batches hold the
/// same images, in every family (untrained weights suffice: the noise keying is what is checked).
final class ShardedSamplingTests: XCTestCase {
    private func assertShardMatchesRun(_ model: any GenerativeModel, _ options: SamplingOptions, labels: [Int]? = nil,
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try model.sample(count: 6, seed: 5, labels: labels, options: options, progress: nil)
        var heard: [Int] = []
        let shard = try model.sample(count: 4, startIndex: 2, seed: 5, labels: labels.map { Array($0[2..<6]) }, options: options,
                                     progress: { done, total in heard.append(done); XCTAssertEqual(total, 4) })
        XCTAssertEqual(shard.shape, [4] + model.imageShape, file: file, line: line)
        XCTAssertEqual(shard.scalars(as: Float.self), run.sliced(axis: 0, 2..<6).scalars(as: Float.self),
                       "\(type(of: model).kind): the shard from index 2 differs from images 2..<6", file: file, line: line)
        if model is GANTraining || model is FlowTraining || model is DDPMTraining || model is ScoreModelTraining {
            XCTAssertEqual(heard.last, 4, file: file, line: line)
        }
    }

    func testEveryFamilySamplesAShardAsPartOfTheRun() throws {
        let batches = SamplingOptions(batchSize: 2)
        try assertShardMatchesRun(VAETraining(learningRate: 1e-3, seed: 1), SamplingOptions(ema: false, batchSize: 2))
        // The conditional GAN draws class i mod 10 for image i: keyed by the run's index, not the shard's.
        try assertShardMatchesRun(GANTraining(config: GANConfiguration(variant: .cgan), seed: 2), batches)
        var flow = FlowConfiguration()
        flow.channels = 4
        flow.blocks = 1
        flow.steps = 1
        try assertShardMatchesRun(FlowTraining(config: flow, learningRate: 1e-3, seed: 3), batches)
        // DDIM with eta 1 draws noise at every step, keyed by the image index too.
        var ddpm = DDPMConfiguration()
        ddpm.width = 8
        ddpm.classes = 3
        let ddim = try Sampler(named: "ddim", options: SamplerOptions(steps: 2, eta: 1))
        try assertShardMatchesRun(DDPMTraining(config: ddpm, learningRate: 1e-3, seed: 4),
                                  SamplingOptions(batchSize: 2, sampler: ddim), labels: [0, 1, 2, 0, 1, 2])
        var sgm = ScoreModelConfiguration()
        sgm.width = 8
        let euler = try Sampler(named: "euler-maruyama", options: SamplerOptions(steps: 2))
        try assertShardMatchesRun(ScoreModelTraining(config: sgm, learningRate: 1e-3, seed: 5), SamplingOptions(batchSize: 2, sampler: euler))
    }
}
