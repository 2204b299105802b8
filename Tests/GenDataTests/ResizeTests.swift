import Foundation
@testable import GenData
import GenTensor
import XCTest

/// Bicubic upsampling (`resizeImages(filter: .bicubic)`): Keys' kernel with a = -0.75 on PyTorch's
/// source coordinates, checked against values computed by hand, and against the kernel's
/// properties (constants kept, symmetry).
final class ResizeTests: XCTestCase {
    func row(_ values: [Float], to width: Int, _ filter: UpsamplingFilter = .bicubic) -> [Float] {
        resizeImages(Tensor(values, shape: [1, 1, values.count, 1]), height: 1, width: width, filter: filter).scalars(as: Float.self)
    }

    func testKernelValuesByHand() {
        XCTAssertEqual(cubicConvolution(0), 1)
        XCTAssertEqual(cubicConvolution(1), 0)
        XCTAssertEqual(cubicConvolution(2), 0)
        XCTAssertEqual(cubicConvolution(0.5), 0.59375)
        XCTAssertEqual(cubicConvolution(1.5), -0.09375)
        XCTAssertEqual(cubicConvolution(-0.25), 0.87890625)
    }

    /// An impulse [0, 0, 1, 0, 0] doubled: output o samples source 0.5 o - 0.25, so outputs 2...7
    /// weigh the impulse by w(1.25), w(0.75), w(0.25), w(0.25), w(0.75), w(1.25).
    func testImpulseMatchesTheKernel() {
        let out = row([0, 0, 1, 0, 0], to: 10)
        let expected: [Float] = [-0.10546875, 0.26171875, 0.87890625, 0.87890625, 0.26171875, -0.10546875]
        for (a, b) in zip(out[2...7], expected) { XCTAssertEqual(a, b, accuracy: 1e-7) }
        XCTAssertEqual(out[2...7].min() ?? 0, -0.10546875, accuracy: 1e-7, "bicubic overshoots below 0 beside an edge")
        // Bilinear stays the default and never overshoots.
        XCTAssertGreaterThanOrEqual(row([0, 0, 1, 0, 0], to: 10, .bilinear).min() ?? -1, 0)
    }

    func testConstantsAndLinesAreKept() {
        XCTAssertTrue(row([0.3, 0.3, 0.3, 0.3], to: 11).allSatisfy { abs($0 - 0.3) < 1e-6 })
        // A ramp 0, 1, ..., 6 doubled. With a = -0.75 the kernel keeps constants but not lines: output
        // 3 samples source 1.25 (i0 = 1, t = 0.25) as 1 + (w(1.25) + w(0.75) - 2 w(1.75)) = 1.296875, by
        // hand; the ramp's outputs are symmetric about its middle (out[o] + out[13 - o] = 6).
        let out = row((0..<7).map(Float.init), to: 14)
        XCTAssertEqual(out[3], 1.296875, accuracy: 1e-6)
        for o in 0..<14 { XCTAssertEqual(out[o] + out[13 - o], 6, accuracy: 1e-5, "output \(o)") }
        // 2-D: rows and columns are resampled separably; a 14 x 14 image becomes 28 x 28.
        let image = Tensor.uniform([2, 14, 14, 1], generator: RandomGenerator(seed: 3))
        XCTAssertEqual(resizeImages(image, height: 28, width: 28, filter: .bicubic).shape, [2, 28, 28, 1])
    }
}
