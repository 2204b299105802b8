import Foundation

/// The chapter's Table 6-1 beside the toolkit's measurements: one row per model (and the test set),
/// with FID, FID∞, IS, KID, precision, recall, speed, size and training time, the chapter's values
/// and each row's rank by FID in both orderings.
public struct ComparisonTable: Codable, Sendable, Equatable {
    /// One measured row. Figures a row does not have (a model without a checkpoint, the test set's
    /// speed) are nil and print as "—" or JSON null.
    public struct Row: Codable, Sendable, Equatable {
        public var name: String
        public var fid: Double?
        public var fidInfinity: Double?
        public var inceptionScore: Double?
        public var kid: Double?
        public var precision: Double?
        public var recall: Double?
        public var imagesPerSecond: Double?
        /// Network evaluations per image.
        public var networkEvaluations: Int?
        public var threads: Int?
        /// Weights of the checkpoint's networks (EMA copies and normalisation statistics excluded).
        public var parameters: Int?
        /// Wall-clock seconds of training, summed over resumed runs (the checkpoint's `train_seconds`).
        public var trainSeconds: Double?
        /// Why the row has no figures (no checkpoint, for example), or what its figures measure when
        /// that is not the usual (cyclegan: its translations); nil otherwise.
        public var note: String?
        /// Test bits/dim of a likelihood model (`table --likelihood`), and how it was measured
        /// ("vlb", "ode", "exact").
        public var bitsPerDim: Double?
        public var likelihoodMethod: String?

        public init(name: String, note: String? = nil) {
            self.name = name
            self.note = note
        }

        /// A row with an evaluation's figures: the scores, and the sampling speed where the
        /// evaluation sampled a checkpoint.
        public init(name: String, report: EvaluationReport) {
            self.name = name
            fid = report.fid
            fidInfinity = report.fidInfinity
            inceptionScore = report.inceptionScore
            kid = report.kid
            precision = report.precision
            recall = report.recall
            imagesPerSecond = report.sampling?.imagesPerSecond
            networkEvaluations = report.sampling?.networkEvaluationsPerImage
            threads = report.sampling?.threads
        }

        enum CodingKeys: String, CodingKey {
            case name, fid, fidInfinity = "fid_inf", inceptionScore = "is", kid, precision, recall,
                 imagesPerSecond = "images_per_s", networkEvaluations = "nfe", threads, parameters = "params",
                 trainSeconds = "train_seconds", note, bitsPerDim = "bits_per_dim", likelihoodMethod = "likelihood_method"
        }

        public func encode(to encoder: Encoder) throws {
            // Every key is present (null when unknown), so a reader never has to guess a column.
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(fid, forKey: .fid)
            try c.encode(fidInfinity, forKey: .fidInfinity)
            try c.encode(inceptionScore, forKey: .inceptionScore)
            try c.encode(kid, forKey: .kid)
            try c.encode(precision, forKey: .precision)
            try c.encode(recall, forKey: .recall)
            try c.encode(imagesPerSecond, forKey: .imagesPerSecond)
            try c.encode(networkEvaluations, forKey: .networkEvaluations)
            try c.encode(threads, forKey: .threads)
            try c.encode(parameters, forKey: .parameters)
            try c.encode(trainSeconds, forKey: .trainSeconds)
            try c.encode(note, forKey: .note)
            try c.encode(bitsPerDim, forKey: .bitsPerDim)
            try c.encode(likelihoodMethod, forKey: .likelihoodMethod)
        }
    }

    public var rows: [Row]

    public init(rows: [Row]) { self.rows = rows }

    /// The rows in the chapter's order, and the ones the toolkit adds.
    public static let rowNames = ["test", "vae", "dcgan", "sngan", "realnvp", "ddpm", "sgm", "ldm", "cgan", "cyclegan"]

    /// Table 6-1's FID on Fashion-MNIST (test set against train).
    public static let chapterFID: [String: Double] = [
        "test": 0.011, "vae": 3.186, "dcgan": 2.379, "sngan": 0.487, "realnvp": 1.385, "ddpm": 0.647, "sgm": 0.525,
    ]

    /// The chapter's Inception Scores where the text gives them.
    public static let chapterIS: [String: Double] = ["ddpm": 8.67, "sgm": 9.06]

    /// 1-based ranks by ascending FID among the rows that have one (ties share the lower rank).
    public static func ranks(_ values: [String: Double]) -> [String: Int] {
        var ranks: [String: Int] = [:]
        for (name, value) in values { ranks[name] = 1 + values.values.filter { $0 < value }.count }
        return ranks
    }

