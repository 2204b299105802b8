#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The processes of one distributed run and the collective operations between them (Open MPI's
/// `MPI_COMM_WORLD`): `rank` in `0..<size`, sums and maxima over every rank, broadcast from one
/// rank, gathers in rank order, and a barrier.
///
/// `Communicator.world` is nil in a plain process, and the process of `mpirun -np N` (which sets
/// `OMPI_COMM_WORLD_SIZE`) gets the world of N ranks. `Communicator.current` is the world or, in a
/// plain process, `Communicator.single`: a world of one rank whose collectives return their input,
/// so code written for N ranks runs unchanged on one.
///
/// **Why Open MPI is loaded at run time.** The toolkit must build, test and run on a machine
/// without Open MPI, and one executable must serve both single-process and `mpirun` runs. A SwiftPM
/// system-library target over `mpi.h` would make `libopenmpi-dev` a build dependency of every
/// product (or need a second executable and a second build of everything above it). Instead this
/// module declares the dozen C signatures it uses (copied from Open MPI 4.1's `mpi.h`) and, only
/// when the process was launched by `mpirun`, `dlopen`s `libmpi.so.40` and `dlsym`s them; a plain
/// process never touches libmpi. The cost is that the binding is tied to Open MPI's ABI (handles
/// are addresses of `ompi_mpi_*` globals; MPICH's are integers), which is the MPI the issue and
/// Debian's `mpirun` use. See docs/distributed.md.
///
/// **Threads.** MPI is initialised with `MPI_THREAD_FUNNELED`: call a communicator from the thread
/// that first read `world` (the main thread, in the command line), never from several threads at
/// once. Every rank must make the same collective calls in the same order with the same counts.
///
/// **Ending.** Call `finalize()` once every rank is done, before the process exits (Open MPI's
/// `mpirun` reports a rank that exits without it as a failure), or `abort(code:)` on an error,
/// which ends every rank of the job.
public final class Communicator: @unchecked Sendable {
    /// This process's rank, in `0..<size`. Rank 0 is the one that writes files and prints.
    public let rank: Int
    /// The number of ranks (processes) in the run; 1 for a plain process.
    public let size: Int
    /// The library, or nil for `single`.
    let library: MPILibrary?
    private var isFinalized = false

    /// Whether this is rank 0.
    public var isRoot: Bool { rank == 0 }

    /// The world of `mpirun`'s processes, initialising MPI on first use; nil in a process that
    /// `mpirun` did not launch (no `OMPI_COMM_WORLD_SIZE` in the environment, nor Slurm's
    /// `srun --mpi=pmix` markers: `launcherWorldSize`), which never loads
    /// libmpi. Throws `DistributedError` (naming the library and the reason) when the process was
    /// launched by `mpirun` but libmpi cannot be loaded, lacks a symbol, or fails to initialise; every
    /// later read throws the same error.
    public static var world: Communicator? {
        get throws { try worldState.get() }
    }

    /// `world`, or `single` in a plain process.
    public static var current: Communicator {
        get throws { try world ?? single }
    }

    /// A world of one rank without MPI: `rank` 0, `size` 1, every collective returns its input,
    /// `barrier` and `finalize` do nothing and `abort(code:)` exits.
    public static let single = Communicator(rank: 0, size: 1, library: nil)

    /// Whether `environment` is that of a process started by Open MPI's `mpirun` (or `mpiexec`),
    /// which sets `OMPI_COMM_WORLD_SIZE` for every rank.
    public static func launchedByMPIRun(environment: [String: String]) -> Bool {
        environment["OMPI_COMM_WORLD_SIZE"] != nil
    }

    /// The number of processes a launcher started, from its environment: Open MPI's `mpirun` sets
    /// `OMPI_COMM_WORLD_SIZE`; Slurm's `srun --mpi=pmix` sets `PMIX_RANK` and `SLURM_NTASKS`
    /// (Open MPI then initialises from PMIx). nil for a plain process.
    public static func launcherWorldSize(environment: [String: String]) -> String? {
        environment["OMPI_COMM_WORLD_SIZE"] ?? (environment["PMIX_RANK"] != nil ? environment["SLURM_NTASKS"] : nil)
    }

    private static let worldState: Result<Communicator?, any Error> = Result {
        let names = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_NTASKS"]
        var environment: [String: String] = [:]
        for name in names { if let value = getenv(name) { environment[name] = String(cString: value) } }
        guard let size = launcherWorldSize(environment: environment) else { return nil }
        return try launch(worldSize: size)
    }

    /// Loads libmpi from `candidates`, initialises MPI and reads the world's rank and size.
    static func launch(worldSize: String, candidates: [String] = MPILibrary.defaultCandidates) throws -> Communicator {
        let library: MPILibrary
        do {
            library = try MPILibrary.load(candidates: candidates)
        } catch let error as DistributedError {
            throw error.launched(worldSize: worldSize)
        }
        var initialized: Int32 = 0
        try library.check(library.initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            var provided: Int32 = 0
            try library.check(library.initThread(nil, nil, MPILibrary.threadFunneled, &provided), "MPI_Init_thread")
        }
        var rank: Int32 = 0, size: Int32 = 0
        try library.check(library.commRank(library.commWorld, &rank), "MPI_Comm_rank")
        try library.check(library.commSize(library.commWorld, &size), "MPI_Comm_size")
        return Communicator(rank: Int(rank), size: Int(size), library: library)
    }

