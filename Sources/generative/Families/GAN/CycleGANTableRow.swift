import ArgumentParser
import Foundation
import GenTensor
import GenFormats
import GenData
import GenEval
import GenTrain
import GenNN

extension Table {
    /// The cyclegan row: the test images of the checkpoint's domain A (a Fashion-MNIST class, by
    /// the name its training stored) translated A -> B with the EMA generator, scored as `eval`
    /// scores them against the test images of domain B (`--reference` those images). Images/s is
    /// the translation's speed, one network evaluation per image.
    func measureTranslation(_ checkpoint: URL, log: @escaping (String) -> Void) throws -> ComparisonTable.Row {
        let model = try CycleGANTraining.load(try Checkpoint.finite(contentsOf: checkpoint))
        guard let (source, target) = try model.testDomains() else {
            return ComparisonTable.Row(name: "cyclegan", note: "domains \(model.config.domainA), \(model.config.domainB) are not Fashion-MNIST classes")
        }
        log("cyclegan: translating the \(source.shape[0]) \(model.config.domainA) test images to \(model.config.domainB)")
        let start = Date()
        let translated = model.translate(source, .aToB, ema: true)
        let seconds = Date().timeIntervalSince(start)

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("generative-table-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let translatedFile = folder.appendingPathComponent("translated.npy"), targetFile = folder.appendingPathComponent("target.npy")
        try NPY.writeImages(translated, to: translatedFile)
        try NPY.writeImages(target, to: targetFile)
        if let saveSamples {
            try NPY.writeImages(translated, to: URL(fileURLWithPath: saveSamples).appendingPathComponent("cyclegan.npy"))
        }
        let report = try Eval.parse([translatedFile.path, "--reference", targetFile.path] + measurement.evalArguments(cache: false))
            .evaluate(log: log)
        var row = ComparisonTable.Row(name: "cyclegan", report: report)
        row.imagesPerSecond = Double(source.shape[0]) / max(seconds, 1e-9)
        row.networkEvaluations = 1
        row.threads = measurement.compute.threads
        row.note = "\(model.config.domainA) -> \(model.config.domainB), \(source.shape[0]) test images against \(target.shape[0])"
        return row
    }
}

extension CycleGANTraining {
    /// The test images of the two domains, by the class names the training stored (the first
    /// `count` of each); nil when they are not Fashion-MNIST classes.
    func testDomains(count: Int? = nil) throws -> (a: Tensor, b: Tensor)? {
        guard let both = try ReportFigure.testImages(ofClasses: [config.domainA, config.domainB], count: count) else { return nil }
        return (both[0], both[1])
    }

    /// The report's translations: the first test images of A above their translations to B, then
    /// those of B above their translations to A (EMA generators); nil for domains that are not
    /// Fashion-MNIST classes.
    func reportTranslations(columns: Int) throws -> ReportFigure? {
        guard let (a, b) = try testDomains(count: columns) else { return nil }
        let rows = [a, translate(a, .aToB), b, translate(b, .bToA)]
        let (nameA, nameB) = (config.domainA, config.domainB)
        return ReportFigure(topic: "translation",
                            caption: "rows: the first \(a.shape[0]) test \(nameA) images, translated to \(nameB); the first \(b.shape[0]) "
                                + "test \(nameB) images, translated to \(nameA) (EMA generators)",
                            grid: imageGrid(Tensor.concatenate(rows, axis: 0), columns: a.shape[0]))
    }
}
