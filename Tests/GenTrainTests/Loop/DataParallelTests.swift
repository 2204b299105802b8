import Foundation
@testable import GenTrain
import GenTensor
import GenNN
import XCTest

/// The in-process replica group behind `--grad-shards`, and the loop's split of a batch.
final class DataParallelTests: XCTestCase {
    func testReplicaRowsSplitEvenlyAndCoverTheBatch() {
        for (count, size) in [(64, 2), (7, 3), (5, 5)] {
            let parts = (0..<size).map { replicaRows(count: count, rank: $0, size: size) }
            XCTAssertEqual(parts.map(\.count).reduce(0, +), count)
            XCTAssertEqual(parts.first?.lowerBound, 0)
            XCTAssertEqual(parts.last?.upperBound, count)
            for (a, b) in zip(parts, parts.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
            XCTAssertLessThanOrEqual((parts.map(\.count).max() ?? 0) - (parts.map(\.count).min() ?? 0), 1)
        }
    }

    /// Three replicas on threads: every sum is the rank-order float32 sum, the same on each, and
    /// maxima agree; the replicas take turns.
    func testInProcessReplicasSumInRankOrderOnEveryReplica() throws {
        let group = InProcessReplicas(size: 3)
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var sums: [[Float]] = [], maxima: [[Double]] = [], running = 0, overlapped = false
        }
        let seen = Seen()
        let values: [[Float]] = [[1e8, 1], [-1e8, 2], [1, 3]]
        _ = try runReplicas(group) { rank in
            seen.lock.withLock { seen.running += 1; if seen.running > 1 { seen.overlapped = true } }
            let member = group.member(rank)
            var v = values[rank]
            seen.lock.withLock { seen.running -= 1 }
            try member.sum(&v)
            var m = [Double(rank), -Double(rank)]
            try member.maximum(&m)
            seen.lock.withLock { seen.sums.append(v); seen.maxima.append(m) }
            return []
        }
        // (1e8 + -1e8) + 1 = 1 in rank order; 1e8 + (-1e8 + 1) would give 0 in float32.
        XCTAssertEqual(seen.sums.count, 3)
        for s in seen.sums { XCTAssertEqual(s, [1, 6]) }
        for m in seen.maxima { XCTAssertEqual(m, [2, 0]) }
        XCTAssertFalse(seen.overlapped, "one replica computes at a time")
    }

    func testAFailingReplicaStopsTheOthersWithItsError() {
        struct Boom: Error {}
        let group = InProcessReplicas(size: 2)
        XCTAssertThrowsError(try runReplicas(group) { rank in
            if rank == 1 { throw Boom() }
            var v: [Double] = [1]
            try group.member(rank).sum(&v)  // rank 0 waits here for a rank that failed
            return []
        }) { error in XCTAssertTrue(error is Boom, "\(error)") }
    }

    func testTheLoopRefusesABatchSmallerThanTheReplicas() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = VAETraining(learningRate: 1e-3, seed: 0)
        var options = TrainingOptions(epochs: 1, batchSize: 4, learningRate: 1e-3, seed: 0)
        options.maxSteps = 1
        let loop = TrainingLoop(model: model, options: options, run: RunDirectory(dir), config: [:])
        loop.log = { _ in }
        loop.gradientShards = 3
        loop.makeReplica = { VAETraining(learningRate: 1e-3, seed: 0) }
        // 6 images in batches of 4: the last batch has 2, fewer than 3 replicas.
        XCTAssertThrowsError(try loop.train(images: Tensor.zeros([6, 28, 28, 1]), labels: nil, resume: false)) { error in
            XCTAssertEqual(error as? TrainingError, .batchSmallerThanReplicas(batch: 2, replicas: 3))
        }
    }

    func testGradientShardsWithoutAReplicaBuilderAreRefused() {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dp-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let loop = TrainingLoop(model: VAETraining(learningRate: 1e-3, seed: 0), options: TrainingOptions(epochs: 1, batchSize: 4),
                                run: RunDirectory(dir), config: [:])
        loop.gradientShards = 2
        XCTAssertThrowsError(try loop.train(images: Tensor.zeros([8, 28, 28, 1]), labels: nil, resume: false)) { error in
            XCTAssertEqual(error as? TrainingError, .noReplicas(model: "vae"))
        }
    }
}
