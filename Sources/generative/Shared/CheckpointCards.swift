import ArgumentParser
import Foundation

/// A shipped checkpoint's card in `checkpoints/README.md`: a `## ROW.safetensors` heading, then a
/// table whose `command` row holds the commands that made the file (in backticks) and whose
/// `SHA-256` row holds the file's hash.
struct CheckpointCard: Equatable {
    /// The file's name ("vae.safetensors").
    var file: String
    /// The `scripts/generative` commands of the card, in order, as argument lists without the
    /// executable (["train", "vae", "--out", "runs/vae"]).
    var commands: [[String]]
    var sha256: String

    /// The row the card's file scores ("vae").
    var row: String { file.hasSuffix(".safetensors") ? String(file.dropLast(".safetensors".count)) : file }

    /// The cards of `folder/README.md`, in its order.
    static func read(folder: URL) throws -> [CheckpointCard] {
        let url = folder.appendingPathComponent("README.md")
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ValidationError("\(url.path): cannot read the checkpoints' cards (\(error.localizedDescription))")
        }
        return parse(text)
    }

    static func parse(_ text: String) -> [CheckpointCard] {
        var cards: [CheckpointCard] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("## "), line.hasSuffix(".safetensors") {
                cards.append(CheckpointCard(file: String(line.dropFirst(3)), commands: [], sha256: ""))
            }
            guard !cards.isEmpty else { continue }
            if line.hasPrefix("| command |") {
                cards[cards.count - 1].commands = quoted(line).compactMap { code in
                    let words = code.split(separator: " ").map(String.init)
                    return words.first == "scripts/generative" ? Array(words.dropFirst()) : nil
                }
            }
            if line.hasPrefix("| SHA-256 |") { cards[cards.count - 1].sha256 = quoted(line).first ?? "" }
        }
        return cards
    }

    /// The spans of `line` between backticks.
    static func quoted(_ line: String) -> [String] {
        line.split(separator: "`", omittingEmptySubsequences: false).enumerated().compactMap { $0.offset % 2 == 1 ? String($0.element) : nil }
    }
}
