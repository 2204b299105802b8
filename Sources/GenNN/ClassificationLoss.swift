import GenTensor
import GenFormats
/// Classification losses with PyTorch's semantics, written in differentiable ops.

/// Cross-entropy of class logits against integer labels (PyTorch's `F.cross_entropy` without
/// weights or label smoothing): -log softmax(logits)[label], reduced over the batch.
///
/// Stable for any logit scale: the log-softmax is x - logsumexp(x) (the max is subtracted inside
/// logsumexp), so no positive number is exponentiated and the log of a tiny probability is never
/// taken. The gradient with respect to the logits is (softmax(x) - onehot(y)) / N for `.mean`.
///
/// - Parameters:
///   - logits: (N, C) float.
///   - labels: (N) int64 class indices in 0..<C.
///   - reduction: `.mean` (the default, over the N examples) or `.sum`.
/// - Returns: a rank-0 tensor.
public func crossEntropy(_ logits: Tensor, _ labels: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(logits.rank == 2, "crossEntropy: logits must be (N, C), got \(logits.shape)")
    precondition(labels.dtype == .int64 && labels.shape == [logits.shape[0]],
                 "crossEntropy: labels must be int64 (\(logits.shape[0])), got \(labels.dtype) \(labels.shape)")
    let (n, c) = (logits.shape[0], logits.shape[1])
    let y = labels.scalars(as: Int64.self)
    var indices = [Int](repeating: 0, count: n)
    for i in 0..<n {
        let label = Int(y[i])
        precondition(label >= 0 && label < c, "crossEntropy: label \(label) of example \(i) is outside 0..<\(c)")
        indices[i] = i * c + label
    }
    let picked = Tensor.gatherFlat(logits.logSoftmax(axis: -1), indices: indices, shape: [n])
    switch reduction {
    case .mean: return -picked.mean()
    case .sum: return -picked.sum()
    }
}

/// How many rows of `logits` (N, C) have their largest entry at `labels` (N, int64); ties go to the
/// first maximum, as `argmax` does.
public func correctPredictions(_ logits: Tensor, _ labels: Tensor) -> Int {
    precondition(logits.rank == 2 && labels.shape == [logits.shape[0]],
                 "correctPredictions: logits \(logits.shape) and labels \(labels.shape)")
    let (n, c) = (logits.shape[0], logits.shape[1])
    let v = logits.doubleScalars(), y = labels.scalars(as: Int64.self)
    var correct = 0
    for i in 0..<n {
        var best = 0
        for j in 1..<max(c, 1) where v[i * c + j] > v[i * c + best] { best = j }
        if Int64(best) == y[i] { correct += 1 }
    }
    return correct
}
