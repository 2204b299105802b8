import Foundation
import GenDistributed
import GenTensor
import GenTrain
import GenEval

/// One workload's data-parallel training step, as `bench --distributed` prints it (rank 0).
struct DistributedStepResult: Encodable {
    var workload: String
    var phase = "train-distributed"
    var ranks: Int
    /// Threads per rank.
    var threads: Int
    /// The global batch, split over the ranks.
    var batch: Int
    var parameters: Int
    /// Medians over the timed steps.
    var msPerStep: Double
    var allreduceMs: Double
    var allreduceFraction: Double
    /// Bytes each rank passes to the collectives per step (gradients, buffers, losses, agreement).
    var bytesPerStep: Int
    var itemsPerS: Double
    var framework = "generative"

    enum CodingKeys: String, CodingKey {
        case workload, phase, ranks, threads, batch, parameters, framework
        case msPerStep = "ms_per_step", allreduceMs = "allreduce_ms", allreduceFraction = "allreduce_fraction"
        case bytesPerStep = "bytes_per_step", itemsPerS = "items_per_s"
    }
}

/// The ranks' allreduce of one large buffer, as `bench --distributed` prints it first on several ranks.
struct AllreduceResult: Encodable {
    var workload = "allreduce"
    var ranks: Int
    var bytes: Int
    /// Median of the timed calls.
    var ms: Double
    /// Bus bandwidth, as nccl-tests defines it for a ring: 2 (N - 1) / N bytes / time.
    var busGBPerS: Double

    enum CodingKeys: String, CodingKey {
        case workload, ranks, bytes, ms
        case busGBPerS = "bus_gb_per_s"
    }
}

extension Bench {
    /// Times `MPI_Allreduce` of 4 Mi floats (16 MiB) on the world, 2 warm-up calls then 9 timed.
    static func timeAllreduce(_ world: Communicator) throws -> AllreduceResult {
        var buffer = [Float](repeating: 1, count: 1 << 22)
        var times: [Double] = []
        for i in 0..<11 {
            try world.barrier()
            let start = Date()
            try world.allreduceSum(&buffer)
            if i >= 2 { times.append(Date().timeIntervalSince(start)) }
        }
        let t = times.sorted()[times.count / 2], bytes = 4 * buffer.count
        let n = Double(world.size)
        return AllreduceResult(ranks: world.size, bytes: bytes, ms: t * 1e3, busGBPerS: 2 * (n - 1) / n * Double(bytes) / t / 1e9)
    }

    /// Trains each selected workload for `maxSteps` steps on random images, split over the ranks
    /// (`TrainingLoop` with step timings; rank 0's checkpoint goes to a temporary folder), and
    /// reports the medians of the steps after the first two.
    func timeDistributedTraining(report: (any Encodable) -> Void) throws {
        let world = try Communicator.current
        if world.size > 1 {
            let allreduce = try Self.timeAllreduce(world)
            if world.isRoot { report(allreduce) }
        }
        let workloads = CommandRegistry.trainingWorkloads.filter { workload == nil || $0.name == workload }
        let progress = world.isRoot ? CountProgress("bench --distributed", total: workloads.count, unit: "workloads", log: logLine) : nil
        for (done, item) in workloads.enumerated() {
            progress?.update(done)
            let model = item.make()
            let batch = self.batch > 0 ? self.batch : item.batchSize
            var options = TrainingOptions(epochs: 1, batchSize: batch, learningRate: 1e-4, seed: 0)
            options.maxSteps = maxSteps
            options.logEvery = 0
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("generative-bench-\(getpid())-\(item.name)")
            defer { if world.isRoot { try? FileManager.default.removeItem(at: folder) } }
            let loop = TrainingLoop(model: model, options: options, run: RunDirectory(folder), config: [:])
            loop.log = { _ in }
            loop.recordsStepTimings = true
            let images = Tensor.uniform([batch * maxSteps, 28, 28, 1], generator: RandomGenerator(seed: 0xBE4C))
            do { try loop.train(images: images, labels: nil, resume: false) } catch is ReplicaFinished {}
            let timed = loop.stepTimings.dropFirst(2)
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            let step = median(timed.map(\.seconds)), allreduce = median(timed.map(\.collectiveSeconds))
            guard world.isRoot else { continue }
            let parameters = model.namedOptimizers.reduce(0) { $0 + $1.optimizer.parameters.reduce(0) { $0 + $1.value.elementCount } }
            report(DistributedStepResult(workload: item.name, ranks: world.size, threads: threads, batch: batch, parameters: parameters,
                                         msPerStep: step * 1e3, allreduceMs: allreduce * 1e3, allreduceFraction: allreduce / step,
                                         bytesPerStep: timed.last?.collectiveBytes ?? 0, itemsPerS: Double(batch) / step))
        }
        progress?.update(workloads.count)
    }
}
