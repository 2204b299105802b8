import Foundation
import GenTensor
import GenNN

/// The replicas of one data-parallel training run: `size` copies of the model, each computing the
/// gradients of its rows of every global batch (`rank` in `0..<size`). The ranks of
/// `mpirun -np N` are one kind (the command line adapts its MPI communicator); `InProcessReplicas`
/// is the other, `--grad-shards K` in one process.
///
/// Every replica must make the same calls in the same order with the same counts.
public protocol ReplicaGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Replaces each element by its sum over the replicas, on every replica. For bit-identical
    /// replicas the result must be the same on all of them; two replicas' sums are also the same
    /// whichever order adds them.
    func sum(_ values: inout [Float]) throws
    /// `sum` in double precision.
    func sum(_ values: inout [Double]) throws
    /// Replaces each element by its maximum over the replicas.
    func maximum(_ values: inout [Double]) throws
}

extension ReplicaGroup {
    /// Whether this replica writes the run's files (rank 0).
    public var isWriter: Bool { rank == 0 }
}

/// One training step's wall time, and the part of it spent in the replicas' collectives with the
/// bytes this replica contributed to them (gradients, buffers, losses and the agreement).
public struct StepTiming: Sendable, Equatable {
    public var seconds: Double
    public var collectiveSeconds: Double
    public var collectiveBytes: Int
}

/// A replica group that adds up the time spent in its collectives and the bytes passed to them.
final class TimedReplicaGroup: ReplicaGroup {
    let inner: ReplicaGroup
    private(set) var seconds = 0.0, bytes = 0
    init(_ inner: ReplicaGroup) { self.inner = inner }
    var rank: Int { inner.rank }
    var size: Int { inner.size }
    func reset() { seconds = 0; bytes = 0 }
    private func timed(_ count: Int, _ body: () throws -> Void) rethrows {
        let start = Date()
        try body()
        seconds += Date().timeIntervalSince(start)
        bytes += count
    }
    func sum(_ values: inout [Float]) throws { try timed(4 * values.count) { try inner.sum(&values) } }
    func sum(_ values: inout [Double]) throws { try timed(8 * values.count) { try inner.sum(&values) } }
    func maximum(_ values: inout [Double]) throws { try timed(8 * values.count) { try inner.maximum(&values) } }
}

/// The rows of a batch of `count` examples that replica `rank` of `size` computes: contiguous, as
/// even as possible (floor(r count / size) ..< floor((r + 1) count / size)).
public func replicaRows(count: Int, rank: Int, size: Int) -> Range<Int> {
    (rank * count / size)..<((rank + 1) * count / size)
}

/// Sums every replica's gradients, each scaled by its share of the global batch (rows / batch), so
/// that every replica steps with the gradient of the whole batch's mean loss.
final class ShardGradientReducer: GradientReducer {
    let group: ReplicaGroup
    /// This replica's rows over the global batch, for the current step.
    var share: Float = 1
    /// The first error of a collective (a failed rank); the loop throws it after the step.
    var failure: (any Error)?

    init(group: ReplicaGroup) { self.group = group }

    func reduce(_ gradients: [Tensor]) {
        do {
            let sums = try summedOverReplicas(gradients, group: group, scaledBefore: share)
            withoutGradients { for (g, sum) in zip(gradients, sums) { g.assign(sum) } }
        } catch {
            if failure == nil { failure = error }
        }
    }
}

/// Each float32 tensor of `tensors` times `scaledBefore`, summed over `group`'s replicas, times
/// `scaledAfter`: new tensors of the same shapes, from one flat buffer and one collective.
func summedOverReplicas(_ tensors: [Tensor], group: ReplicaGroup, scaledBefore: Float = 1, scaledAfter: Float = 1) throws -> [Tensor] {
    var flat: [Float] = []
    flat.reserveCapacity(tensors.reduce(0) { $0 + $1.elementCount })
    for t in tensors { flat += t.scalars(as: Float.self) }
    if scaledBefore != 1 { for i in flat.indices { flat[i] *= scaledBefore } }
    try group.sum(&flat)
    if scaledAfter != 1 { for i in flat.indices { flat[i] *= scaledAfter } }
    var start = 0
    return tensors.map { t in
        defer { start += t.elementCount }
        return Tensor(Array(flat[start..<(start + t.elementCount)]), shape: t.shape)
    }
}

