import ArgumentParser
import Foundation
import GenDistributed
import GenTensor
import GenTrain

/// A command that splits its work over the ranks of `scripts/mpirun -np N COMMAND`. When the
/// process was launched by `mpirun`, `generative` starts MPI before running it, binds the rank to its
/// share of the cores (`LocalCores`), prints `ranks: N` on stderr from rank 0, and after it
/// finalizes MPI on every rank; an error on any rank is printed with the rank and ends the whole job
/// (`MPI_Abort`). In a plain process it runs as any other command, and libmpi is never loaded.
protocol DistributedCommand: ParsableCommand {}

/// The ranks a launcher (mpirun, or srun with PMIx) started, from the environment, without starting
/// MPI: 1 in a plain process.
var launchedRanks: Int {
    Int(Communicator.launcherWorldSize(environment: ProcessInfo.processInfo.environment) ?? "") ?? 1
}

/// Which images of a run each rank makes.
enum ImageShards {
    /// Rank `rank` of `size`'s images of 0..<count. With at least as many network batches (of
    /// `batchSize`, the last maybe partial) as ranks, whole batches are split contiguously, as evenly
    /// as possible: every image is computed in the same batch as in one process, so the images are
    /// those of one process bit for bit (at the same threads). With fewer batches than ranks, the
    /// images are split evenly (floor(r count / size) ..< floor((r + 1) count / size)), in batches of
    /// other sizes than one process's: equal up to float rounding in the network.
    static func range(count: Int, batchSize: Int, rank: Int, size: Int) -> Range<Int> {
        precondition(count >= 0 && batchSize >= 1 && size >= 1 && (0..<size).contains(rank), "ImageShards: bad split")
        let batches = (count + batchSize - 1) / batchSize
        guard batches >= size else { return replicaRows(count: count, rank: rank, size: size) }
        let first = rank * batches / size, last = (rank + 1) * batches / size
        return min(count, first * batchSize)..<min(count, last * batchSize)
    }
}

/// Samples images 0..<count split over `world`'s ranks (`ImageShards`): every rank calls `body`
/// with its share of the indices (never an empty one) and, on rank 0 only and when `showProgress`,
/// a progress callback (the bar counts rank 0's images); the shares are gathered to rank 0, which returns all `count`
/// images in index order. The other ranks return nil. On one rank this is `body(0..<count)` with
/// progress, as before the split.
func shardedSampling(count: Int, batchSize: Int, imageShape: [Int], world: Communicator, showProgress: Bool = true,
                     log: @escaping (String) -> Void = logLine,
                     _ body: (Range<Int>, ((Int, Int) -> Void)?) throws -> Tensor) throws -> Tensor? {
    let shards = (0..<world.size).map { ImageShards.range(count: count, batchSize: batchSize, rank: $0, size: world.size) }
    let mine = shards[world.rank]
    var shard: Tensor?
    if !mine.isEmpty {
        shard = world.isRoot && showProgress ? try withProgress(count: mine.count, log: log) { try body(mine, $0) } : try body(mine, nil)
    }
    guard world.size > 1 else { return shard }
    let pixels = imageShape.reduce(1, *)
    let values = shard.map { $0.cast(to: .float32).scalars(as: Float.self) } ?? []
    precondition(values.count == mine.count * pixels, "shardedSampling: a shard of \(mine.count) images has \(values.count) values")
    guard let images = try gatherShares(values, shares: shards, valuesPerItem: pixels, world: world) else { return nil }
    return Tensor(images, shape: [count] + imageShape)
}

/// Every rank's `values` (its share `shares[rank]` of the items, `valuesPerItem` values each)
/// gathered to rank 0 in rank order, which is index order for contiguous shares; nil on the other
/// ranks. `MPI_Gather` sends the same count from every rank, so each pads its share to the largest.
func gatherShares<T: DistributedElement & Numeric>(_ values: [T], shares: [Range<Int>], valuesPerItem: Int,
                                                   world: Communicator) throws -> [T]? {
    let largest = (shares.map(\.count).max() ?? 0) * valuesPerItem
    guard let gathered = try world.gather(values + [T](repeating: 0, count: largest - values.count), root: 0) else { return nil }
    var all: [T] = []
    all.reserveCapacity(shares.reduce(0) { $0 + $1.count } * valuesPerItem)
    for (r, share) in shares.enumerated() { all += gathered[(r * largest)..<(r * largest + share.count * valuesPerItem)] }
    return all
}

/// Runs `command` as a `DistributedCommand` on `world`: binds the rank to its share of the cores,
/// prints `ranks: N` (rank 0), runs it, and finalizes; an error is printed with the rank and aborts
/// every rank.
func runDistributed(_ command: inout ParsableCommand, world: Communicator, _ run: (inout ParsableCommand) throws -> Void) throws {
    do {
        if let cores = LocalCores.share() { try LocalCores.bind(cores) }
        if world.isRoot { FileHandle.standardError.write(Data("ranks: \(world.size)\n".utf8)) }
        if world.size > 1 { TrainingLoop.worldReplicas = MPIReplicas(world) }
        try run(&command)
    } catch is ReplicaFinished {
        // A training rank other than 0, done: rank 0 reports.
    } catch let error as TrainingError where error.isInterruption {
        // Every rank stopped at the same step on the signal; rank 0 saved and reports it.
        if world.isRoot { FileHandle.standardError.write(Data("Error: \(Generative.message(for: error))\n".utf8)) }
        try world.finalize()
        exit(error.exitStatus)
    } catch {
        FileHandle.standardError.write(Data("Error: rank \(world.rank) of \(world.size): \(Generative.message(for: error))\n".utf8))
        world.abort(code: 1)
    }
    try world.finalize()
}

/// The ranks of `mpirun` as data-parallel training replicas: sums and maxima by `MPI_Allreduce`.
final class MPIReplicas: ReplicaGroup {
    let world: Communicator
    init(_ world: Communicator) { self.world = world }
    var rank: Int { world.rank }
    var size: Int { world.size }
    func sum(_ values: inout [Float]) throws { try world.allreduceSum(&values) }
    func sum(_ values: inout [Double]) throws { try world.allreduceSum(&values) }
    func maximum(_ values: inout [Double]) throws { try world.allreduceMax(&values) }
}
