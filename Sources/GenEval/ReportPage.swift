import Foundation

/// The self-contained HTML page of `generative report`: the comparison table beside the chapter's
/// values, then one card per model (its samples, its family's figures and its training loss), the
/// diffusion samplers' FID against network evaluations, the likelihoods in bits/dim, and a list of
/// what the page lacks and why. Images are files beside the page, named relative to it; the page has no script and loads
/// nothing from the network.
public struct ReportPage: Sendable {
    /// One model's card: images relative to the page, each optional.
    public struct ModelCard: Sendable, Equatable {
        public var name: String
        /// What the samples show ("64 samples, seed 0, ddpm (DDIM-20, EMA weights)").
        public var caption: String
        public var samples: String?
        /// A grid with one row per class, for class-conditional models.
        public var classGrid: String?
        public var loss: String?
        /// The family's own figures (guidance, translations, inpainting), below the samples.
        public var figures: [Figure]
        /// Why an image is missing, or nil.
        public var note: String?

        public init(name: String, caption: String, samples: String? = nil, classGrid: String? = nil, loss: String? = nil,
                    figures: [Figure] = [], note: String? = nil) {
            self.name = name
            self.caption = caption
            self.samples = samples
            self.classGrid = classGrid
            self.loss = loss
            self.figures = figures
            self.note = note
        }
    }

    /// An image grid a family draws for its card: classifier-free guidance by scale, prompts,
    /// inpainting, super-resolution, translations.
    public struct Figure: Sendable, Equatable {
        /// What it shows, for the page's list of figures ("classifier-free guidance").
        public var topic: String
        /// What its rows and columns are.
        public var caption: String
        /// The image, relative to the page.
        public var image: String

        public init(topic: String, caption: String, image: String) {
            self.topic = topic
            self.caption = caption
            self.image = image
        }
    }

    /// One diffusion sampler's evaluation (`generative eval --json` of a checkpoint).
    public struct SamplerPoint: Sendable, Equatable {
        public var sampler: String
        public var networkEvaluations: Int
        public var fid: Double
        public var imagesPerSecond: Double
        public var count: Int

        public init(sampler: String, networkEvaluations: Int, fid: Double, imagesPerSecond: Double, count: Int) {
            self.sampler = sampler
            self.networkEvaluations = networkEvaluations
            self.fid = fid
            self.imagesPerSecond = imagesPerSecond
            self.count = count
        }
    }

    /// One likelihood measurement (`generative eval --likelihood --json`).
    public struct Likelihood: Sendable, Equatable {
        public var name: String
        public var method: String
        public var bitsPerDim: Double
        public var standardError: Double?
        public var count: Int

        public init(name: String, method: String, bitsPerDim: Double, standardError: Double?, count: Int) {
            self.name = name
            self.method = method
            self.bitsPerDim = bitsPerDim
            self.standardError = standardError
            self.count = count
        }
    }

    public var table: ComparisonTable
    /// How the table was measured ("10,000 samples per row, seed 0, 2 threads").
    public var tableCaption: String
    public var cards: [ModelCard]
    /// The FID-against-NFE plot, relative to the page, and its points.
    public var samplerPlot: String?
    public var samplerPoints: [SamplerPoint]
    public var likelihoods: [Likelihood]
    /// Sections or images the page lacks, each with its reason and what would add it.
    public var missing: [String]

    public init(table: ComparisonTable, tableCaption: String, cards: [ModelCard] = [], samplerPlot: String? = nil,
                samplerPoints: [SamplerPoint] = [], likelihoods: [Likelihood] = [], missing: [String] = []) {
        self.table = table
        self.tableCaption = tableCaption
        self.cards = cards
        self.samplerPlot = samplerPlot
        self.samplerPoints = samplerPoints
        self.likelihoods = likelihoods
        self.missing = missing
    }

