// Shared by every fuzz target (see scripts/fuzz). These files are compiled into the GenFormats module
// itself by scripts/fuzz, never by SwiftPM, so they may call GenFormats' internal API.
import Foundation

/// The fuzzer's input as `Data` whose `startIndex` is 1, not 0: a slice, so that a parser that
/// indexes a `Data` from 0 instead of from `startIndex` reads the wrong bytes or traps.
func fuzzInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> Data {
    var whole = Data(count: 1)
    if let start, count > 0 { whole.append(start, count: count) }
    return whole[1...]
}

/// Runs `body`, which may succeed or throw the parsers' own errors; any other error is a bug.
func expectParserErrors(_ body: () throws -> Void) {
    do {
        try body()
    } catch is DataError {
    } catch is SafeTensorsError {
    } catch {
        fatalError("a parser threw \(type(of: error)) (\(error)), not a DataError or SafeTensorsError")
    }
}
