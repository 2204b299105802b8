import CPNG
import CZlib
import XCTest
import GenFormats

/// The system libraries link and are the versions the data code is written for.
final class LinkTests: XCTestCase {
    func testZlibAndLibpngLink() {
        XCTAssertTrue(String(cString: zlibVersion()).hasPrefix("1."))
        XCTAssertEqual(png_access_version_number() / 10000, 1)
    }
}
