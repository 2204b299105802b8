import GenTensor
import GenFormats
/// Batch normalisation over channels-last input (PyTorch's `nn.BatchNorm2d`, and `BatchNorm1d` on
/// (N, C) input): per-channel statistics over every axis but the last.
///
/// - Input and output: (N, H, W, C) or (N, C).
/// - Parameters: `weight` (ones), `bias` (zeros); buffers `running_mean` (zeros), `running_var`
///   (ones), `num_batches_tracked` (int64 0).
/// - Training mode normalises with the batch statistics and returns updated running statistics
///   through `update` explicitly (momentum 0.1, unbiased variance, as PyTorch); evaluation mode uses
///   the running statistics. The mode is an argument, never global state.
public final class BatchNorm: Module {
    public let weight: Parameter, bias: Parameter
    public let runningMean: Parameter, runningVar: Parameter, numBatchesTracked: Parameter
    public let eps: Double
    /// The running statistics' update weight (PyTorch's `momentum`); `recalibrate` changes it
    /// while it averages.
    public var momentum: Double

    public init(_ channels: Int, eps: Double = 1e-5, momentum: Double = 0.1) {
        weight = Parameter(Tensor.ones([channels]))
        bias = Parameter(Tensor.zeros([channels]))
        runningMean = Parameter(Tensor.zeros([channels]), trainable: false)
        runningVar = Parameter(Tensor.ones([channels]), trainable: false)
        numBatchesTracked = Parameter(Tensor.zeros([], dtype: .int64), trainable: false)
        self.eps = eps
        self.momentum = momentum
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight), ("bias", bias), ("running_mean", runningMean), ("running_var", runningVar),
         ("num_batches_tracked", numBatchesTracked)]
    }

    /// Normalises `x`, then applies `activation` in the same pass; in training mode also moves the
    /// running statistics toward the batch's.
    public func callAsFunction(_ x: Tensor, training: Bool, activation: NormActivation = .none) -> Tensor {
        guard training else {
            return Tensor.batchNormInference(x, weight: weight.value, bias: bias.value, mean: runningMean.value,
                                             variance: runningVar.value, eps: eps, activation: activation)
        }
        let (y, mean, variance) = Tensor.batchNormTraining(x, weight: weight.value, bias: bias.value, eps: eps,
                                                           activation: activation)
        withoutGradients {
            runningMean.assign(runningMean.value * (1 - momentum) + mean * momentum)
            runningVar.assign(runningVar.value * (1 - momentum) + variance * momentum)
            numBatchesTracked.assign(Tensor(scalar: Int64(numBatchesTracked.value.item) + 1))
        }
        return y
    }

    /// Re-estimates the running statistics of `norms` as the plain average of the batch statistics
    /// of `batches` training-mode forwards (`forward(i)` runs forward i without gradients), as
    /// `torch.optim.swa_utils.update_bn` does for averaged weights: an EMA or SWA model's weights
    /// are not the ones the raw model's running statistics were measured on.
    public static func recalibrate(_ norms: [BatchNorm], batches: Int, forward: (Int) -> Void) {
        precondition(batches >= 1, "BatchNorm.recalibrate: needs at least one batch")
        let saved = norms.map(\.momentum)
        defer { for (norm, m) in zip(norms, saved) { norm.momentum = m } }
        for i in 0..<batches {
            // Forward i weighs its statistics 1 / (i + 1): after it, the running values are the
            // mean over forwards 0...i (the first replaces whatever was there).
            for norm in norms { norm.momentum = 1 / Double(i + 1) }
            withoutGradients { forward(i) }
        }
    }
}

/// Group normalisation (PyTorch's `nn.GroupNorm`) over channels-last input.
///
/// - Input and output: (N, ..., C), C divisible by `groups`.
/// - Parameters: `weight` (ones), `bias` (zeros), shape (C). Same in training and evaluation.
public final class GroupNorm: Module {
    public let groups: Int, eps: Double
    public let weight: Parameter, bias: Parameter

    public init(groups: Int, channels: Int, eps: Double = 1e-5) {
        precondition(channels % groups == 0, "GroupNorm: \(channels) channels do not split into \(groups) groups")
        self.groups = groups
        self.eps = eps
        weight = Parameter(Tensor.ones([channels]))
        bias = Parameter(Tensor.zeros([channels]))
    }

    public var namedParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.groupNorm(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps)
    }

    /// silu(groupNorm(x)) in one fused pass (the pre-activation of the U-Net's residual blocks).
    public func withSiLU(_ x: Tensor) -> Tensor {
        Tensor.groupNorm(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps, silu: true)
    }
}

/// Layer normalisation over the last axis (PyTorch's `nn.LayerNorm(features)`).
///
/// - Input and output: (..., features). Parameters: `weight` (ones), `bias` (zeros), shape (features).
public final class LayerNorm: Module {
    public let eps: Double
    public let weight: Parameter, bias: Parameter

    public init(_ features: Int, eps: Double = 1e-5) {
        self.eps = eps
        weight = Parameter(Tensor.ones([features]))
        bias = Parameter(Tensor.zeros([features]))
    }

    public var namedParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.layerNorm(x, normalizedAxes: 1, weight: weight.value, bias: bias.value, eps: eps)
    }
}

/// A lookup table of learnable rows (PyTorch's `nn.Embedding`).
///
/// - Input: int64 indices of any shape. Output: indices.shape + [dim].
/// - Parameter: `weight` (count, dim), initialised N(0, 1) as PyTorch.
public final class Embedding: Module {
    public let weight: Parameter

    public init(_ count: Int, _ dim: Int, generator: RandomGenerator) {
        weight = Parameter(Tensor.normal([count, dim], generator: generator))
    }

    public var namedParameters: [(String, Parameter)] { [("weight", weight)] }

    public func callAsFunction(_ indices: Tensor) -> Tensor { Tensor.embedding(weight.value, indices: indices) }
}

/// Inverted dropout (PyTorch's `nn.Dropout`): active only when `training` is true.
public struct Dropout {
    public let probability: Double

    public init(_ probability: Double = 0.5) { self.probability = probability }

    public func callAsFunction(_ x: Tensor, training: Bool, generator: RandomGenerator) -> Tensor {
        training ? x.dropout(probability, generator: generator) : x
    }
}