    /// The page, as UTF-8 HTML.
    public func html() -> String {
        var body: [String] = []
        body.append("<h1>The chapter's Table 6-1, measured</h1>")
        body.append("<p class=\"lead\">\(escape(tableCaption)) FID, FID∞ and KID against the 60,000 training images; lower is better. "
                    + "The chapter's FID and IS stand beside each row, and each row's rank by FID in both orderings.</p>")
        body.append(tableHTML())
        if !table.footnotes.isEmpty {
            body.append("<ul class=\"footnotes\">" + table.footnotes.map { "<li>\(escape($0))</li>" }.joined() + "</ul>")
        }
        let disagreeing = table.disagreements
        if !disagreeing.isEmpty {
            body.append("<p class=\"note\">Order unlike the chapter's: \(escape(disagreeing.joined(separator: "; "))).</p>")
        }
        if !cards.isEmpty {
            body.append("<h2>Samples and training loss</h2>")
            body.append("<div class=\"cards\">")
            body += cards.map(cardHTML)
            body.append("</div>")
        }
        if !samplerPoints.isEmpty {
            body.append("<h2>Diffusion samplers: FID against network evaluations</h2>")
            if let samplerPlot { body.append(image(samplerPlot, alt: "FID against network evaluations per image", cls: "wide")) }
            let header = ["sampler", "NFE", "FID", "images/s", "samples"]
            let rows = samplerPoints.map { p in
                [p.sampler, String(p.networkEvaluations), String(format: "%.2f", p.fid), String(format: "%.1f", p.imagesPerSecond), String(p.count)]
            }
            body.append(simpleTable(header: header, rows: rows, id: "samplers"))
        }
        if !likelihoods.isEmpty {
            body.append("<h2>Likelihood in bits/dim (test images; lower is better)</h2>")
            let rows = likelihoods.map { l in
                [l.name, l.method, String(format: "%.3f", l.bitsPerDim), l.standardError.map { String(format: "%.3f", $0) } ?? "—", String(l.count)]
            }
            body.append(simpleTable(header: ["model", "method", "bits/dim", "standard error", "images"], rows: rows, id: "likelihoods"))
        }
        if !missing.isEmpty {
            body.append("<h2>Not in this report</h2>")
            body.append("<ul class=\"missing\">" + missing.map { "<li>\(escape($0))</li>" }.joined() + "</ul>")
        }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>generative: the chapter's comparison table</title>
            <style>
            \(Self.style)
            </style>
            </head>
            <body>
            \(body.joined(separator: "\n"))
            </body>
            </html>

            """
    }

    func tableHTML() -> String {
        let cells = table.cells()
        var rows: [String] = []
        for (row, values) in zip(table.rows, cells) {
            let cls = row.name == "test" ? " class=\"reference\"" : (row.fid == nil ? " class=\"empty\"" : "")
            let tds = values.enumerated().map { index, value in index == 0 ? "<th scope=\"row\">\(escape(value))</th>" : "<td>\(escape(value))</td>" }
            rows.append("<tr data-row=\"\(escape(row.name))\"\(cls)>" + tds.joined() + "</tr>")
        }
        let head = table.columns.map { "<th scope=\"col\">\(escape($0))</th>" }.joined()
        return "<table id=\"comparison\"><thead><tr>\(head)</tr></thead><tbody>\n" + rows.joined(separator: "\n") + "\n</tbody></table>"
    }

    func cardHTML(_ card: ModelCard) -> String {
        var parts = ["<section class=\"card\" id=\"model-\(escape(card.name))\">", "<h3>\(escape(card.name))</h3>",
                     "<p class=\"caption\">\(escape(card.caption))</p>"]
        if let samples = card.samples { parts.append(image(samples, alt: "\(card.name) samples", cls: "grid")) }
        if let classGrid = card.classGrid {
            parts.append("<p class=\"caption\">One row per class</p>")
            parts.append(image(classGrid, alt: "\(card.name) samples by class", cls: "grid"))
        }
        for figure in card.figures {
            parts.append("<figure class=\"figure\" data-topic=\"\(escape(figure.topic))\">")
            parts.append("<figcaption class=\"caption\"><b>\(escape(figure.topic))</b>: \(escape(figure.caption))</figcaption>")
            parts.append(image(figure.image, alt: "\(card.name): \(figure.topic)", cls: "grid"))
            parts.append("</figure>")
        }
        if let loss = card.loss { parts.append(image(loss, alt: "\(card.name) training loss", cls: "plot")) }
        if let note = card.note { parts.append("<p class=\"note\">\(escape(note))</p>") }
        parts.append("</section>")
        return parts.joined(separator: "\n")
    }

    func image(_ path: String, alt: String, cls: String) -> String {
        "<img src=\"\(escape(path))\" alt=\"\(escape(alt))\" class=\"\(cls)\">"
    }

    func simpleTable(header: [String], rows: [[String]], id: String) -> String {
        let head = header.map { "<th scope=\"col\">\(escape($0))</th>" }.joined()
        let body = rows.map { "<tr>" + $0.map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n")
        return "<table id=\"\(id)\"><thead><tr>\(head)</tr></thead><tbody>\n\(body)\n</tbody></table>"
    }

    /// Text made safe for HTML content and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    func escape(_ text: String) -> String { Self.escape(text) }

    static let style = """
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 24px auto; max-width: 1220px; padding: 0 16px; }
        h1 { font-size: 26px; margin: 0 0 6px; }
        h2 { font-size: 20px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        h3 { font-size: 16px; margin: 0 0 4px; }
        .lead, .caption { color: #555; margin: 4px 0 10px; }
        .caption { font-size: 13px; }
        .note { color: #8a4b00; font-size: 13px; }
        table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
        th, td { padding: 4px 8px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
        th[scope=row], thead th:first-child { text-align: left; }
        thead th { background: #f4f4f6; }
        tr.reference { background: #f3f8ff; }
        tr.empty td { color: #999; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 16px; }
        .card { border: 1px solid #e0e0e0; border-radius: 8px; padding: 12px; }
        .card img { width: 100%; display: block; margin: 6px 0; }
        .card img.grid { image-rendering: pixelated; }
        .card figure { margin: 10px 0 0; }
        img.wide { max-width: 800px; width: 100%; display: block; margin: 6px 0 12px; }
        ul.missing, ul.footnotes { color: #555; font-size: 13px; }
        """
}
