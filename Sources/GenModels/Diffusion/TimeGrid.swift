import Foundation
import GenTensor
import GenFormats
import GenNN

/// The times a sampler visits: t_0 > t_1 > ... > t_S in [0, 1]. Step k calls the denoiser at t_k and
/// moves the sample to t_{k+1}, so a grid of S + 1 times makes S denoiser calls; a grid that ends at 0
/// ends on the clean data.
public struct TimeGrid: Sendable, Equatable {
    /// t_0 ... t_S, strictly decreasing, each in [0, 1].
    public let times: [Double]

    public init(_ times: [Double]) {
        precondition(times.count >= 2, "TimeGrid: need at least two times (one step), got \(times)")
        precondition(zip(times, times.dropFirst()).allSatisfy { $0 > $1 } && times.first! <= 1 && times.last! >= 0,
                     "TimeGrid: times must decrease strictly within [0, 1], got \(times)")
        self.times = times
    }

    /// S, the number of steps (denoiser calls).
    public var steps: Int { times.count - 1 }

    /// The grid of DDPM's table at the given indices (noisiest first), ending at t = 0.
    public static func discrete(_ process: DiscreteDDPMProcess, indices: [Int]) -> TimeGrid {
        TimeGrid(indices.map(process.time(ofIndex:)) + [0])
    }

    /// S times evenly spaced from `start` down to `end`, then t = 0 (the last step lands on the clean data).
    public static func uniform(steps: Int, start: Double = 1, end: Double) -> TimeGrid {
        precondition(steps >= 1, "TimeGrid.uniform: steps must be at least 1, got \(steps)")
        precondition(end > 0 && end < start && start <= 1, "TimeGrid.uniform: need 0 < end < start <= 1, got \(end), \(start)")
        let times = steps == 1 ? [start] : (0..<steps).map { start - (start - end) * Double($0) / Double(steps - 1) }
        return TimeGrid(times + [0])
    }

    /// `uniform(steps:start:end:)` over a continuous process's own time range.
    public static func uniform(steps: Int, on process: any NoiseProcess) -> TimeGrid {
        uniform(steps: steps, start: process.maximumTime, end: max(process.minimumTime, 1e-5))
    }

    /// The usual grid of S steps on a process: DDIM's spaced subsequence of a discrete table
    /// (`ddimTimesteps`), or `uniform(steps:end:)` down to the process's minimum time.
    public static func spaced(_ process: any NoiseProcess, steps: Int, spacing: TimestepSpacing) -> TimeGrid {
        if let table = process as? DiscreteDDPMProcess {
            return .discrete(table, indices: ddimTimesteps(steps: steps, trainingSteps: table.steps, spacing: spacing))
        }
        return .uniform(steps: steps, on: process)
    }
}
