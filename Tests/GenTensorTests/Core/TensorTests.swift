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

    func testLargeFreedBlocksAreReusedForTheSameSize() {
        var first: TensorStorage? = TensorStorage(byteCount: 40 << 20)
        let address = first!.pointer
        first!.pointer.storeBytes(of: 7, as: Int.self)
        first = nil
        let second = TensorStorage(byteCount: 40 << 20 - 100)  // rounds up to the same MiB
        XCTAssertEqual(second.pointer, address, "a freed 40 MiB block is handed to the next 40 MiB tensor")
        let other = TensorStorage(byteCount: 48 << 20)
        XCTAssertNotEqual(other.pointer, address)
        XCTAssertEqual(Int(bitPattern: other.pointer) % 64, 0, "64-byte alignment")
    }
}
