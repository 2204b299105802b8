import Foundation
import GenTensor
import GenFormats
import GenNN

/// Where a sampler's Gaussian noise comes from: the starting x_T and the fresh noise z of each step,
/// for the images of a batch named by their index in the run.
///
/// Keying the noise by (image index, step) instead of drawing it from one stream in batch order is
/// what makes image i of a run the same whatever the batch size or image count (k-diffusion's #25,
/// diffusers' #6233 show what goes wrong without it).
public protocol NoiseSource {
    /// x_T ~ N(0, I) for the images `indices`: (indices.count, imageShape...).
    func initialNoise(indices: [Int], imageShape: [Int]) -> Tensor
    /// z ~ N(0, I) added by the step that leaves timestep `t` (0-based), for the images `indices`:
    /// (indices.count, imageShape...).
    func stepNoise(t: Int, indices: [Int], imageShape: [Int]) -> Tensor
}

/// Noise keyed by (seed, image index, step) on the counter-based `RandomGenerator`.
///
/// Image i's noise for key k (0 for x_T, t + 1 for the step leaving timestep t) is the stream
/// `RandomGenerator(seed: h(h(seed, i), k))`, h being one SplitMix64 draw (`RandomGenerator(seed: a,
/// counter: b).next()`), read as `elementCount(imageShape)` standard normals in the image's
/// channels-last element order. No stream depends on another image or on the batch, so any subset of
/// images, in any batches, gets the same numbers.
public struct SeededNoise: NoiseSource, Sendable, Equatable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The generator of image `index`'s noise for `key` (0 for x_T, t + 1 for step t).
    public func generator(index: Int, key: UInt64) -> RandomGenerator {
        precondition(index >= 0, "SeededNoise: negative image index \(index)")
        let imageSeed = RandomGenerator(seed: seed, counter: UInt64(index)).next()
        return RandomGenerator(seed: RandomGenerator(seed: imageSeed, counter: key).next())
    }

    public func initialNoise(indices: [Int], imageShape: [Int]) -> Tensor {
        draw(key: 0, indices: indices, imageShape: imageShape)
    }

    public func stepNoise(t: Int, indices: [Int], imageShape: [Int]) -> Tensor {
        precondition(t >= 0, "SeededNoise: negative timestep \(t)")
        return draw(key: UInt64(t) + 1, indices: indices, imageShape: imageShape)
    }

    func draw(key: UInt64, indices: [Int], imageShape: [Int]) -> Tensor {
        let n = imageShape.reduce(1, *)
        var values: [Float] = []
        values.reserveCapacity(indices.count * n)
        for index in indices {
            let g = generator(index: index, key: key)
            for _ in 0..<n { values.append(Float(g.nextNormal())) }
        }
        return Tensor(values, shape: [indices.count] + imageShape)
    }
}

/// Noise handed over explicitly, as the parity fixtures do (`xT` and `ddpm_z`).
///
/// - `initial`: x_T for every image of the run, (N, imageShape...);
/// - `steps`: z for every timestep, (T, N, imageShape...), `steps[t]` being the noise of the step
///   leaving t; nil for a deterministic sampler (DDIM with eta 0), which never asks for it.
public struct ExplicitNoise: NoiseSource {
    public let initial: Tensor
    public let steps: Tensor?

    public init(initial: Tensor, steps: Tensor? = nil) {
        precondition(initial.rank >= 2, "ExplicitNoise: initial noise must be (N, ...), got \(initial.shape)")
        if let steps {
            precondition(steps.rank == initial.rank + 1 && Array(steps.shape.dropFirst()) == initial.shape,
                         "ExplicitNoise: step noise \(steps.shape) must be (T) + \(initial.shape)")
        }
        self.initial = initial
        self.steps = steps
    }

    public func initialNoise(indices: [Int], imageShape: [Int]) -> Tensor {
        precondition(Array(initial.shape.dropFirst()) == imageShape,
                     "ExplicitNoise: images are \(Array(initial.shape.dropFirst())), the sampler asks for \(imageShape)")
        return initial.rows(indices)
    }

    public func stepNoise(t: Int, indices: [Int], imageShape: [Int]) -> Tensor {
        guard let steps else {
            preconditionFailure("ExplicitNoise: the sampler asks for step noise at t = \(t), but none was given")
        }
        precondition(t >= 0 && t < steps.shape[0], "ExplicitNoise: no step noise for t = \(t) (have \(steps.shape[0]))")
        precondition(Array(initial.shape.dropFirst()) == imageShape,
                     "ExplicitNoise: images are \(Array(initial.shape.dropFirst())), the sampler asks for \(imageShape)")
        return steps.sliced(axis: 0, t..<(t + 1)).reshaped(initial.shape).rows(indices)
    }
}
