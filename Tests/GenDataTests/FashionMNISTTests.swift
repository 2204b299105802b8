import Foundation
import GenData
import XCTest
@testable import GenTensor
import GenFormats

/// The installed Fashion-MNIST reads as the published dataset. Each split is read once for the class.
final class FashionMNISTTests: XCTestCase {
    nonisolated(unsafe) private static var cache: [DatasetSplit: ImageDataset] = [:]

    private func dataset(_ split: DatasetSplit) throws -> ImageDataset {
        if let data = Self.cache[split] { return data }
        let data = try ImageDataset.fashionMNIST(split: split)
        Self.cache[split] = data
        return data
    }

    /// Checks shape, range, labels and byte sums against values computed with Python's gzip module.
    private func check(_ split: DatasetSplit, count: Int, firstLabels: [Int64], firstImageSum: Int, totalSum: Int) throws {
        let data = try dataset(split)
        XCTAssertEqual(data.count, count)
        XCTAssertEqual(data.imageSize, 28)
        XCTAssertEqual(data.images.shape, [count, 28, 28, 1])
        XCTAssertEqual(data.images.dtype, .float32)
        XCTAssertEqual(data.classNames?.count, 10)
        XCTAssertTrue(data.source.contains("Fashion-MNIST \(split.rawValue)"), data.source)
        let labels = try XCTUnwrap(data.labels)
        XCTAssertEqual(labels.shape, [count])
        XCTAssertEqual(labels.dtype, .int64)
        let values = labels.scalars(as: Int64.self)
        XCTAssertEqual(Array(values.prefix(10)), firstLabels)
        var perClass = [Int](repeating: 0, count: 10)
        for v in values {
            XCTAssertTrue((0...9).contains(v), "label \(v)")
            if (0...9).contains(v) { perClass[Int(v)] += 1 }
        }
        XCTAssertEqual(perClass, [Int](repeating: count / 10, count: 10))

        // Pixels are bytes / 255: each is within [0, 1] and scales back to an integer.
        let pixels = UnsafeBufferPointer(start: data.images.floatPointer, count: data.images.elementCount)
        var total = 0, firstImage = 0, offGrid = 0
        var low: Float = 1, high: Float = 0
        for (i, v) in pixels.enumerated() {
            low = min(low, v)
            high = max(high, v)
            let byte = (v * 255).rounded()
            if abs(v * 255 - byte) > 1e-3 { offGrid += 1 }
            total += Int(byte)
            if i < 784 { firstImage += Int(byte) }
        }
        XCTAssertEqual(low, 0)
        XCTAssertEqual(high, 1)
        XCTAssertEqual(offGrid, 0)
        XCTAssertEqual(firstImage, firstImageSum)
        XCTAssertEqual(total, totalSum)
    }

    func testTrainingSplit() throws {
        try check(.train, count: 60_000, firstLabels: [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], firstImageSum: 76_247,
                  totalSum: 3_431_114_169)
    }

    func testTestSplit() throws {
        try check(.test, count: 10_000, firstLabels: [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], firstImageSum: 33_456,
                  totalSum: 573_469_082)
    }

    /// A row of the second training image, byte for byte (from Python: image 1, row 14).
    func testKnownRow() throws {
        let data = try dataset(.train)
        let expected: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0b, 0xc5, 0xc7, 0xcd, 0xca, 0xcd, 0xce,
                                 0xcc, 0xcd, 0xcf, 0xcc, 0xcd, 0xcd, 0xda, 0x4d, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00]
        let row = (0..<28).map { UInt8((data.images.floatPointer[784 + 14 * 28 + $0] * 255).rounded()) }
        XCTAssertEqual(row, expected)
    }

    /// The generic loader reads the same folder the same way, and resizes on request.
    func testLoadResized() throws {
        let small = try ImageDataset.load(directory: ImageDataset.defaultFashionMNISTDirectory, split: .test, imageSize: 14)
        let full = try dataset(.test)
        XCTAssertEqual(small.images.shape, [10_000, 14, 14, 1])
        XCTAssertEqual(small.labels?.scalars(as: Int64.self), full.labels?.scalars(as: Int64.self))
        // Halving is a 2 x 2 mean.
        let f = full.images.floatPointer, s = small.images.floatPointer
        for (image, y, x) in [(0, 7, 7), (123, 3, 10), (9_999, 13, 0)] {
            let base = image * 784
            let mean = (f[base + (2 * y) * 28 + 2 * x] + f[base + (2 * y) * 28 + 2 * x + 1]
                        + f[base + (2 * y + 1) * 28 + 2 * x] + f[base + (2 * y + 1) * 28 + 2 * x + 1]) / 4
            XCTAssertEqual(s[image * 196 + y * 14 + x], mean, accuracy: 1e-6)
        }
    }
}
