import Foundation
import XCTest
import GenEval

/// The HTML of `generative report`'s page: the table's rows and cells, escaping, the cards and
/// sections present only when they have content.
final class ReportPageTests: XCTestCase {
    func table() -> ComparisonTable {
        var test = ComparisonTable.Row(name: "test")
        test.fid = 0.26
        var vae = ComparisonTable.Row(name: "vae")
        vae.fid = 150.2
        var dcgan = ComparisonTable.Row(name: "dcgan")
        dcgan.fid = 160.0
        return ComparisonTable(rows: [test, vae, dcgan, ComparisonTable.Row(name: "sngan", note: "no checkpoint")])
    }

    func testTheTableHasEveryRowWithTheMarkdownCells() {
        let table = table()
        let html = ReportPage(table: table, tableCaption: "Two <samples> & more.").html()
        for (row, cells) in zip(table.rows, table.cells()) {
            XCTAssertTrue(html.contains("<tr data-row=\"\(row.name)\""), row.name)
            XCTAssertTrue(html.contains(cells.dropFirst().map { "<td>\(ReportPage.escape($0))</td>" }.joined()), row.name)
        }
        XCTAssertTrue(html.contains("Two &lt;samples&gt; &amp; more."), "text is escaped")
        XCTAssertTrue(html.contains("Order unlike the chapter's: vae (150.200) &lt; dcgan (160.000)"), "the disagreement is named")
        XCTAssertFalse(html.contains("<script"), "no script")
        XCTAssertFalse(html.contains("http"), "nothing from the network")
        XCTAssertFalse(html.contains("Samples and training loss"), "no cards, no section")
        XCTAssertFalse(html.contains("id=\"samplers\""))
    }

    func testCardsSamplersAndLikelihoodsAppearWithTheirImages() {
        var page = ReportPage(table: table(), tableCaption: "")
        page.cards = [ReportPage.ModelCard(name: "vae", caption: "64 samples", samples: "vae-samples.png", loss: "vae-loss.png"),
                      ReportPage.ModelCard(name: "cgan", caption: "c", samples: "cgan-samples.png", classGrid: "cgan-classes.png",
                                           figures: [ReportPage.Figure(topic: "translation", caption: "rows: A & B", image: "cgan-figure1.png")])]
        page.samplerPlot = "samplers.png"
        page.samplerPoints = [ReportPage.SamplerPoint(sampler: "ddpm (DDIM-20)", networkEvaluations: 20, fid: 44.671, imagesPerSecond: 18.5, count: 1000)]
        page.likelihoods = [ReportPage.Likelihood(name: "vae", method: "vlb", bitsPerDim: 6.3057, standardError: 0.018, count: 1000)]
        page.missing = ["sngan: \"no checkpoint\""]
        let html = page.html()
        XCTAssertTrue(html.contains("<figure class=\"figure\" data-topic=\"translation\">\n<figcaption class=\"caption\"><b>translation</b>: rows: A &amp; B</figcaption>"))
        for image in ["vae-samples.png", "vae-loss.png", "cgan-samples.png", "cgan-classes.png", "cgan-figure1.png", "samplers.png"] {
            XCTAssertTrue(html.contains("src=\"\(image)\""), image)
        }
        XCTAssertTrue(html.contains("<td>ddpm (DDIM-20)</td><td>20</td><td>44.67</td><td>18.5</td><td>1000</td>"))
        XCTAssertTrue(html.contains("<td>vae</td><td>vlb</td><td>6.306</td><td>0.018</td><td>1000</td>"))
        XCTAssertTrue(html.contains("<li>sngan: &quot;no checkpoint&quot;</li>"))
        XCTAssertEqual(html.components(separatedBy: "<section class=\"card\"").count - 1, 2)
    }

    func testATableReadsBackFromItsJSON() throws {
        let table = table()
        XCTAssertEqual(try ComparisonTable.decode(json: Data(table.json().utf8)), table)
    }
}
