import Foundation
import GenEval
import XCTest
@testable import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData

/// The reference sets and data shared by the evaluator tests: computed (or read from the cache in
/// `ReferenceCache.defaultDirectory`) once per test process.
enum Shared {
    static let lock = NSLock()
    nonisolated(unsafe) static var references: [DatasetSplit: ReferenceSet] = [:]
    nonisolated(unsafe) static var testSet: ImageDataset?

    static func network() throws -> FeatureNetwork { try FeatureNetwork.shared() }

    static func reference(_ split: DatasetSplit) throws -> ReferenceSet {
        try lock.withLock {
            if let r = references[split] { return r }
            let start = Date()
            let r = try Evaluator.reference(split, network: network(), log: { print($0) })
            print(String(format: "reference %@: %d images, %@ in %.1f s", split.rawValue, r.count,
                         r.fromCache ? "read from the cache" : "computed", Date().timeIntervalSince(start)))
            references[split] = r
            return r
        }
    }

    static func test() throws -> ImageDataset {
        try lock.withLock {
            if let t = testSet { return t }
            let t = try ImageDataset.fashionMNIST(split: .test)
            testSet = t
            return t
        }
    }
}

final class FeatureNetworkTests: XCTestCase {
    /// The issue's bar for the shipped feature network.
    func testShippedNetworkReachesNinetyOnePercentTestAccuracy() throws {
        let network = try Shared.network()
        let test = try Shared.test()
        let start = Date()
        let result = ClassifierAccuracy.evaluate(network.classifier, images: test.images, labels: test.labels!)
        print(String(format: "shipped classifier: test accuracy %.2f%% (%d of %d) in %.1f s, sha256 %@", 100 * result.accuracy,
                     result.correct, test.count, Date().timeIntervalSince(start), network.hash))
        XCTAssertGreaterThanOrEqual(result.accuracy, 0.91)
        XCTAssertEqual(network.hash.count, 64)
        XCTAssertEqual(network.hash, try SHA256.hex(contentsOf: XCTUnwrap(FeatureNetwork.bundledWeightsURL)))
    }

    func testFusedInferenceMatchesTheClassifierExactly() throws {
        let classifier = Classifier(generator: RandomGenerator(seed: 3))
        let x = Tensor.uniform([7, 28, 28, 1], low: -1, high: 1, generator: RandomGenerator(seed: 4))
        let (reference, fused) = withoutGradients { (classifier.features(x), FeatureNetwork.inferenceFeatures(classifier, x)) }
        XCTAssertEqual(reference.shape, [7, 128])
        XCTAssertEqual(reference.scalars(as: Float.self), fused.scalars(as: Float.self))
        // Probabilities are a softmax of the logits in Float64.
        let outputs = FeatureNetwork(classifier: classifier, hash: "test", source: "memory")
            .outputs((x + 1) / 2, batchSize: 3)
        let logits = withoutGradients { classifier(x) }.doubleScalars()
        for i in 0..<7 {
            let row = Array(logits[(10 * i)..<(10 * i + 10)])
            let z = row.map { exp($0) }.reduce(0, +)
            for j in 0..<10 { XCTAssertEqual(outputs.probabilities[i, j], exp(row[j]) / z, accuracy: 1e-6) }
        }
    }
}

final class ReferenceCacheTests: XCTestCase {
    func testCachedThenRebuiltWhenTheNetworkHashChanges() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("refcache-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let test = try Shared.test().subset(Array(0..<300))
        var loads = 0
        func load() throws -> ImageDataset { loads += 1; return test }
        let a = try Shared.network()
        // A second network: the same weights with one bias changed, written to a file (another hash).
        let other = Classifier(generator: RandomGenerator(seed: 0))
        var state = a.classifier.stateDict()
        state["fc1.bias"] = state["fc1.bias"]! + 0.5
        let otherURL = dir.appendingPathComponent("other.safetensors")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try SafeTensorsFile.write(state, to: otherURL)
        let b = try FeatureNetwork(contentsOf: otherURL)
        XCTAssertNotEqual(a.hash, b.hash)
        _ = other

        let first = try ReferenceCache.reference(split: .test, network: a, datasetKey: "t", directory: dir, loadDataset: load)
        XCTAssertFalse(first.fromCache)
        XCTAssertEqual(loads, 1)
        let second = try ReferenceCache.reference(split: .test, network: a, datasetKey: "t", directory: dir, loadDataset: load)
        XCTAssertTrue(second.fromCache)
        XCTAssertEqual(loads, 1)
        XCTAssertEqual(second.statistics, first.statistics)
        XCTAssertEqual(second.features, first.features)
        XCTAssertEqual(second.count, 300)

        // Another network: another file, computed afresh, with other statistics.
        let third = try ReferenceCache.reference(split: .test, network: b, datasetKey: "t", directory: dir, loadDataset: load)
        XCTAssertFalse(third.fromCache)
        XCTAssertEqual(loads, 2)
        XCTAssertNotEqual(third.cacheURL, first.cacheURL)
        XCTAssertNotEqual(third.statistics.mean, first.statistics.mean)
        XCTAssertEqual(third.networkHash, b.hash)

        // A file at the right name whose recorded hash differs (e.g. written by other weights) is rebuilt.
        let firstURL = try XCTUnwrap(first.cacheURL), thirdURL = try XCTUnwrap(third.cacheURL)
        try FileManager.default.removeItem(at: firstURL)
        try FileManager.default.copyItem(at: thirdURL, to: firstURL)
        var messages: [String] = []
        let fourth = try ReferenceCache.reference(split: .test, network: a, datasetKey: "t", directory: dir, loadDataset: load,
                                                  log: { messages.append($0) })
        XCTAssertFalse(fourth.fromCache)
        XCTAssertEqual(loads, 3)
        XCTAssertEqual(fourth.statistics, first.statistics)
        XCTAssertTrue(messages.contains { $0.contains("rebuilding") }, "\(messages)")
        // And the rewritten file is used next time.
        XCTAssertTrue(try ReferenceCache.reference(split: .test, network: a, datasetKey: "t", directory: dir, loadDataset: load).fromCache)
        XCTAssertEqual(loads, 3)
    }
}

