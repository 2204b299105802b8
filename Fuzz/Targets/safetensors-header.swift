// Fuzz target: the safetensors header JSON alone. The input is the header text; the harness parses it
// with HeaderJSON, then wraps it in a file with the right 8-byte length and as many zero data bytes as
// its largest data_offsets end (at most 1 MiB), so mutations of the JSON reach the header validation
// and the tensor decoding instead of stopping at a stale length prefix.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensorsHeader(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let header = [UInt8](fuzzInput(start, count))
    var dataSize = 0
    if let json = try? HeaderJSON.parse(header), case .object(let members) = json {
        for (_, value) in members {
            guard case .object(let fields) = value,
                  let offsets = fields.first(where: { $0.key == "data_offsets" })?.value,
                  case .array(let items) = offsets, items.count == 2,
                  case .number(let text) = items[1], let end = Int(text), end >= 0, end <= 1 << 20 else { continue }
            dataSize = max(dataSize, end)
        }
    }
    var file = Data()
    for k in 0..<8 { file.append(UInt8(truncatingIfNeeded: header.count >> (8 * k))) }
    file.append(contentsOf: header)
    file.append(Data(count: dataSize))
    expectParserErrors {
        let opened = try SafeTensorsFile(data: file, path: "fuzz.safetensors")
        _ = try opened.allTensors()
    }
    return 0
}
