import Foundation
import GenEval
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

final class FrechetDistanceTests: XCTestCase {
    /// pytorch-fid's value on the fixture's float32 features (widened to Float64 as the fixture did).
    func testMatchesPytorchFIDFixture() throws {
        let file = try FixtureFiles.open("metrics.io")
        let a = try Matrix64(file.tensor("features_a")), b = try Matrix64(file.tensor("features_b"))
        let expected = try file.tensor("fid").item
        let start = Date()
        let result = try FrechetDistance.compute(a, b)
        let seconds = Date().timeIntervalSince(start)
        let relative = abs(result.value - expected) / abs(expected)
        print("fixture fid: \(result.value) expected \(expected) relative error \(relative) (\(String(format: "%.1f", seconds * 1000)) ms)")
        XCTAssertLessThan(relative, 1e-6)
        XCTAssertNil(result.warning)
        XCTAssertEqual(result.epsilonAdded, 0)
        // Symmetric in its arguments.
        let swapped = try FrechetDistance.compute(b, a)
        XCTAssertEqual(swapped.value, result.value, accuracy: 1e-10 * result.value)
    }

    func testSelfDistanceIsZeroAndSymmetric() throws {
        let x = randomMatrix(300, 24, seed: 21, scale: 3, shift: 1)
        let y = randomMatrix(250, 24, seed: 22, scale: 2)
        let selfFID = try FrechetDistance.compute(x, x)
        // tr S ≈ 24 * 9 = 216; the cancellation of 2 tr S - 2 tr √(S²) leaves rounding of order 1e-13.
        XCTAssertEqual(selfFID.value, 0, accuracy: 1e-9)
        XCTAssertNil(selfFID.warning)
        let xy = try FrechetDistance.compute(x, y).value, yx = try FrechetDistance.compute(y, x).value
        XCTAssertGreaterThan(xy, 1)
        XCTAssertEqual(xy, yx, accuracy: 1e-11 * xy)
    }

    func testGaussiansWithDiagonalCovariancesMatchClosedForm() throws {
        // For diagonal S₁, S₂: FID = ‖μ₁ - μ₂‖² + Σ (√s₁ᵢ - √s₂ᵢ)².
        let mu1 = [0.5, -1, 2, 0, 3], mu2 = [1.5, -1, 0, 0.25, 3]
        let s1 = [1.0, 4, 0.25, 9, 2], s2 = [4.0, 1, 0.25, 1, 8]
        let a = try FeatureStatistics(mean: mu1, covariance: .diagonal(s1), count: 1000)
        let b = try FeatureStatistics(mean: mu2, covariance: .diagonal(s2), count: 1000)
        var expected = 0.0
        for i in 0..<5 {
            expected += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i])
            expected += (s1[i].squareRoot() - s2[i].squareRoot()) * (s1[i].squareRoot() - s2[i].squareRoot())
        }
        let fid = try FrechetDistance.compute(a, b)
        XCTAssertEqual(fid.value, expected, accuracy: 1e-12 * expected)
        XCTAssertEqual(fid.meanTerm, 5.0625, accuracy: 1e-15)
    }

    func testNonCommutingTwoByTwoMatchesClosedForm() throws {
        // For 2x2 M with non-negative eigenvalues, tr √M = √(tr M + 2√det M).
        let s1 = Matrix64(rowArrays: [[2, 0.7], [0.7, 1]]), s2 = Matrix64(rowArrays: [[1.5, -0.4], [-0.4, 0.5]])
        let m = s1 * s2
        let det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        let expected = (m.trace + 2 * det.squareRoot()).squareRoot()
        XCTAssertEqual(try FrechetDistance.traceOfSquareRootProduct(s1, s2), expected, accuracy: 1e-14 * expected)
        let a = try FeatureStatistics(mean: [0, 0], covariance: s1, count: 100)
        let b = try FeatureStatistics(mean: [1, 2], covariance: s2, count: 100)
        XCTAssertEqual(try FrechetDistance.compute(a, b).value, 5 + s1.trace + s2.trace - 2 * expected, accuracy: 1e-13)
    }

    func testSingularCovarianceWarnsAndStaysFinite() throws {
        // 10 samples of 20 features: both covariances have rank <= 9.
        let x = randomMatrix(10, 20, seed: 31), y = randomMatrix(12, 20, seed: 32, shift: 0.5)
        let result = try FrechetDistance.compute(x, y)
        XCTAssertNotNil(result.warning)
        XCTAssertTrue(result.warning?.contains("singular") ?? false, result.warning ?? "")
        XCTAssertEqual(result.epsilonAdded, FrechetDistance.defaultEpsilon)
        XCTAssertTrue(result.value.isFinite)
        XCTAssertGreaterThan(result.value, 0)
        // Against itself it is still ≈ 0 (the offset enters every term).
        XCTAssertEqual(try FrechetDistance.compute(x, x).value, 0, accuracy: 1e-9)
        // A dead feature (constant column) with n > d is singular numerically, not by count.
        var z = randomMatrix(100, 8, seed: 33)
        for i in 0..<100 { z[i, 3] = 0 }
        let dead = try FrechetDistance.compute(z, randomMatrix(100, 8, seed: 34))
        XCTAssertNotNil(dead.warning)
        XCTAssertTrue(dead.value.isFinite)
    }

    func testStatisticsRoundTripThroughSafetensors() throws {
        let stats = try FeatureStatistics(features: randomMatrix(40, 6, seed: 41))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("geneval-stats-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try stats.write(to: url, metadata: ["features": "test"])
        let loaded = try FeatureStatistics(contentsOf: url)
        XCTAssertEqual(loaded, stats)
        XCTAssertEqual(loaded.count, 40)
        XCTAssertThrowsError(try FeatureStatistics(mean: [0, 0], covariance: .identity(3), count: 5))
    }

    func testDimensionMismatchThrows() {
        XCTAssertThrowsError(try FrechetDistance.compute(randomMatrix(10, 3, seed: 1), randomMatrix(10, 4, seed: 2)))
    }
}

