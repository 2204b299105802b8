import ArgumentParser
import Foundation
import GenTensor
import GenFormats
import GenData
import GenEval
import GenTrain
import GenNN

/// `generative report`: one self-contained HTML page of the shipped models side by side.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HTML page of the models side by side: the comparison table, sample grids, guidance, inpainting and translation figures, loss curves, samplers' FID against NFE, bits/dim.",
        discussion: """
            Writes OUT/index.html and its PNGs beside it: no script, nothing loaded from the network. The table is \
            read from --table (the output of `generative table --json`), else measured as `generative table` does \
            with --count and --seed. Each row with a checkpoint in --checkpoints gets a grid of samples, its \
            family's figures (classifier-free guidance by scale and class, prompts, inpainting and super-resolution \
            of test images, CycleGAN translations of test images) and, where CHECKPOINTS/ROW.metrics.jsonl holds \
            its training log, its loss curve. Every CHECKPOINTS/*.samplers.jsonl (reports of `generative eval CHECKPOINT --json` \
            with different samplers, one per line) adds a plot of FID against network evaluations per image; every \
            CHECKPOINTS/ROW.likelihood.json (`generative eval CHECKPOINT --likelihood --json`) a line of the \
            bits/dim table. The table is also written beside the page as table.md (markdown) and table.json (as \
            `table --json` prints it). Prints the page's path.
            """)

    @Option(help: "The folder to write index.html and its images into (created if need be).")
    var out: String

    @Option(help: "The table as `generative table --json` printed it (default: measure it now).")
    var table: String?

    @Option(help: "Images in each model's sample grid.")
    var grid: Int = 64

    @OptionGroup var measurement: TableFlags

    func validate() throws {
        guard grid >= 1 else { throw ValidationError("--grid must be at least 1") }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isFolder), !isFolder.boolValue {
            throw ValidationError("--out \(out) is a file; give a folder")
        }
    }

    func run() throws {
        let folder = URL(fileURLWithPath: out)
        let (comparison, caption) = try loadTable()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var page = ReportPage(table: comparison, tableCaption: caption)
        for (i, row) in comparison.rows.enumerated() {
            logLine("report \(i + 1)/\(comparison.rows.count): \(row.name)")
            if let card = try card(row.name, folder: folder) { page.cards.append(card) }
        }
        (page.samplerPlot, page.samplerPoints) = try samplers(folder: folder)
        page.likelihoods = try likelihoods()
        page.missing = missingSections(comparison, drawn: Set(page.cards.flatMap { $0.figures.map(\.topic) }))
        // The table beside the page, as markdown and as `table --json` prints it (so a table measured
        // here is kept, and can be given back with --table).
        try Data((comparison.markdown() + "\n").utf8).write(to: folder.appendingPathComponent("table.md"), options: .atomic)
        try Data((try comparison.json() + "\n").utf8).write(to: folder.appendingPathComponent("table.json"), options: .atomic)
        let index = folder.appendingPathComponent("index.html")
        try Data(page.html().utf8).write(to: index, options: .atomic)
        print(index.path)
    }

    /// `--table`, else the table measured now; with a line saying how.
    func loadTable() throws -> (ComparisonTable, String) {
        if let table {
            guard FileManager.default.fileExists(atPath: table) else { throw ValidationError("--table \(table): no such file") }
            let data = try Data(contentsOf: URL(fileURLWithPath: table))
            do {
                let decoded = try ComparisonTable.decode(json: data)
                return (decoded, "Measured by `generative table` (\(URL(fileURLWithPath: table).lastPathComponent)).")
            } catch {
                throw ValidationError("--table \(table): not the output of `generative table --json`")
            }
        }
        let measured = try Table.parse(measurement.commandLine).measure()
        let (count, seed, threads) = (measurement.count, measurement.seed, measurement.compute.threads)
        return (measured, "\(count) samples per row (the test row: its first \(count) images), seed \(seed), \(threads) threads.")
    }

    /// A row's card: its samples (the test row: the first test images); for a class-conditional
    /// model, its classifier-free guidance grid where it takes guidance, else a grid by class; the
    /// figures its family draws (`FamilyCommands.reportFigures`: translations, prompts, inpainting,
    /// super-resolution); and its training loss where its log is shipped. Nil for a row with
    /// neither checkpoint nor log (the table and the list of what is missing name it).
    func card(_ name: String, folder: URL) throws -> ReportPage.ModelCard? {
        if name == "test" {
            let images = try ImageDataset.fashionMNIST(split: .test).images
            let first = images.sliced(axis: 0, 0..<min(grid, images.shape[0]))
            _ = try writeImages(first, to: folder.appendingPathComponent("test-samples.png").path)
            return ReportPage.ModelCard(name: name, caption: "The first \(first.shape[0]) test images", samples: "test-samples.png")
        }
        let base = URL(fileURLWithPath: measurement.checkpoints)
        let path = (measurement.checkpoints as NSString).appendingPathComponent("\(name).safetensors")
        var card = ReportPage.ModelCard(name: name, caption: "")
        let log = base.appendingPathComponent("\(name).metrics.jsonl")
        if FileManager.default.fileExists(atPath: log.path) {
            try PNGWriter.write(try TrainingLoop.lossPlot(metrics: log), to: folder.appendingPathComponent("\(name)-loss.png"))
            card.loss = "\(name)-loss.png"
        }
        guard FileManager.default.fileExists(atPath: path) else {
            guard card.loss != nil else { return nil }
            card.caption = "No checkpoint: checkpoints/README.md gives the command that trains it."
            return card
        }
        let checkpoint: Checkpoint
        do { checkpoint = try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path)) } catch {
            card.caption = "Not read: " + Generative.message(for: error).replacingOccurrences(of: URL(fileURLWithPath: path).path, with: path)
            return card
        }
        let context = ReportFigureContext(seed: measurement.seed, batchSize: measurement.batchSize)
        var figures: [ReportFigure] = []
        var notes: [String] = []
        for maker in CommandRegistry.reportFigures where maker.kind == checkpoint.metadata["model"] {
            do { figures += try maker.make(checkpoint, context) } catch { notes.append("A figure failed: \(Generative.message(for: error))") }
        }
        do {
            let model = try ModelRegistry.load(checkpoint)
            let options = SamplingOptions(ema: true, batchSize: measurement.batchSize)
            let images = try model.sample(count: grid, seed: measurement.seed, labels: nil, options: options, progress: nil)
            _ = try writeImages(images, to: folder.appendingPathComponent("\(name)-samples.png").path)
            card.samples = "\(name)-samples.png"
            card.caption = "\(grid) samples, seed \(measurement.seed): \(model.samplingSummary(options))"
            // The family's own guidance figure (an ldm's prompts) stands for the generic one. A figure
            // that fails is a note: the samples above were drawn.
            let guided = figures.contains { $0.topic.hasSuffix("guidance") }
            do {
                if !guided, let guidance = try ReportFigure.guidanceGrid(model, context: context) {
                    figures.insert(guidance, at: 0)
                } else if model.classCount > 0 {
                    let perClass = 8
                    let labels = (0..<model.classCount).flatMap { Array(repeating: $0, count: perClass) }
                    let byClass = try model.sample(count: labels.count, seed: measurement.seed, labels: labels, options: options, progress: nil)
                    try PNGWriter.write(imageGrid(byClass, columns: perClass), to: folder.appendingPathComponent("\(name)-classes.png"))
                    card.classGrid = "\(name)-classes.png"
                }
            } catch let error as ModelError {
                notes.append("A figure failed: \(error.description)")
            }
        } catch let error as ModelError {
            // A checkpoint that samples nothing from noise (a CycleGAN) keeps its family's figures.
            let absolute = URL(fileURLWithPath: path).path
            card.caption = "Not sampled: " + error.description.replacingOccurrences(of: absolute, with: path)
        }
        for (i, figure) in figures.enumerated() {
            let file = "\(name)-figure\(i + 1).png"
            try PNGWriter.write(figure.grid, to: folder.appendingPathComponent(file))
            card.figures.append(ReportPage.Figure(topic: figure.topic, caption: figure.caption, image: file))
        }
        if card.loss == nil { notes.append("No training log shipped (\(log.lastPathComponent)).") }
        card.note = notes.isEmpty ? nil : notes.joined(separator: " ")
        return card
    }

    /// The sampler reports shipped beside the checkpoints: a plot of FID against network
    /// evaluations per image (log scale), one marker per sampler, and the points.
    func samplers(folder: URL) throws -> (String?, [ReportPage.SamplerPoint]) {
        var points: [ReportPage.SamplerPoint] = []
        for file in shipped(suffix: ".samplers.jsonl") {
            for (_, report) in try Plot.read(file.path) {
                guard let sampling = report.sampling else { continue }
                let fid = report.fid
                points.append(ReportPage.SamplerPoint(sampler: sampling.model, networkEvaluations: sampling.networkEvaluationsPerImage,
                                                      fid: fid, imagesPerSecond: sampling.imagesPerSecond, count: report.sampleCount))
            }
        }
        guard !points.isEmpty else { return (nil, []) }
        points.sort { ($0.networkEvaluations, $0.fid) < ($1.networkEvaluations, $1.fid) }
        let counts = Set(points.map(\.count))
        let series = points.map { PlotSeries(name: $0.sampler, points: [(Double($0.networkEvaluations), $0.fid)], lines: false, markers: true) }
        let image = renderPlot(series: series, xLabel: "network evaluations per image (log scale)",
                               yLabel: "fid" + (counts.count == 1 ? ", \(counts.first!) samples" : ""),
                               xScale: .log, yScale: .linear, width: 800, height: 500)
        try PNGWriter.write(image, to: folder.appendingPathComponent("samplers.png"))
        return ("samplers.png", points)
    }

    /// The likelihood reports shipped beside the checkpoints (CHECKPOINTS/ROW.likelihood.json).
    func likelihoods() throws -> [ReportPage.Likelihood] {
        try shipped(suffix: ".likelihood.json").map { file in
            let report: LikelihoodReport
            do { report = try JSONDecoder().decode(LikelihoodReport.self, from: Data(contentsOf: file)) } catch {
                throw ValidationError("\(file.path): not the output of `generative eval CHECKPOINT --likelihood --json`")
            }
            let name = String(file.lastPathComponent.dropLast(".likelihood.json".count))
            return ReportPage.Likelihood(name: name, method: report.likelihoodMethod, bitsPerDim: report.bitsPerDim,
                                         standardError: report.bitsPerDimSE, count: report.count)
        }
    }

    /// The files in --checkpoints whose names end in `suffix`, sorted.
    func shipped(suffix: String) -> [URL] {
        let base = URL(fileURLWithPath: measurement.checkpoints)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        return names.filter { $0.hasSuffix(suffix) }.sorted().map { base.appendingPathComponent($0) }
    }

    /// What the page lacks, with the reason: rows without figures, the sampler and likelihood
    /// sections without their reports, and the chapter's figures (`ReportFigure.topics`) that no
    /// shipped checkpoint drew.
    func missingSections(_ table: ComparisonTable, drawn: Set<String>) -> [String] {
        var missing = table.rows.filter { $0.fid == nil }.map { row in
            "\(row.name): \(row.note ?? "no figures") (checkpoints/README.md lists the shipped checkpoints and their commands)"
        }
        if shipped(suffix: ".samplers.jsonl").isEmpty {
            missing.append("FID against network evaluations: no CHECKPOINTS/*.samplers.jsonl (eval reports of one checkpoint with several samplers)")
        }
        if shipped(suffix: ".likelihood.json").isEmpty {
            missing.append("bits/dim: no CHECKPOINTS/*.likelihood.json (generative eval CHECKPOINT --likelihood --json)")
        }
        for (topic, needs) in ReportFigure.topics where !drawn.contains(topic) {
            missing.append("\(topic): no checkpoint here draws it; it needs \(needs)")
        }
        return missing
    }
}
