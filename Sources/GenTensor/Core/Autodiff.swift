/// Reverse-mode automatic differentiation.
///
/// Every primitive op that produces a tensor from inputs that track gradients attaches a `GradNode`
/// holding its inputs and its vector-Jacobian product (VJP). Each VJP is written in differentiable
/// tensor ops, so running the backward pass with `createGraph: true` records a graph of its own and
/// gives second-order gradients (the WGAN-GP penalty needs them) with no special cases.

/// Whether ops record gradient history. Recording is on by default; `withoutGradients` turns it off
/// for a scope (sampling, evaluation, optimizer updates). A task-local value: each task (and each
/// test) has its own, and a scope ends with its closure.
public enum GradMode {
    @TaskLocal private static var disabled = false

    /// Whether ops record gradient history in the calling task.
    @inline(__always)
    public static var isEnabled: Bool { !disabled }

    /// Runs `body` with recording set to `enabled`; the previous setting holds again afterwards.
    public static func with<R>(enabled: Bool, _ body: () throws -> R) rethrows -> R {
        try $disabled.withValue(!enabled, operation: body)
    }
}

/// Runs `body` without recording gradient history (PyTorch's `torch.no_grad()`).
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.with(enabled: false, body)
}

/// One recorded operation: its inputs and its vector-Jacobian product.
final class GradNode {
    /// The op's name, for error messages.
    let name: String
    /// The op's tensor inputs, in the order the VJP returns their gradients.
    let inputs: [Tensor]
    /// Given the gradient of the output and which inputs need a gradient, returns each input's
    /// gradient (nil where not needed or identically zero).
    let vjp: (Tensor, [Bool]) -> [Tensor?]

    init(name: String, inputs: [Tensor], vjp: @escaping (Tensor, [Bool]) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.vjp = vjp
    }
}

extension Tensor {
    /// Attaches a gradient node to `self` (a freshly computed op output) when recording is on and any
    /// input tracks gradients. The VJP must not capture `self` strongly (use `[unowned out]`).
    @discardableResult
    func recording(_ name: String, _ inputs: [Tensor], vjp: @escaping (Tensor, [Bool]) -> [Tensor?]) -> Tensor {
        if GradMode.isEnabled && dtype.isFloatingPoint && inputs.contains(where: { $0.tracksGradient }) {
            node = GradNode(name: name, inputs: inputs, vjp: vjp)
        }
        if AnomalyDetection.isEnabled { AnomalyDetection.checkForward(name, output: self, inputs: inputs) }
        return self
    }
}

/// Gradients of the scalar `output` with respect to each tensor of `inputs`.
///
/// - Parameters:
///   - output: a one-element tensor (a loss), or any tensor when `seed` is given.
///   - inputs: the tensors to differentiate with respect to; each must track gradients.
///   - seed: the gradient of some scalar with respect to `output` (ones by default).
///   - createGraph: record the backward pass itself, so the returned gradients can be
///     differentiated again (second-order gradients).
/// - Returns: one gradient per input, shaped like it; zeros where `output` does not depend on it.
public func gradients(of output: Tensor, wrt inputs: [Tensor], seed: Tensor? = nil, createGraph: Bool = false) -> [Tensor] {
    precondition(output.tracksGradient,
                 "gradients: the output has no gradient history (computed under withoutGradients, or from inputs that do not require gradients)")
    precondition(seed != nil || output.elementCount == 1,
                 "gradients: output of shape \(output.shape) is not a scalar; pass a seed")
    for x in inputs {
        precondition(x.tracksGradient, "gradients: an input of shape \(x.shape) does not track gradients")
    }
    // Topological order of the tensors reachable from `output` (iterative DFS: graphs are deep).
    var order: [Tensor] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(Tensor, Int)] = [(output, 0)]
    visited.insert(ObjectIdentifier(output))
    while let (t, next) = stack.popLast() {
        let ins = t.node?.inputs ?? []
        if next < ins.count {
            stack.append((t, next + 1))
            let child = ins[next]
            if child.tracksGradient && visited.insert(ObjectIdentifier(child)).inserted {
                stack.append((child, 0))
            }
        } else {
            order.append(t)
        }
    }
    let wanted = Set(inputs.map { ObjectIdentifier($0) })
    // Only tensors on a path to a wanted input need gradients (e.g. a GAN's generator step does not
    // compute the discriminator's weight gradients). `order` lists inputs before their users.
    var onPath = Set<ObjectIdentifier>()
    for t in order {
        let id = ObjectIdentifier(t)
        if wanted.contains(id) || (t.node?.inputs.contains { onPath.contains(ObjectIdentifier($0)) } ?? false) {
            onPath.insert(id)
        }
    }
    return GradMode.with(enabled: createGraph) {
        var grads: [ObjectIdentifier: Tensor] = [:]
        grads[ObjectIdentifier(output)] = seed ?? Tensor.ones(output.shape, dtype: output.dtype)
        var results: [ObjectIdentifier: Tensor] = [:]
        for t in order.reversed() {
            let id = ObjectIdentifier(t)
            guard let g = grads.removeValue(forKey: id) else { continue }
            if wanted.contains(id) { results[id] = g }
            guard let node = t.node else { continue }
            let needs = node.inputs.map { onPath.contains(ObjectIdentifier($0)) }
            if !needs.contains(true) { continue }
            let inputGrads = AnomalyDetection.isEnabled
                ? AnomalyDetection.backward(node.name, upstream: g) { node.vjp(g, needs) }
                : node.vjp(g, needs)
            for (input, ig) in zip(node.inputs, inputGrads) {
                guard let ig, onPath.contains(ObjectIdentifier(input)) else { continue }
                precondition(ig.shape == input.shape,
                             "\(node.name) backward: gradient shape \(ig.shape) differs from input shape \(input.shape)")
                let iid = ObjectIdentifier(input)
                if let existing = grads[iid] {
                    grads[iid] = existing + ig
                } else {
                    grads[iid] = ig
                }
            }
        }
        return inputs.map { results[ObjectIdentifier($0)] ?? Tensor.zeros($0.shape, dtype: $0.dtype) }
    }
}