final class InceptionScoreTests: XCTestCase {
    func testMatchesFixture() throws {
        let file = try FixtureFiles.open("metrics.io")
        let probs = try file.tensor("probs")
        let expected = try file.tensor("inception_score").item
        let result = try InceptionScore.compute(probabilities: probs, splits: 10)
        let relative = abs(result.mean - expected) / abs(expected)
        print("fixture inception_score: \(result.mean) expected \(expected) relative error \(relative)")
        XCTAssertLessThan(relative, 1e-6)
        XCTAssertEqual(result.splitScores.count, 10)
    }

    func testUniformPredictionsScoreOne() throws {
        let p = Matrix64(rows: 50, columns: 10, repeating: 0.1)
        let result = try InceptionScore.compute(probabilities: p)
        XCTAssertEqual(result.mean, 1, accuracy: 1e-12)
        XCTAssertEqual(result.std, 0, accuracy: 1e-12)
    }

    func testConfidentEvenlySpreadPredictionsScoreTen() throws {
        var p = Matrix64(rows: 100, columns: 10)
        for i in 0..<100 { p[i, i % 10] = 1 }
        let result = try InceptionScore.compute(probabilities: p)
        XCTAssertEqual(result.mean, 10, accuracy: 1e-12)
        // All confident on one class: score 1.
        var collapsed = Matrix64(rows: 100, columns: 10)
        for i in 0..<100 { collapsed[i, 4] = 1 }
        XCTAssertEqual(try InceptionScore.compute(probabilities: collapsed).mean, 1, accuracy: 1e-12)
    }

    func testSplitsFollowArraySplit() {
        let ranges = InceptionScore.splitRanges(count: 1003, splits: 10)
        XCTAssertEqual(ranges.map(\.count), [101, 101, 101, 100, 100, 100, 100, 100, 100, 100])
        XCTAssertEqual(ranges.first?.lowerBound, 0)
        XCTAssertEqual(ranges.last?.upperBound, 1003)
        // Uneven splits score each part on its own: 13 rows in 2 parts are rows 0..<7 and 7..<13.
        var p = Matrix64(rows: 13, columns: 2)
        for i in 0..<13 { p[i, i < 7 ? 0 : (i % 2)] = 1 }
        let r = try! InceptionScore.compute(probabilities: p, splits: 2)
        XCTAssertEqual(r.splitScores[0], 1, accuracy: 1e-12)
        // Part 2: rows 7..<13 are classes 1,0,1,0,1,0 -> evenly spread, score 2.
        XCTAssertEqual(r.splitScores[1], 2, accuracy: 1e-12)
    }
}

