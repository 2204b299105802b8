import GenTensor
import XCTest
import GenFormats
import GenModels

/// The parity tolerance of the fixtures README: |a - b| <= max(relative * max|expected|, floor).
/// Float32 forward and backward passes agree with PyTorch's to about 1e-5 relative, so 1e-4 of the
/// largest magnitude leaves a 10x margin while catching any wrong index, sign or missing term.
public let parityRelativeTolerance = 1e-4
public let parityAbsoluteFloor = 1e-6

/// Asserts that `actual` matches `expected` element by element within `relative` of the expected
/// tensor's largest magnitude (never less than `floor`); reports the worst element on failure.
public func assertClose(_ actual: Tensor, _ expected: Tensor, relative: Double = parityRelativeTolerance,
                        floor: Double = parityAbsoluteFloor, _ label: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(label): shape", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    assertClose(actual.doubleScalars(), expected.doubleScalars(), relative: relative, floor: floor, label,
                file: file, line: line)
}

/// Array form of `assertClose`.
public func assertClose(_ actual: [Double], _ expected: [Double], relative: Double = parityRelativeTolerance,
                        floor: Double = parityAbsoluteFloor, _ label: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(label): count", file: file, line: line)
    let scale = expected.reduce(0) { max($0, abs($1)) }
    let tol = max(relative * scale, floor)
    var worst = 0.0, worstIndex = -1
    for i in 0..<min(actual.count, expected.count) {
        let d = abs(actual[i] - expected[i])
        if !(d <= tol) && (d > worst || d.isNaN || worstIndex < 0) { worst = d; worstIndex = i }
    }
    if worstIndex >= 0 {
        XCTFail("\(label): element \(worstIndex) is \(actual[worstIndex]), expected \(expected[worstIndex]) "
                + "(|diff| \(worst) > tolerance \(tol), max|expected| \(scale))", file: file, line: line)
    }
}
