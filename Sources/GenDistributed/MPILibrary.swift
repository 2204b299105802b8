#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Open MPI's C API, loaded at run time with `dlopen` and `dlsym` (see `Communicator` for why).
///
/// The signatures are those of Open MPI 4.1's `mpi.h` (Debian bookworm's 4.1.4,
/// `/usr/include/x86_64-linux-gnu/openmpi/mpi.h`). Every handle type there (`MPI_Comm`,
/// `MPI_Datatype`, `MPI_Op`) is a pointer to an opaque struct, so each is a raw pointer here; the
/// predefined handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`, ...) are, in Open MPI, the
/// addresses of global objects (`#define MPI_COMM_WORLD OMPI_PREDEFINED_GLOBAL(MPI_Comm,
/// ompi_mpi_comm_world)`, i.e. `(MPI_Comm) &ompi_mpi_comm_world`), so `dlsym` of the object's name
/// is the handle itself. This is specific to Open MPI's ABI: MPICH's handles are integer constants.
struct MPILibrary {
    typealias Handle = UnsafeMutableRawPointer

    // int MPI_Init_thread(int *argc, char ***argv, int required, int *provided); argc and argv may be NULL.
    typealias InitThread = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?, Int32,
                                           UnsafeMutablePointer<Int32>?) -> Int32
    // int MPI_Initialized(int *flag); int MPI_Finalized(int *flag);
    typealias Flag = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    // int MPI_Comm_rank(MPI_Comm comm, int *rank); int MPI_Comm_size(MPI_Comm comm, int *size);
    typealias CommInt = @convention(c) (Handle?, UnsafeMutablePointer<Int32>?) -> Int32
    // int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op, MPI_Comm comm);
    typealias Allreduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle?, Handle?,
                                          Handle?) -> Int32
    // int MPI_Bcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm);
    typealias Bcast = @convention(c) (UnsafeMutableRawPointer?, Int32, Handle?, Int32, Handle?) -> Int32
    // int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
    //                   void *recvbuf, int recvcount, MPI_Datatype recvtype, MPI_Comm comm);
    typealias Allgather = @convention(c) (UnsafeRawPointer?, Int32, Handle?, UnsafeMutableRawPointer?, Int32,
                                          Handle?, Handle?) -> Int32
    // int MPI_Gather(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
    //                void *recvbuf, int recvcount, MPI_Datatype recvtype, int root, MPI_Comm comm);
    typealias Gather = @convention(c) (UnsafeRawPointer?, Int32, Handle?, UnsafeMutableRawPointer?, Int32,
                                       Handle?, Int32, Handle?) -> Int32
    // int MPI_Barrier(MPI_Comm comm);
    typealias Barrier = @convention(c) (Handle?) -> Int32
    // int MPI_Finalize(void);
    typealias Finalize = @convention(c) () -> Int32
    // int MPI_Abort(MPI_Comm comm, int errorcode);
    typealias Abort = @convention(c) (Handle?, Int32) -> Int32
    // int MPI_Error_string(int errorcode, char *string, int *resultlen);
    typealias ErrorString = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int32>?) -> Int32

    /// `MPI_THREAD_FUNNELED` (mpi.h's enum: SINGLE, FUNNELED, SERIALIZED, MULTIPLE): only the
    /// thread that initialised MPI calls it, which is how the toolkit uses it (its worker threads
    /// compute, the main thread communicates).
    static let threadFunneled: Int32 = 1
    /// `MPI_SUCCESS`.
    static let success: Int32 = 0
    /// `MPI_IN_PLACE`: `((void *) 1)`.
    static let inPlace = UnsafeRawPointer(bitPattern: 1)
    /// `MPI_MAX_ERROR_STRING` (`OPAL_MAX_ERROR_STRING`, 256).
    static let maxErrorString = 256

    /// The library names tried, in order: Open MPI 4's soname, then the development link (which
    /// exists only with libopenmpi-dev installed, but names whatever Open MPI the system has).
    static let defaultCandidates = ["libmpi.so.40", "libmpi.so"]

    /// The name the library was loaded by, for error messages.
    let name: String

    let initThread: InitThread
    let initialized: Flag
    let finalized: Flag
    let commRank: CommInt
    let commSize: CommInt
    let allreduce: Allreduce
    let bcast: Bcast
    let allgather: Allgather
    let gather: Gather
    let barrier: Barrier
    let finalize: Finalize
    let abort: Abort
    let errorString: ErrorString

    let commWorld: Handle
    let float: Handle
    let double: Handle
    let int64: Handle
    let byte: Handle
    let opSum: Handle
    let opMax: Handle

    /// Loads the first of `candidates` that `dlopen` accepts (`RTLD_NOW | RTLD_GLOBAL`: Open MPI
    /// loads its components as plugins that resolve symbols of libmpi, which must therefore be
    /// global) and looks up every function and handle; throws `DistributedError` naming the
    /// library and `dlerror`'s reason when either fails.
    static func load(candidates: [String] = defaultCandidates) throws -> MPILibrary {
        var reasons: [(String, String)] = []
        for name in candidates {
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                return try MPILibrary(handle: handle, name: name)
            }
            reasons.append((name, lastDLError() ?? "unknown dlopen error"))
        }
        throw DistributedError.libraryNotLoaded(reasons: reasons)
    }

    private init(handle: UnsafeMutableRawPointer, name: String) throws {
        self.name = name
        func symbol(_ s: String) throws -> UnsafeMutableRawPointer {
            _ = dlerror()
            guard let p = dlsym(handle, s) else {
                throw DistributedError.missingSymbol(s, library: name, reason: lastDLError() ?? "not found")
            }
            return p
        }
        func function<F>(_ s: String, _ type: F.Type) throws -> F {
            unsafeBitCast(try symbol(s), to: F.self)
        }
        initThread = try function("MPI_Init_thread", InitThread.self)
        initialized = try function("MPI_Initialized", Flag.self)
        finalized = try function("MPI_Finalized", Flag.self)
        commRank = try function("MPI_Comm_rank", CommInt.self)
        commSize = try function("MPI_Comm_size", CommInt.self)
        allreduce = try function("MPI_Allreduce", Allreduce.self)
        bcast = try function("MPI_Bcast", Bcast.self)
        allgather = try function("MPI_Allgather", Allgather.self)
        gather = try function("MPI_Gather", Gather.self)
        barrier = try function("MPI_Barrier", Barrier.self)
        finalize = try function("MPI_Finalize", Finalize.self)
        abort = try function("MPI_Abort", Abort.self)
        errorString = try function("MPI_Error_string", ErrorString.self)
        commWorld = try symbol("ompi_mpi_comm_world")
        float = try symbol("ompi_mpi_float")
        double = try symbol("ompi_mpi_double")
        int64 = try symbol("ompi_mpi_int64_t")
        byte = try symbol("ompi_mpi_byte")
        opSum = try symbol("ompi_mpi_op_sum")
        opMax = try symbol("ompi_mpi_op_max")
    }

    /// The datatype handle of an element type.
    func datatype(_ type: DistributedElementType) -> Handle {
        switch type {
        case .float: float
        case .double: double
        case .int64: int64
        case .byte: byte
        }
    }

    /// Throws unless `code` is `MPI_SUCCESS`, with MPI's own text for the code. (Open MPI's default
    /// error handler on MPI_COMM_WORLD, `MPI_ERRORS_ARE_FATAL`, aborts the job before a call
    /// returns an error; this is for a handler set otherwise, and for `MPI_Init_thread`.)
    func check(_ code: Int32, _ call: String) throws {
        guard code != MPILibrary.success else { return }
        var text = [CChar](repeating: 0, count: MPILibrary.maxErrorString + 1)
        var length: Int32 = 0
        let message = errorString(code, &text, &length) == MPILibrary.success
            ? String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "error \(code)"
        throw DistributedError.callFailed(call, code: code, message: message)
    }
}

private func lastDLError() -> String? {
    guard let e = dlerror() else { return nil }
    return String(cString: e)
}
