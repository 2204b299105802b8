@testable import GenTensor
import GenTestSupport
import XCTest

final class TensorTests: XCTestCase {
    func testValuesRoundTrip() {
        let t = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.scalars(as: Float.self), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(Tensor(scalar: Int64(7)).item, 7)
    }
}
