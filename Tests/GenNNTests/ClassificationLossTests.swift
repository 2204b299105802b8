import Foundation
import GenNN
import XCTest
import GenTensor
import GenFormats

final class ClassificationLossTests: XCTestCase {
    func testCrossEntropyMatchesDirectFormulaAndGradient() {
        let logits: [Double] = [2, -1, 0.5, 0, 3, -2, 1, 1, 1]
        let x = Tensor(logits.map { Float($0) }, shape: [3, 3], requiresGrad: true)
        let y = Tensor([Int64(0), 1, 2], shape: [3])
        let loss = crossEntropy(x, y)
        var expected = 0.0, expectedGrad = [Double](repeating: 0, count: 9)
        for i in 0..<3 {
            let row = Array(logits[(3 * i)..<(3 * i + 3)])
            let z = row.map { exp($0) }.reduce(0, +)
            expected += -(row[i] - log(z)) / 3
            for j in 0..<3 { expectedGrad[3 * i + j] = (exp(row[j]) / z - (j == i ? 1 : 0)) / 3 }
        }
        XCTAssertEqual(loss.item, expected, accuracy: 1e-6)
        let g = gradients(of: loss, wrt: [x])[0].doubleScalars()
        for (a, b) in zip(g, expectedGrad) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(crossEntropy(x, y, reduction: .sum).item, 3 * expected, accuracy: 1e-5)
    }

    func testCrossEntropyIsStableForHugeLogits() {
        let x = Tensor([Float(1000), -1000, 0, -1000, 1000, 0], shape: [2, 3])
        let correct = crossEntropy(x, Tensor([Int64(0), 1], shape: [2])).item
        let wrong = crossEntropy(x, Tensor([Int64(1), 0], shape: [2])).item
        XCTAssertEqual(correct, 0, accuracy: 1e-6)
        XCTAssertEqual(wrong, 2000, accuracy: 1e-2)
        XCTAssertTrue(wrong.isFinite)
        XCTAssertEqual(correctPredictions(x, Tensor([Int64(0), 2], shape: [2])), 1)
    }
}
