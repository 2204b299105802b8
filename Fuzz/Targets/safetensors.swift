// Fuzz target: a whole safetensors file (8-byte length, header JSON, data), opened and every tensor decoded.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzInput(start, count)
    expectParserErrors {
        let file = try SafeTensorsFile(data: data, path: "fuzz.safetensors")
        _ = try file.allTensors()
    }
    return 0
}
