@testable import GenTensor
import XCTest

/// `RandomGenerator.shard`: a data-parallel replica's draws are its rows of the whole batch's.
final class RandomShardTests: XCTestCase {
    /// Draws a normal (batch, 3), a uniform (batch), integers (batch, 2) and a float64 uniform
    /// (batch), as a training step draws its per-example noise.
    private func draws(_ rng: RandomGenerator, rows: Int) -> [[Double]] {
        [Tensor.normal([rows, 3], generator: rng).doubleScalars(),
         Tensor.uniform([rows], generator: rng).doubleScalars(),
         Tensor.randomIntegers([rows, 2], low: 0, high: 1000, generator: rng).doubleScalars(),
         Tensor.uniform([rows], dtype: .float64, generator: rng).doubleScalars()]
    }

    func testShardsDrawTheirRowsOfTheWholeBatchAndAdvanceAsIt() {
        let batch = 7
        let whole = RandomGenerator(seed: 42, counter: 5)
        let expected = draws(whole, rows: batch)
        for rows in [0..<3, 3..<7, 2..<5] {
            let rng = RandomGenerator(seed: 42, counter: 5)
            rng.shard = BatchShard(batch: batch, rows: rows)
            let got = draws(rng, rows: rows.count)
            let perRow = [3, 1, 2, 1]
            for (k, values) in got.enumerated() {
                XCTAssertEqual(values, Array(expected[k][(rows.lowerBound * perRow[k])..<(rows.upperBound * perRow[k])]), "draw \(k), rows \(rows)")
            }
            XCTAssertEqual(rng.counter, whole.counter, "the counter moves as the whole batch's draws move it")
        }
    }

    func testOtherDrawsUnderAShardComeFromASideStreamKeyedByTheShard() {
        func sideDraws(rows: Range<Int>) -> ([Double], Double, UInt64) {
            let rng = RandomGenerator(seed: 9)
            rng.shard = BatchShard(batch: 8, rows: rows)
            let tensor = Tensor.normal([5], generator: rng).doubleScalars()  // 5 is not the shard's 4 rows
            let scalar = rng.nextUnitDouble()
            return (tensor, scalar, rng.counter)
        }
        let first = sideDraws(rows: 0..<4), again = sideDraws(rows: 0..<4), other = sideDraws(rows: 4..<8)
        XCTAssertEqual(first.0, again.0)
        XCTAssertEqual(first.1, again.1)
        XCTAssertEqual(first.2, 0, "side draws leave the counter alone")
        XCTAssertNotEqual(first.0, other.0, "another shard's side stream differs")
        XCTAssertNotEqual(first.1, other.1)
        // Without a shard the same calls use the main stream.
        let plain = RandomGenerator(seed: 9)
        _ = plain.nextUnitDouble()
        XCTAssertEqual(plain.counter, 1)
    }
}
