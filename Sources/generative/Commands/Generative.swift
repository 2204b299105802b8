import ArgumentParser
import Foundation
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval
import GenTrain
import GenDistributed

/// The `generative` command line: thin wrappers over the library APIs.
@main
struct Generative: ParsableCommand {
    /// `train` and `sample`, the families' verb groups (`vae`, `cyclegan`, `realnvp`, `ldm`), then
    /// `export`, `bench`, `eval`, `table` and `plot` (and, hidden, `distributed-check` and the verbs' older
    /// top-level spellings).
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "generative",
            abstract: "Train, sample and evaluate generative models (VAE, GANs, flows, diffusion) on Fashion-MNIST.",
            version: ToolkitVersion.line,
            subcommands: [Train.self, Sample.self] + CommandRegistry.verbs + [Export.self, Bench.self, Eval.self, Table.self, Report.self, Plot.self, DistributedCheck.self]
                + CommandRegistry.formerVerbSpellings)
    }

    /// Line-buffered standard output, so progress lines reach a log file as they happen; and a
    /// short OpenMP spin before idle threads sleep.
    ///
    /// libgomp's default spins ~300,000 times after each parallel region, which is what an idle
    /// machine wants, but when another process holds a core the spinning threads starve the one
    /// doing the work. 20,000 spins keep the idle speed and avoid that (measurements:
    /// docs/architecture.md, Measurements and history). libgomp reads the setting when it loads, so
    /// the process re-executes itself once with it set; a user's own GOMP_SPINCOUNT or
    /// OMP_WAIT_POLICY is left alone.
    static func main() {
        if getenv("GOMP_SPINCOUNT") == nil && getenv("OMP_WAIT_POLICY") == nil {
            setenv("GOMP_SPINCOUNT", "20000", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)  // returns only on failure: carry on as we are
        }
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot(nil)
            try run(&command)
        } catch {
            // Help and version requests print as usual; errors get one line on stderr and a
            // non-zero exit (the usage is one `--help` away).
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }
            if (error as? RankRefusal)?.silent != true { FileHandle.standardError.write(Data("Error: \(message(for: error))\n".utf8)) }
            // An interrupted run exits as the signal would have (130 for SIGINT, 143 for SIGTERM).
            Foundation.exit((error as? TrainingError)?.exitStatus ?? code.rawValue)
        }
    }

    /// Runs a parsed command on the backend its `--backend` and `--threads` choose (a scope around
    /// the command, not a process-wide setting); commands that compute nothing run as they are. A
    /// `DistributedCommand` launched by `mpirun` runs on every rank of the world (`runDistributed`).
    static func run(_ command: inout ParsableCommand) throws {
        if command is DistributedCommand, let world = try Communicator.world {
            return try runDistributed(&command, world: world, runOnBackend)
        }
        // Any other command would run whole on every rank (each rank training, writing the same
        // files): refused, from rank 0 alone, without starting MPI. distributed-check runs its own.
        if !(command is DistributedCheck), launchedRanks > 1 {
            let name = type(of: command).configuration.commandName ?? "this command"
            throw RankRefusal(message: "\(name) does not split over ranks: run it in one process, without mpirun",
                              silent: (ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? "0") != "0")
        }
        try runOnBackend(&command)
    }

    private static func runOnBackend(_ command: inout ParsableCommand) throws {
        guard let compute = ComputeFlags.find(in: command) else { return try command.run() }
        try Backend.with(try compute.makeBackend()) { try command.run() }
    }
}

/// A command that `mpirun` started on several ranks but that runs in one process: rank 0 prints the
/// reason, the other ranks exit with the same status silently.
struct RankRefusal: Error, CustomStringConvertible {
    let message: String
    let silent: Bool
    var description: String { message }
}