final class KernelInceptionDistanceTests: XCTestCase {
    /// Direct O(m² d) evaluation of the unbiased estimator.
    func naiveMMD2(_ x: Matrix64, _ y: Matrix64) -> Double {
        let m = Double(x.rows), d = Double(x.columns)
        func k(_ a: Matrix64, _ i: Int, _ b: Matrix64, _ j: Int) -> Double {
            var s = 0.0
            for t in 0..<a.columns { s += a[i, t] * b[j, t] }
            return pow(s / d + 1, 3)
        }
        var xx = 0.0, yy = 0.0, xy = 0.0
        for i in 0..<x.rows {
            for j in 0..<x.rows where i != j { xx += k(x, i, x, j); yy += k(y, i, y, j) }
            for j in 0..<x.rows { xy += k(x, i, y, j) }
        }
        return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)
    }

    func testMMDMatchesNaiveEstimator() {
        for m in [2, 5, 23, 37] {
            let x = randomMatrix(m, 11, seed: UInt64(m)), y = randomMatrix(m, 11, seed: UInt64(m + 1000), shift: 0.3)
            let want = naiveMMD2(x, y)
            XCTAssertEqual(KernelInceptionDistance.polynomialMMD2(x, y), want, accuracy: 1e-12 * max(1, abs(want)), "m = \(m)")
        }
    }

    func testSelfIsNearZeroAndShiftedIsPositive() throws {
        let n = 1000, subsets = 50
        let x = randomMatrix(n, 16, seed: 51)
        let same = try KernelInceptionDistance.compute(x, x, subsets: subsets, subsetSize: 200, seed: 1)
        let shifted = try KernelInceptionDistance.compute(x, randomMatrix(n, 16, seed: 52, shift: 0.5), subsets: subsets,
                                                          subsetSize: 200, seed: 1)
        let other = try KernelInceptionDistance.compute(x, randomMatrix(n, 16, seed: 53), subsets: subsets,
                                                        subsetSize: 200, seed: 1)
        // Two subsets of one finite set S are not independent samples: the cross term can pair a
        // point with itself, so E[MMD²] = 2 (Σ_{a≠b} k / (N(N-1)) - Σ_{a,b} k / N²), slightly negative
        // (the same holds for torch-fidelity). The mean over independent subsets must match it
        // within 4 standard errors, and be negligible next to a real shift.
        var offDiagonal = 0.0, all = 0.0
        for a in 0..<n {
            for b in 0..<n {
                var dot = 0.0
                for t in 0..<16 { dot += x[a, t] * x[b, t] }
                let k = pow(dot / 16 + 1, 3)
                all += k
                if a != b { offDiagonal += k }
            }
        }
        let expected = 2 * (offDiagonal / Double(n * (n - 1)) - all / Double(n * n))
        let standardError = same.std / Double(subsets).squareRoot()
        print("KID self \(same.mean) ± \(same.std) (expected \(expected)), independent \(other.mean) ± \(other.std), "
              + "shifted \(shifted.mean) ± \(shifted.std)")
        XCTAssertNil(same.warning)
        XCTAssertEqual(same.mean, expected, accuracy: 4 * standardError)
        XCTAssertLessThan(abs(same.mean), 0.05 * shifted.mean)
        // Independent samples of one distribution: ≈ 0 within the subset noise.
        XCTAssertLessThan(abs(other.mean), 4 * other.std / Double(subsets).squareRoot() + 1e-12)
        XCTAssertGreaterThan(shifted.mean, 10 * shifted.std / Double(subsets).squareRoot())
        // Seeded: the same seed gives the same numbers.
        XCTAssertEqual(try KernelInceptionDistance.compute(x, x, subsets: subsets, subsetSize: 200, seed: 1), same)
    }

    func testSmallSetUsesItsSizeAndWarns() throws {
        let r = try KernelInceptionDistance.compute(randomMatrix(30, 4, seed: 53), randomMatrix(50, 4, seed: 54),
                                                    subsets: 3, subsetSize: 1000)
        XCTAssertEqual(r.subsetSize, 30)
        XCTAssertNotNil(r.warning)
        XCTAssertEqual(r.subsetValues.count, 3)
    }
}