    init(rank: Int, size: Int, library: MPILibrary?) {
        self.rank = rank
        self.size = size
        self.library = library
    }

    // MARK: Reductions

    /// Replaces each element of `buffer` by its sum over every rank (`MPI_Allreduce` in place with
    /// `MPI_SUM`). Every rank passes a buffer of the same count; a tensor's storage can be reduced
    /// without a copy. The order of the additions is MPI's: for floating point the result is the
    /// same on every rank, but may differ in the last bits from a sum in rank order.
    public func allreduceSum<T: DistributedNumber>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try allreduce(buffer, op: .sum)
    }

    /// `allreduceSum` of an array, in place.
    public func allreduceSum<T: DistributedNumber>(_ values: inout [T]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, op: .sum) }
    }

    /// Replaces each element of `buffer` by its maximum over every rank (`MPI_MAX`).
    public func allreduceMax<T: DistributedNumber>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try allreduce(buffer, op: .max)
    }

    /// `allreduceMax` of an array, in place.
    public func allreduceMax<T: DistributedNumber>(_ values: inout [T]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, op: .max) }
    }

    private enum Operation { case sum, max }

    private func allreduce<T: DistributedNumber>(_ buffer: UnsafeMutableBufferPointer<T>, op: Operation) throws {
        guard let library else { return }
        try checkOpen()
        guard let base = buffer.baseAddress else { return }
        let type = library.datatype(T.distributedType)
        let handle = op == .sum ? library.opSum : library.opMax
        // MPI counts are C ints: longer buffers go in pieces (each element is reduced on its own).
        var start = 0
        while start < buffer.count {
            let count = min(buffer.count - start, Int(Int32.max))
            try library.check(library.allreduce(MPILibrary.inPlace, base + start, Int32(count), type, handle,
                                                library.commWorld), "MPI_Allreduce")
            start += count
        }
    }

    // MARK: Broadcast

    /// Copies `root`'s `buffer` into every other rank's (`MPI_Bcast`). Every rank passes a buffer
    /// of the same count; the others' contents are overwritten.
    public func broadcast<T: DistributedElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws {
        try checkRoot(root)
        guard let library else { return }
        try checkOpen()
        guard let base = buffer.baseAddress else { return }
        let type = library.datatype(T.distributedType)
        var start = 0
        while start < buffer.count {
            let count = min(buffer.count - start, Int(Int32.max))
            try library.check(library.bcast(base + start, Int32(count), type, Int32(root), library.commWorld),
                              "MPI_Bcast")
            start += count
        }
    }

    /// `broadcast` of an array of the same count on every rank, in place.
    public func broadcast<T: DistributedElement>(_ values: inout [T], root: Int = 0) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// `root`'s `bytes`, of any length, on every rank (the others' `bytes` are ignored): its length
    /// is broadcast first, then the bytes. For a configuration or a checkpoint read by rank 0 only.
    public func broadcast(bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        try checkRoot(root)
        guard library != nil else { return bytes }
        var count = [Int64(rank == root ? bytes.count : 0)]
        try broadcast(&count, root: root)
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        try broadcast(&result, root: root)
        return result
    }

    // MARK: Gathers

    /// Every rank's `values` on every rank, in rank order (`MPI_Allgather`): `size * values.count`
    /// elements, rank r's at `r * values.count ..< (r + 1) * values.count`. Every rank passes the
    /// same count.
    public func allgather<T: DistributedElement>(_ values: [T]) throws -> [T] {
        guard let library else { return values }
        try checkOpen()
        let count = try int32Count(values.count, "MPI_Allgather")
        var result = [T](unsafeUninitializedCapacity: values.count * size) { _, n in n = values.count * size }
        guard count > 0 else { return result }
        let type = library.datatype(T.distributedType)
        try values.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { receive in
                try library.check(library.allgather(UnsafeRawPointer(send.baseAddress), count, type,
                                                    UnsafeMutableRawPointer(receive.baseAddress), count, type,
                                                    library.commWorld), "MPI_Allgather")
            }
        }
        return result
    }

    /// Every rank's `values` on `root`, in rank order as in `allgather` (`MPI_Gather`); nil on the
    /// other ranks. Every rank passes the same count.
    public func gather<T: DistributedElement>(_ values: [T], root: Int = 0) throws -> [T]? {
        try checkRoot(root)
        guard let library else { return values }
        try checkOpen()
        let count = try int32Count(values.count, "MPI_Gather")
        let isRoot = rank == root
        var result = [T](unsafeUninitializedCapacity: isRoot ? values.count * size : 0) { _, n in
            n = isRoot ? values.count * size : 0
        }
        guard count > 0 else { return isRoot ? result : nil }
        let type = library.datatype(T.distributedType)
        try values.withUnsafeBufferPointer { send in
            try result.withUnsafeMutableBufferPointer { receive in
                try library.check(library.gather(UnsafeRawPointer(send.baseAddress), count, type,
                                                 UnsafeMutableRawPointer(receive.baseAddress), count, type,
                                                 Int32(root), library.commWorld), "MPI_Gather")
            }
        }
        return isRoot ? result : nil
    }

    // MARK: Synchronisation and ending

    /// Returns once every rank has called it (`MPI_Barrier`).
    public func barrier() throws {
        guard let library else { return }
        try checkOpen()
        try library.check(library.barrier(library.commWorld), "MPI_Barrier")
    }

    /// Ends every rank of the job with exit status `code` (`MPI_Abort`; `mpirun` then exits
    /// non-zero). Standard output and error are flushed first. In a plain process, `exit(code)`.
    public func abort(code: Int32) -> Never {
        fflush(nil)
        if let library, !isFinalized { _ = library.abort(library.commWorld, code) }
        exit(code)
    }

    /// Ends MPI on this rank (`MPI_Finalize`; collective: every rank calls it). Later collectives
    /// throw `DistributedError.finalized`; a second call does nothing.
    public func finalize() throws {
        guard let library, !isFinalized else { return }
        isFinalized = true
        try library.check(library.finalize(), "MPI_Finalize")
    }

    private func checkOpen() throws {
        if isFinalized { throw DistributedError.finalized }
    }

    private func checkRoot(_ root: Int) throws {
        guard (0..<size).contains(root) else { throw DistributedError.invalidRoot(root, size: size) }
    }

    private func int32Count(_ count: Int, _ call: String) throws -> Int32 {
        guard count <= Int(Int32.max), count * size <= Int(Int32.max) else {
            throw DistributedError.countTooLarge(call, count: count)
        }
        return Int32(count)
    }
}

