import GenNN
import XCTest
import GenTensor
import GenFormats

/// `BatchNorm.recalibrate` (re-estimated running statistics for averaged weights).
final class NormalizationTests: XCTestCase {
    /// The running statistics after recalibration are the plain means of the batches' channel means
    /// and unbiased variances, whatever they held before; the momentum comes back unchanged.
    func testRecalibrateAveragesTheBatchStatistics() {
        let norm = BatchNorm(3)
        norm.runningMean.assign(Tensor([7, 7, 7] as [Float], shape: [3]))
        norm.runningVar.assign(Tensor([9, 9, 9] as [Float], shape: [3]))
        let rng = RandomGenerator(seed: 4)
        // Channels-last batches (N, H, W, C) with different offsets per batch.
        let batches = (0..<4).map { i in Tensor.normal([5, 2, 2, 3], mean: Double(i), std: 1 + Double(i), generator: rng) }
        BatchNorm.recalibrate([norm], batches: batches.count) { i in _ = norm(batches[i], training: true) }

        var expectedMean = [Double](repeating: 0, count: 3), expectedVar = [Double](repeating: 0, count: 3)
        for batch in batches {
            let v = batch.doubleScalars()
            let count = v.count / 3
            for c in 0..<3 {
                let xs = stride(from: c, to: v.count, by: 3).map { v[$0] }
                let mean = xs.reduce(0, +) / Double(count)
                let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(count - 1)
                expectedMean[c] += mean / Double(batches.count)
                expectedVar[c] += variance / Double(batches.count)
            }
        }
        for (got, want) in zip(norm.runningMean.value.doubleScalars(), expectedMean) { XCTAssertEqual(got, want, accuracy: 1e-5) }
        for (got, want) in zip(norm.runningVar.value.doubleScalars(), expectedVar) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        XCTAssertEqual(norm.momentum, 0.1)
    }
}
