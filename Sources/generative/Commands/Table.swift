import ArgumentParser
import Foundation
import GenTensor
import GenFormats
import GenNN
import GenData
import GenEval
import GenTrain
import GenDistributed

/// `generative table`: the chapter's Table 6-1 measured on the shipped checkpoints.
struct Table: DistributedCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the chapter's comparison table (Table 6-1) on the shipped checkpoints: FID, FID∞, IS, KID, precision, recall, speed.",
        discussion: """
            Rows: \(ComparisonTable.rowNames.joined(separator: ", ")). The test row scores the test split; every other \
            row samples CHECKPOINTS/ROW.safetensors (checkpoints/README.md gives each file's training command) with its \
            model's default sampler and scores the samples exactly as `generative eval CHECKPOINT --count N --seed S` \
            does, against the training split; the cyclegan row translates the test images of its domain A and scores \
            them against the test images of domain B (a footnote says so, and it is not ranked). A row whose \
            checkpoint is missing is listed without figures. Prints a \
            markdown table with the chapter's FID and IS beside each row and the rank by FID in both orderings, or \
            with --json one object {"rows": [{"name", "fid", "fid_inf", "is", "kid", "precision", "recall", \
            "images_per_s", "nfe", "threads", "params", "train_seconds", "note", "bits_per_dim", "likelihood_method"}]}. \
            --likelihood adds the test bits/dim of the models that have a likelihood, as `generative eval CHECKPOINT \
            --likelihood` measures it. --retrain first runs each row's card commands (train, then export). Progress goes \
            to stderr.
            """)

    @Option(help: "The rows to measure, separated by commas (default: all).")
    var rows: String?

    @Option(help: "Keep each row's images as DIR/ROW.npy (N x 28 x 28 float32 in [0, 1]).")
    var saveSamples: String?

    @Flag(help: "Print one JSON object instead of the markdown table.")
    var json = false

    @Flag(help: "Add the test bits/dim of each model that has a likelihood (its default method, --likelihood-count test images).")
    var likelihood = false

    @Option(help: "Test images for --likelihood.")
    var likelihoodCount: Int = 1000

    @Flag(help: "First retrain each selected row with its card's commands (CHECKPOINTS/README.md), resuming a run folder that holds a checkpoint; the commands run as written, from the current folder.")
    var retrain = false

    @OptionGroup var measurement: TableFlags

    /// The rows `--rows` names, in the table's order.
    var selectedRows: [String] {
        get throws {
            guard let rows else { return ComparisonTable.rowNames }
            let names = rows.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if let unknown = names.first(where: { !ComparisonTable.rowNames.contains($0) }) {
                throw ValidationError("--rows: unknown row '\(unknown)'; choose from \(ComparisonTable.rowNames.joined(separator: ", "))")
            }
            return ComparisonTable.rowNames.filter(names.contains)
        }
    }

    func validate() throws {
        _ = try selectedRows
        if retrain, launchedRanks > 1 {
            throw ValidationError("--retrain runs the card commands in one process: retrain without mpirun (or train each row with scripts/mpirun train ...), then score the table on the ranks")
        }
        guard likelihoodCount >= 1 else { throw ValidationError("--likelihood-count must be at least 1") }
        var isFolder: ObjCBool = false
        if let saveSamples, FileManager.default.fileExists(atPath: saveSamples, isDirectory: &isFolder), !isFolder.boolValue {
            throw ValidationError("--save-samples \(saveSamples) is a file; give a folder")
        }
    }

    /// Under `mpirun`, every checkpoint row's samples (and test images for --likelihood) are split
    /// over the ranks as `eval` splits them; rank 0 scores and prints, the others follow
    /// (`followRows`).
    func run() throws {
        let world = try Communicator.current
        guard world.isRoot else { return try followRows(world: world) }
        let table = try measure(world: world)
        print(json ? try table.json() : table.markdown())
    }

    /// A rank other than 0: its share of each collective that rank 0's `measure` makes, in the same
    /// order (each checkpoint row's samples, then with --likelihood its test images' bits). The test
    /// row and the cyclegan row's translations are rank 0's alone.
    func followRows(world: Communicator) throws {
        for name in try selectedRows where name != "test" {
            let url = checkpoint(of: name)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            if name != "cyclegan" { try Eval.parse(scoreArguments(url.path)).sampleShares(log: { _ in }) }
            if measuresLikelihood(url) { _ = try Eval.parse(likelihoodArguments(url)).measureLikelihood(world: world, log: { _ in }) }
        }
    }

    /// A row's shipped checkpoint, CHECKPOINTS/ROW.safetensors.
    func checkpoint(of row: String) -> URL {
        URL(fileURLWithPath: measurement.checkpoints).appendingPathComponent("\(row).safetensors")
    }

    /// `eval`'s arguments for a row's scores of `input`.
    func scoreArguments(_ input: String) -> [String] {
        [input, "--count", String(measurement.count)] + measurement.evalArguments(cache: true)
    }

    /// Whether the row of `url` gets a --likelihood figure: asked for, and the model has one.
    func measuresLikelihood(_ url: URL) -> Bool {
        guard likelihood, let model = try? loadAnyModel(url.path) else { return false }
        return !model.likelihoodMethods.isEmpty
    }

    /// `eval`'s arguments for a row's --likelihood figure.
    func likelihoodArguments(_ url: URL) -> [String] {
        [url.path, "--likelihood", "--count", String(likelihoodCount)] + measurement.evalArguments(cache: false)
    }

    /// Scores every selected row, logging progress (on `world`'s rank 0; see `run`).
    func measure(world: Communicator = .single, log: @escaping (String) -> Void = logLine) throws -> ComparisonTable {
        let names = try selectedRows
        if let saveSamples { try FileManager.default.createDirectory(atPath: saveSamples, withIntermediateDirectories: true) }
        var rows: [ComparisonTable.Row] = []
        if retrain { try self.retrain(names.filter { $0 != "test" }, log: log) }
        for (i, name) in names.enumerated() {
            log("row \(i + 1)/\(names.count): \(name)")
            rows.append(try measure(row: name, world: world, log: log))
        }
        return ComparisonTable(rows: rows)
    }

    /// One row: the test split, or the row's checkpoint sampled and scored as `eval` does (the
    /// cyclegan row: its translations, `measureTranslation`).
    func measure(row name: String, world: Communicator = .single, log: @escaping (String) -> Void) throws -> ComparisonTable.Row {
        guard name != "test" else { return try score("fashion-mnist:test", row: name, log: log) }
        let url = checkpoint(of: name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            log("\(name): \(url.path) is missing; checkpoints/README.md gives the command that trains it")
            return ComparisonTable.Row(name: name, note: "no checkpoint")
        }
        var row = name == "cyclegan" ? try measureTranslation(url, log: log) : try score(url.path, row: name, log: log)
        let file = try SafeTensorsFile(contentsOf: url)
        row.parameters = Self.weightCount(file)
        row.trainSeconds = file.metadata["train_seconds"].flatMap(Double.init)
        if measuresLikelihood(url) {
            guard let measured = try Eval.parse(likelihoodArguments(url)).measureLikelihood(world: world, log: log) else {
                preconditionFailure("rank 0 gathers the likelihood")
            }
            row.bitsPerDim = measured.bitsPerDim
            row.likelihoodMethod = measured.likelihoodMethod
        }
        return row
    }

    /// `input` (the test split, or a checkpoint it samples) scored as `eval INPUT --count N` scores
    /// it; its images kept as SAVE_SAMPLES/ROW.npy when asked.
    func score(_ input: String, row name: String, log: @escaping (String) -> Void) throws -> ComparisonTable.Row {
        var images: Tensor?
        let report = try Eval.parse(scoreArguments(input)).evaluate(log: log, keepImages: saveSamples == nil ? nil : { images = $0 })
        if let saveSamples, let images {
            try NPY.writeImages(images, to: URL(fileURLWithPath: saveSamples).appendingPathComponent("\(name).npy"))
        }
        return ComparisonTable.Row(name: name, report: report)
    }

    /// Runs the card commands of `names` (train, then export), in this process; a `train` whose
    /// run folder already holds a checkpoint resumes it, so an interrupted --retrain continues.
    func retrain(_ names: [String], log: @escaping (String) -> Void) throws {
        let cards = try CheckpointCard.read(folder: URL(fileURLWithPath: measurement.checkpoints))
        for name in names {
            guard let card = cards.first(where: { $0.row == name }), !card.commands.isEmpty else {
                log("\(name): no card with a command in \(measurement.checkpoints)/README.md; not retrained")
                continue
            }
            for var arguments in card.commands {
                if arguments.first == "train", let flag = arguments.firstIndex(of: "--out"), flag + 1 < arguments.count,
                   case let out = arguments[flag + 1],
                   FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors"), !arguments.contains("--resume") {
                    arguments.append("--resume")
                }
                log("\(name): generative \(arguments.joined(separator: " "))")
                var command = try Generative.parseAsRoot(arguments)
                try Generative.run(&command)
            }
        }
    }

    /// The weights of a checkpoint's networks: every tensor but the optimisers' state, the EMA
    /// copies and BatchNorm's running statistics.
    static func weightCount(_ file: SafeTensorsFile) -> Int {
        let buffers = ["running_mean", "running_var", "num_batches_tracked"]
        return file.entries.values.filter { entry in
            !entry.name.hasPrefix("optim.") && !entry.name.hasPrefix("ema.") && !buffers.contains { entry.name.hasSuffix("." + $0) }
        }.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}

