import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cores of one rank on its machine: under `mpirun`, each rank defaults to its share of the
/// cores (those the process may run on, divided by the ranks on the machine) and is bound to them.
///
/// Open MPI binds ranks itself unless told `--bind-to none` (by default each of two ranks to one
/// core, more ranks to a socket each), which would leave a rank one core of a machine it could use
/// all of. `scripts/mpirun` therefore passes `--bind-to none` (unless given a `--bind-to`), and the
/// toolkit binds: local rank l of L (`OMPI_COMM_WORLD_LOCAL_RANK`, `OMPI_COMM_WORLD_LOCAL_SIZE`) takes
/// cores l k ..< (l + 1) k of the process's allowed cores in ascending order, k = allowed / L (when
/// there are fewer cores than ranks, one core each, shared). Under a binding `mpirun` chose, the
/// binding stands and the rank's cores are those it was given.
public enum LocalCores {
    /// The CPUs this process may run on (`sched_getaffinity`), ascending; nil where unknown.
    public static func allowed() -> [Int]? {
        guard let call = affinityCall("sched_getaffinity") else { return nil }
        var mask = [UInt8](repeating: 0, count: maskBytes)
        guard mask.withUnsafeMutableBytes({ call(0, maskBytes, $0.baseAddress!) }) == 0 else { return nil }
        return (0..<(maskBytes * 8)).filter { mask[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }
    }

    /// A CPU mask of 1024 CPUs (glibc's `cpu_set_t`).
    private static let maskBytes = 128

    /// `sched_getaffinity` or `sched_setaffinity` from the C library (Swift's Glibc module leaves
    /// them out: they need `_GNU_SOURCE`); nil where there is none.
    private static func affinityCall(_ name: String) -> (@convention(c) (Int32, Int, UnsafeMutableRawPointer) -> Int32)? {
        #if os(Linux)
        guard let symbol = dlsym(nil, name) else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int, UnsafeMutableRawPointer) -> Int32).self)
        #else
        return nil
        #endif
    }

    /// This rank's share of `allowed` when the process was launched by `mpirun` with
    /// `--bind-to none` (so that the toolkit binds); nil in a plain process or under a binding
    /// `mpirun` made.
    public static func share(environment: [String: String] = ProcessInfo.processInfo.environment,
                             allowed: [Int]? = allowed()) -> [Int]? {
        guard Communicator.launchedByMPIRun(environment: environment),
              environment["OMPI_MCA_hwloc_base_binding_policy"] == "none",
              let allowed, !allowed.isEmpty,
              let localRank = environment["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap({ Int($0) }),
              let localSize = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap({ Int($0) }), localSize >= 1,
              (0..<localSize).contains(localRank) else { return nil }
        let k = allowed.count / localSize
        guard k >= 1 else { return [allowed[localRank % allowed.count]] }
        return Array(allowed[(localRank * k)..<((localRank + 1) * k)])
    }

    /// The threads a rank uses by default: its share's cores, or under a binding `mpirun` made the
    /// cores it was given; nil in a plain process (which uses every core, as before).
    public static func defaultThreads(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        guard Communicator.launchedByMPIRun(environment: environment) else { return nil }
        return share(environment: environment)?.count ?? allowed()?.count
    }

    /// Binds the calling thread, and the threads it starts from now on (the compute threads), to
    /// `cpus` (`sched_setaffinity`). Call it from the main thread before any kernel runs.
    public static func bind(_ cpus: [Int]) throws {
        guard let call = affinityCall("sched_setaffinity") else { return }
        var mask = [UInt8](repeating: 0, count: maskBytes)
        for cpu in cpus where cpu < maskBytes * 8 { mask[cpu / 8] |= 1 << UInt8(cpu % 8) }
        guard mask.withUnsafeMutableBytes({ call(0, maskBytes, $0.baseAddress!) }) == 0 else {
            throw DistributedError.callFailed("sched_setaffinity", code: errno, message: String(cString: strerror(errno)))
        }
    }
}
