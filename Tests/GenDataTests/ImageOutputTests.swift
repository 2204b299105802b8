import Foundation
import GenData
import GenTestSupport
import XCTest
@testable import GenTensor
import GenFormats

/// Image grids, numbered PNG folders and line plots.
final class ImageOutputTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func testImageGrid() {
        // Five 2 x 3 images, each filled with (index + 1) / 10, three per row, padding 1.
        let images = Tensor((0..<30).map { Float($0 / 6 + 1) / 10 }, shape: [5, 2, 3, 1])
        let grid = imageGrid(images, columns: 3, padding: 1)
        XCTAssertEqual(grid.shape, [1 + 2 * 3, 1 + 3 * 4, 1])
        let g = grid.scalars(as: Float.self)
        func at(_ y: Int, _ x: Int) -> Float { g[y * 13 + x] }
        XCTAssertEqual(at(0, 0), 1)  // padding is white
        XCTAssertEqual(at(1, 1), 0.1)  // image 0 at (1, 1)
        XCTAssertEqual(at(2, 3), 0.1)
        XCTAssertEqual(at(1, 4), 1)  // padding between tiles
        XCTAssertEqual(at(1, 5), 0.2)  // image 1
        XCTAssertEqual(at(4, 9), 1)  // the empty sixth cell
        XCTAssertEqual(at(4, 5), 0.5)  // image 4: second row, second column
        // Fewer images than columns: the grid narrows; black padding on request.
        let narrow = imageGrid(images, columns: 10, padding: 2, padValue: 0)
        XCTAssertEqual(narrow.shape, [2 + 4, 2 + 5 * 5, 1])
        XCTAssertEqual(narrow.floatPointer[0], 0)
    }

    func testImageFolderWriterRoundTrip() throws {
        var random = TestRandom(state: 2)
        let values = (0..<(3 * 28 * 28)).map { _ in Float(random.int(256)) / 255 }
        let batch = Tensor(values, shape: [3, 28, 28, 1])
        let out = folder.appendingPathComponent("samples", isDirectory: true)
        var writer = try ImageFolderWriter(directory: out)
        let files = try writer.write(batch)
        XCTAssertEqual(files.map(\.lastPathComponent), ["000000.png", "000001.png", "000002.png"])
        try writer.write(batch)
        XCTAssertEqual(writer.nextIndex, 6)
        let back = try ImageDataset.load(directory: out, split: .test)
        XCTAssertEqual(back.images.shape, [6, 28, 28, 1])
        XCTAssertEqual(Array(back.images.scalars(as: Float.self).prefix(values.count)), values)
        // The one-call form, and no temporary files left behind.
        try ImageFolderWriter.write(batch, to: folder.appendingPathComponent("once"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("once").path).sorted(),
                       ["000000.png", "000001.png", "000002.png"])
        // A file where the folder should be.
        let blocked = folder.appendingPathComponent("blocked")
        try writeFile(Data(), blocked)
        assertDataError(.io, naming: blocked.path) { try ImageFolderWriter(directory: blocked) }
    }

    func testLinePlot() throws {
        let losses = (0..<200).map { 0.9 * exp(-Double($0) / 40) + 0.05 }
        var validation = (0..<20).map { 1.0 / Double($0 + 1) }
        validation[5] = .nan
        let plot = renderLinePlot(series: [(name: "train", values: losses), (name: "valid", values: validation)])
        XCTAssertEqual(plot.shape, [400, 640, 3])
        let p = plot.scalars(as: Float.self)
        func pixel(_ y: Int, _ x: Int) -> [Float] { Array(p[((y * 640 + x) * 3)..<((y * 640 + x) * 3 + 3)]) }
        for (y, x) in [(0, 0), (0, 639), (399, 0), (399, 639)] { XCTAssertEqual(pixel(y, x), [1, 1, 1]) }
        XCTAssertTrue(p.allSatisfy { $0 >= 0 && $0 <= 1 })
        // Both series' colours appear.
        for colour in linePlotPalette.prefix(2) {
            let found = stride(from: 0, to: p.count, by: 3).contains { p[$0] == colour.red && p[$0 + 1] == colour.green && p[$0 + 2] == colour.blue }
            XCTAssertTrue(found, "colour \(colour)")
        }
        // Labels and a legend: the legend's swatches sit in the top right corner, where no curve
        // goes, and the labels change the picture.
        let labelled = renderLinePlot(series: [(name: "train", values: losses), (name: "valid", values: validation)],
                                      xLabel: "epoch", yLabel: "loss (mean over the epoch)", firstX: 1)
        let q = labelled.scalars(as: Float.self)
        for colour in linePlotPalette.prefix(2) {
            let swatch = (10..<60).contains { y in (480..<635).contains { x in
                let i = (y * 640 + x) * 3
                return q[i] == colour.red && q[i + 1] == colour.green && q[i + 2] == colour.blue
            } }
            XCTAssertTrue(swatch, "legend swatch \(colour)")
        }
        XCTAssertNotEqual(q, p)
        for text in ["epoch", "loss (mean over the epoch)", "bits_per_dim", "loss_d", "Loss_G", "kl", "0.5", "1e-3"] {
            XCTAssertTrue(text.allSatisfy(linePlotFontDraws), text)
        }
        XCTAssertFalse(linePlotFontDraws("'"))
        // Saved as an RGB PNG.
        let url = folder.appendingPathComponent("loss.png")
        try PNGWriter.write(plot, to: url)
        let back = try PNGReader.readGray(url)
        XCTAssertEqual(back.shape, [400, 640, 1])
        XCTAssertEqual(back.floatPointer[0], 1)

        // Degenerate inputs draw without crashing.
        for series in [[], [(name: "flat", values: [2.0, 2, 2])], [(name: "one", values: [3.0])], [(name: "nan", values: [Double.nan, .infinity])],
                       [(name: "huge", values: [1e300, -1e300, 1])], [(name: "tiny", values: [1e-12, 2e-12])]] {
            let small = renderLinePlot(series: series, width: 120, height: 90)
            XCTAssertEqual(small.shape, [90, 120, 3])
            XCTAssertEqual(small.floatPointer[0], 1)
        }
        XCTAssertEqual(renderLinePlot(series: [(name: "x", values: [1, 2])], width: 8, height: 5).shape, [5, 8, 3])
    }

    /// Log scales: values that span decades are drawn on one (and `spansDecades` says when); values
    /// not positive break the line instead of the axes; markers draw points without lines.
    func testLogScalesAndMarkers() throws {
        XCTAssertTrue(spansDecades([1.0, 0.5, 0.01]))
        XCTAssertFalse(spansDecades([540.0, 250]))
        XCTAssertFalse(spansDecades([1.0, -0.5, 0.001]), "a negative loss cannot go on a log axis")
        let values = (0..<100).map { 2.0 * exp(-Double($0) / 12) }  // 2 down to about 5e-4
        let points = values.enumerated().map { (x: Double($0.offset * 50), y: $0.element) }
        let linear = renderPlot(series: [PlotSeries(name: "loss", points: points)], xLabel: "step", yLabel: "loss")
        let log = renderPlot(series: [PlotSeries(name: "loss", points: points + [(x: 5000, y: 0), (x: 5050, y: -1)])],
                             xLabel: "step", yLabel: "loss, log scale", yScale: .log)
        XCTAssertNotEqual(linear.scalars(as: Float.self), log.scalars(as: Float.self))
        // On the log scale the curve is a straight line: its pixels in the middle third of the
        // plot rise evenly (in x order the topmost curve pixel per column falls by a constant slope).
        let p = log.scalars(as: Float.self), colour = linePlotPalette[0]
        func curveRow(_ x: Int) -> Int? {
            (0..<400).first { y in let i = (y * 640 + x) * 3; return p[i] == colour.red && p[i + 1] == colour.green && p[i + 2] == colour.blue }
        }
        let rows = [250, 350, 450].compactMap(curveRow)
        XCTAssertEqual(rows.count, 3)
        if rows.count == 3 { XCTAssertEqual(Double(rows[1] - rows[0]), Double(rows[2] - rows[1]), accuracy: 2) }
        // Markers: one series per point, on a log x axis.
        let speed = renderPlot(series: [PlotSeries(name: "ddim-10", points: [(x: 40, y: 30)], lines: false, markers: true),
                                        PlotSeries(name: "ddim-50", points: [(x: 8, y: 12)], lines: false, markers: true)],
                               xLabel: "images/s", yLabel: "fid", xScale: .log)
        let q = speed.scalars(as: Float.self)
        for c in linePlotPalette.prefix(2) {
            let count = stride(from: 0, to: q.count, by: 3).filter { q[$0] == c.red && q[$0 + 1] == c.green && q[$0 + 2] == c.blue }.count
            XCTAssertGreaterThanOrEqual(count, 25, "a 5 x 5 marker and a legend swatch")
        }
        try PNGWriter.write(log, to: folder.appendingPathComponent("log.png"))
    }

    /// The legend never hides a point: it leaves the top-right corner for the top-left one when a
    /// point sits under it, and goes outside the axes on the right when points sit under both.
    func testLegendMovesOffThePoints() {
        /// The points as one series, beside seven one-point series at the bottom middle (a tall legend).
        func render(_ points: [(x: Double, y: Double)]) -> [Float] {
            let others = (1...7).map { PlotSeries(name: "sampler \($0)", points: [(x: 5, y: 0)], lines: false, markers: true) }
            return renderPlot(series: [PlotSeries(name: "a sampler with a long name", points: points, lines: false, markers: true)] + others,
                              width: 640, height: 400).scalars(as: Float.self)
        }
        let colour = linePlotPalette[0]
        func columns(_ p: [Float], rows: Range<Int>) -> [Int] {
            (0..<640).filter { x in rows.contains { y in
                let i = (y * 640 + x) * 3
                return p[i] == colour.red && p[i + 1] == colour.green && p[i + 2] == colour.blue
            } }
        }
        // A point in the top-right corner: its marker is drawn there, and the swatch sits on the left.
        let topRight = render([(x: 0, y: 0), (x: 10, y: 10)])
        let upper = columns(topRight, rows: 0..<120)
        XCTAssertGreaterThanOrEqual(upper.filter { $0 > 600 }.count, 5, "the top-right marker is visible")
        XCTAssertFalse(upper.filter { $0 < 320 }.isEmpty, "the legend's swatch moved to the left")
        // Points under both top corners: the legend goes outside, right of the axes, and every
        // marker is drawn whole.
        let both = render([(x: 0, y: 10), (x: 10, y: 10), (x: 5, y: 0)])
        let top = columns(both, rows: 0..<120)
        XCTAssertGreaterThanOrEqual(top.filter { $0 < 100 }.count, 5, "the top-left marker is visible")
        XCTAssertFalse(top.filter { $0 > 450 }.isEmpty, "the swatch, outside the axes on the right")
        XCTAssertTrue(top.filter { $0 > 440 }.allSatisfy { $0 > 450 && $0 < 480 }, "nothing else right of the axes")
        XCTAssertGreaterThanOrEqual(stride(from: 0, to: both.count, by: 3).filter { both[$0] == colour.red && both[$0 + 1] == colour.green
            && both[$0 + 2] == colour.blue }.count, 2 * 81 + 13, "two whole 9 x 9 markers at the top (points keep a margin from the axes) and a swatch")
    }
}
