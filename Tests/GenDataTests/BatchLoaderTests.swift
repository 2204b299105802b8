import Foundation
import GenData
import XCTest
@testable import GenTensor
import GenFormats

/// Seeded, resumable batches.
final class BatchLoaderTests: XCTestCase {
    /// 103 images of 2 x 2 whose pixels all hold the image's index / 1000, labelled by index.
    private let dataset: ImageDataset = {
        let n = 103
        let images = Tensor((0..<(n * 4)).map { Float($0 / 4) / 1000 }, shape: [n, 2, 2, 1])
        let labels = Tensor((0..<n).map { Int64($0) }, shape: [n])
        return ImageDataset(images: images, labels: labels)
    }()

    private func indices(_ loader: BatchLoader, epoch: Int) -> [[Int]] {
        loader.epoch(epoch).map(\.indices)
    }

    func testBatchesAreSeeded() {
        let a = BatchLoader(dataset: dataset, batchSize: 10, seed: 42)
        let b = BatchLoader(dataset: dataset, batchSize: 10, seed: 42)
        let c = BatchLoader(dataset: dataset, batchSize: 10, seed: 43)
        XCTAssertEqual(a.batchesPerEpoch, 11)
        XCTAssertEqual(indices(a, epoch: 0), indices(b, epoch: 0))
        XCTAssertEqual(indices(a, epoch: 5), indices(b, epoch: 5))
        XCTAssertNotEqual(indices(a, epoch: 0), indices(c, epoch: 0))
        XCTAssertNotEqual(indices(a, epoch: 0), indices(a, epoch: 1))
        // Each epoch is a permutation: every image once; the last batch holds the 3 left over.
        for epoch in 0..<3 {
            let batches = indices(a, epoch: epoch)
            XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<103))
            XCTAssertEqual(batches.last?.count, 3)
        }
        // A regression pin (also computed by a Python re-implementation of the documented scheme):
        // changing the shuffle would silently change resumed runs.
        XCTAssertEqual(a.order(epoch: 0).prefix(8), [41, 28, 23, 95, 47, 74, 88, 51])
    }

    func testBatchContents() throws {
        let loader = BatchLoader(dataset: dataset, batchSize: 8, seed: 1)
        for batch in loader.epoch(2) {
            XCTAssertEqual(batch.images.shape, [batch.indices.count, 2, 2, 1])
            XCTAssertEqual(try XCTUnwrap(batch.labels).scalars(as: Int64.self), batch.indices.map { Int64($0) })
            for (row, index) in batch.indices.enumerated() {
                XCTAssertEqual(batch.images.floatPointer[row * 4 + 3], Float(index) / 1000)
            }
            XCTAssertEqual(batch.position.epoch, 2)
        }
    }

    func testDropLastAndNoShuffle() {
        let loader = BatchLoader(dataset: dataset, batchSize: 10, shuffle: false, dropLast: true)
        XCTAssertEqual(loader.batchesPerEpoch, 10)
        let batches = indices(loader, epoch: 7)
        XCTAssertEqual(batches.count, 10)
        XCTAssertEqual(batches.flatMap { $0 }, Array(0..<100))
        XCTAssertTrue(batches.allSatisfy { $0.count == 10 })
    }

    /// Starting at (epoch, batch) gives exactly the batches that iterating from the start reaches there.
    func testResume() {
        let loader = BatchLoader(dataset: dataset, batchSize: 10, seed: 7)
        var stream = loader.batches()
        var all: [BatchLoader.Batch] = []
        for _ in 0..<40 { all.append(stream.next()!) }
        XCTAssertEqual(stream.position, BatchLoader.Position(epoch: 3, batch: 7))
        XCTAssertEqual(all[11].position, BatchLoader.Position(epoch: 1, batch: 0))

        // Within an epoch.
        let resumed = Array(loader.epoch(2, startingAt: 5))
        XCTAssertEqual(resumed.map(\.indices), all[(22 + 5)..<33].map(\.indices))
        XCTAssertEqual(resumed.first?.position, BatchLoader.Position(epoch: 2, batch: 5))
        // Across epochs, as a checkpointed stream.
        var later = loader.batches(from: BatchLoader.Position(epoch: 1, batch: 7))
        for k in (11 + 7)..<40 {
            let batch = later.next()!
            XCTAssertEqual(batch.indices, all[k].indices, "batch \(k)")
            XCTAssertEqual(batch.position, all[k].position)
            XCTAssertEqual(batch.images.scalars(as: Float.self), all[k].images.scalars(as: Float.self))
        }
        // Random access.
        XCTAssertEqual(loader.batch(epoch: 3, index: 2).indices, all[35].indices)
        // Past the end of an epoch: nothing, and a stream moves on to the next epoch.
        XCTAssertEqual(Array(loader.epoch(0, startingAt: 11)).count, 0)
        var next = loader.batches(from: BatchLoader.Position(epoch: 0, batch: 11))
        XCTAssertEqual(next.next()?.indices, all[11].indices)
    }

    func testEmptyDataset() {
        let empty = ImageDataset(images: Tensor.zeros([0, 2, 2, 1]))
        let loader = BatchLoader(dataset: empty, batchSize: 4)
        XCTAssertEqual(loader.batchesPerEpoch, 0)
        XCTAssertEqual(Array(loader.epoch(0)).count, 0)
        var stream = loader.batches()
        XCTAssertNil(stream.next())
    }
}
