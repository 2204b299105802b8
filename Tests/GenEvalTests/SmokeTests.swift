import GenEval
import XCTest
import GenTensor

final class SmokeTests: XCTestCase {
    func testModulesImport() {
        XCTAssertEqual(Tensor([1, 2] as [Double]).elementCount, 2)
    }
}
