/// `--detect-anomaly` (PyTorch's `torch.autograd.set_detect_anomaly`): finds the first op whose
/// forward output, or whose backward gradient, holds NaN or infinity while what it was computed from
/// is finite. Every op output and gradient is scanned, so it is off by default and meant for
/// diagnosing a run that diverged.
public enum AnomalyDetection {
    /// What one detection scope has found; a task-local value, so that scopes never leak into
    /// other tasks or tests.
    final class Log: @unchecked Sendable {
        var first: String?
        /// Inside a VJP: its ops are part of that op's backward pass, not forward ops of their own.
        var insideBackward = false
    }

    @TaskLocal static var log: Log?

    /// Whether ops are checked in the calling task.
    @inline(__always)
    public static var isEnabled: Bool { log != nil }

    /// The first anomaly found in the current scope: "forward of OP" or "backward of OP", with the
    /// value; nil outside a scope.
    public static var first: String? { log?.first }

    /// Runs `body` with detection on when `enabled` (a fresh scope: nothing found yet).
    public static func with<R>(enabled: Bool = true, _ body: () throws -> R) rethrows -> R {
        guard enabled else { return try body() }
        return try $log.withValue(Log(), operation: body)
    }

    /// Runs an op's VJP, then records its backward pass when an input gradient is non-finite and
    /// the gradient it came from is finite.
    static func backward(_ name: String, upstream: Tensor, _ vjp: () -> [Tensor?]) -> [Tensor?] {
        guard let log else { return vjp() }
        let saved = log.insideBackward
        log.insideBackward = true
        let gradients = vjp()
        log.insideBackward = saved
        checkBackward(name, gradients: gradients, upstream: upstream)
        return gradients
    }

    /// Records `name`'s forward pass when `output` is non-finite and its inputs are finite.
    static func checkForward(_ name: String, output: Tensor, inputs: [Tensor]) {
        guard let log, log.first == nil, !log.insideBackward, let bad = firstNonFinite(output),
              inputs.allSatisfy({ firstNonFinite($0) == nil }) else { return }
        log.first = "forward of \(name) (\(bad))"
    }

    /// Records `name`'s backward pass when an input gradient is non-finite and the gradient it came from is finite.
    static func checkBackward(_ name: String, gradients: [Tensor?], upstream: Tensor) {
        guard let log, log.first == nil else { return }
        for gradient in gradients.compactMap({ $0 }) {
            if let bad = firstNonFinite(gradient), firstNonFinite(upstream) == nil {
                log.first = "backward of \(name) (\(bad))"
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
