// Fuzz target: a .npy file decoded, then converted as NPY.read (a tensor) and NPY.readImages (images) do.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzInput(start, count)
    expectParserErrors {
        let array = try NPY.decode(data, path: "fuzz.npy")
        _ = NPY.tensor(array)
        _ = try NPY.images(array, path: "fuzz.npy")
    }
    return 0
}
