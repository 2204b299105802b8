import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The Inception Score over splits: the mean and the (population) standard deviation of the
/// per-split scores, and the scores themselves.
public struct InceptionScoreResult: Sendable, Equatable {
    /// Mean of the split scores.
    public let mean: Double
    /// Standard deviation of the split scores (ddof 0, as the original implementation's `np.std`).
    public let std: Double
    /// exp(E[KL(p(y|x) ‖ p(y))]) of each split, in order.
    public let splitScores: [Double]
}

/// The Inception Score (Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, "Improved
/// techniques for training GANs"): IS = exp(E_x KL(p(y|x) ‖ p(y))), computed on `splits`
/// consecutive parts of the samples with p(y) the part's mean prediction, then averaged over the
/// parts. With C classes it lies in [1, C]: 1 when every prediction is the same, C when the
/// predictions are confident (one-hot) and spread evenly over the classes.
///
/// The parts follow `np.array_split`: with n = q·splits + r, the first r parts have q + 1 rows
/// and the rest q. Terms with p(y|x) = 0 contribute 0 (the limit of p log p).
public enum InceptionScore {
    /// The score of an (n, C) matrix of class probabilities (rows should sum to 1).
    public static func compute(probabilities p: Matrix64, splits: Int = 10) throws -> InceptionScoreResult {
        guard splits >= 1 else { throw MetricError("Inception Score: splits must be positive, got \(splits)") }
        guard p.rows >= splits else {
            throw MetricError("Inception Score: \(p.rows) samples cannot make \(splits) non-empty splits")
        }
        guard p.columns >= 1 else { throw MetricError("Inception Score: no classes") }
        guard p.values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw MetricError("Inception Score: probabilities must be finite and non-negative")
        }
        let c = p.columns
        var scores: [Double] = []
        for range in splitRanges(count: p.rows, splits: splits) {
            // p(y): the part's mean prediction.
            var py = [Double](repeating: 0, count: c)
            for i in range { for j in 0..<c { py[j] += p[i, j] } }
            let inv = 1 / Double(range.count)
            let logPy = py.map { Foundation.log($0 * inv) }
            var klSum = 0.0
            for i in range {
                var kl = 0.0
                for j in 0..<c {
                    let pij = p[i, j]
                    if pij > 0 { kl += pij * (Foundation.log(pij) - logPy[j]) }
                }
                klSum += kl
            }
            scores.append(Foundation.exp(klSum / Double(range.count)))
        }
        let mean = scores.reduce(0, +) / Double(scores.count)
        let variance = scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(scores.count)
        return InceptionScoreResult(mean: mean, std: variance.squareRoot(), splitScores: scores)
    }

    /// The score of an (n, C) float32 or float64 probability tensor, computed in Float64.
    public static func compute(probabilities: Tensor, splits: Int = 10) throws -> InceptionScoreResult {
        try compute(probabilities: Matrix64(probabilities), splits: splits)
    }

    /// `np.array_split`'s row ranges: the first count % splits parts are one row longer.
    public static func splitRanges(count: Int, splits: Int) -> [Range<Int>] {
        let q = count / splits, r = count % splits
        var ranges: [Range<Int>] = []
        var start = 0
        for s in 0..<splits {
            let size = q + (s < r ? 1 : 0)
            ranges.append(start..<(start + size))
            start += size
        }
        return ranges
    }
}
