import GenTensor
// MARK: - Header JSON

/// A strict JSON parser for safetensors headers: numbers stay as text (so that `1.5`, `true` or
/// `1e2` are never taken for integers), depth is bounded, and errors give a byte position.
enum HeaderJSON {
    case object([(key: String, value: HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// A parse failure.
    struct ParseError: Error {
        let message: String
    }

    /// The deepest nesting accepted (a header needs 3).
    static let maxDepth = 64

    /// The kind of value, with an article, for messages.
    var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number(let text): return Int(text) == nil ? "a non-integer number" : "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The number's text, when this is a number.
    var numberText: String? {
        if case .number(let text) = self { return text }
        return nil
    }

    /// Parses one JSON value, allowing only whitespace after it.
    static func parse(_ bytes: [UInt8]) throws -> HeaderJSON {
        var parser = Parser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ what: String) -> ParseError {
            ParseError(message: "\(what) at byte \(index) of the header")
        }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
        }

        mutating func expect(_ byte: UInt8, _ expected: String? = nil) throws {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else {
                throw error("expected \(expected ?? "'\(Character(Unicode.Scalar(byte)))'")")
            }
            index += 1
        }

        /// Consumes `byte` (after whitespace) when it is next.
        mutating func consume(_ byte: UInt8) -> Bool {
            skipWhitespace()
            if index < bytes.count, bytes[index] == byte {
                index += 1
                return true
            }
            return false
        }

        mutating func value(depth: Int) throws -> HeaderJSON {
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of the JSON") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard depth < HeaderJSON.maxDepth else { throw error("nesting too deep") }
                index += 1
                var members: [(key: String, value: HeaderJSON)] = []
                if consume(UInt8(ascii: "}")) { return .object(members) }
                repeat {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                        throw error("expected a string key")
                    }
                    let key = try string()
                    try expect(UInt8(ascii: ":"))
                    members.append((key, try value(depth: depth + 1)))
                } while consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "}"), "',' or '}'")
                return .object(members)
            case UInt8(ascii: "["):
                guard depth < HeaderJSON.maxDepth else { throw error("nesting too deep") }
                index += 1
                var items: [HeaderJSON] = []
                if consume(UInt8(ascii: "]")) { return .array(items) }
                repeat {
                    items.append(try value(depth: depth + 1))
                } while consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "]"), "',' or ']'")
                return .array(items)
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw error("unexpected character")
            }
        }

        mutating func literal(_ word: String) throws {
            let expected = Array(word.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index ..< index + expected.count]) == expected else {
                throw error("invalid literal")
            }
            index += expected.count
        }

        mutating func digits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - start
        }

        /// A number per the JSON grammar, returned as its text.
        mutating func number() throws -> String {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw error("invalid number") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                throw error("invalid number")
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("invalid number") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digits() > 0 else { throw error("invalid number") }
            }
            return String(decoding: bytes[start ..< index], as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for byte in bytes[index ..< index + 4] {
                guard let digit = Character(Unicode.Scalar(byte)).hexDigitValue else { throw error("invalid \\u escape") }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }

        /// A string starting at the opening quote.
        mutating func string() throws -> String {
            index += 1
            var utf8: [UInt8] = []
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: utf8, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
                    return text
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw error("unterminated string") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0c)
                    case UInt8(ascii: "n"): utf8.append(0x0a)
                    case UInt8(ascii: "r"): utf8.append(0x0d)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xd800 ..< 0xdc00).contains(code) {  // high surrogate: a low one must follow
                            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                                  bytes[index + 1] == UInt8(ascii: "u") else { throw error("unpaired surrogate") }
                            index += 2
                            let low = try hex4()
                            guard (0xdc00 ..< 0xe000).contains(low) else { throw error("unpaired surrogate") }
                            code = 0x10000 + (code - 0xd800) << 10 + (low - 0xdc00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error("unpaired surrogate") }
                        utf8.append(contentsOf: String(scalar).utf8)
                    default:
                        throw error("invalid escape")
                    }
                case 0x00 ..< 0x20:
                    throw error("control character in a string")
                default:
                    utf8.append(byte)
                }
            }
        }
    }
}
