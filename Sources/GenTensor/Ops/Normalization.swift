/// Softmax family, normalisation and dropout, composed from differentiable primitives.
extension Tensor {
    /// exp(x) / sum(exp(x)) along `axis`.
    public func softmax(axis: Int = -1) -> Tensor {
        let m = max(axis: axis, keepDims: true).detached()
        let e = (self - m).exp()
        return e / e.sum(axis: axis, keepDims: true)
    }

    /// log(softmax(x)) along `axis`, computed stably.
    public func logSoftmax(axis: Int = -1) -> Tensor {
        self - logSumExp(axis: axis, keepDims: true)
    }

    /// Batch normalisation with batch statistics, over every axis but the last (channels-last).
    ///
    /// - Parameters:
    ///   - x: (N, ..., C).
    ///   - weight, bias: (C), or nil for no affine transform.
    /// - Returns: the output, and the batch mean and *unbiased* variance (C), detached, for the
    ///   caller's running statistics (PyTorch updates them with the unbiased variance).
    public static func batchNormTraining(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Double = 1e-5)
        -> (output: Tensor, mean: Tensor, unbiasedVariance: Tensor) {
        let axes = Array(0..<(x.rank - 1))
        let count = x.elementCount / Swift.max(x.shape[x.rank - 1], 1)
        let mean = x.mean(axes: axes, keepDims: true)
        let centered = x - mean
        let variance = centered.square().mean(axes: axes, keepDims: true)
        var y = centered / (variance + eps).sqrt()
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        let c = [x.shape[x.rank - 1]]
        let unbiased = variance.detached().reshaped(c) * (Double(count) / Double(Swift.max(count - 1, 1)))
        return (y, mean.detached().reshaped(c), unbiased)
    }

    /// Batch normalisation with given (running) statistics, over every axis but the last.
    public static func batchNormInference(_ x: Tensor, weight: Tensor?, bias: Tensor?, mean: Tensor, variance: Tensor,
                                          eps: Double = 1e-5) -> Tensor {
        var y = (x - mean) / (variance + eps).sqrt()
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        return y
    }

    /// Group normalisation of (N, ..., C): channels split into `groups` groups, each normalised over
    /// its channels and all spatial positions of one sample; then the per-channel affine transform.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Double = 1e-5) -> Tensor {
        precondition(x.rank >= 2, "groupNorm: input must be (N, ..., C), got \(x.shape)")
        let n = x.shape[0], c = x.shape[x.rank - 1]
        precondition(c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
        let spatial = x.elementCount / Swift.max(n * c, 1)
        let grouped = x.reshaped([n, spatial, groups, c / groups])
        let mean = grouped.mean(axes: [1, 3], keepDims: true)
        let centered = grouped - mean
        let variance = centered.square().mean(axes: [1, 3], keepDims: true)
        var y = (centered / (variance + eps).sqrt()).reshaped(x.shape)
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        return y
    }

    /// Layer normalisation over the last `normalizedAxes` axes, with an elementwise affine transform
    /// shaped like those axes.
    public static func layerNorm(_ x: Tensor, normalizedAxes: Int = 1, weight: Tensor?, bias: Tensor?, eps: Double = 1e-5) -> Tensor {
        let axes = Array((x.rank - normalizedAxes)..<x.rank)
        let mean = x.mean(axes: axes, keepDims: true)
        let centered = x - mean
        let variance = centered.square().mean(axes: axes, keepDims: true)
        var y = centered / (variance + eps).sqrt()
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        return y
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the rest by 1 / (1 - p).
    public func dropout(_ p: Double, generator: RandomGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout: probability \(p) outside [0, 1)")
        if p == 0 { return self }
        let keep = Tensor.uniform(shape, dtype: dtype, generator: generator).greater(p)
        return self * (keep / (1 - p))
    }
}