    /// Each measured row's rank by FID, and the chapter's rank of the same rows.
    /// Rows whose figures measure something else (those with a note: cyclegan's translations) are
    /// not ranked.
    public var measuredRanks: [String: Int] {
        Self.ranks(Dictionary(uniqueKeysWithValues: rows.compactMap { row in row.note == nil ? row.fid.map { (row.name, $0) } : nil }))
    }

    public var chapterRanks: [String: Int] {
        let measured = Set(rows.compactMap { $0.fid == nil ? nil : $0.name })
        return Self.ranks(Self.chapterFID.filter { measured.contains($0.key) })
    }

    /// The pairs of rows whose order by FID differs from the chapter's, as "a < b" in measured order.
    public var disagreements: [String] {
        let measured = rows.compactMap { row in row.fid.map { (row.name, $0) } }.filter { Self.chapterFID[$0.0] != nil }
        var pairs: [String] = []
        for (i, a) in measured.enumerated() {
            for b in measured[(i + 1)...] where (a.1 < b.1) != (Self.chapterFID[a.0]! < Self.chapterFID[b.0]!) {
                let (lower, higher) = a.1 < b.1 ? (a, b) : (b, a)
                pairs.append(String(format: "%@ (%.3f) < %@ (%.3f), the chapter has the opposite", lower.0, lower.1, higher.0, higher.1))
            }
        }
        return pairs
    }

    /// The columns of `markdown()` and of the report's table; bits/dim only when a row has one.
    public var columns: [String] {
        ["row", "FID", "chapter FID", "rank", "chapter rank", "FID∞", "IS", "chapter IS", "KID", "precision", "recall",
         "images/s", "NFE", "threads", "params", "training"] + (hasLikelihoods ? ["bits/dim"] : [])
    }

    /// Whether any row has a bits/dim (`table --likelihood`).
    public var hasLikelihoods: Bool { rows.contains { $0.bitsPerDim != nil } }

    /// Each row's cells under `columns`: the measured figures, the chapter's FID and IS beside them,
    /// both ranks; "—" where a figure is missing, and the row's note in place of its FID.
    public func cells() -> [[String]] {
        func number(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "—" }
        func integer(_ value: Int?) -> String { value.map(String.init) ?? "—" }
        func duration(_ seconds: Double?) -> String {
            guard let seconds else { return "—" }
            if seconds < 60 { return String(format: "%.0f s", seconds) }
            return seconds >= 3600 ? String(format: "%.1f h", seconds / 3600) : String(format: "%.0f min", seconds / 60)
        }
        let ours = measuredRanks, chapter = chapterRanks, likelihoodColumn = hasLikelihoods
        return rows.map { row in
            var cells = [row.name, number(row.fid, "%.3f"), number(Self.chapterFID[row.name], "%.3f"), integer(ours[row.name]),
                         integer(chapter[row.name]), number(row.fidInfinity, "%.3f"), number(row.inceptionScore, "%.2f"),
                         number(Self.chapterIS[row.name], "%.2f"), number(row.kid, "%.4f"), number(row.precision, "%.3f"),
                         number(row.recall, "%.3f"), number(row.imagesPerSecond, "%.1f"), integer(row.networkEvaluations),
                         integer(row.threads), integer(row.parameters), duration(row.trainSeconds)]
            if let note = row.note, row.fid == nil { cells[1] = note }
            if likelihoodColumn {
                cells.append(row.bitsPerDim.map { String(format: "%.3f (%@)", $0, row.likelihoodMethod ?? "?") } ?? "—")
            }
            return cells
        }
    }

    /// "ROW: NOTE" for each row whose figures come with a note (in place of a note, a row without
    /// figures shows it in its FID cell).
    public var footnotes: [String] { rows.compactMap { row in row.fid == nil ? nil : row.note.map { "\(row.name): \($0)" } } }

    /// A markdown table of `cells()`, then the footnotes and the pairs ordered unlike the chapter, if any.
    public func markdown() -> String {
        var lines = ["| " + columns.joined(separator: " | ") + " |",
                     "| --- |" + String(repeating: " ---: |", count: columns.count - 1)]
        lines += cells().map { "| " + $0.joined(separator: " | ") + " |" }
        if !footnotes.isEmpty { lines.append(""); lines += footnotes.map { "- " + $0 } }
        let disagreeing = disagreements
        if !disagreeing.isEmpty { lines.append(""); lines.append("Order unlike the chapter's: " + disagreeing.joined(separator: "; ") + ".") }
        return lines.joined(separator: "\n")
    }

    /// Reads `json()`'s output (`generative table --json`).
    public static func decode(json: Data) throws -> ComparisonTable {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(ComparisonTable.self, from: json)
    }

    /// `{"rows": [...]}`, every row with every key.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
