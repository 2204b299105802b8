import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
/// Why a metric could not be computed: wrong shapes, too few samples, non-finite input, or an
/// eigenvalue iteration that did not converge.
public struct MetricError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, in words.
    public let description: String

    public init(_ description: String) { self.description = description }
}
