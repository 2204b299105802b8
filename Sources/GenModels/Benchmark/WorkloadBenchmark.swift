import Foundation
import GenTensor
import GenFormats
import GenNN

/// The reference workloads of `scripts/torch-bench.py` (PyTorch), timed the same way (two warm-up
/// steps, then steps until `seconds` have passed and at least three ran), so that the toolkit and
/// PyTorch can be compared side by side.
public enum WorkloadBenchmark {
    /// One timed workload.
    public struct Workload {
        public let name: String
        public let phase: String
        public let batch: Int
        /// FLOPs per image, counted by torch.utils.flop_counter on the reference workloads.
        public let flopsPerItem: Double
        public let step: () -> Void
        public init(name: String, phase: String, batch: Int, flopsPerItem: Double, step: @escaping () -> Void) {
            self.name = name
            self.phase = phase
            self.batch = batch
            self.flopsPerItem = flopsPerItem
            self.step = step
        }
    }

    /// One result line.
    public struct Result: Codable {
        public let workload: String
        public let phase: String
        public let batch: Int
        public let items_per_s: Double
        public let ms_per_step: Double
        public let gflops_per_s: Double
        public let framework: String
    }

    /// A named workload as a family registers it: `build` makes its phases' steps (networks,
    /// optimisers and inputs drawn from the generator) for a batch size override (0 keeps the
    /// workload's own), only when the workload is selected.
    public struct Suite {
        public let name: String
        public let build: (_ batchOverride: Int, _ generator: RandomGenerator) -> [Workload]
        public init(name: String, build: @escaping (_ batchOverride: Int, _ generator: RandomGenerator) -> [Workload]) {
            self.name = name
            self.build = build
        }
    }

    /// A workload's batch size: its own, unless `override` (bench's `--batch-size`) is positive.
    public static func batchSize(_ own: Int, override: Int) -> Int { override > 0 ? override : own }

    /// The framework tag printed in each result line.
    public static let framework = "generative-swift"

    /// The images of the reference workloads: Fashion-MNIST's 28 x 28 grey, as scripts/torch-bench.py.
    public static let referenceImageShape = [28, 28, 1]

    /// Seconds per step: two warm-up steps, then steps until `minSeconds` and at least three.
    public static func time(_ step: () -> Void, warmup: Int = 2, minSeconds: Double) -> Double {
        for _ in 0..<warmup { step() }
        var n = 0
        let start = DispatchTime.now().uptimeNanoseconds
        while true {
            step()
            n += 1
            let dt = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if dt >= minSeconds && n >= 3 { return dt / Double(n) }
        }
    }

    /// Times the selected workloads of `suites` (all when `workload` is nil; both phases when
    /// `phase` is nil), calling `report` after each. `started(done, total)` is called before each
    /// selected workload (and once after the last, with done == total), for progress.
    public static func run(_ suites: [Suite], workload: String? = nil, phase: String? = nil, batch: Int = 0, seconds: Double = 3,
                           seed: UInt64 = 0, started: (Int, Int) -> Void = { _, _ in }, report: (Result) -> Void) {
        let selected = suites.filter { workload == nil || $0.name == workload }
            .flatMap { $0.build(batch, RandomGenerator(seed: seed)) }
            .filter { phase == nil || $0.phase == phase }
        for (i, w) in selected.enumerated() {
            started(i, selected.count)
            let s = time(w.step, minSeconds: seconds)
            let perSecond = Double(w.batch) / s
            report(Result(workload: w.name, phase: w.phase, batch: w.batch,
                          items_per_s: (perSecond * 100).rounded() / 100, ms_per_step: (s * 1e6).rounded() / 1e3,
                          gflops_per_s: (perSecond * w.flopsPerItem / 1e7).rounded() / 100, framework: framework))
        }
        started(selected.count, selected.count)
    }
}