final class PrecisionRecallTests: XCTestCase {
    func testSetAgainstItselfIsOneOne() throws {
        let x = randomMatrix(300, 16, seed: 61)
        let r = try PrecisionRecall.compute(real: x, generated: x)
        XCTAssertEqual(r.precision, 1)
        XCTAssertEqual(r.recall, 1)
    }

    func testFarApartSetsAreZeroZero() throws {
        let r = try PrecisionRecall.compute(real: randomMatrix(200, 8, seed: 62),
                                            generated: randomMatrix(150, 8, seed: 63, shift: 100))
        XCTAssertEqual(r.precision, 0)
        XCTAssertEqual(r.recall, 0)
    }

    func testMatchesBruteForce() throws {
        // Overlapping sets of different spread; sizes not multiples of the blocks.
        let real = randomMatrix(1100, 5, seed: 64), fake = randomMatrix(333, 5, seed: 65, scale: 1.6, shift: 0.4)
        func dist2(_ a: Matrix64, _ i: Int, _ b: Matrix64, _ j: Int) -> Double {
            (0..<a.columns).reduce(0) { $0 + (a[i, $1] - b[j, $1]) * (a[i, $1] - b[j, $1]) }
        }
        func radii(_ x: Matrix64) -> [Double] {
            (0..<x.rows).map { i in (0..<x.rows).filter { $0 != i }.map { dist2(x, i, x, $0) }.sorted()[2] }
        }
        func inside(_ p: Matrix64, _ m: Matrix64, _ r: [Double]) -> Double {
            Double((0..<p.rows).filter { i in (0..<m.rows).contains { dist2(p, i, m, $0) <= r[$0] } }.count) / Double(p.rows)
        }
        let rr = radii(real), fr = radii(fake)
        let got = PrecisionRecall.neighbourRadii(real)
        for i in 0..<real.rows { XCTAssertEqual(got[i], rr[i].squareRoot(), accuracy: 1e-9) }
        let result = try PrecisionRecall.compute(real: real, generated: fake)
        XCTAssertEqual(result.precision, inside(fake, real, rr))
        XCTAssertEqual(result.recall, inside(real, fake, fr))
        XCTAssertGreaterThan(result.precision, 0.2)
        XCTAssertLessThan(result.precision, 1)
        print("precision \(result.precision) recall \(result.recall)")
    }
}

final class FIDExtrapolationTests: XCTestCase {
    func testFitRecoversSyntheticLine() throws {
        let points = FIDExtrapolation.subsetSizes(from: 2000, to: 10000, count: 15).map {
            FIDExtrapolationPoint(size: $0, fid: 3 + 500 / Double($0))
        }
        XCTAssertEqual(points.count, 15)
        let (a, b) = try FIDExtrapolation.fit(points)
        XCTAssertEqual(a, 3, accuracy: 1e-10)
        XCTAssertEqual(b, 500, accuracy: 1e-7)
    }

    func testExtrapolationOnFeatures() throws {
        let real = try FeatureStatistics(features: randomMatrix(2000, 8, seed: 71))
        let generated = randomMatrix(1000, 8, seed: 72, shift: 0.2)
        let r = try FIDExtrapolation.compute(generated: generated, reference: real, pointCount: 8, seed: 3)
        XCTAssertEqual(r.points.map(\.size), FIDExtrapolation.subsetSizes(from: 200, to: 1000, count: 8))
        XCTAssertTrue(r.fidInfinity.isFinite)
        XCTAssertNil(r.warning)
        // FID of finite samples is biased upwards: the intercept is below the full-set FID.
        let full = try FrechetDistance.compute(FeatureStatistics(features: generated), real).value
        XCTAssertLessThan(r.fidInfinity, full)
        XCTAssertGreaterThan(r.slope, 0)
        XCTAssertEqual(try FIDExtrapolation.compute(generated: generated, reference: real, pointCount: 8, seed: 3), r)
    }
}
