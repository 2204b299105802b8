import ArgumentParser
import Foundation
import GenDistributed

/// `generative distributed-check` (hidden): checks the Open MPI binding on every rank of
/// `scripts/mpirun -np N distributed-check`, or trivially in a plain process.
///
/// Rank 0 prints `ranks: N` on stderr, then every collective is run with rank-dependent inputs and
/// compared with its closed form: sums (Float through a buffer pointer, over 2^20 + 3 elements so
/// that MPI splits the message; Double; Int64), a maximum, broadcasts from rank 0 and from the last
/// rank, a variable-length byte broadcast, an allgather, a gather and a barrier. Rank 0 then prints
/// one summary line; the other ranks print nothing. Any mismatch is printed with its rank, rank 0
/// says on how many ranks, and the whole job ends with status 1 (`MPI_Abort`).
struct DistributedCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distributed-check",
        abstract: "Check the Open MPI binding's collectives on every rank (run under scripts/mpirun).",
        shouldDisplay: false)

    func run() throws {
        let world = try Communicator.current
        if world.isRoot { FileHandle.standardError.write(Data("ranks: \(world.size)\n".utf8)) }
        let failures: [String]
        do {
            failures = try Self.check(world)
        } catch {
            // A collective failed: the ranks' calls may no longer match, so end the job now.
            report(["\(error)"], world)
            world.abort(code: 1)
        }
        report(failures, world)
        // Every rank learns how many ranks failed, so rank 0 never reports success beside a failure.
        var failed: [Int64] = [failures.isEmpty ? 0 : 1]
        try world.allreduceSum(&failed)
        guard failed[0] == 0 else {
            if world.isRoot {
                FileHandle.standardError.write(Data("distributed-check: failed on \(failed[0]) of \(world.size) rank(s)\n".utf8))
            }
            // Rank 0 ends the job once every rank has printed (one MPI_Abort, not one per rank); the
            // others wait in a barrier that the abort ends.
            try world.barrier()
            if world.isRoot { world.abort(code: 1) }
            try world.barrier()
            world.abort(code: 1)
        }
        if world.isRoot {
            FileHandle.standardError.write(Data(
                "distributed-check: allreduce (sum, max), broadcast, allgather, gather and barrier agree on \(world.size) rank(s)\n".utf8))
        }
        try world.finalize()
    }

    private func report(_ failures: [String], _ world: Communicator) {
        let lines = failures.map { "distributed-check: rank \(world.rank) of \(world.size): \($0)\n" }.joined()
        FileHandle.standardError.write(Data(lines.utf8))
    }

    /// Runs every collective on `world` and returns what disagrees with the closed form (empty when
    /// all agree). Every rank makes the same calls in the same order.
    static func check(_ world: Communicator) throws -> [String] {
        let n = world.size, r = world.rank
        var failures: [String] = []
        func expect<T: BinaryFloatingPoint>(_ name: String, _ got: [T], _ want: (Int) -> T, tolerance: T) {
            for (i, g) in got.enumerated() {
                let w = want(i)
                if !(abs(g - w) <= tolerance * max(1, abs(w))) {
                    failures.append("\(name): element \(i) is \(g), expected \(w)")
                    return
                }
            }
        }
        func expectEqual<T: Equatable>(_ name: String, _ got: [T], _ want: [T]) {
            if got != want { failures.append("\(name): \(got.prefix(8)) differs from \(want.prefix(8))") }
        }
        let triangle = n * (n + 1) / 2  // sum over ranks of (r + 1)

        // Float sum in place on a buffer (a tensor's storage): x_i = (i mod 1024)(r + 1) + 1/4.
        let m = (1 << 20) + 3
        let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: m)
        defer { floats.deallocate() }
        for i in 0..<m { floats[i] = Float((i % 1024) * (r + 1)) + 0.25 }
        try world.allreduceSum(floats)
        expect("allreduceSum Float", Array(floats), { Float(($0 % 1024) * triangle) + 0.25 * Float(n) }, tolerance: 1e-6)

        // Double sum: x_i = i (r + 1) + 1/(r + 1), whose sum i N(N+1)/2 + H_N needs double precision.
        var doubles = (0..<1000).map { Double($0 * (r + 1)) + 1 / Double(r + 1) }
        try world.allreduceSum(&doubles)
        let harmonic = (1...n).reduce(0.0) { $0 + 1 / Double($1) }
        expect("allreduceSum Double", doubles, { Double($0 * triangle) + harmonic }, tolerance: 1e-12)

        // Int64 sum, beyond 32 bits.
        var integers: [Int64] = [Int64(r), Int64(r + 1) << 40]
        try world.allreduceSum(&integers)
        expectEqual("allreduceSum Int64", integers, [Int64(n * (n - 1) / 2), Int64(triangle) << 40])

        // Maximum.
        var maxima: [Double] = [Double(r), -Double(r)]
        try world.allreduceMax(&maxima)
        expectEqual("allreduceMax Double", maxima, [Double(n - 1), 0])

        // Broadcast from rank 0 (the others start from zeros) and from the last rank.
        let pattern = (0..<257).map { Float($0) * 0.5 + 3 }
        var broadcastFloats = r == 0 ? pattern : [Float](repeating: 0, count: pattern.count)
        try world.broadcast(&broadcastFloats, root: 0)
        expectEqual("broadcast Float from rank 0", broadcastFloats, pattern)
        var fromLast: [Int64] = [Int64(7 * r)]
        try world.broadcast(&fromLast, root: n - 1)
        expectEqual("broadcast Int64 from rank \(n - 1)", fromLast, [Int64(7 * (n - 1))])

        // Bytes of a length only the root knows.
        let message = Array("distributed-check over \(n) ranks".utf8)
        let received = try world.broadcast(bytes: r == 0 ? message : [], root: 0)
        expectEqual("broadcast bytes", received, message)

        // Allgather and gather, in rank order.
        let gathered = try world.allgather([Double(r), Double(r) * 0.5 + 1])
        expectEqual("allgather Double", gathered, (0..<n).flatMap { [Double($0), Double($0) * 0.5 + 1] })
        let atRoot = try world.gather([Int64(r * r)], root: 0)
        if r == 0 {
            expectEqual("gather Int64 to rank 0", atRoot ?? [], (0..<n).map { Int64($0 * $0) })
        } else if atRoot != nil {
            failures.append("gather Int64 to rank 0: rank \(r) received a result")
        }

        try world.barrier()
        return failures
    }
}
