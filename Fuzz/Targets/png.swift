// Fuzz target: a PNG file decoded to grey levels (PNGReader, the Swift decoder over zlib).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzInput(start, count)
    expectParserErrors { _ = try PNGReader.decodeGray(data, path: "fuzz.png") }
    return 0
}