/// A 64-bit FNV-1a-style hash of the bits of `parameters`' values, 8 bytes at a time, to check
/// that replicas agree.
func parameterHash(_ parameters: [Parameter]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    func mix(_ raw: UnsafeRawBufferPointer) {
        let words = raw.count / 8
        for i in 0..<words { h = (h ^ raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x100_0000_01B3 }
        for i in (8 * words)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01B3 }
    }
    for p in parameters {
        let v = p.value
        switch v.dtype {
        case .float32: v.scalars(as: Float.self).withUnsafeBytes(mix)
        case .float64: v.scalars(as: Double.self).withUnsafeBytes(mix)
        case .int64: v.scalars(as: Int64.self).withUnsafeBytes(mix)
        }
    }
    return h
}

/// `--grad-shards K` in one process: K replicas on K threads, taking turns (one computes at a time,
/// so the engine sees one caller), whose sums add the replicas' values in rank order. K ranks of
/// `mpirun` with the same settings end with the same bits for K = 2 (whose sum does not depend on
/// the order); for more, MPI may add in another order.
public final class InProcessReplicas: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    /// The replica allowed to compute (the others wait in a collective or for their turn).
    private var turn = 0
    private var arrived = 0
    private var generation = 0
    private var deposits: [[Double]]
    private var result: [Double] = []
    private var failed: String?

    public init(size: Int) {
        precondition(size >= 1, "InProcessReplicas: size \(size)")
        self.size = size
        deposits = Array(repeating: [], count: size)
    }

    /// Replica `rank`'s member of the group.
    public func member(_ rank: Int) -> ReplicaGroup { Member(group: self, rank: rank) }

    /// Blocks until it is replica `rank`'s turn (at the start of its thread).
    func waitForTurn(_ rank: Int) throws {
        condition.lock()
        defer { condition.unlock() }
        while turn != rank && failed == nil { condition.wait() }
        if let failed { throw ReplicaFailure(message: failed) }
    }

    /// Marks the group failed (a replica threw): every waiting replica throws.
    func fail(_ message: String) {
        condition.lock()
        if failed == nil { failed = message }
        condition.broadcast()
        condition.unlock()
    }

    /// Passes the turn on for good (a replica finished).
    func finish(_ rank: Int) {
        condition.lock()
        if turn == rank { turn = (rank + 1) % size }
        condition.broadcast()
        condition.unlock()
    }

    /// Every replica's `values` combined by `combine` in rank order.
    func collective(_ rank: Int, _ values: [Double], _ combine: ([[Double]]) -> [Double]) throws -> [Double] {
        condition.lock()
        defer { condition.unlock() }
        if let failed { throw ReplicaFailure(message: failed) }
        let myGeneration = generation
        deposits[rank] = values
        arrived += 1
        if arrived == size {
            result = combine(deposits)
            arrived = 0
            generation += 1
        }
        // Hand the turn to the next replica, and wait for this collective to finish and the turn to
        // come back.
        turn = (rank + 1) % size
        condition.broadcast()
        while (generation == myGeneration || turn != rank) && failed == nil { condition.wait() }
        if let failed { throw ReplicaFailure(message: failed) }
        return result
    }

    private final class Member: ReplicaGroup {
        let group: InProcessReplicas
        let rank: Int
        var size: Int { group.size }
        init(group: InProcessReplicas, rank: Int) {
            self.group = group
            self.rank = rank
        }

        func sum(_ values: inout [Float]) throws {
            let combined = try group.collective(rank, values.map(Double.init)) { all in
                // Sum in float32, in rank order, as the ranks' allreduce does.
                var s = all[0].map(Float.init)
                for other in all.dropFirst() { for i in s.indices { s[i] += Float(other[i]) } }
                return s.map(Double.init)
            }
            values = combined.map(Float.init)
        }

        func sum(_ values: inout [Double]) throws {
            values = try group.collective(rank, values) { all in
                var s = all[0]
                for other in all.dropFirst() { for i in s.indices { s[i] += other[i] } }
                return s
            }
        }

        func maximum(_ values: inout [Double]) throws {
            values = try group.collective(rank, values) { all in
                var s = all[0]
                for other in all.dropFirst() { for i in s.indices { s[i] = max(s[i], other[i]) } }
                return s
            }
        }
    }
}

/// Thrown by `TrainingLoop.train` on an `mpirun` rank other than 0 once training is done: what a
/// command does after training (reports, reconstructions, exports) is rank 0's, so the other ranks
/// end there; the command line treats it as success.
public struct ReplicaFinished: Error, CustomStringConvertible {
    public var description: String { "this rank's training is done; rank 0 reports it" }
}

/// Another replica of an in-process group failed; this one stops too.
public struct ReplicaFailure: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Each replica thread's result.
private final class ReplicaOutcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Result<[EpochRecord], any Error>?]
    init(count: Int) { stored = Array(repeating: nil, count: count) }
    func set(_ rank: Int, _ result: Result<[EpochRecord], any Error>) { lock.withLock { stored[rank] = result } }
    var results: [Result<[EpochRecord], any Error>?] { lock.withLock { stored } }
}

