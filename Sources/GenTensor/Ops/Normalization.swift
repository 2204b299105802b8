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

    /// Batch normalisation with batch statistics, over every axis but the last (channels-last),
    /// optionally followed by an activation in the same pass.
    ///
    /// One kernel forward and one backward; when the backward pass is itself recorded
    /// (`createGraph`), the VJP is written in differentiable ops instead, for second-order gradients.
    ///
    /// - Parameters:
    ///   - x: (N, ..., C).
    ///   - weight, bias: (C), or nil for no affine transform.
    ///   - activation: applied to the normalised, affine-transformed values.
    /// - Returns: the output, and the batch mean and *unbiased* variance (C), detached, for the
    ///   caller's running statistics (PyTorch updates them with the unbiased variance).
    public static func batchNormTraining(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Double = 1e-5,
                                         activation: NormActivation = .none)
        -> (output: Tensor, mean: Tensor, unbiasedVariance: Tensor) {
        let geometry = batchNormGeometry(x, weight, bias, eps, activation, "batchNormTraining")
        let c = geometry.channels
        let out = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
        let stats = Tensor(uninitializedShape: [3, c], dtype: .float64)  // mean, 1 / std, unbiased variance
        Backend.current.batchNormForward(geometry, x: x, weight: weight, bias: bias, output: out, statistics: stats)
        // The VJP reads the output's values (the activation's slope), through a second handle on its
        // storage: capturing `out` itself would make a cycle through its own graph node.
        let outValues = out.detached()
        let y = out.recordingNormalization("batchNorm", x, weight, bias,
                                           composite: { batchNormCompositeVJP($0, x, outValues, weight, bias, geometry) },
                                           fast: { batchNormFastVJP($0, x, outValues, weight, stats, geometry) })
        let mean = stats.sliced(axis: 0, 0..<1).reshaped([c]).cast(to: x.dtype)
        let unbiased = stats.sliced(axis: 0, 2..<3).reshaped([c]).cast(to: x.dtype)
        return (y, mean, unbiased)
    }

    /// Batch normalisation with given (running) statistics, over every axis but the last, optionally
    /// followed by an activation. One pass when no gradient is recorded; differentiable ops otherwise.
    public static func batchNormInference(_ x: Tensor, weight: Tensor?, bias: Tensor?, mean: Tensor, variance: Tensor,
                                          eps: Double = 1e-5, activation: NormActivation = .none) -> Tensor {
        let records = GradMode.isEnabled && ([x, mean, variance] + [weight, bias].compactMap { $0 }).contains { $0.tracksGradient }
        if records {
            var y = (x - mean) / (variance + eps).sqrt()
            if let weight { y = y * weight }
            if let bias { y = y + bias }
            return y.activated(activation)
        }
        let geometry = batchNormGeometry(x, weight, bias, eps, activation, "batchNormInference")
        for s in [mean, variance] {
            precondition(s.shape == [geometry.channels] && s.dtype == x.dtype,
                         "batchNormInference: statistics must be (\(geometry.channels)) \(x.dtype), got \(s.shape) \(s.dtype)")
        }
        let out = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
        Backend.current.batchNormInference(geometry, x: x, weight: weight, bias: bias, mean: mean, variance: variance,
                                           output: out)
        return out
    }

    /// The activation op for `activation` applied to this tensor (itself for `.none`).
    public func activated(_ activation: NormActivation) -> Tensor {
        switch activation {
        case .none: return self
        case .relu: return relu()
        case .leakyRelu(let slope): return leakyRelu(slope)
        }
    }

    private static func batchNormGeometry(_ x: Tensor, _ weight: Tensor?, _ bias: Tensor?, _ eps: Double,
                                          _ activation: NormActivation, _ name: String) -> BatchNormGeometry {
        precondition(x.rank >= 2, "\(name): input must be (N, ..., C), got \(x.shape)")
        x.checkFloat(name)
        let c = x.shape[x.rank - 1]
        checkNormParameters(x, weight, bias, channels: c, name)
        if case .leakyRelu(let slope) = activation {
            precondition(slope >= 0 && slope < 1, "\(name): LeakyReLU slope \(slope) outside [0, 1)")
        }
        return BatchNormGeometry(rows: x.elementCount / Swift.max(c, 1), channels: c, eps: eps, activation: activation)
    }

    /// The backward pass in one kernel (first-order gradients).
    private static func batchNormFastVJP(_ g: Tensor, _ x: Tensor, _ y: Tensor, _ weight: Tensor?, _ stats: Tensor,
                                         _ geometry: BatchNormGeometry) -> (Tensor?, Tensor?, Tensor?) {
        let dx = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
        let dw = Tensor(uninitializedShape: [geometry.channels], dtype: x.dtype)
        let db = Tensor(uninitializedShape: [geometry.channels], dtype: x.dtype)
        Backend.current.batchNormBackward(geometry, gradOutput: g, x: x, output: y, weight: weight, statistics: stats,
                                          gradInput: dx, gradWeight: dw, gradBias: db)
        return (dx, dw, db)
    }

    /// The backward pass in differentiable ops, recomputing the statistics from x, so that it can be
    /// differentiated again. The activation's slope is piecewise constant: a mask from the output.
    private static func batchNormCompositeVJP(_ g: Tensor, _ x: Tensor, _ y: Tensor, _ weight: Tensor?, _ bias: Tensor?,
                                              _ geometry: BatchNormGeometry) -> (Tensor?, Tensor?, Tensor?) {
        let axes = Array(0..<(x.rank - 1))
        let centered = x - x.mean(axes: axes, keepDims: true)
        let rstd = 1 / (centered.square().mean(axes: axes, keepDims: true) + geometry.eps).sqrt()
        let xhat = centered * rstd
        var dz = g
        if geometry.activation != .none {
            // The activation's slope where the output (equivalently z) is positive or not: a constant.
            dz = g * Tensor.zipRaw(.leakySlope, y, y.scalarLike(geometry.activation.negativeSlope), "batchNorm")
        }
        let dw = weight.map { (dz * xhat).sumToShape($0.shape) }
        let db = bias.map { dz.sumToShape($0.shape) }
        let dxhat = weight.map { dz * $0 } ?? dz
        let dx = rstd * (dxhat - dxhat.mean(axes: axes, keepDims: true)
                         - xhat * (dxhat * xhat).mean(axes: axes, keepDims: true))
        return (dx, dw, db)
    }

    /// Group normalisation over channels-last input (N, ..., C): each sample's channels are split into
    /// `groups` groups, each normalised to zero mean and unit variance over its channels and all spatial
    /// positions, then scaled by `weight` and shifted by `bias` (both (C), optional). With
    /// `silu: true` the result goes through x * sigmoid(x) in the same pass (GroupNorm + SiLU, the
    /// U-Net's pre-activation).
    ///
    /// One kernel forward and one backward; when the backward pass is itself recorded
    /// (`createGraph`), the VJP is written in differentiable ops instead, for second-order gradients.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Double = 1e-5,
                                 silu: Bool = false) -> Tensor {
        precondition(x.rank >= 2, "groupNorm: input must be (N, ..., C), got \(x.shape)")
        x.checkFloat("groupNorm")
        let n = x.shape[0], c = x.shape[x.rank - 1]
        precondition(c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
        checkNormParameters(x, weight, bias, channels: c, "groupNorm")
        let geometry = GroupNormGeometry(batch: n, spatial: x.elementCount / Swift.max(n * c, 1), channels: c,
                                         groups: groups, eps: eps, silu: silu)
        let out = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
        let stats = Tensor(uninitializedShape: [n, groups, 2], dtype: .float64)  // mean, 1 / std
        Backend.current.groupNormForward(geometry, x: x, weight: weight, bias: bias, output: out, statistics: stats)
        return out.recordingNormalization(silu ? "groupNormSiLU" : "groupNorm", x, weight, bias,
                                          composite: { groupNormCompositeVJP($0, x, weight, bias, geometry) },
                                          fast: { groupNormFastVJP($0, x, weight, bias, stats, geometry) })
    }

    /// Records a fused normalisation's VJP: `composite` (differentiable ops, for second-order
    /// gradients) when the backward pass is itself recorded, `fast` (one kernel) otherwise. Both
    /// give the gradients of x, weight and bias; those of absent parameters are dropped.
    private func recordingNormalization(_ name: String, _ x: Tensor, _ weight: Tensor?, _ bias: Tensor?,
                                        composite: @escaping (Tensor) -> (Tensor?, Tensor?, Tensor?),
                                        fast: @escaping (Tensor) -> (Tensor?, Tensor?, Tensor?)) -> Tensor {
        recording(name, [x] + [weight, bias].compactMap { $0 }) { g, _ in
            let grads = GradMode.isEnabled ? composite(g) : fast(g)
            return [grads.0] + (weight == nil ? [] : [grads.1]) + (bias == nil ? [] : [grads.2])
        }
    }

    /// Checks that a normalisation's optional weight and bias are (C) tensors of x's dtype.
    private static func checkNormParameters(_ x: Tensor, _ weight: Tensor?, _ bias: Tensor?, channels c: Int, _ name: String) {
        for p in [weight, bias].compactMap({ $0 }) {
            precondition(p.shape == [c] && p.dtype == x.dtype, "\(name): weight and bias must be (\(c)) \(x.dtype), got \(p.shape) \(p.dtype)")
        }
    }

    /// The backward pass in one kernel (first-order gradients).
    private static func groupNormFastVJP(_ g: Tensor, _ x: Tensor, _ weight: Tensor?, _ bias: Tensor?, _ stats: Tensor,
                                         _ geometry: GroupNormGeometry) -> (Tensor?, Tensor?, Tensor?) {
        let dx = Tensor(uninitializedShape: x.shape, dtype: x.dtype)
        let dw = Tensor(uninitializedShape: [geometry.channels], dtype: x.dtype)
        let db = Tensor(uninitializedShape: [geometry.channels], dtype: x.dtype)
        Backend.current.groupNormBackward(geometry, gradOutput: g, x: x, weight: weight, bias: bias, statistics: stats,
                                          gradInput: dx, gradWeight: dw, gradBias: db)
        return (dx, dw, db)
    }

    /// The backward pass in differentiable ops, recomputing the statistics from x, so that it can be
    /// differentiated again.
    private static func groupNormCompositeVJP(_ g: Tensor, _ x: Tensor, _ weight: Tensor?, _ bias: Tensor?,
                                              _ geometry: GroupNormGeometry) -> (Tensor?, Tensor?, Tensor?) {
        let grouped = [geometry.batch, geometry.spatial, geometry.groups, geometry.channels / geometry.groups]
        let xg = x.reshaped(grouped)
        let centered = xg - xg.mean(axes: [1, 3], keepDims: true)
        let rstd = 1 / (centered.square().mean(axes: [1, 3], keepDims: true) + geometry.eps).sqrt()
        let xhat = (centered * rstd).reshaped(x.shape)
        var dz = g
        if geometry.silu {
            var z = xhat
            if let weight { z = z * weight }
            if let bias { z = z + bias }
            let s = z.sigmoid()
            dz = g * (s * (1 + z * (1 - s)))
        }
        let dw = weight.map { (dz * xhat).sumToShape($0.shape) }
        let db = bias.map { dz.sumToShape($0.shape) }
        let dxhat = (weight.map { dz * $0 } ?? dz).reshaped(grouped)
        let xhatg = xhat.reshaped(grouped)
        let dx = rstd * (dxhat - dxhat.mean(axes: [1, 3], keepDims: true)
                         - xhatg * (dxhat * xhatg).mean(axes: [1, 3], keepDims: true))
        return (dx.reshaped(x.shape), dw, db)
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
