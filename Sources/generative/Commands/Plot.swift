import ArgumentParser
import Foundation
import GenData
import GenEval
import GenFormats

/// `generative plot`: a metric of several evaluations against the training step (one line per
/// run) or against the sampling speed (one marker per sampler), from `generative eval --json`.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot evaluations (generative eval --json): FID or another metric against the training step, or against the sampling speed.",
        discussion: """
            Each REPORT is a file written by `generative eval INPUT --json > F.json` (a file may hold \
            several reports, one per line). --x step plots the metric against the evaluated checkpoint's \
            training step, one line per run folder; --x speed against the images/s of sampling (log \
            scale), one marker per report, named by its sampler. Writes a PNG and prints its path.
            """)

    /// What the x axis shows.
    enum Axis: String, ExpressibleByArgument, CaseIterable {
        case step, speed
    }

    /// The metric on the y axis.
    enum Metric: String, ExpressibleByArgument, CaseIterable {
        case fid, fidInf = "fid-inf", `is`, kid, precision, recall

        var label: String {
            switch self {
            case .fid: "fid"
            case .fidInf: "fid infinity"
            case .is: "inception score"
            case .kid: "kid"
            case .precision: "precision"
            case .recall: "recall"
            }
        }

        func value(_ r: EvaluationReport) -> Double? {
            switch self {
            case .fid: r.fid
            case .fidInf: r.fidInfinity
            case .is: r.inceptionScore
            case .kid: r.kid
            case .precision: r.precision
            case .recall: r.recall
            }
        }
    }

    @Argument(help: ArgumentHelp("Eval reports (JSON, one per line or one per file).", valueName: "report"))
    var reports: [String]

    @Option(help: "The x axis: step (the checkpoint's training step) or speed (sampling images/s, log scale).")
    var x: Axis = .step

    @Option(help: "The metric: fid, fid-inf, is, kid, precision or recall.")
    var metric: Metric = .fid

    @Flag(help: "A log scale for the metric.")
    var logScale = false

    @Option(help: "The plot to write (.png).")
    var out: String

    func validate() throws {
        guard !reports.isEmpty else { throw ValidationError("give at least one eval report (generative eval INPUT --json > F.json)") }
        guard out.lowercased().hasSuffix(".png") else { throw ValidationError("--out \(out): the plot is a .png") }
    }

    func run() throws {
        let loaded = try reports.flatMap { try Self.read($0) }
        var series: [PlotSeries] = []
        switch x {
        case .step:
            var runs: [String: [(Double, Double)]] = [:], order: [String] = []
            for (file, report) in loaded {
                guard let step = report.checkpointStep else {
                    throw ValidationError("\(file): \(report.input) is not a checkpoint evaluated with this version (no checkpoint_step): --x step needs one")
                }
                guard let value = metric.value(report) else { throw ValidationError("\(file): no \(metric.rawValue) in the report") }
                let run = URL(fileURLWithPath: report.input).deletingLastPathComponent().lastPathComponent
                if runs[run] == nil { order.append(run) }
                runs[run, default: []].append((Double(step), value))
            }
            series = order.map { PlotSeries(name: $0, points: runs[$0]!.sorted { $0.0 < $1.0 }, markers: true) }
        case .speed:
            for (file, report) in loaded {
                guard let sampling = report.sampling else {
                    throw ValidationError("\(file): \(report.input) was not sampled by eval (no sampling speed): --x speed needs a checkpoint's report")
                }
                guard let value = metric.value(report) else { throw ValidationError("\(file): no \(metric.rawValue) in the report") }
                series.append(PlotSeries(name: sampling.model, points: [(sampling.imagesPerSecond, value)], lines: false, markers: true))
            }
        }
        let counts = Set(loaded.map { $0.1.sampleCount })
        let samples = counts.count == 1 ? ", \(counts.first!) samples" : ""
        let image = renderPlot(series: series, xLabel: x == .step ? "training step" : "images/s while sampling (log scale)",
                               yLabel: metric.label + samples + (logScale ? ", log scale" : ""),
                               xScale: x == .speed ? .log : .linear, yScale: logScale ? .log : .linear, width: 800, height: 500)
        try PNGWriter.write(image, to: URL(fileURLWithPath: out))
        logLine("plotted \(loaded.count) reports in \(series.count) series")
        print(out)
    }

    /// The reports of a file: one JSON object, or one per line.
    static func read(_ path: String) throws -> [(String, EvaluationReport)] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("\(path): cannot read the report (\(error.localizedDescription))")
        }
        let lines = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !lines.isEmpty else { throw ValidationError("\(path): empty; expected the output of generative eval --json") }
        return try lines.enumerated().map { index, line in
            do { return (path, try EvaluationReport.decode(json: Data(line.utf8))) } catch {
                throw ValidationError("\(path), line \(index + 1): not a generative eval --json report")
            }
        }
    }
}
