/// `--detect-anomaly` (PyTorch's `torch.autograd.set_detect_anomaly`): finds the first op whose
/// forward output, or whose backward gradient, holds NaN or infinity while what it was computed from
/// is finite. Every op output and gradient is scanned, so it is off by default and meant for
/// diagnosing a run that diverged.
public enum AnomalyDetection {
    /// Whether ops are checked.
    nonisolated(unsafe) public static var isEnabled = false
    /// The first anomaly since `reset`: "forward of OP" or "backward of OP", with the value.
    nonisolated(unsafe) public private(set) static var first: String?

    /// Forgets the anomaly found so far.
    public static func reset() { first = nil }

    /// Runs `body` with detection on, restoring the previous setting.
    public static func with<R>(_ body: () throws -> R) rethrows -> R {
        let saved = isEnabled
        isEnabled = true
        defer { isEnabled = saved }
        return try body()
    }

    /// Inside a VJP: its ops are part of that op's backward pass, not forward ops of their own.
    nonisolated(unsafe) static var insideBackward = false

    /// Runs an op's VJP, then records its backward pass when an input gradient is non-finite and
    /// the gradient it came from is finite.
    static func backward(_ name: String, upstream: Tensor, _ vjp: () -> [Tensor?]) -> [Tensor?] {
        let saved = insideBackward
        insideBackward = true
        let gradients = vjp()
        insideBackward = saved
        checkBackward(name, gradients: gradients, upstream: upstream)
        return gradients
    }

    /// Records `name`'s forward pass when `output` is non-finite and its inputs are finite.
    static func checkForward(_ name: String, output: Tensor, inputs: [Tensor]) {
        guard first == nil, !insideBackward, let bad = firstNonFinite(output), inputs.allSatisfy({ firstNonFinite($0) == nil }) else { return }
        first = "forward of \(name) (\(bad))"
    }

    /// Records `name`'s backward pass when an input gradient is non-finite and the gradient it came from is finite.
    static func checkBackward(_ name: String, gradients: [Tensor?], upstream: Tensor) {
        guard first == nil else { return }
        for gradient in gradients.compactMap({ $0 }) {
            if let bad = firstNonFinite(gradient), firstNonFinite(upstream) == nil {
                first = "backward of \(name) (\(bad))"
                return
            }
        }
    }

    /// The first non-finite value of a floating-point tensor, as text ("nan", "inf", "-inf").
    static func firstNonFinite(_ t: Tensor) -> String? {
        func text(_ v: Double) -> String { v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        switch t.dtype {
        case .float32:
            let p = t.floatPointer
            for i in 0..<t.elementCount where !p[i].isFinite { return text(Double(p[i])) }
        case .float64:
            let p = t.doublePointer
            for i in 0..<t.elementCount where !p[i].isFinite { return text(p[i]) }
        default:
            break
        }
        return nil
    }
}
