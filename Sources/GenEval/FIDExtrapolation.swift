import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// One FID measurement of the extrapolation: FID of a random subset of `size` generated samples.
public struct FIDExtrapolationPoint: Sendable, Equatable {
    /// Number of generated samples in the subset.
    public let size: Int
    /// Its FID against the reference statistics.
    public let fid: Double

    public init(size: Int, fid: Double) {
        self.size = size
        self.fid = fid
    }
}

/// FID∞: the intercept of the fit FID(N) = a + b / N, the slope b, the measured points and any
/// warnings of the underlying FIDs.
public struct FIDInfinityResult: Sendable, Equatable {
    /// The extrapolated FID at N = ∞ (the fit's intercept a).
    public let fidInfinity: Double
    /// The fit's slope b (the bias term's coefficient).
    public let slope: Double
    /// The (N, FID) measurements, by increasing N.
    public let points: [FIDExtrapolationPoint]
    /// The distinct warnings of the subset FIDs, if any.
    public let warning: String?
}

/// FID∞ (Chong & Forsyth 2020, "Effectively unbiased FID and Inception Score and where to find
/// them"): FID computed from N samples is biased upwards by a term linear in 1/N whose slope depends
/// on the generator, so comparing models at one N can rank them wrongly. Following the authors'
/// procedure, FID is measured on random subsets of the generated set at `pointCount` sizes evenly
/// spaced in N (each subset a fresh shuffle, against the fixed reference statistics), a line
/// FID = a + b/N is fitted by least squares, and a (the value at 1/N = 0) is reported. The authors
/// use N from 5 000 to 50 000, i.e. one tenth of the samples to all of them; the default here is
/// one fifth (`minimumSize`) to all, which keeps the smallest subset useful for small sample counts.
public enum FIDExtrapolation {
    /// FID∞ of `generated` (an (n, d) feature matrix) against `reference`.
    public static func compute(generated: Matrix64, reference: FeatureStatistics, pointCount: Int = 15,
                               minimumSize: Int? = nil, seed: UInt64 = 0,
                               epsilon: Double = FrechetDistance.defaultEpsilon) throws -> FIDInfinityResult {
        let n = generated.rows
        guard generated.columns == reference.dimension else {
            throw MetricError("FID∞: feature dimensions differ (\(generated.columns) and \(reference.dimension))")
        }
        let low = minimumSize ?? max(2, n / 5)
        guard low >= 2, low < n else {
            throw MetricError("FID∞: need 2 <= minimumSize < n, got minimumSize \(low) for n = \(n)")
        }
        guard pointCount >= 2 else { throw MetricError("FID∞: need at least 2 points, got \(pointCount)") }
        let sizes = subsetSizes(from: low, to: n, count: pointCount)
        guard sizes.count >= 2 else {
            throw MetricError("FID∞: sizes from \(low) to \(n) give fewer than 2 distinct subset sizes")
        }
        let generator = RandomGenerator(seed: seed)
        var points: [FIDExtrapolationPoint] = []
        var warnings: [String] = [], seen: Set<String> = []
        for size in sizes {
            let order = generator.permutation(n)
            let subset = generated.selectingRows(Array(order[0..<size]))
            let result = try FrechetDistance.compute(FeatureStatistics(features: subset), reference, epsilon: epsilon)
            points.append(FIDExtrapolationPoint(size: size, fid: result.value))
            if let w = result.warning, seen.insert(w).inserted { warnings.append("N = \(size): " + w) }
        }
        let (a, b) = try fit(points)
        return FIDInfinityResult(fidInfinity: a, slope: b, points: points,
                                 warning: warnings.isEmpty ? nil : warnings.joined(separator: "\n"))
    }

    /// `count` sizes evenly spaced from `low` to `high` (both included), rounded down as the
    /// authors' `np.linspace(...).astype('int32')`, duplicates removed.
    public static func subsetSizes(from low: Int, to high: Int, count: Int) -> [Int] {
        guard count >= 2 else { return [high] }
        var sizes: [Int] = []
        for i in 0..<count {
            let v = i == count - 1 ? high : Int((Double(low) + Double(high - low) * Double(i) / Double(count - 1)).rounded(.down))
            if sizes.last != v { sizes.append(v) }
        }
        return sizes
    }

    /// The least-squares line FID = a + b / N through the points: returns (a, b). Needs at least
    /// two distinct sizes.
    public static func fit(_ points: [FIDExtrapolationPoint]) throws -> (intercept: Double, slope: Double) {
        let xs = points.map { 1 / Double($0.size) }, ys = points.map(\.fid)
        guard points.count >= 2, Set(points.map(\.size)).count >= 2, points.allSatisfy({ $0.size > 0 }) else {
            throw MetricError("FID∞ fit: need at least 2 distinct positive sizes, got \(points.map(\.size))")
        }
        // Centred normal equations: b = Σ(x - x̄)(y - ȳ) / Σ(x - x̄)², a = ȳ - b x̄.
        let count = Double(points.count)
        let mx = xs.reduce(0, +) / count, my = ys.reduce(0, +) / count
        var sxy = 0.0, sxx = 0.0
        for (x, y) in zip(xs, ys) {
            sxy += (x - mx) * (y - my)
            sxx += (x - mx) * (x - mx)
        }
        let b = sxy / sxx
        return (my - b * mx, b)
    }
}
