import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The Gaussian summary of a feature set that FID compares: the mean, the unbiased (n - 1)
/// covariance and the number of samples, as pytorch-fid's `mu` and `sigma` (Heusel et al. 2017).
/// Computing it for the real data once and caching it (`write(to:)`, `init(contentsOf:)`) saves
/// the feature pass over the training set at every evaluation.
public struct FeatureStatistics: Sendable, Equatable {
    /// The mean feature, length d.
    public var mean: [Double]
    /// The unbiased covariance, d x d.
    public var covariance: Matrix64
    /// How many feature vectors the statistics summarise.
    public var count: Int

    /// The feature dimension d.
    public var dimension: Int { mean.count }

    /// Statistics from their parts; throws when the shapes disagree.
    public init(mean: [Double], covariance: Matrix64, count: Int) throws {
        guard covariance.rows == mean.count && covariance.columns == mean.count else {
            throw MetricError("FeatureStatistics: a \(covariance.rows) x \(covariance.columns) covariance for a mean of length \(mean.count)")
        }
        guard count >= 0 else { throw MetricError("FeatureStatistics: negative count \(count)") }
        self.mean = mean
        self.covariance = covariance
        self.count = count
    }

    /// The statistics of an (n, d) feature matrix (rows are samples); needs n >= 2 and finite values.
    public init(features: Matrix64) throws {
        guard features.rows >= 2 else {
            throw MetricError("FeatureStatistics: need at least 2 feature vectors for a covariance, got \(features.rows)")
        }
        guard features.isFinite else { throw MetricError("FeatureStatistics: the features contain NaN or infinity") }
        let mu = LinearAlgebra64.columnMeans(features)
        self.mean = mu
        self.covariance = LinearAlgebra64.covariance(features, mean: mu)
        self.count = features.rows
    }

    /// The statistics of an (n, d) float32 or float64 feature tensor, computed in Float64.
    public init(features: Tensor) throws {
        try self.init(features: Matrix64(features))
    }

    /// Tensor names in the safetensors cache file.
    public static let meanName = "mu", covarianceName = "sigma", countName = "count"

    /// Writes the statistics as a safetensors file: `mu` (F64 [d]), `sigma` (F64 [d, d]) and
    /// `count` (I64 [1]), plus `metadata` (for example which feature network and dataset).
    public func write(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensorsFile.write([
            Self.meanName: Tensor(mean, shape: [dimension]),
            Self.covarianceName: covariance.tensor(),
            Self.countName: Tensor([Int64(count)], shape: [1]),
        ], metadata: metadata, to: url)
    }

    /// Reads statistics written by `write(to:)` (F32 `mu`/`sigma` are accepted and widened; a file
    /// without `count` reads as count 0, meaning unknown).
    public init(contentsOf url: URL) throws {
        let file = try SafeTensorsFile(contentsOf: url)
        let mu = try file.tensor(Self.meanName)
        let sigma = try file.tensor(Self.covarianceName)
        guard mu.rank == 1, mu.dtype.isFloatingPoint else {
            throw MetricError("FeatureStatistics: \(url.path): '\(Self.meanName)' must be a float vector, got \(mu.dtype) \(mu.shape)")
        }
        let d = mu.shape[0]
        guard sigma.shape == [d, d], sigma.dtype.isFloatingPoint else {
            throw MetricError("FeatureStatistics: \(url.path): '\(Self.covarianceName)' must be a float [\(d), \(d)] matrix, got \(sigma.dtype) \(sigma.shape)")
        }
        var n = 0
        if file.contains(Self.countName) {
            let c = try file.tensor(Self.countName)
            guard c.elementCount == 1 else {
                throw MetricError("FeatureStatistics: \(url.path): '\(Self.countName)' must hold one value, got shape \(c.shape)")
            }
            n = Int(c.item)
        }
        try self.init(mean: mu.doubleScalars(), covariance: Matrix64(sigma), count: n)
    }

    /// Writes the statistics as pytorch-fid keeps them: a NumPy .npz (uncompressed, as `np.savez`)
    /// with `mu` (float64 (d,)) and `sigma` (float64 (d, d)). The sample count is not stored.
    public func writeNPZ(to url: URL) throws {
        let mu = mean.withUnsafeBytes { Data($0) }
        let sigma = covariance.values.withUnsafeBytes { Data($0) }
        try NPZ.write([
            Self.meanName: NPYArray(elementType: .float64, shape: [dimension], data: mu),
            Self.covarianceName: NPYArray(elementType: .float64, shape: [dimension, dimension], data: sigma),
        ], to: url)
    }

