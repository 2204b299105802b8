import CDNNL

/// What one cached matmul primitive computes: the sizes, whether a bias is added, the activation, and
/// the thread count (oneDNN's jit kernels fix their thread partition when created).
struct MatmulKey: Hashable {
    var m: Int, n: Int, k: Int
    var bias: Bool
    var activation: LinearActivation
    var threads: Int32
}

/// A oneDNN matmul primitive for `linear`: dst(M, N) = activation(src(M, K) · W + bias), where W is
/// the caller's PyTorch (N, K) row-major weight read in place as the (K, N) matrix of strides (1, K),
/// the bias is a (1, N) row broadcast over the rows, and the activation is an eltwise post-op applied
/// while the output tile is still in registers. Created once per key and cached by `CPUBackend`, with
/// its scratchpad (where the brgemm kernel packs the weight blocks on each call).
final class MatmulPrimitive {
    private var pd: dnnl_primitive_desc_t?
    private var primitive: dnnl_primitive_t?
    /// oneDNN's implementation name ("brg:avx512_core", "gemm:jit", ...).
    let implementationName: String
    private var srcMemory: dnnl_memory_t?
    private var weightMemory: dnnl_memory_t?
    private var biasMemory: dnnl_memory_t?
    private var dstMemory: dnnl_memory_t?
    private var scratchpadMemory: dnnl_memory_t?
    private var args: [dnnl_exec_arg_t] = []

    /// Below this many rows the brgemm kernel's per-call packing of the whole weight costs more than
    /// the product; from about 32 rows brgemm is as fast or faster. Below it the gemm-based
    /// implementation is preferred (timings: docs/architecture.md, Measurements and history).
    static let brgemmMinimumRows = 32

    init(_ key: MatmulKey, engine: dnnl_engine_t, op: String) {
        let (m, n, k) = (Int64(key.m), Int64(key.n), Int64(key.k))
        var srcMD = dnnl_memory_desc_t(), weightMD = dnnl_memory_desc_t()
        var biasMD = dnnl_memory_desc_t(), dstMD = dnnl_memory_desc_t()
        dnnlCheck(cdnnl_md_init_2d(&srcMD, m, k, k, 1), "\(op): source memory descriptor \(m)x\(k)")
        dnnlCheck(cdnnl_md_init_2d(&weightMD, k, n, 1, k), "\(op): weight memory descriptor \(n)x\(k)")
        dnnlCheck(cdnnl_md_init_2d(&dstMD, m, n, n, 1), "\(op): destination memory descriptor \(m)x\(n)")
        if key.bias { dnnlCheck(cdnnl_md_init_2d(&biasMD, 1, n, n, 1), "\(op): bias memory descriptor") }
        var desc = dnnl_matmul_desc_t()
        let status = withUnsafePointer(to: &biasMD) { biasPointer in
            dnnl_matmul_desc_init(&desc, &srcMD, &weightMD, key.bias ? biasPointer : nil, &dstMD)
        }
        dnnlCheck(status, "\(op): matmul descriptor \(m)x\(k) · \(k)x\(n)")

        var attr: dnnl_primitive_attr_t?
        dnnlCheck(dnnl_primitive_attr_create(&attr), "\(op): attribute create")
        defer { dnnl_primitive_attr_destroy(attr) }
        dnnlCheck(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "\(op): scratchpad mode")
        if let (algorithm, alpha) = Self.eltwise(key.activation) {
            var postOps: dnnl_post_ops_t?
            dnnlCheck(dnnl_post_ops_create(&postOps), "\(op): post-ops create")
            defer { dnnl_post_ops_destroy(postOps) }
            dnnlCheck(dnnl_post_ops_append_eltwise(postOps, 1, algorithm, alpha, 0), "\(op): eltwise post-op")
            dnnlCheck(dnnl_primitive_attr_set_post_ops(attr, postOps), "\(op): set post-ops")
        }
        let what = "\(op): matmul primitive descriptor \(m)x\(k) · \(k)x\(n), \(key.activation)"
        pd = dnnlPrimitiveDescriptor(&desc, attr, engine, preferring: key.m < Self.brgemmMinimumRows ? "gemm" : nil, what)
        dnnlCheck(dnnl_primitive_create(&primitive, pd), "\(op): matmul primitive create")
        implementationName = cdnnl_impl_info(pd).map { String(cString: $0) } ?? "unknown"

        guard let scratchMD = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)
        else { fatalError("\(op): scratchpad query failed") }
        dnnlCheck(dnnl_memory_create(&srcMemory, &srcMD, engine, cdnnl_memory_none()), "\(op): memory")
        dnnlCheck(dnnl_memory_create(&weightMemory, &weightMD, engine, cdnnl_memory_none()), "\(op): memory")
        dnnlCheck(dnnl_memory_create(&dstMemory, &dstMD, engine, cdnnl_memory_none()), "\(op): memory")
        args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: srcMemory),
                dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weightMemory),
                dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dstMemory)]
        if key.bias {
            dnnlCheck(dnnl_memory_create(&biasMemory, &biasMD, engine, cdnnl_memory_none()), "\(op): bias memory")
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: biasMemory))
        }
        if dnnl_memory_desc_get_size(scratchMD) > 0 {
            dnnlCheck(dnnl_memory_create(&scratchpadMemory, scratchMD, engine, cdnnl_memory_allocate()),
                      "\(op): scratchpad")
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpadMemory))
        }
    }

    deinit {
        for memory in [srcMemory, weightMemory, biasMemory, dstMemory, scratchpadMemory] where memory != nil {
            dnnl_memory_destroy(memory)
        }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// oneDNN's eltwise algorithm and alpha for an activation; nil for none.
    private static func eltwise(_ activation: LinearActivation) -> (dnnl_alg_kind_t, Float)? {
        switch activation {
        case .none: return nil
        case .relu: return (dnnl_eltwise_relu, 0)  // alpha: the slope below 0
        case .sigmoid: return (dnnl_eltwise_logistic, 0)
        case .tanh: return (dnnl_eltwise_tanh, 0)
        case .silu: return (dnnl_eltwise_swish, 1)  // x * sigmoid(alpha * x)
        }
    }

    /// Runs the product on the caller's buffers (the bias must be given exactly when the key has one).
    func run(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
             output: UnsafeMutablePointer<Float>, stream: dnnl_stream_t, op: String) {
        precondition((bias != nil) == (biasMemory != nil), "\(op): bias given to a primitive built without one, or missing")
        if let bias { dnnlCheck(dnnl_memory_set_data_handle(biasMemory, UnsafeMutableRawPointer(mutating: bias)), op) }
        dnnlCheck(dnnl_memory_set_data_handle(srcMemory, UnsafeMutableRawPointer(mutating: input)), op)
        dnnlCheck(dnnl_memory_set_data_handle(weightMemory, UnsafeMutableRawPointer(mutating: weight)), op)
        dnnlCheck(dnnl_memory_set_data_handle(dstMemory, UnsafeMutableRawPointer(output)), op)
        dnnlCheck(dnnl_primitive_execute(primitive, stream, Int32(args.count), args), "\(op): execute")
        dnnlCheck(dnnl_stream_wait(stream), "\(op): stream wait")
    }
}
