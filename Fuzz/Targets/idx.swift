// Fuzz target: an IDX file, raw or gzipped, read as images (magic 0x803), as labels (0x801), and with
// the magic number the file itself starts with (any caller of IDX.read(_:expectedMagic:)).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzInput(start, count)
    expectParserErrors { _ = try IDX.decode(data, expectedMagic: IDX.imagesMagic, path: "fuzz-images.idx") }
    expectParserErrors { _ = try IDX.decode(data, expectedMagic: IDX.labelsMagic, path: "fuzz-labels.idx") }
    if count >= 4, let start {
        let own = UInt32(start[0]) << 24 | UInt32(start[1]) << 16 | UInt32(start[2]) << 8 | UInt32(start[3])
        expectParserErrors { _ = try IDX.decode(data, expectedMagic: own, path: "fuzz.idx") }
    }
    return 0
}