    /// Reads pytorch-fid's .npz statistics (`np.savez` or `np.savez_compressed`): `mu` (d,) and
    /// `sigma` (d, d), float64 or float32 (widened); other members are ignored. The count reads as 0
    /// (unknown). Errors name the file: not a .npz, a missing key, wrong shapes, non-finite values.
    public init(npz url: URL) throws {
        let arrays: [String: NPYArray]
        do { arrays = try NPZ.read(url) } catch let error as DataError { throw MetricError(error.description) }
        func vector(_ name: String) throws -> (shape: [Int], values: [Double]) {
            guard let a = arrays[name] else {
                throw MetricError("\(url.path): no '\(name)' array (pytorch-fid statistics hold 'mu' and 'sigma'; this file has \(arrays.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")))")
            }
            switch a.elementType {
            case .float64:
                return (a.shape, a.data.withUnsafeBytes { raw in (0..<raw.count / 8).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) } })
            case .float32:
                return (a.shape, a.data.withUnsafeBytes { raw in (0..<raw.count / 4).map { Double(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self)) } })
            default: throw MetricError("\(url.path): '\(name)' is \(a.elementType.rawValue); float64 or float32 is needed")
            }
        }
        let mu = try vector(Self.meanName), sigma = try vector(Self.covarianceName)
        guard mu.shape.count == 1 else { throw MetricError("\(url.path): 'mu' has shape \(mu.shape); a vector (d,) is needed") }
        let d = mu.shape[0]
        guard sigma.shape == [d, d] else {
            throw MetricError("\(url.path): 'sigma' has shape \(sigma.shape); (\(d), \(d)) is needed for 'mu' of length \(d)")
        }
        guard mu.values.allSatisfy(\.isFinite), sigma.values.allSatisfy(\.isFinite) else {
            throw MetricError("\(url.path): 'mu' or 'sigma' holds NaN or infinity")
        }
        try self.init(mean: mu.values, covariance: Matrix64(rows: d, columns: d, values: sigma.values), count: 0)
    }
}

/// The result of a Fréchet distance: the value, its two terms, and a warning when a covariance was
/// singular and the ε·I offset was added.
public struct FrechetDistanceResult: Sendable, Equatable {
    /// ‖μ₁ - μ₂‖² + tr(S₁) + tr(S₂) - 2 tr(√(S₁S₂)).
    public let value: Double
    /// ‖μ₁ - μ₂‖².
    public let meanTerm: Double
    /// tr(S₁) + tr(S₂) - 2 tr(√(S₁S₂)).
    public let covarianceTerm: Double
    /// tr(√(S₁S₂)).
    public let traceSquareRoot: Double
    /// The ε added to both covariances' diagonals (0 when none was needed).
    public let epsilonAdded: Double
    /// Why the value may be unreliable (singular covariance, few samples); nil when none.
    public let warning: String?
}

/// The Fréchet Inception Distance (Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter 2017, "GANs
/// trained by a two time-scale update rule converge to a local Nash equilibrium"): the Fréchet
/// (2-Wasserstein) distance between the Gaussians fitted to two feature sets (Dowson & Landau
/// 1982), d² = ‖μ₁ - μ₂‖² + tr(S₁) + tr(S₂) - 2 tr(√(S₁S₂)).
///
/// pytorch-fid takes `scipy.linalg.sqrtm` of the non-symmetric product S₁S₂ and keeps the real part.
/// Here the trace comes from symmetric eigendecompositions only: S₁S₂ is similar to the symmetric
/// positive semi-definite A = √S₁ S₂ √S₁ (S₁S₂ = √S₁ A √S₁⁻¹ when S₁ is invertible, and by
/// continuity otherwise), so tr(√(S₁S₂)) = Σ √max(λᵢ(A), 0). This is real by construction,
/// needs no complex arithmetic and agrees with pytorch-fid to ~1e-12 relative on well-conditioned
/// covariances.
///
/// Singular covariances (n ≤ d samples, or a numerically zero eigenvalue such as a dead ReLU
/// feature): the result carries a warning and ε·I (ε = 1e-6, pytorch-fid's `eps`) is added to both
/// covariances, as pytorch-fid does when its `sqrtm` fails. Unlike pytorch-fid, whose fallback adds ε
/// inside the square root only, here the offset covariances are used in every term (the distance
/// between N(μ₁, S₁ + εI) and N(μ₂, S₂ + εI), never negative); the two differ by exactly 2dε.
public enum FrechetDistance {
    /// pytorch-fid's diagonal offset for singular covariances.
    public static let defaultEpsilon = 1e-6

