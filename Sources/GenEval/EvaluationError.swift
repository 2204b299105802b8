import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
/// An evaluation input or setting that cannot be scored, in words.
public struct EvaluationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
