import Foundation
@testable import generative
import XCTest
import GenFormats
import GenEval

/// `generative report`: the page opened in headless Chromium, every image decoded and every row of
/// the table there, and a screenshot of it. With REPORT_DIR set, the page in that folder is checked
/// instead of a fresh one, and REPORT_SCREENSHOT names where its screenshot goes (the README's
/// docs/report.png is made so).
final class ReportCommandTests: CommandTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// What a page holds once Chromium has loaded it.
    struct LoadedPage: Decodable, Equatable {
        var images: Int
        /// The `src` of every image not decoded (not complete, or naturalWidth 0).
        var broken: [String]
        /// The `data-row` of every row of the comparison table.
        var rows: [String]
        /// The page's full height in CSS pixels at the screenshot's width.
        var height: Int
    }

    /// Chromium's flags for a container: no sandbox (root), no GPU, no first-run chatter.
    static let headless = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]

    /// Loads `page` in an iframe of a harness page that reads the report's DOM after load and writes
    /// what it found into its own DOM, which `--dump-dom` prints.
    func load(_ page: URL, width: Int = 1280) throws -> LoadedPage {
        guard let browser = executableOnPath("chromium", "chromium-headless-shell") else {
            XCTFail("Chromium is not installed: scripts/test installs Debian's chromium (scripts/ensure-system-packages chromium)")
            throw CocoaError(.fileNoSuchFile)
        }
        let harness = tempDir().appendingPathComponent("harness.html")
        try Data("""
            <!DOCTYPE html><html><body>
            <iframe id="page" src="\(page.absoluteString)" width="\(width)" height="800"></iframe>
            <pre id="result">not loaded</pre>
            <script>
            document.getElementById('page').addEventListener('load', function () {
              var d = this.contentDocument;
              var images = Array.from(d.images);
              var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                                 .map(function (i) { return i.getAttribute('src'); });
              var rows = Array.from(d.querySelectorAll('#comparison tbody tr')).map(function (r) { return r.dataset.row; });
              document.getElementById('result').textContent =
                JSON.stringify({images: images.length, broken: broken, rows: rows, height: d.documentElement.scrollHeight});
            });
            </script></body></html>
            """.utf8).write(to: harness)
        let result = try runProcess(browser, Self.headless + ["--allow-file-access-from-files", "--virtual-time-budget=20000",
                                                              "--dump-dom", harness.absoluteString], timeout: 180)
        XCTAssertEqual(result.status, 0, result.err)
        guard let start = result.out.range(of: "<pre id=\"result\">"), let end = result.out.range(of: "</pre>", range: start.upperBound..<result.out.endIndex) else {
            XCTFail("no result in Chromium's DOM dump: \(result.out.prefix(500))")
            throw CocoaError(.fileReadCorruptFile)
        }
        let text = result.out[start.upperBound..<end.lowerBound]
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
        return try JSONDecoder().decode(LoadedPage.self, from: Data(text.utf8))
    }

    /// A screenshot of `page`, `width` px wide and as high as the page.
    func screenshot(_ page: URL, to file: URL, width: Int, height: Int) throws {
        let browser = try XCTUnwrap(executableOnPath("chromium", "chromium-headless-shell"))
        try? FileManager.default.removeItem(at: file)
        let result = try runProcess(browser, Self.headless + ["--window-size=\(width),\(height)", "--screenshot=\(file.path)",
                                                              page.absoluteString], timeout: 180)
        XCTAssertEqual(result.status, 0, result.err)
    }

    func testReportOpensInChromiumWithEveryImageAndEveryRow() throws {
        let environment = ProcessInfo.processInfo.environment
        let given = environment["REPORT_DIR"].map { URL(fileURLWithPath: $0) }
        let folder = given ?? tempDir().appendingPathComponent("report")
        if given == nil {
            // The shipped VAE, its log and likelihood, and the shipped DDPM sampler reports; the
            // other rows have no checkpoint here.
            let shipped = Self.repository.appendingPathComponent("checkpoints")
            let checkpoints = tempDir()
            for name in ["vae.safetensors", "vae.metrics.jsonl", "vae.likelihood.json", "ddpm.samplers.jsonl"] {
                try FileManager.default.copyItem(at: shipped.appendingPathComponent(name), to: checkpoints.appendingPathComponent(name))
            }
            try run(["report", "--out", folder.path, "--checkpoints", checkpoints.path, "--count", "200", "--grid", "16"])
            // The measured table is kept beside the page, and reads back as the page's.
            let kept = try ComparisonTable.decode(json: Data(contentsOf: folder.appendingPathComponent("table.json")))
            XCTAssertEqual(kept.rows.map(\.name), ComparisonTable.rowNames)
            XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("table.md"), encoding: .utf8), kept.markdown() + "\n")
        }
        let page = folder.appendingPathComponent("index.html")
        let loaded = try load(page)
        XCTAssertEqual(loaded.rows, ComparisonTable.rowNames, "every row of the table")
        XCTAssertEqual(loaded.broken, [], "every image decoded")
        if given == nil {
            XCTAssertEqual(loaded.images, 4, "the test images, the VAE's samples and loss, the samplers' plot")
            // The check can fail: an image gone from the folder is reported.
            try FileManager.default.removeItem(at: folder.appendingPathComponent("vae-loss.png"))
            XCTAssertEqual(try load(page).broken, ["vae-loss.png"])
        }
        let shot = environment["REPORT_SCREENSHOT"].map { URL(fileURLWithPath: $0) } ?? tempDir().appendingPathComponent("report.png")
        try screenshot(page, to: shot, width: 1280, height: loaded.height)
        let image = try PNGReader.readGray(shot)
        XCTAssertEqual(image.shape[1], 1280, "the screenshot is 1280 px wide")
        XCTAssertEqual(image.shape[0], loaded.height, "and as high as the page")
    }

    /// Each family's figures on the card of its row, drawn from tiny latent models of every
    /// condition and the shipped CycleGAN, each grid of the size its rows and columns make; the
    /// chapter's figures no checkpoint drew are listed as missing, and those drawn are not.
    func testReportDrawsEachFamilysFigures() throws {
        let dir = tempDir()
        let data = try tinyLabelledFolder(dir, perClass: 3)
        let ae = dir.appendingPathComponent("ae")
        try run(["train", "autoencoder-kl", "--out", ae.path, "--width", "8", "--batch-size", "8", "--max-steps", "2",
                 "--eval-count", "0", "--data", data])
        let table = dir.appendingPathComponent("table.json")
        try Data(ComparisonTable(rows: ComparisonTable.rowNames.map { ComparisonTable.Row(name: $0, note: "not measured") }).json().utf8)
            .write(to: table)
        // The side of a grid of n 28-pixel images with 2-pixel padding.
        func side(_ n: Int) -> Int { n * 28 + (n + 1) * 2 }
        let cases: [(condition: String, topic: String, height: Int, width: Int)] = [
            ("class", "classifier-free guidance", side(4), side(4)),  // guidance 0, 1, 3, 5 by the 4 classes
            ("prompt", "prompt guidance", side(4), side(10)),         // guidance by one prompt per class
            ("inpaint", "inpainting", side(2), side(8)),              // masked, inpainted
            ("upscale", "super-resolution", side(3), side(8)),        // bicubic, upscaled, originals
        ]
        for (condition, topic, height, width) in cases {
            let checkpoints = dir.appendingPathComponent("checkpoints-\(condition)")
            try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
            let ldm = dir.appendingPathComponent("ldm-\(condition)")
            try run(["train", "ldm", "--autoencoder", ae.appendingPathComponent("checkpoint.safetensors").path, "--out", ldm.path,
                     "--condition", condition, "--width", "8", "--batch-size", "8", "--max-steps", "2", "--data", data])
            try FileManager.default.copyItem(at: ldm.appendingPathComponent("checkpoint.safetensors"),
                                             to: checkpoints.appendingPathComponent("ldm.safetensors"))
            if condition == "class" {
                try FileManager.default.copyItem(at: Self.repository.appendingPathComponent("checkpoints/cyclegan.safetensors"),
                                                 to: checkpoints.appendingPathComponent("cyclegan.safetensors"))
            }
            let out = dir.appendingPathComponent("report-\(condition)")
            try run(["report", "--out", out.path, "--checkpoints", checkpoints.path, "--table", table.path, "--grid", "4"])
            let html = try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)
            XCTAssertTrue(html.contains("<figure class=\"figure\" data-topic=\"\(topic)\">"), condition)
            XCTAssertTrue(html.contains("src=\"ldm-figure1.png\""), condition)
            XCTAssertEqual(try PNGReader.readGray(out.appendingPathComponent("ldm-figure1.png")).shape, [height, width, 1], condition)
            XCTAssertFalse(html.contains("<li>\(topic): no checkpoint"), "\(topic) is drawn, not missing")
            let others = ReportFigure.topics.map(\.topic).filter { $0 != topic && !(condition == "class" && $0 == "translation") }
            for other in others { XCTAssertTrue(html.contains("<li>\(other): no checkpoint here draws it"), "\(condition): \(other)") }
            if condition == "class" {
                // The shipped CycleGAN: 8 test sneakers, their boots, 8 test boots, their sneakers.
                XCTAssertTrue(html.contains("<figure class=\"figure\" data-topic=\"translation\">"))
                XCTAssertEqual(try PNGReader.readGray(out.appendingPathComponent("cyclegan-figure1.png")).shape, [side(4), side(8), 1])
                XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("ldm-classes.png").path),
                               "a model that takes guidance shows its guidance grid, not a second grid by class")
            }
        }
    }

    func testReportRefusesBadInputWithOneLine() throws {
        let dir = tempDir()
        let file = dir.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        XCTAssertTrue(errorMessage(["report", "--out", file.path])?.contains("--out \(file.path) is a file") ?? false)
        XCTAssertTrue(errorMessage(["report", "--out", dir.path, "--table", dir.appendingPathComponent("none.json").path])?.contains("no such file") ?? false)
        XCTAssertTrue(errorMessage(["report", "--out", dir.path, "--table", file.path])?.contains("not the output of `generative table --json`") ?? false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.html").path), "nothing written on a bad table")
    }
}
