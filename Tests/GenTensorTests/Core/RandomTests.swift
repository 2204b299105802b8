import Foundation
@testable import GenTensor
import XCTest

/// The eight-lane Float32 normal generator (`NormalFloatKernel`) against the scalar definition
/// `Float(mean + std * RandomGenerator.normal(seed, n))` (libm's log and cos): the stream must not
/// change, so every value must be equal bit for bit.
final class RandomTests: XCTestCase {
    /// The scalar definition of element i of a float32 normal tensor drawn from position `base`.
    private func scalarNormal(_ seed: UInt64, _ base: UInt64, _ i: Int, mean: Double, std: Double) -> Float {
        Float(mean + std * RandomGenerator.normal(seed, base &+ 2 &* UInt64(i)))
    }

    private func assertBitExact(seed: UInt64, counter: UInt64 = 0, count: Int, mean: Double = 0, std: Double = 1,
                                file: StaticString = #filePath, line: UInt = #line) {
        let g = RandomGenerator(seed: seed, counter: counter)
        let values = Tensor.normal([count], mean: mean, std: std, generator: g).scalars(as: Float.self)
        XCTAssertEqual(g.counter, counter &+ 2 &* UInt64(count), "the fill reserves two draws per value", file: file, line: line)
        var mismatches = 0
        for i in 0..<count {
            let expected = scalarNormal(seed, counter, i, mean: mean, std: std)
            if values[i].bitPattern != expected.bitPattern {
                if mismatches == 0 {
                    XCTFail("seed \(seed) counter \(counter) N(\(mean), \(std)) element \(i): \(values[i]) != \(expected)",
                            file: file, line: line)
                }
                mismatches += 1
            }
        }
        XCTAssertEqual(mismatches, 0, "mismatching values of \(count)", file: file, line: line)
    }

    func testFloatNormalsEqualTheScalarDefinitionBitForBit() {
        assertBitExact(seed: 0, count: 4_000_003)
        for seed: UInt64 in [1, 77, 610, 0xDEAD_BEEF, .max] { assertBitExact(seed: seed, count: 500_001) }
        // Other moments, a stream position that wraps around 2^64, and every tail length.
        assertBitExact(seed: 5, count: 300_000, mean: 3, std: 2)
        assertBitExact(seed: 6, count: 300_000, mean: -1, std: 0.001)
        assertBitExact(seed: 7, count: 300_000, mean: 1e6, std: 1)
        assertBitExact(seed: 8, counter: .max - 1_001, count: 100_000)
        assertBitExact(seed: 10, count: 100_000, mean: 0, std: 1e-40)  // subnormal and zero results
        assertBitExact(seed: 11, count: 100_000, mean: 0.25, std: 0)
        for count in 0..<20 { assertBitExact(seed: 9 + UInt64(count), counter: UInt64(count), count: count) }
    }

    /// The lanes' Box-Muller values are within 2^-46 relative of libm's (the fill assumes 2^-38).
    func testLaneNormalsAreCloseToLibm() {
        var worst = 0.0
        for seed: UInt64 in [0, 3, 12345] {
            for block in 0..<125_000 {
                let base = UInt64(16 * block)
                let lanes = NormalFloatKernel.normals(seed, NormalFloatKernel.Words(0, 2, 4, 6, 8, 10, 12, 14) &+ base)
                for j in 0..<8 {
                    let exact = RandomGenerator.normal(seed, base + 2 * UInt64(j))
                    if exact.magnitude < 1e-3 { continue }
                    worst = Swift.max(worst, Swift.abs(lanes[j] - exact) / exact.magnitude)
                }
            }
        }
        XCTAssertLessThanOrEqual(worst, 0x1p-46, "worst relative gap \(worst) (2^\(Foundation.log2(worst)))")
    }

    func testLaneLogAndCosAgainstLibm() {
        // log over (0, 1] with the ends, the reduction's boundary at sqrt(2) and powers of two.
        var xs: [Double] = [1, 1.0.nextDown, 0x1p-53, 0.5, 0.5.nextDown, 0.5.nextUp, 2.0.squareRoot() / 2,
                            (2.0.squareRoot() / 2).nextUp, (2.0.squareRoot() / 2).nextDown, 0.25, 0.75, 1e-10]
        let g = RandomGenerator(seed: 4)
        for _ in 0..<100_000 { xs.append(1 - g.nextUnitDouble()) }
        for _ in 0..<10_000 { xs.append(Foundation.exp(-37 * g.nextUnitDouble())) }
        var worstLog = 0.0
        for start in stride(from: 0, to: xs.count - 7, by: 8) {
            let v = NormalFloatKernel.log(NormalFloatKernel.Doubles(xs[start..<start + 8]))
            for j in 0..<8 {
                let exact = Foundation.log(xs[start + j])
                worstLog = Swift.max(worstLog, exact == 0 ? Swift.abs(v[j]) : Swift.abs(v[j] - exact) / Swift.abs(exact))
            }
        }
        XCTAssertLessThanOrEqual(worstLog, 0x1p-50, "log: worst relative error \(worstLog)")

        // cos over [0, 2π): multiples of π/4 and random points; relative where |cos| >= 1e-4.
        var ts: [Double] = (0...8).map { Double($0) * Double.pi / 4 }
        for _ in 0..<200_000 { ts.append(2 * Double.pi * g.nextUnitDouble()) }
        while ts.count % 8 != 0 { ts.append(0) }
        var worstCos = 0.0
        for start in stride(from: 0, to: ts.count, by: 8) {
            let v = NormalFloatKernel.cos(NormalFloatKernel.Doubles(ts[start..<start + 8]))
            for j in 0..<8 {
                let exact = Foundation.cos(ts[start + j])
                let error = Swift.abs(v[j] - exact)
                worstCos = Swift.max(worstCos, exact.magnitude >= 1e-4 ? error / exact.magnitude : error)
            }
        }
        XCTAssertLessThanOrEqual(worstCos, 0x1p-48, "cos: worst relative error \(worstCos)")
    }

    func testSequentialDrawsMatchTheFloatTensor() {
        let n = 10_007
        let a = RandomGenerator(seed: 21), b = RandomGenerator(seed: 21)
        let values = Tensor.normal([n], mean: 0.5, std: 3, generator: a).scalars(as: Float.self)
        for i in 0..<n {
            let expected = Float(0.5 + 3 * b.nextNormal())
            if values[i] != expected { XCTFail("element \(i): \(values[i]) != \(expected)"); break }
        }
        XCTAssertEqual(a.counter, b.counter)
    }
}
