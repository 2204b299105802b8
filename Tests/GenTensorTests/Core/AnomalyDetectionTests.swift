@testable import GenTensor
import XCTest

/// `--detect-anomaly` names the first op whose output (forward) or input gradient (backward) is
/// non-finite while what it was computed from is finite, and nothing when all is finite.
final class AnomalyDetectionTests: XCTestCase {
    func testForwardAnomalyNamesTheOp() {
        AnomalyDetection.with {
            let x = Tensor([1, 2, 3], shape: [3])
            let zero = x - x                   // finite
            let logged = zero.log()            // -inf from finite input: the anomaly
            _ = (logged * 2).sum()             // -inf from -inf: not a new anomaly
            XCTAssertEqual(AnomalyDetection.first, "forward of log (-inf)")
        }
        XCTAssertFalse(AnomalyDetection.isEnabled)
    }

    func testBackwardAnomalyNamesTheOp() {
        AnomalyDetection.with {
            let x = Tensor([0, 4], shape: [2]).requiringGrad()
            let y = x.sqrt().sum()             // finite forward: sqrt(0) = 0
            XCTAssertNil(AnomalyDetection.first)
            _ = gradients(of: y, wrt: [x])     // d sqrt(x)/dx at 0 = inf
            XCTAssertEqual(AnomalyDetection.first, "backward of sqrt (inf)")
        }
    }

    func testNothingIsReportedWhenAllIsFinite() {
        AnomalyDetection.with {
            let x = Tensor([1, 4], shape: [2]).requiringGrad()
            _ = gradients(of: (x.sqrt() * x.log()).sum(), wrt: [x])
            XCTAssertNil(AnomalyDetection.first)
        }
    }

    func testOffByDefault() {
        XCTAssertFalse(AnomalyDetection.isEnabled)
        _ = (Tensor([0], shape: [1])).log()
        XCTAssertNil(AnomalyDetection.first)
    }
}