    /// FID between two feature sets ((n₁, d) and (n₂, d) matrices, rows are samples).
    public static func compute(_ a: Matrix64, _ b: Matrix64, epsilon: Double = defaultEpsilon) throws -> FrechetDistanceResult {
        try compute(FeatureStatistics(features: a), FeatureStatistics(features: b), epsilon: epsilon)
    }

    /// FID between two sets of statistics (for example generated samples against cached real ones).
    public static func compute(_ a: FeatureStatistics, _ b: FeatureStatistics,
                               epsilon: Double = defaultEpsilon) throws -> FrechetDistanceResult {
        guard a.dimension == b.dimension else {
            throw MetricError("FID: feature dimensions differ (\(a.dimension) and \(b.dimension))")
        }
        guard a.mean.allSatisfy(\.isFinite), b.mean.allSatisfy(\.isFinite), a.covariance.isFinite, b.covariance.isFinite else {
            throw MetricError("FID: the statistics contain NaN or infinity")
        }
        let d = a.dimension
        var meanTerm = 0.0
        for i in 0..<d {
            let diff = a.mean[i] - b.mean[i]
            meanTerm += diff * diff
        }

        var s1 = a.covariance.symmetrized(), s2 = b.covariance.symmetrized()
        let e1 = try SymmetricEigendecomposition(s1)
        let e2 = try SymmetricEigendecomposition(s2)
        var warnings: [String] = []
        for (name, stats, eigen) in [("first", a, e1), ("second", b, e2)] {
            if stats.count > 0 && stats.count <= d {
                warnings.append("the \(name) set has \(stats.count) samples for \(d) features, so its covariance is "
                                + "singular (rank <= \(stats.count - 1)); use more samples than features for a meaningful FID")
            } else if isNumericallySingular(eigen.eigenvalues) {
                warnings.append("the \(name) covariance is numerically singular (smallest eigenvalue "
                                + "\(eigen.eigenvalues.first ?? 0), largest \(eigen.eigenvalues.last ?? 0))")
            }
        }
        let singular = !warnings.isEmpty

        var sqrtS1: Matrix64
        var added = 0.0
        if singular && epsilon > 0 {
            added = epsilon
            for i in 0..<d {
                s1[i, i] += epsilon
                s2[i, i] += epsilon
            }
            // S + εI has S's eigenvectors and eigenvalues shifted by ε.
            sqrtS1 = e1.reconstruct { max($0 + epsilon, 0).squareRoot() }
            warnings.append("added \(epsilon) to the diagonal of both covariances")
        } else {
            sqrtS1 = e1.reconstruct { max($0, 0).squareRoot() }
        }
        let traceSqrt = try traceOfSquareRoot(sqrtS1: sqrtS1, s2)
        let covTerm = s1.trace + s2.trace - 2 * traceSqrt
        return FrechetDistanceResult(value: meanTerm + covTerm, meanTerm: meanTerm, covarianceTerm: covTerm,
                                     traceSquareRoot: traceSqrt, epsilonAdded: added,
                                     warning: warnings.isEmpty ? nil : "FID: " + warnings.joined(separator: "; "))
    }

    /// tr(√(S₁S₂)) for symmetric positive semi-definite S₁, S₂ (see the type's documentation).
    public static func traceOfSquareRootProduct(_ s1: Matrix64, _ s2: Matrix64) throws -> Double {
        try traceOfSquareRoot(sqrtS1: LinearAlgebra64.symmetricSquareRoot(s1), s2)
    }

    /// Σ √max(λ(√S₁ S₂ √S₁), 0).
    static func traceOfSquareRoot(sqrtS1: Matrix64, _ s2: Matrix64) throws -> Double {
        let product = LinearAlgebra64.multiply(LinearAlgebra64.multiply(sqrtS1, s2), sqrtS1)
        let eigen = try SymmetricEigendecomposition(product)
        // Ascending eigenvalues summed from the smallest, so the small terms are not lost.
        return eigen.eigenvalues.reduce(0) { $0 + max($1, 0).squareRoot() }
    }

    /// Whether the smallest eigenvalue is zero to within rounding (d ulps of the largest).
    static func isNumericallySingular(_ ascending: [Double]) -> Bool {
        guard let lo = ascending.first, let hi = ascending.last else { return false }
        return lo <= Double(ascending.count) * Double.ulpOfOne * max(abs(hi), Double.leastNormalMagnitude)
    }
}