/// Runs `body(rank)` for each of `group`'s replicas on its own thread (64 MiB of stack, as the main
/// thread's recursion needs), one at a time in turn, and returns replica 0's result; the first
/// error of any replica is rethrown (the others stop at their next collective).
func runReplicas(_ group: InProcessReplicas, _ body: @escaping @Sendable (Int) throws -> [EpochRecord]) throws -> [EpochRecord] {
    let outcome = ReplicaOutcomes(count: group.size)
    let done = DispatchGroup()
    for rank in 0..<group.size {
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            let result = Result<[EpochRecord], any Error> {
                try group.waitForTurn(rank)
                return try body(rank)
            }
            if case .failure(let error) = result, !(error is ReplicaFailure) { group.fail("replica \(rank) failed: \(error)") }
            outcome.set(rank, result)
            group.finish(rank)
        }
        thread.stackSize = 64 << 20
        thread.start()
    }
    done.wait()
    // The error that stopped the group, not the others' ReplicaFailure.
    for case .failure(let error)? in outcome.results where !(error is ReplicaFailure) { throw error }
    for case .failure(let error)? in outcome.results { throw error }
    return try outcome.results[0]!.get()
}

extension TrainingLoop {
    /// `gradientShards` replicas of the model on threads of this process (`InProcessReplicas`):
    /// replica 0 is `model` and writes the run; the others come from `makeReplica`.
    func trainInProcessReplicas(images: Tensor, labels: Tensor?, resume: Bool) throws -> [EpochRecord] {
        guard let makeReplica else { throw TrainingError.noReplicas(model: type(of: model).kind) }
        let group = InProcessReplicas(size: gradientShards)
        var loops: [TrainingLoop] = []
        for rank in 0..<gradientShards {
            let loop = TrainingLoop(model: rank == 0 ? model : try makeReplica(), options: options, run: run, config: config)
            loop.replicas = group.member(rank)
            loop.log = log
            loop.freeSpace = freeSpace
            loops.append(loop)
        }
        // The threads run on this scope's backend (a task-local that threads do not inherit).
        final class Box: @unchecked Sendable {
            let loops: [TrainingLoop], images: Tensor, labels: Tensor?, backend: any ComputeBackend
            init(_ l: [TrainingLoop], _ i: Tensor, _ y: Tensor?, _ b: any ComputeBackend) { loops = l; images = i; labels = y; backend = b }
        }
        let box = Box(loops, images, labels, Backend.current)
        return try runReplicas(group) { rank in
            try Backend.with(box.backend) { try box.loops[rank].train(images: box.images, labels: box.labels, resume: resume) }
        }
    }

    /// Refuses a split that leaves a replica without rows: the batch, or an epoch's last batch,
    /// smaller than the replicas.
    func checkShards(examples n: Int, group: ReplicaGroup) throws {
        let last = n % options.batchSize == 0 ? options.batchSize : n % options.batchSize
        let smallest = min(options.batchSize, n, last)
        if smallest < group.size { throw TrainingError.batchSmallerThanReplicas(batch: smallest, replicas: group.size) }
    }

    /// After a replica's step: averages the BatchNorm running statistics (and any other float
    /// buffer) over the replicas, sums the losses weighted by each replica's `share` of the batch (the
    /// whole batch's means), checks that every replica holds the same weights, and agrees on stopping
    /// (rank 0's clock, any rank's signal).
    func agree(_ losses: [(String, Double)], share: Double, group: ReplicaGroup, step: Int,
               outOfTime: Bool, signal: Int32) throws -> ([(String, Double)], Bool, Int32) {
        let buffers = model.replicatedBuffers.filter { $0.value.dtype == .float32 }
        if !buffers.isEmpty {
            let means = try summedOverReplicas(buffers.map(\.value), group: group, scaledAfter: 1 / Float(group.size))
            withoutGradients { for (b, mean) in zip(buffers, means) { b.assign(mean) } }
        }
        var values = losses.map { $0.1 * share }
        try group.sum(&values)
        let hash = Double(parameterHash(model.namedOptimizers.flatMap { $0.optimizer.parameters } + model.replicatedBuffers) >> 11)
        var flags = [hash, -hash, outOfTime && group.isWriter ? 1 : 0, Double(signal)]
        try group.maximum(&flags)
        if flags[0] != -flags[1] { throw TrainingError.replicasDiverged(step: step) }
        return (zip(losses, values).map { ($0.0, $1) }, flags[2] != 0, Int32(flags[3]))
    }
}