/// The flags of the table's measurement, shared by `table` and `report` (which measures the table
/// when it is given none).
struct TableFlags: ParsableArguments {
    @Option(help: "The folder holding ROW.safetensors for each model row (and, for report, the logs and reports beside them).")
    var checkpoints: String = "checkpoints"

    @Option(parsing: .unconditional, help: "Samples per row (the test row: its first N images).")
    var count: Int = 10_000

    @Option(help: "Seed of every row's sampling noise and of the metrics' random subsets (and of report's sample grids).")
    var seed: UInt64 = 0

    @Option(help: "Images per batch, for the feature network and for sampling.")
    var batchSize: Int = 500

    @Option(help: "A data folder for the reference images and for --likelihood's test images (default: Debian's Fashion-MNIST; the test row always scores Debian's test split).")
    var data: String?

    @Option(help: "The reference-statistics cache folder (default: $GENERATIVE_CACHE, else ~/.cache/generative).")
    var cache: String?

    @OptionGroup var compute: ComputeFlags

    func validate() throws {
        guard count >= 2 else { throw ValidationError("--count must be at least 2 (FID needs a covariance)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    /// The flags every `eval` of the table gets: seed, batch size, threads, data (and the cache).
    func evalArguments(cache withCache: Bool) -> [String] {
        var arguments = ["--seed", String(seed), "--batch-size", String(batchSize), "--threads", String(compute.threads)]
        if let data { arguments += ["--data", data] }
        if withCache, let cache { arguments += ["--cache", cache] }
        return arguments
    }

    /// These flags as a command line, for `table` to parse.
    var commandLine: [String] {
        ["--checkpoints", checkpoints, "--count", String(count)] + evalArguments(cache: true)
            + (compute.backend.map { ["--backend", $0.rawValue] } ?? [])
    }
}