final class EvaluatorTests: XCTestCase {
    /// 2,000 test images against the test reference: the same distribution, so FID is small.
    func testTestImagesAgainstTestReference() throws {
        let test = try Shared.test()
        let images = test.images.rows(Array(0..<2000)), labels = test.labels!.rows(Array(0..<2000))
        var options = EvaluationOptions(reference: .test, seed: 1)
        options.kidSubsets = 20
        let start = Date()
        let report = try Evaluator.evaluate(images: images, labels: labels, input: "test[0..<2000]", inputKind: "memory",
                                            network: Shared.network(), reference: Shared.reference(.test), options: options)
        print(report.table())
        print(String(format: "evaluated in %.1f s", Date().timeIntervalSince(start)))
        XCTAssertEqual(report.sampleCount, 2000)
        XCTAssertEqual(report.reference, "test")
        XCTAssertEqual(report.referenceCount, 10000)
        // Small: 2,000 samples carry a bias of a few units (see FID∞ below), far below what a blur
        // gives (readings with the shipped network: docs/architecture.md, Measurements and history).
        XCTAssertLessThan(report.fid, 2.5)
        XCTAssertGreaterThan(report.fid, 0)
        XCTAssertGreaterThan(report.inceptionScore, 1)
        XCTAssertEqual(report.inceptionScoreSplits, 10)
        // KID is unbiased: for the same distribution its mean over subsets is within noise of 0.
        XCTAssertLessThan(abs(try XCTUnwrap(report.kid)), try XCTUnwrap(report.kidStd))
        XCTAssertGreaterThan(report.precision ?? 0, 0.5)
        XCTAssertGreaterThan(report.recall ?? 0, 0.5)
        XCTAssertEqual(report.classHistogram.reduce(0, +), 2000)
        // Class agreement with the true labels is the accuracy on these images.
        XCTAssertGreaterThan(report.classAgreement ?? 0, 0.88)
        XCTAssertEqual(report.fidInfinityPoints.count, 15)
        XCTAssertEqual(report.fidInfinityPoints.first?.count, 400)
        XCTAssertEqual(report.fidInfinityPoints.last?.count, 2000)
        XCTAssertLessThan(abs(report.fidInfinity!), report.fid)
        XCTAssertEqual(report.networkSHA256, try Shared.network().hash)
        // No sample-count or range warnings (a note on a singular covariance from a rarely firing unit may appear).
        XCTAssertFalse(report.warnings.contains { $0.contains("samples for") || $0.contains("clamped") }, "\(report.warnings)")
        // The JSON object carries the settings.
        let object = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
        for key in ["fid", "fid_infinity", "fid_infinity_points", "inception_score", "kid", "precision", "recall",
                    "class_histogram", "sample_count", "reference", "seed", "network_sha256", "threads", "batch_size"] {
            XCTAssertNotNil(object[key], key)
        }
        // And reads back whole (generative plot reads it), acronyms and all.
        let back = try EvaluationReport.decode(json: Data(report.json().utf8))
        XCTAssertEqual(try back.json(), try report.json())
        XCTAssertEqual(back.networkSHA256, report.networkSHA256)
    }