/// The element types a communicator sends, by their MPI datatype.
public enum DistributedElementType: Sendable {
    /// `MPI_FLOAT`.
    case float
    /// `MPI_DOUBLE`.
    case double
    /// `MPI_INT64_T`.
    case int64
    /// `MPI_BYTE` (sent, never reduced).
    case byte
}

/// A type a communicator can broadcast and gather.
public protocol DistributedElement: BitwiseCopyable {
    static var distributedType: DistributedElementType { get }
}

/// A type a communicator can also sum and take the maximum of.
public protocol DistributedNumber: DistributedElement {}

extension Float: DistributedNumber { public static var distributedType: DistributedElementType { .float } }
extension Double: DistributedNumber { public static var distributedType: DistributedElementType { .double } }
extension Int64: DistributedNumber { public static var distributedType: DistributedElementType { .int64 } }
extension UInt8: DistributedElement { public static var distributedType: DistributedElementType { .byte } }

/// Why a distributed run could not start or a collective failed.
public enum DistributedError: Error, CustomStringConvertible {
    /// No candidate library could be `dlopen`ed: each name with `dlerror`'s reason; `worldSize` is
    /// `OMPI_COMM_WORLD_SIZE` when the process was launched by `mpirun`.
    case libraryNotLoaded(reasons: [(String, String)], worldSize: String? = nil)
    /// The library loaded but lacks a function or handle.
    case missingSymbol(String, library: String, reason: String)
    /// An MPI call returned an error code.
    case callFailed(String, code: Int32, message: String)
    /// A collective after `finalize()`.
    case finalized
    /// A root outside `0..<size`.
    case invalidRoot(Int, size: Int)
    /// A count beyond MPI's C `int`.
    case countTooLarge(String, count: Int)

    public var description: String {
        switch self {
        case let .libraryNotLoaded(reasons, worldSize):
            let launched = worldSize.map { "launched by mpirun (OMPI_COMM_WORLD_SIZE=\($0)) but " } ?? ""
            let first = reasons.first?.0 ?? "libmpi"
            let why = reasons.map { "\($0.0): \($0.1)" }.joined(separator: "; ")
            return "\(launched)\(first) could not be loaded: \(why). Install Open MPI 4 (Debian: libopenmpi-dev "
                + "openmpi-bin; scripts/mpirun installs them)"
        case let .missingSymbol(symbol, library, reason):
            return "\(library) was loaded but has no symbol \(symbol) (\(reason)); the binding expects Open MPI 4's ABI"
        case let .callFailed(call, code, message):
            return "\(call) failed with MPI error \(code): \(message)"
        case .finalized:
            return "an MPI collective after finalize()"
        case let .invalidRoot(root, size):
            return "root rank \(root) is outside 0..<\(size)"
        case let .countTooLarge(call, count):
            return "\(call) of \(count) elements per rank exceeds MPI's C int count"
        }
    }

    func launched(worldSize: String) -> DistributedError {
        if case let .libraryNotLoaded(reasons, _) = self { return .libraryNotLoaded(reasons: reasons, worldSize: worldSize) }
        return self
    }
}
