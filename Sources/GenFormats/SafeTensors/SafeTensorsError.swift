import GenTensor
// The error of the safetensors reader and writer (see SafeTensorsReader.swift for the format).

/// An error reading or writing a safetensors file; its description names the file and the problem.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for callers that want to react to one case.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be read, created, written or renamed.
        case io
        /// The file ends before the header or the data it declares.
        case truncated
        /// The header is not valid UTF-8 JSON of the expected structure.
        case invalidHeader
        /// Data offsets are reversed, overlapping, leave a gap or leave bytes uncovered.
        case invalidOffsets
        /// A dtype string that is not a safetensors dtype at all.
        case unknownDType
        /// A valid safetensors dtype that this engine does not load.
        case unsupportedDType
        /// A shape whose byte size disagrees with its data offsets.
        case sizeMismatch
        /// A shape with a negative dimension or an element count that overflows.
        case invalidShape
        /// A tensor name that the file does not hold.
        case missingTensor
        /// A tensor whose shape differs from the one the model expects.
        case shapeMismatch
        /// Arguments that cannot be written (for example a tensor named `__metadata__`).
        case invalidArgument
    }

    /// The file read or written.
    public let path: String
    /// The kind of problem.
    public let kind: Kind
    /// The problem, in words.
    public let problem: String
    /// The full message: the file and the problem.
    public let description: String

    /// Makes an error whose description is "`path`: `problem`".
    public init(path: String, kind: Kind, problem: String) {
        self.path = path
        self.kind = kind
        self.problem = problem
        self.description = "safetensors file \(path): \(problem)"
    }

    /// Makes an error whose `problem` already names the file where it reads best.
    init(path: String, kind: Kind, message: String) {
        self.path = path
        self.kind = kind
        self.problem = message
        self.description = message
    }
}
