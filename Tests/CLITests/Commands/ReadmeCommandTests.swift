import Foundation
@testable import generative
import XCTest
import GenTensor
import GenFormats
import GenModels
import GenData
import GenEval

/// Every concrete command line of the README still parses (flags, values and validation) with
/// today's commands: the ones in code blocks, and the inline ones without placeholders.
final class ReadmeCommandTests: CommandTestCase {
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md")

    /// The README's `generative` command lines, as argument lists (without the program name).
    static func commands() throws -> [[String]] {
        let text = try String(contentsOf: readme, encoding: .utf8)
        var lines: [String] = []
        var inCode = false, pending = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") { inCode.toggle(); continue }
            if inCode {
                var code = line
                if let comment = code.range(of: "  #") ?? code.range(of: " # ") { code = String(code[..<comment.lowerBound]) }
                code = code.trimmingCharacters(in: .whitespaces)
                if code.hasSuffix("\\") { pending += code.dropLast() + " "; continue }
                lines.append(pending + code)
                pending = ""
            } else {
                var rest = Substring(line)
                while let open = rest.firstIndex(of: "`") {
                    let after = rest[rest.index(after: open)...]
                    guard let close = after.firstIndex(of: "`") else { break }
                    lines.append(String(after[..<close]))
                    rest = after[after.index(after: close)...]
                }
            }
        }
        return lines.compactMap { line -> [String]? in
            let words = line.split(separator: " ").map(String.init)
            guard let start = words.firstIndex(where: { $0 == "generative" || $0 == "scripts/generative" }),
                  start == 0, words.count > 2 else { return nil }  // "generative eval" names a command; it is not one
            let arguments = Array(words[(start + 1)...])
            // Placeholders (F, N, MODEL, ...), alternatives and ellipses are usage summaries, not commands.
            let placeholder = arguments.contains { word in
                word.contains("[") || word.contains("|") || word == "..." || word.contains("\\|")
                    || (word.allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" } && word.contains { $0.isUppercase })
            }
            return placeholder ? nil : arguments
        }
    }

    /// A command's arguments and the file its standard output goes to (`... > table.json`), if any.
    static func redirected(_ words: [String]) -> (arguments: [String], output: String?) {
        guard let i = words.firstIndex(of: ">"), i + 1 < words.count else { return (words, nil) }
        return (Array(words[..<i]), words[i + 1])
    }

    func testEveryConcreteReadmeCommandParses() throws {
        let commands = try Self.commands()
        XCTAssertGreaterThan(commands.count, 25, "the README's commands were found")
        for arguments in commands {
            XCTAssertNoThrow(try Generative.parseAsRoot(Self.redirected(arguments).arguments), arguments.joined(separator: " "))
        }
    }
}