    func testBadImagesAreRejectedWithClearErrors() throws {
        func message(_ images: Tensor) -> String {
            do {
                _ = try ImageValidation.validate(images, source: "x")
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(message(Tensor.zeros([4, 32, 32, 1])).contains("32 x 32"))
        XCTAssertTrue(message(Tensor.zeros([4, 28, 28, 3])).contains("3 channels"))
        XCTAssertTrue(message(Tensor.zeros([0, 28, 28, 1])).contains("no images"))
        let nan = Tensor.zeros([3, 28, 28, 1])
        nan.floatPointer[784 + 5] = .nan
        nan.floatPointer[2 * 784] = .infinity
        let nanMessage = message(nan)
        XCTAssertTrue(nanMessage.contains("1 NaN and 1 infinite") && nanMessage.contains("image 1"), nanMessage)
        let signed = Tensor.uniform([3, 28, 28, 1], low: -1, high: 1, generator: RandomGenerator(seed: 0))
        XCTAssertTrue(message(signed).contains("[-1, 1]"), message(signed))
        let bytes = Tensor.uniform([3, 28, 28, 1], low: 0, high: 255, generator: RandomGenerator(seed: 0))
        XCTAssertTrue(message(bytes).contains("255"), message(bytes))
        // Slightly outside: clamped with a warning.
        let slightly = Tensor.uniform([3, 28, 28, 1], generator: RandomGenerator(seed: 0))
        slightly.floatPointer[0] = 1.001
        slightly.floatPointer[1] = -0.0005
        let (clamped, warnings) = try ImageValidation.validate(slightly, source: "x")
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("clamped"))
        XCTAssertEqual(clamped.floatPointer[0], 1)
        XCTAssertEqual(clamped.floatPointer[1], 0)
        // N x 28 x 28 is accepted.
        XCTAssertEqual(try ImageValidation.validate(Tensor.zeros([2, 28, 28]), source: "x").images.shape, [2, 28, 28, 1])
    }

    /// Fewer samples than feature dimensions: a warning, and every metric still computed.
    func testFewSamplesWarnButStillCompute() throws {
        let test = try Shared.test()
        var options = EvaluationOptions(reference: .test)
        options.kidSubsets = 5
        let report = try Evaluator.evaluate(images: test.images.rows(Array(100..<160)), input: "60 images", inputKind: "memory",
                                            network: Shared.network(), reference: Shared.reference(.test), options: options)
        XCTAssertTrue(report.warnings.contains { $0.contains("60 samples for \(report.fidDimensions) features, so its covariance is singular") },
                      "\(report.warnings)")
        XCTAssertTrue(report.fid.isFinite && report.fid > 0)
        XCTAssertNotNil(report.fidInfinity)
        XCTAssertEqual(report.kidSubsetSize, 60)
        XCTAssertNotNil(report.precision)
    }

    /// The issue's sample-count check: two disjoint halves of the training set are the same
    /// distribution, so FID∞ is near 0, while FID from 1,000 samples is clearly above it (its bias).
    func testFIDInfinityRemovesTheSampleCountBias() throws {
        let train = try Shared.reference(.train)
        let order = RandomGenerator(seed: 7).permutation(train.count)
        let half = train.count / 2
        let features = try XCTUnwrap(train.features)
        let a = features.selectingRows(Array(order[0..<half]))
        let b = try FeatureStatistics(features: features.selectingRows(Array(order[half...])))
        let subset = a.selectingRows(Array(RandomGenerator(seed: 8).permutation(half)[0..<1000]))
        let fid1k = try FrechetDistance.compute(FeatureStatistics(features: subset), b).value
        let fidHalf = try FrechetDistance.compute(FeatureStatistics(features: a), b).value
        let infinity = try FIDExtrapolation.compute(generated: a, reference: b, pointCount: 10, minimumSize: 1000, seed: 9)
        print(String(format: "halves of train: FID at 1k %.4f, at %d %.4f, FID∞ %.4f (slope %.1f)", fid1k, half, fidHalf,
                     infinity.fidInfinity, infinity.slope))
        // The readings with the shipped network: docs/architecture.md, Measurements and history.
        XCTAssertLessThan(abs(infinity.fidInfinity), 0.15)
        XCTAssertGreaterThan(fid1k, 1)
        XCTAssertGreaterThan(fid1k, 20 * abs(infinity.fidInfinity))
        XCTAssertGreaterThan(fid1k, 5 * fidHalf)
    }

    func testGaussianBlurMatchesScipyKernelAndKeepsConstants() {
        let k = GaussianBlur.kernel(sigma: 1)
        XCTAssertEqual(k.count, 9)
        XCTAssertEqual(k.reduce(0, +), 1, accuracy: 1e-12)
        // scipy.ndimage.gaussian_filter's kernel for sigma 1 (truncate 4): exp(-x²/2) / Σ, x in -4...4.
        XCTAssertEqual(k[4], 0.39894346935609776, accuracy: 1e-15)
        XCTAssertEqual(k[3], 0.24197144565660073, accuracy: 1e-15)
        let flat = Tensor(repeating: 0.25, shape: [2, 28, 28, 1])
        let blurred = GaussianBlur.apply(flat, sigma: 1)
        for v in blurred.scalars(as: Float.self) { XCTAssertEqual(v, 0.25, accuracy: 1e-6) }
        // A single bright pixel spreads into the kernel's outer product; mass is kept away from edges.
        let dot = Tensor.zeros([1, 28, 28, 1])
        dot.floatPointer[14 * 28 + 14] = 1
        let spread = GaussianBlur.apply(dot, sigma: 1).scalars(as: Float.self)
        XCTAssertEqual(Double(spread.reduce(0, +)), 1, accuracy: 1e-5)
        XCTAssertEqual(Double(spread[14 * 28 + 14]), k[4] * k[4], accuracy: 1e-6)
        XCTAssertEqual(Double(spread[13 * 28 + 16]), k[3] * k[6], accuracy: 1e-6)
    }
}
