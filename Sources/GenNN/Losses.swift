import GenTensor
import GenFormats
/// Loss functions with PyTorch's semantics, written in differentiable ops (so they can be
/// differentiated twice, as the WGAN-GP penalty and gradient checks need).

/// How a per-element loss is reduced to a scalar (PyTorch's `reduction=` argument).
public enum Reduction: Sendable, Equatable {
    /// The sum over all elements.
    case sum
    /// The mean over all elements.
    case mean
}

/// `x` reduced to a rank-0 scalar by `reduction`.
private func reduce(_ x: Tensor, _ reduction: Reduction) -> Tensor {
    switch reduction {
    case .sum: return x.sum()
    case .mean: return x.mean()
    }
}

/// Binary cross-entropy on logits (PyTorch's `F.binary_cross_entropy_with_logits`), computed stably
/// as relu(x) - x y + log1p(exp(-|x|)), which never exponentiates a positive number.
///
/// The gradient with respect to the logits is sigmoid(x) - y everywhere, x = 0 included (PyTorch's
/// value there; a plain relu/abs composition would give -y at exactly 0, for example with a
/// zero-initialised output layer).
///
/// - Parameters:
///   - logits: any shape.
///   - targets: the same shape as `logits` (probabilities in [0, 1]); gradients flow to it too.
///   - reduction: `.sum` or `.mean` over all elements.
/// - Returns: a rank-0 tensor.
public func binaryCrossEntropyWithLogits(_ logits: Tensor, _ targets: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(logits.shape == targets.shape,
                 "binaryCrossEntropyWithLogits: logits \(logits.shape) and targets \(targets.shape) differ in shape")
    let zero = Tensor.zeros([], dtype: logits.dtype)
    // x < 0, as a mask; the subgradients at 0 are relu'(0) = 1 and |x|'(0) = 1, which sum to sigmoid(0).
    let negative = zero.greater(logits)
    let positivePart = Tensor.select(negative, zero, logits)
    let magnitude = Tensor.select(negative, -logits, logits)
    let perElement = positivePart - logits * targets + (-magnitude).exp().log1p()
    return reduce(perElement, reduction)
}

/// Mean squared error (PyTorch's `F.mse_loss`): the squared differences, summed or averaged.
///
/// - Parameters:
///   - prediction: any shape.
///   - target: the same shape as `prediction`.
///   - reduction: `.sum` or `.mean` over all elements.
/// - Returns: a rank-0 tensor.
public func meanSquaredError(_ prediction: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(prediction.shape == target.shape,
                 "meanSquaredError: prediction \(prediction.shape) and target \(target.shape) differ in shape")
    return reduce((prediction - target).square(), reduction)
}
