import GenEval
import XCTest

final class SmokeTests: XCTestCase {
    func testModulesImport() {
        XCTAssertEqual(Tensor([1, 2] as [Double]).elementCount, 2)
    }
}
