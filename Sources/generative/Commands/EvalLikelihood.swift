import ArgumentParser
import Foundation
import GenDistributed
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenEval
import GenData
import GenTrain

extension LikelihoodMethod: ExpressibleByArgument {}

/// `eval CHECKPOINT --likelihood`: the flags of a likelihood measurement.
struct LikelihoodFlags: ParsableArguments {
    @Flag(help: "Measure the checkpoint's likelihood in bits/dim on test images (or --images) instead of scoring its samples.")
    var likelihood = false

    @Option(help: "ode (the probability-flow ODE), vlb (the variational bound) or exact (a flow's change of variables); default: the model's first.")
    var likelihoodMethod: LikelihoodMethod?

    @Option(help: "Images to measure instead of the test split: an IDX file, a folder of PNGs or a .npy.")
    var images: String?

    @Option(help: "RK4 steps of the probability-flow ODE.")
    var likelihoodSteps: Int = 100

    @Option(help: "Hutchinson probes per evaluation of the divergence.")
    var probes: Int = 1

    @Flag(help: "Gaussian probes instead of Rademacher ones.")
    var gaussianProbes = false

    func validate() throws {
        guard likelihoodSteps >= 1, probes >= 1 else { throw ValidationError("--likelihood-steps and --probes must be at least 1") }
        if !likelihood && (likelihoodMethod != nil || images != nil) {
            throw ValidationError("--likelihood-method and --images go with --likelihood")
        }
    }

    var options: LikelihoodOptions {
        LikelihoodOptions(steps: likelihoodSteps, trace: gaussianProbes ? .hutchinson(probes: probes) : .rademacher(probes: probes))
    }
}

/// The result of `eval --likelihood`: the mean bits/dim over images and its standard error.
struct LikelihoodReport: Codable {
    var input: String
    var checkpointSHA256: String
    var images: String
    var count: Int
    var likelihoodMethod: String
    var bitsPerDim: Double
    var bitsPerDimSE: Double
    /// The ODE's RK4 steps and its trace probes (nil for an exact likelihood).
    var steps: Int?
    var probes: String?
    var seed: UInt64
    var seconds: Double

    enum CodingKeys: String, CodingKey {
        case input, images, count, steps, probes, seed, seconds
        case checkpointSHA256 = "checkpoint_sha256", likelihoodMethod = "likelihood_method"
        case bitsPerDim = "bits_per_dim", bitsPerDimSE = "bits_per_dim_se"
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    func table() -> String {
        let how = [likelihoodMethod, steps.map { "\($0) RK4 steps" }, probes.map { "\($0) probes" }].compactMap { $0 }
            .joined(separator: ", ")
        return String(format: "%@ on %d images of %@ (%@): %.4f ± %.4f bits/dim (standard error), %.1f s",
                      input, count, images, how, bitsPerDim, bitsPerDimSE, seconds)
    }
}

extension Eval {
    /// The default number of images of a likelihood measurement.
    static let defaultLikelihoodCount = 1000

    /// `measureLikelihood(world:log:)` in one process.
    func measureLikelihood(log: @escaping (String) -> Void = logLine) throws -> LikelihoodReport {
        guard let report = try measureLikelihood(world: .single, log: log) else { preconditionFailure("one process is rank 0") }
        return report
    }

    /// Measures the checkpoint's bits/dim on the images, in batches, with progress on stderr. Under
    /// `mpirun`, the images are split over `world`'s ranks as sampling splits them (`ImageShards`:
    /// whole batches per rank where there are enough), each image measured with the noise of its
    /// index, and the per-image bits are gathered to rank 0, which returns the report (the others
    /// return nil): one process's figures, bit for bit where whole batches go to the ranks.
    func measureLikelihood(world: Communicator, log: @escaping (String) -> Void = logLine) throws -> LikelihoodReport? {
        let url = URL(fileURLWithPath: input)
        guard url.pathExtension == "safetensors" else { throw ValidationError("--likelihood measures a checkpoint; \(input) is not one") }
        let model: any GenerativeModel
        do { model = try ModelRegistry.load(try Checkpoint.finite(contentsOf: url)) } catch let error as ModelError {
            throw ValidationError(error.description)
        }
        guard let method = likelihoodFlags.likelihoodMethod ?? model.likelihoodMethods.first else {
            throw ValidationError("\(input): '\(type(of: model).kind)' models have no likelihood")
        }
        guard model.likelihoodMethods.contains(method) else {
            throw ValidationError("\(input): '\(type(of: model).kind)' models measure \(model.likelihoodMethods.map(\.rawValue).joined(separator: ", ")), not \(method.rawValue)")
        }
        let (all, source) = try likelihoodImages()
        let n = min(count ?? Self.defaultLikelihoodCount, all.shape[0])
        guard Array(all.shape.dropFirst()) == model.imageShape else {
            throw ValidationError("\(source) holds \(all.shape.dropFirst().map(String.init).joined(separator: " x ")) images; the model's are \(model.imageShape.map(String.init).joined(separator: " x "))")
        }
        let start = Date()
        let shards = (0..<world.size).map { ImageShards.range(count: n, batchSize: batchSize, rank: $0, size: world.size) }
        let mine = shards[world.rank]
        var bits: [Double] = []
        let progress = world.isRoot ? CountProgress("likelihood (\(method.rawValue))", total: mine.count, start: start, log: log) : nil
        for first in stride(from: mine.lowerBound, to: mine.upperBound, by: batchSize) {
            let batch = all.sliced(axis: 0, first..<min(mine.upperBound, first + batchSize))
            let size = batch.shape[0], done = bits.count
            bits += try model.bitsPerDimension(batch, startIndex: first, method: method, options: likelihoodFlags.options, seed: seed) {
                progress?.update(done + min(size - 1, Int($0 * Double(size))))
            }
            progress?.update(bits.count)
        }
        if world.size > 1 {
            guard let all = try gatherShares(bits, shares: shards, valuesPerItem: 1, world: world) else { return nil }
            bits = all
        }
        let mean = bits.reduce(0, +) / Double(n)
        let variance = n > 1 ? bits.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1) : 0
        return LikelihoodReport(input: input, checkpointSHA256: try SHA256.hex(contentsOf: url), images: source, count: n,
                                likelihoodMethod: method.rawValue, bitsPerDim: mean, bitsPerDimSE: (variance / Double(n)).squareRoot(),
                                steps: method == .ode ? likelihoodFlags.likelihoodSteps : nil,
                                probes: method == .ode ? "\(likelihoodFlags.probes) \(likelihoodFlags.gaussianProbes ? "gaussian" : "rademacher")" : nil,
                                seed: seed, seconds: Date().timeIntervalSince(start))
    }

    /// --images (an IDX file, a PNG folder or a .npy), or the test split of --data or Fashion-MNIST.
    func likelihoodImages() throws -> (Tensor, String) {
        guard let images = likelihoodFlags.images else {
            let test = try loadDataset(data, split: .test)
            return (test.images, test.source)
        }
        return (try readImageInput(images, flag: "--images"), images)
    }
}
