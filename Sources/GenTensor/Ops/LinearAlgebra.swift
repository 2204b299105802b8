/// Matrix products (2-D and batched) through the backend's GEMM.
extension Tensor {
    /// op(a) · op(b), where op transposes the last two axes when asked.
    ///
    /// Shapes: `a` (..., M, K), `b` (..., K, N) with equal leading (batch) axes, giving (..., M, N);
    /// or `a` (..., M, K) with a 2-D `b` (K, N), which folds a's batch axes into M.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank >= 2, got \(a.shape) and \(b.shape)")
        precondition(a.dtype == b.dtype && a.dtype.isFloatingPoint, "matmul: dtypes \(a.dtype) and \(b.dtype)")
        if b.rank == 2 && a.rank > 2 && !transposeA {
            let lead = Array(a.shape.dropLast())
            let flat = matmul(a.reshaped([-1, a.shape[a.rank - 1]]), b, transposeB: transposeB)
            return flat.reshaped(lead + [flat.shape[1]])
        }
        precondition(a.rank == b.rank && a.shape.dropLast(2) == b.shape.dropLast(2),
                     "matmul: batch axes of \(a.shape) and \(b.shape) differ")
        let r = a.rank
        let m = transposeA ? a.shape[r - 1] : a.shape[r - 2]
        let k = transposeA ? a.shape[r - 2] : a.shape[r - 1]
        let kb = transposeB ? b.shape[r - 1] : b.shape[r - 2]
        let n = transposeB ? b.shape[r - 2] : b.shape[r - 1]
        precondition(k == kb, "matmul: inner sizes differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batchShape = Array(a.shape.dropLast(2))
        let batch = batchShape.reduce(1, *)
        let out = Tensor(uninitializedShape: batchShape + [m, n], dtype: a.dtype)
        let lda = a.shape[r - 1], ldb = b.shape[r - 1]
        switch a.dtype {
        case .float32:
            Backend.current.batchedGemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                                        a: a.floatPointer, lda: lda, strideA: m * k, b: b.floatPointer, ldb: ldb,
                                        strideB: k * n, c: out.floatPointer, ldc: n, strideC: m * n, batch: batch)
        case .float64:
            for i in 0..<batch {
                ReferenceKernels.gemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1.0,
                                      a: a.doublePointer + i * m * k, lda: lda, b: b.doublePointer + i * k * n, ldb: ldb,
                                      beta: 0.0, c: out.doublePointer + i * m * n, ldc: n)
            }
        case .int64: break
        }
        return out.recording("matmul", [a, b]) { g, needs in
            let da: Tensor? = !needs[0] ? nil : transposeA
                ? matmul(b, g, transposeA: transposeB, transposeB: true)
                : matmul(g, b, transposeB: !transposeB)
            let db: Tensor? = !needs[1] ? nil : transposeB
                ? matmul(g, a, transposeA: true, transposeB: transposeA)
                : matmul(a, g, transposeA: !transposeA)
            return [da, db]
        }
    }

    /// activation(x Wᵀ + b): PyTorch's `F.linear`, optionally followed by an activation.
    ///
    /// Without gradient recording (sampling, evaluation), Float32 runs as one backend call that adds
    /// the bias and applies the activation as each output tile is written (`ComputeBackend.linear`;
    /// on the CPU a oneDNN matmul with an eltwise post-op). When the result records gradients, and for
    /// Float64, it is the linear op (one GEMM accumulating onto the broadcast bias) followed by the
    /// activation op, so training computes what the two ops compute and differentiates through their
    /// VJPs, second order included.
    ///
    /// Shapes: `x` (..., K), `weight` (N, K), `bias` (N) or nil; the result is (..., N).
    public static func linear(_ x: Tensor, _ weight: Tensor, bias: Tensor?, activation: LinearActivation = .none) -> Tensor {
        let records = GradMode.isEnabled
            && (x.tracksGradient || weight.tracksGradient || (bias?.tracksGradient ?? false))
        if x.dtype == .float32 && !records { return fusedLinear(x, weight, bias: bias, activation: activation) }
        return affine(x, weight, bias: bias).applying(activation)
    }

    /// `linear` in one backend call (Float32, no gradient recording).
    private static func fusedLinear(_ x: Tensor, _ weight: Tensor, bias: Tensor?, activation: LinearActivation) -> Tensor {
        precondition(x.rank >= 1 && weight.rank == 2 && x.shape[x.rank - 1] == weight.shape[1],
                     "linear: input \(x.shape) and weight \(weight.shape) (out, in) disagree")
        precondition(weight.dtype == x.dtype, "linear: weight must be \(x.dtype), got \(weight.dtype)")
        if let bias {
            precondition(bias.shape == [weight.shape[0]] && bias.dtype == x.dtype,
                         "linear: bias must be (\(weight.shape[0])) \(x.dtype), got \(bias.shape) \(bias.dtype)")
        }
        let (k, n) = (weight.shape[1], weight.shape[0])
        let lead = Array(x.shape.dropLast())
        let out = Tensor(uninitializedShape: lead + [n], dtype: x.dtype)
        Backend.current.linear(m: lead.reduce(1, *), n: n, k: k, input: x.floatPointer, weight: weight.floatPointer,
                               bias: bias?.floatPointer, activation: activation, output: out.floatPointer)
        return out
    }

    /// The activation op for `activation` applied to this tensor (itself for `.none`).
    public func applying(_ activation: LinearActivation) -> Tensor {
        switch activation {
        case .none: return self
        case .relu: return relu()
        case .sigmoid: return sigmoid()
        case .tanh: return tanh()
        case .silu: return silu()
        }
    }

    /// x Wᵀ + b in one GEMM: the output starts as b repeated over the rows and the GEMM accumulates
    /// into it (beta = 1), so no separate pass adds the bias. Records its VJP.
    private static func affine(_ x: Tensor, _ weight: Tensor, bias: Tensor?) -> Tensor {
        guard let bias else { return matmul(x, weight, transposeB: true) }
        precondition(x.rank >= 1 && weight.rank == 2 && x.shape[x.rank - 1] == weight.shape[1],
                     "linear: input \(x.shape) and weight \(weight.shape) (out, in) disagree")
        precondition(bias.shape == [weight.shape[0]] && bias.dtype == x.dtype && weight.dtype == x.dtype,
                     "linear: bias must be (\(weight.shape[0])) \(x.dtype), got \(bias.shape) \(bias.dtype)")
        if x.rank != 2 {
            let lead = Array(x.shape.dropLast())
            return affine(x.reshaped([-1, x.shape[x.rank - 1]]), weight, bias: bias).reshaped(lead + [weight.shape[0]])
        }
        let (m, k, n) = (x.shape[0], x.shape[1], weight.shape[0])
        let out = Tensor(uninitializedShape: [m, n], dtype: x.dtype)
        // The output starts as the bias on every row; the product accumulates into it (beta = 1).
        Backend.current.copyRuns(count: m, length: n, from: bias, offset: 0, stride: 0, into: out, offset: 0, stride: n)
        switch x.dtype {
        case .float32:
            if m > 0 && n > 0 {
                Backend.current.gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: x.floatPointer, lda: k,
                                     b: weight.floatPointer, ldb: k, beta: 1, c: out.floatPointer, ldc: n)
            }
        case .float64:
            ReferenceKernels.gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1.0, a: x.doublePointer, lda: k,
                                  b: weight.doublePointer, ldb: k, beta: 1.0, c: out.doublePointer, ldc: n)
        case .int64: preconditionFailure("linear: int64 operands")
        }
        return out.recording("linear", [x, weight, bias]) { g, needs in
            [needs[0] ? matmul(g, weight) : nil,
             needs[1] ? matmul(g, x, transposeA: true) : nil,
             needs[2] ? g.sumToShape(bias.shape) : nil]
        }
    }
}
