import ArgumentParser
import Foundation
import GenModels
import GenTensor
import GenFormats
import GenData
import GenEval
import GenTrain
import GenDistributed

/// `generative bench`: times the reference workloads (the same as scripts/torch-bench.py does for PyTorch) or the kernels.
struct Bench: DistributedCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the reference workloads and print one JSON line each (as scripts/torch-bench.py does for PyTorch).",
        discussion: """
            Workloads, registered by the families: vae, unet (train and sample), ddpm (sample: DDIM-20 of the \
            width-32 pixel U-Net), classifier (sample), dcgan (train and sample) and ldm (train: one step of the \
            latent U-Net on 7x7x4 latents; sample: its DDIM-20 plus the autoencoder's decoder). ddpm and ldm \
            report no FLOPs (0). Each line holds \
            workload, phase, batch, items_per_s, ms_per_step, gflops_per_s and framework. \
            With --kernels, times oneDNN's GEMM and convolutions on the workloads' shapes instead; with \
            --peak, measures the FP32 peak (a vector FMA loop and a large sgemm) to read those against.             With --distributed, times data-parallel training steps (vae, ddpm, dcgan) on the ranks of             scripts/mpirun -np N (or one process): step time, time in the collectives and bytes exchanged             per step, one JSON line per workload (docs/distributed.md).
            """)

    @Option(help: "Only this workload (vae, unet, ddpm, classifier, dcgan, ldm); with --kernels, only its shapes (vae, dcgan, unet).")
    var workload: String?

    @Option(help: "Only this phase (train, sample).")
    var phase: String?

    @OptionGroup var compute: ComputeFlags
    var threads: Int { compute.threads }

    @Option(help: "Override every workload's batch size (0 keeps the defaults).")
    var batchSize: Int?

    @Option(name: .customLong("batch"), help: .hidden)
    var deprecatedBatch: Int?

    /// `--batch-size` (or its older spelling `--batch`), 0 for the workloads' own.
    var batch: Int { DeprecatedFlag.merge(batchSize, deprecatedBatch) ?? 0 }

    @Option(help: "Minimum seconds to time each workload.")
    var seconds: Double = 3

    @Flag(help: "Time the GEMM and convolution kernels on the workloads' shapes (GFLOP/s).")
    var kernels = false

    @Flag(help: "Measure the machine's FP32 peak instead: a vector FMA loop and a 2048^3 sgemm on --threads threads (JSON lines).")
    var peak = false

    @Flag(help: "Time data-parallel training steps on the ranks of scripts/mpirun -np N (or one process): ms per step, ms in allreduce, bytes per step (JSON lines).")
    var distributed = false

    @Option(help: "With --distributed: training steps per workload, the first two untimed (warm-up).")
    var maxSteps: Int = 12

    func validate() throws {
        try DeprecatedFlag.check(batchSize, "--batch-size", old: deprecatedBatch, "--batch")
        guard batch >= 0 else { throw ValidationError("--batch-size must not be negative") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        let names = CommandRegistry.benchmarks.map(\.name)
        if let workload, !names.contains(workload) {
            throw ValidationError("unknown workload '\(workload)'; choose one of \(names.joined(separator: ", "))")
        }
        if [peak, kernels, distributed].filter({ $0 }).count > 1 {
            throw ValidationError("--peak, --kernels and --distributed are separate measurements; give one")
        }
        guard maxSteps >= 3 else { throw ValidationError("--max-steps must be at least 3 (two warm-up steps and one timed)") }
        if distributed, let workload, !CommandRegistry.trainingWorkloads.map(\.name).contains(workload) {
            throw ValidationError("--distributed times \(CommandRegistry.trainingWorkloads.map(\.name).joined(separator: ", ")); not \(workload)")
        }
        if !distributed, let world = try Communicator.world, world.size > 1 {
            throw ValidationError("only bench --distributed runs on several ranks; run the other measurements in one process")
        }
        if kernels, let workload, !["vae", "dcgan", "unet"].contains(workload) {
            throw ValidationError("--kernels times the shapes of vae, dcgan and unet; \(workload)'s are not in its list")
        }
        if let phase, !["train", "sample"].contains(phase) {
            throw ValidationError("unknown phase '\(phase)'; choose train or sample")
        }
    }

    func run() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        /// One result as a JSON line on stdout, flushed so that a reading process sees it at once.
        func printLine(_ result: any Encodable) {
            if let data = try? encoder.encode(result), let line = String(data: data, encoding: .utf8) {
                print(line)
                fflush(stdout)
            }
        }
        if peak {
            for result in [PeakProbe.fma(threads: threads), PeakProbe.sgemm(threads: threads)] { printLine(result) }
            return
        }
        if distributed { return try timeDistributedTraining { printLine($0) } }
        if kernels {
            print(String(format: "%-28@ %-22@ %-44@ %9@ %9@  %@", "shape" as NSString, "kind" as NSString,
                         "geometry" as NSString, "GFLOP/s" as NSString, "ms" as NSString, "implementation" as NSString))
            for r in KernelBenchmark.run(threads: threads, seconds: seconds, workload: workload) {
                print(String(format: "%-28@ %-22@ %-44@ %9.1f %9.3f  %@", r.name as NSString, r.kind.rawValue as NSString,
                             r.shape as NSString, r.gflopsPerSecond, r.msPerCall, r.implementation as NSString))
            }
            return
        }
        timeWorkloads { printLine($0) }
    }

    /// Times the selected workloads of the registered families, with progress on stderr (a bar, or
    /// a line every 10 s when piped), passing each result to `report`.
    func timeWorkloads(report: (WorkloadBenchmark.Result) -> Void) {
        var progress: CountProgress?
        WorkloadBenchmark.run(CommandRegistry.benchmarks, workload: workload, phase: phase, batch: batch, seconds: seconds,
                              started: { done, total in
            if progress == nil { progress = CountProgress("bench", total: total, unit: "workloads", log: logLine) }
            progress?.update(done)
        }, report: report)
    }
}
