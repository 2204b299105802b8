import ArgumentParser
import Foundation
import GenDistributed
import GenTensor

/// The backend in use and its threads, for headers and speed lines ("backend cpu, 2 threads").
func backendDescription(_ backend: any ComputeBackend = Backend.current) -> String {
    "backend \(backend.name), \(backend.threads) thread\(backend.threads == 1 ? "" : "s")"
}

/// The backends `--backend` names.
enum BackendName: String, ExpressibleByArgument, CaseIterable {
    /// oneDNN's GEMM, matmul and convolutions, and the engine's OpenMP kernels.
    case cpu
    /// The Swift reference kernels, serial: a second backend, for checking the first.
    case reference
}

/// `--threads` and `--backend`: where the kernels of a command that computes run. Every such command
/// holds this group (directly, or through `TrainingFlags` or `SampleFlags`), and `generative` runs
/// the command inside `Backend.with` this backend: a scope, not a process-wide switch.
struct ComputeFlags: ParsableArguments {
    @Option(name: .customLong("threads"),
            help: "Threads for the kernels (default: the GENERATIVE_THREADS environment variable, else every core; under mpirun, the rank's share of the cores).")
    var threadsOption: Int?

    @Option(help: "The kernels: cpu (oneDNN) or reference (the Swift reference kernels, serial; to check the first). Default: the GENERATIVE_BACKEND environment variable, else cpu.")
    var backend: BackendName?

    /// The threads to use: `--threads`, else `GENERATIVE_THREADS`, else every core (under `mpirun`,
    /// the rank's share of them: `LocalCores`).
    var threads: Int {
        threadsOption ?? Self.environmentThreads ?? LocalCores.defaultThreads() ?? ProcessInfo.processInfo.activeProcessorCount
    }

    /// `GENERATIVE_THREADS` when set to a whole number of at least 1.
    static var environmentThreads: Int? {
        ProcessInfo.processInfo.environment["GENERATIVE_THREADS"].flatMap { Int($0) }.flatMap { $0 >= 1 ? $0 : nil }
    }

    func validate() throws {
        if let threadsOption, threadsOption < 1 { throw ValidationError("--threads must be at least 1") }
        if let value = ProcessInfo.processInfo.environment["GENERATIVE_THREADS"], !value.isEmpty, Self.environmentThreads == nil {
            throw ValidationError("GENERATIVE_THREADS must be a whole number of at least 1, got '\(value)'")
        }
    }

    /// The backend these flags choose; without `--backend`, the process default's kind.
    func makeBackend() throws -> any ComputeBackend {
        try Backend.named(backend?.rawValue ?? Backend.processDefault.name, threads: threads)
    }

    /// The group inside a parsed command, found by reflection through its `@OptionGroup`s (at most
    /// sixteen levels deep: each option group is two levels of reflection), so that a family's commands need no registration to get it.
    static func find(in value: Any, depth: Int = 0) -> ComputeFlags? {
        if let flags = value as? ComputeFlags { return flags }
        guard depth < 16 else { return nil }
        for child in Mirror(reflecting: value).children {
            if let found = find(in: child.value, depth: depth + 1) { return found }
        }
        return nil
    }
}
