import CDNNL
import Foundation

/// One of the three passes of a 2-D convolution; the raw value is the name the benchmark prints.
public enum ConvolutionPass: String, Sendable, CaseIterable {
    case forward = "conv forward"
    case backwardData = "conv backward-data"
    case backwardWeights = "conv backward-weights"
}

/// The CPU backend: oneDNN's sgemm, matmul (linear layers with fused bias and activation) and
/// convolutions (Float32, channels-last).
///
/// Each convolution runs a oneDNN primitive created for its geometry, pass and thread count with
/// activations in NHWC and weights in whatever blocked layout oneDNN's fastest (jit) kernel wants
/// (`dnnl_format_tag_any`); the caller's OIHW weights are reordered into it (and weight gradients
/// back out of it) by cached reorder primitives, as are the activations of the Winograd kernel,
/// whose layout is blocked too. Primitives are created once and cached for the life of the backend,
/// their scratchpads and reordered operands borrow one shared workspace; so are the matmul
/// primitives of `linear`, one per shape, activation and thread count. Calls are serialized by a
/// lock: each one already uses every OpenMP thread, and cached buffers and the stream are shared.
/// The backend is a value (threads, Winograd choice); the oneDNN state behind it is shared.
public struct CPUBackend: ComputeBackend {
    public var name: String { "cpu" }
    public var device: Device { .host }
    /// The OpenMP threads its kernels run on (set on the calling thread before each oneDNN call; the
    /// jit kernels fix their partition when created, so primitives are cached per thread count).
    public let threads: Int
    /// Whether 3x3 stride-1 convolutions with channel counts in multiples of 16 run oneDNN's Winograd
    /// kernel (faster than direct on the U-Net's shapes, see docs/architecture.md, Measurements and
    /// history; it rounds differently, to about 1e-5 relative). Falls back to direct where the CPU
    /// has no such kernel.
    public let winogradConvolutions: Bool
    /// The engine, stream, primitive caches and workspace, shared by every `CPUBackend` value.
    private let state = DNNLState.shared

    /// The oneDNN library this process runs on, as "A.B.C" (`dnnl_version`: the loaded library's, not
    /// the headers').
    public static var oneDNNVersion: String {
        guard let v = dnnl_version()?.pointee else { return "unknown" }
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// OpenMP's thread count when the process started (`OMP_NUM_THREADS`, or the cores).
    public static let defaultThreads = Int(omp_get_max_threads())

    /// A CPU backend on `threads` threads (at least 1).
    public init(threads: Int = CPUBackend.defaultThreads, winogradConvolutions: Bool = true) {
        self.threads = Swift.max(1, threads)
        self.winogradConvolutions = winogradConvolutions
    }

    /// Sets this backend's thread count as the calling thread's OpenMP team size (oneDNN reads it),
    /// unless the caller is already inside a parallel region (whose nested calls run on one thread).
    @inline(__always)
    private func useThreads() {
        if omp_in_parallel() == 0 && Int(omp_get_max_threads()) != threads { omp_set_num_threads(Int32(threads)) }
    }

    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        useThreads()
        let status = dnnl_sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                                a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        precondition(status == dnnl_success, "gemm: oneDNN sgemm failed with status \(status)")
    }

    /// Small products (under 2^20 multiply-adds each; the U-Net's per-image attention is 49x64x49)
    /// are split over the threads by batch entry, each running a single-threaded sgemm: one such
    /// sgemm on all threads leaves the other threads mostly waiting. Larger ones run one after another
    /// on all threads.
    public func batchedGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int, strideA: Int, b: UnsafePointer<Float>, ldb: Int,
                            strideB: Int, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int, batch: Int) {
        let work = m * n * k
        let byEntry = batch > 1 && work <= 1 << 20
        // Inside the parallel region oneDNN's sgemm runs on the calling thread alone.
        parallelChunks(byEntry ? batch : 1, costPerItem: byEntry ? Swift.max(1, work / 8) : 0) { entries in
            for i in byEntry ? entries : 0..<batch {
                self.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a + i * strideA, lda: lda,
                          b: b + i * strideB, ldb: ldb, beta: 0, c: c + i * strideC, ldc: ldc)
            }
        }
    }

    /// One cached oneDNN matmul primitive per shape, activation and thread count (`MatmulPrimitive`):
    /// the bias add and the activation run on each output tile as the product leaves it, instead of a
    /// bias fill before an sgemm and an activation pass after it.
    public func linear(m: Int, n: Int, k: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, activation: LinearActivation, output: UnsafeMutablePointer<Float>) {
        if m == 0 || n == 0 { return }
        if k == 0 {  // no product: the bias (or zeros) through the activation
            linearUnfused(m: m, n: n, k: k, input: input, weight: weight, bias: bias, activation: activation, output: output)
            return
        }
        state.lock.lock(); defer { state.lock.unlock() }; useThreads()
        let p = matmulPrimitive(m: m, n: n, k: k, bias: bias != nil, activation: activation, "linear")
        p.run(input: input, weight: weight, bias: bias, output: output, stream: state.stream, op: "linear")
    }

    /// `linear` in separate passes: the output starts as the bias repeated over the rows (or zeros),
    /// one GEMM accumulates x Wᵀ into it (beta = 1), and the activation runs over it in place. The
    /// same arithmetic as `Tensor.linear` followed by the activation op.
    public func linearUnfused(m: Int, n: Int, k: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, activation: LinearActivation,
                              output: UnsafeMutablePointer<Float>) {
        if m == 0 || n == 0 { return }
        if let bias {
            parallelChunks(m, costPerItem: n) { rows in
                for row in rows { (output + row * n).update(from: bias, count: n) }
            }
        }
        if k > 0 {
            gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: input, lda: k, b: weight, ldb: k,
                 beta: bias == nil ? 0 : 1, c: output, ldc: n)
        } else if bias == nil {
            output.update(repeating: 0, count: m * n)
        }
        ElementwiseKernels.activation(activation, output, m * n)
    }

    public func conv2dForward(_ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
        if g.batch == 0 { return }  // nothing to write; oneDNN rejects zero-sized activations
        state.lock.lock(); defer { state.lock.unlock() }; useThreads()
        if GemmConvolution.coversWholeInput(g) {
            GemmConvolution.wholeInputForward(g, self, input: input, weight: weight, bias: bias, output: output,
                                              scratch: scratchFloats)
            return
        }
        runReadingInput(g, .forward, input: input, other: output, weight: weight, bias: bias, op: "conv2dForward")
    }

    /// Runs the oneDNN primitive of a pass that reads the input activation (forward, backward-weights),
    /// on a cropped copy where the window never reaches the input's last rows or columns. Must be
    /// called with `lock` held.
    private func runReadingInput(_ g: ConvGeometry, _ pass: ConvolutionPass, input: UnsafePointer<Float>,
                                 other: UnsafeMutableRawPointer, weight: UnsafeRawPointer, bias: UnsafePointer<Float>?,
                                 op: String) {
        let e = Self.effectiveGeometry(g)
        let p = primitive(e, pass, op, bias: bias != nil)
        let cropped = e == g ? nil : Self.crop(input, from: g, to: e)
        defer { cropped?.deallocate() }
        p.run(activation: cropped.map { UnsafeMutableRawPointer($0) } ?? UnsafeMutableRawPointer(mutating: input),
              other: other, weight: weight, bias: bias, workspace: state.workspace, stream: state.stream, op: op)
    }

    public func conv2dBackwardData(_ g: ConvGeometry, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                   gradInput: UnsafeMutablePointer<Float>) {
        if g.batch == 0 { return }
        state.lock.lock(); defer { state.lock.unlock() }; useThreads()
        if GemmConvolution.coversWholeInput(g) {
            GemmConvolution.wholeInputBackwardData(g, self, gradOutput: gradOutput, weight: weight, gradInput: gradInput,
                                                   scratch: scratchFloats)
            return
        }
        if GemmConvolution.backwardDataAsGemm(g) {
            GemmConvolution.oneChannelBackwardData(g, self, gradOutput: gradOutput, weight: weight, gradInput: gradInput,
                                                   scratch: scratchFloats)
            return
        }
        let e = Self.effectiveGeometry(g)
        let p = primitive(e, .backwardData, "conv2dBackwardData")
        if e == g {
            p.run(activation: gradInput, other: UnsafeMutableRawPointer(mutating: gradOutput), weight: weight,
                  workspace: state.workspace, stream: state.stream, op: "conv2dBackwardData")
        } else {
            // The rows/columns past the cropped input are never read by the forward pass: zero gradient.
            let count = e.batch * e.inHeight * e.inWidth * e.inChannels
            let cropped = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { cropped.deallocate() }
            p.run(activation: cropped, other: UnsafeMutableRawPointer(mutating: gradOutput), weight: weight,
                  workspace: state.workspace, stream: state.stream, op: "conv2dBackwardData")
            Self.uncrop(cropped, from: e, into: gradInput, g)
        }
    }

    public func conv2dBackwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                      gradWeight: UnsafeMutablePointer<Float>) {
        backwardWeights(g, input: input, gradOutput: gradOutput, gradWeight: gradWeight, gradBias: nil)
    }

    /// The bias gradient comes from the same oneDNN pass (its diff_bias), not a separate reduction.
    public func conv2dBackwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                      gradWeight: UnsafeMutablePointer<Float>, gradBias: UnsafeMutablePointer<Float>) {
        backwardWeights(g, input: input, gradOutput: gradOutput, gradWeight: gradWeight, gradBias: gradBias)
    }

    private func backwardWeights(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                 gradWeight: UnsafeMutablePointer<Float>, gradBias: UnsafeMutablePointer<Float>?) {
        if g.batch == 0 {  // an empty batch contributes no gradient
            gradWeight.update(repeating: 0, count: g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)
            gradBias?.update(repeating: 0, count: g.outChannels)
            return
        }
        state.lock.lock(); defer { state.lock.unlock() }; useThreads()
        if GemmConvolution.coversWholeInput(g) {
            GemmConvolution.wholeInputBackwardWeights(g, self, input: input, gradOutput: gradOutput,
                                                      gradWeight: gradWeight, gradBias: gradBias, scratch: scratchFloats)
            return
        }
        runReadingInput(g, .backwardWeights, input: input, other: UnsafeMutableRawPointer(mutating: gradOutput),
                        weight: gradWeight, bias: gradBias.map { UnsafePointer($0) }, op: "conv2dBackwardWeights")
    }

    /// The name of the implementation oneDNN chose for this convolution (e.g. "jit:avx512_core"; "ref"
    /// or "gemm" would mean a slow path), for benchmarks and debugging. Creates and caches the
    /// primitive if needed.
    public func implementationName(_ g: ConvGeometry, pass: ConvolutionPass) -> String {
        if let name = GemmConvolution.implementationName(g, pass) { return name }
        let e = Self.effectiveGeometry(g)
        state.lock.lock(); defer { state.lock.unlock() }; useThreads()
        let p = primitive(e, pass, "implementationName")
        return p.implementationName + (p.reordersWeights ? " (weights reordered from OIHW)" : "")
    }

    /// The name of the implementation oneDNN chose for `linear` on these sizes (e.g. "brg:avx512_core";
    /// "ref" would mean a slow path). Creates and caches the primitive if needed.
    public func linearImplementationName(m: Int, n: Int, k: Int, bias: Bool = true,
                                         activation: LinearActivation = .none) -> String {
        precondition(m > 0 && n > 0 && k > 0, "linearImplementationName: empty product \(m)x\(k) · \(k)x\(n)")
        state.lock.lock(); defer { state.lock.unlock() }; useThreads()
        return matmulPrimitive(m: m, n: n, k: k, bias: bias, activation: activation, "linearImplementationName")
            .implementationName
    }

    /// A workspace buffer of at least `count` floats for the GEMM-based convolutions (`GemmConvolution`);
    /// must be called with `lock` held, valid until the next call.
    private func scratchFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        state.workspace.buffer(0, bytes: count * MemoryLayout<Float>.stride).bindMemory(to: Float.self, capacity: count)
    }

    // MARK: - Primitive cache

    /// Must be called with `lock` held. Batch sizes vary more than convolution geometries (the last
    /// batch of an epoch, interactive sampling), so the matmul cache is emptied when it grows large.
    private func matmulPrimitive(m: Int, n: Int, k: Int, bias: Bool, activation: LinearActivation,
                                 _ op: String) -> MatmulPrimitive {
        let key = MatmulKey(m: m, n: n, k: k, bias: bias, activation: activation, threads: Int32(threads))
        if let p = state.matmulCache[key] { return p }
        if state.matmulCache.count >= 256 { state.matmulCache.removeAll() }
        let p = MatmulPrimitive(key, engine: state.engine, op: op)
        state.matmulCache[key] = p
        return p
    }

    struct ConvKey: Hashable {
        var geometry: ConvGeometry
        var pass: ConvolutionPass
        /// Whether a forward convolution adds a bias, or a backward-weights one writes its gradient.
        var bias: Bool
        /// oneDNN's jit kernels fix their thread partition when created.
        var threads: Int32
        var winograd: Bool
    }

    /// Must be called with `lock` held.
    private func primitive(_ g: ConvGeometry, _ pass: ConvolutionPass, _ op: String, bias: Bool = false) -> ConvPrimitive {
        let key = ConvKey(geometry: g, pass: pass, bias: bias, threads: Int32(threads), winograd: winogradConvolutions)
        if let p = state.cache[key] { return p }
        let hint = pass == .forward ? nil : primitive(g, .forward, op)
        let p = ConvPrimitive(g, pass: pass, bias: bias, winograd: winogradConvolutions, engine: state.engine, hint: hint, op: op)
        state.cache[key] = p
        return p
    }

    // MARK: - Negative bottom/right padding

    /// Input rows and columns the window never reaches (negative bottom/right padding) are cropped
    /// away: the convolution runs on a smaller input whose bottom/right padding is zero. oneDNN 2.6
    /// rejects right padding <= -stride (e.g. a stride-1 dilated transposed conv with output padding);
    /// it accepts -stride < padding < 0, but a copy of a rare case is cheaper than trusting that
    /// seldom-exercised path in every jit kernel.
    static func effectiveGeometry(_ g: ConvGeometry) -> ConvGeometry {
        var e = g
        if g.padBottom < 0 { e.inHeight += g.padBottom }
        if g.padRight < 0 { e.inWidth += g.padRight }
        precondition(e.inHeight > 0 && e.inWidth > 0, "conv2d: geometry \(g) reads no input")
        return e
    }

    /// A freshly allocated copy of the top-left `to` part of an NHWC tensor of geometry `from`.
    private static func crop(_ x: UnsafePointer<Float>, from g: ConvGeometry, to e: ConvGeometry)
        -> UnsafeMutablePointer<Float> {
        let c = g.inChannels, rowLength = e.inWidth * c
        let out = UnsafeMutablePointer<Float>.allocate(capacity: e.batch * e.inHeight * rowLength)
        for n in 0..<g.batch {
            for h in 0..<e.inHeight {
                (out + (n * e.inHeight + h) * rowLength)
                    .initialize(from: x + ((n * g.inHeight + h) * g.inWidth) * c, count: rowLength)
            }
        }
        return out
    }

    /// Writes the cropped gradient `x` (geometry `e`) into `y` (geometry `g`), zeros elsewhere.
    private static func uncrop(_ x: UnsafePointer<Float>, from e: ConvGeometry, into y: UnsafeMutablePointer<Float>,
                               _ g: ConvGeometry) {
        let c = g.inChannels, rowLength = e.inWidth * c
        y.update(repeating: 0, count: g.batch * g.inHeight * g.inWidth * c)
        for n in 0..<g.batch {
            for h in 0..<e.inHeight {
                (y + ((n * g.inHeight + h) * g.inWidth) * c)
                    .update(from: x + (n * e.inHeight + h) * rowLength, count: rowLength)
            }
        }
    }
}

/// Fails with `op`'s name if a oneDNN call did not succeed.
func dnnlCheck(_ status: dnnl_status_t, _ op: @autoclosure () -> String) {
    if status != dnnl_success { fatalError("\(op()): oneDNN failed with status \(status.rawValue)") }
}

/// A primitive descriptor for the operation `desc` (a convolution or matmul descriptor): the first
/// implementation whose name contains `preferred`, else oneDNN's first choice (also when
/// `preferred` is nil).
func dnnlPrimitiveDescriptor(_ desc: const_dnnl_op_desc_t, _ attr: dnnl_primitive_attr_t?, _ engine: dnnl_engine_t,
                             hint: dnnl_primitive_desc_t? = nil, preferring preferred: String?,
                             _ op: String) -> dnnl_primitive_desc_t {
    guard let preferred else {
        var pd: dnnl_primitive_desc_t?
        dnnlCheck(dnnl_primitive_desc_create(&pd, desc, attr, engine, hint), op)
        return pd!
    }
    var iterator: dnnl_primitive_desc_iterator_t?
    dnnlCheck(dnnl_primitive_desc_iterator_create(&iterator, desc, attr, engine, hint), op)
    defer { dnnl_primitive_desc_iterator_destroy(iterator) }
    var first: dnnl_primitive_desc_t?
    repeat {
        guard let candidate = dnnl_primitive_desc_iterator_fetch(iterator) else { break }
        let name = cdnnl_impl_info(candidate).map { String(cString: $0) } ?? ""
        if name.contains(preferred) {
            if let first { dnnl_primitive_desc_destroy(first) }
            return candidate
        }
        if first == nil { first = candidate } else { dnnl_primitive_desc_destroy(candidate) }
    } while dnnl_primitive_desc_iterator_next(iterator) == dnnl_success
    guard let first else { fatalError("\(op): oneDNN offered no implementation") }
    return first
}

/// Grow-only buffers that the convolution primitives borrow on each call: their scratchpads and
/// operands in a primitive's own layout (blocked weights, Winograd's blocked activations). Calls are
/// serialized by the backend's lock, so one set serves every cached primitive instead of one set each.
final class ConvWorkspace {
    /// Slot 0: the input-side activation (src or diff_src); 1: the output side (dst or diff_dst);
    /// 2: the scratchpad; 3: the weights (or their gradient).
    private var slots: [(pointer: UnsafeMutableRawPointer, bytes: Int)?] = [nil, nil, nil, nil]

    /// A buffer of at least `bytes` bytes, 64-byte aligned, valid until the next call for this slot.
    func buffer(_ slot: Int, bytes: Int) -> UnsafeMutableRawPointer {
        if let current = slots[slot], current.bytes >= bytes { return current.pointer }
        slots[slot]?.pointer.deallocate()
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        slots[slot] = (pointer, bytes)
        return pointer
    }

    deinit { for slot in slots { slot?.pointer.deallocate() } }
}

/// One operand of a convolution primitive (src, dst, the weights, or a gradient of one of them): the
/// caller's buffer (NHWC activations, OIHW weights) and, where the primitive wants another layout, a
/// workspace buffer in that layout with the reorder that fills it before the primitive runs (an
/// input) or empties it after (an output).
final class ConvOperand {
    let user: dnnl_memory_t
    let isInput: Bool
    private let workspaceSlot: Int
    private var blocked: dnnl_memory_t?
    private var blockedBytes = 0
    private var reorder: dnnl_primitive_t?

    /// The memory the primitive reads or writes.
    var primitiveMemory: dnnl_memory_t { blocked ?? user }
    /// Whether the primitive's layout differs from the caller's.
    var reorders: Bool { reorder != nil }

    init(user userMD: UnsafePointer<dnnl_memory_desc_t>, primitive primitiveMD: UnsafePointer<dnnl_memory_desc_t>,
         isInput: Bool, workspaceSlot: Int, engine: dnnl_engine_t, op: String) {
        var user: dnnl_memory_t?
        dnnlCheck(dnnl_memory_create(&user, userMD, engine, cdnnl_memory_none()), "\(op): operand memory")
        self.user = user!
        self.isInput = isInput
        self.workspaceSlot = workspaceSlot
        if dnnl_memory_desc_equal(primitiveMD, userMD) != 0 { return }
        dnnlCheck(dnnl_memory_create(&blocked, primitiveMD, engine, cdnnl_memory_none()), "\(op): blocked operand memory")
        blockedBytes = dnnl_memory_desc_get_size(primitiveMD)
        var reorderPD: dnnl_primitive_desc_t?
        let (fromMD, toMD) = isInput ? (userMD, primitiveMD) : (primitiveMD, userMD)
        dnnlCheck(dnnl_reorder_primitive_desc_create(&reorderPD, fromMD, engine, toMD, engine, nil),
                  "\(op): reorder descriptor")
        defer { dnnl_primitive_desc_destroy(reorderPD) }
        dnnlCheck(dnnl_primitive_create(&reorder, reorderPD), "\(op): reorder create")
    }

    deinit {
        dnnl_memory_destroy(user)
        if let blocked { dnnl_memory_destroy(blocked) }
        if let reorder { dnnl_primitive_destroy(reorder) }
    }

    /// Points the operand at the caller's buffer, and its blocked copy at the workspace.
    func bind(_ pointer: UnsafeMutableRawPointer, workspace: ConvWorkspace, op: String) {
        dnnlCheck(dnnl_memory_set_data_handle(user, pointer), op)
        if let blocked {
            dnnlCheck(dnnl_memory_set_data_handle(blocked, workspace.buffer(workspaceSlot, bytes: blockedBytes)), op)
        }
    }

    /// Copies between the caller's layout and the primitive's, if they differ: before the primitive
    /// for an input, after it for an output.
    func convert(before: Bool, stream: dnnl_stream_t, op: String) {
        guard let reorder, let blocked, before == isInput else { return }
        let args = isInput ? [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: user), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: blocked)]
                           : [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: blocked), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: user)]
        dnnlCheck(dnnl_primitive_execute(reorder, stream, Int32(args.count), args), "\(op): reorder")
    }
}

/// A cached convolution primitive with its operands.
final class ConvPrimitive {
    let pass: ConvolutionPass
    let hint: ConvPrimitive?  // a backward primitive descriptor may refer to its forward hint
    var pd: dnnl_primitive_desc_t?
    var primitive: dnnl_primitive_t?
    let implementationName: String

    /// The input side (src or diff_src), the output side (dst or diff_dst) and the OIHW weights (or
    /// their gradient).
    private var activation: ConvOperand!
    private var other: ConvOperand!
    private var weight: ConvOperand!
    var scratchpadMemory: dnnl_memory_t?
    var scratchpadBytes = 0
    var biasMemory: dnnl_memory_t?
    var args: [dnnl_exec_arg_t] = []
    var reordersWeights: Bool { weight.reorders }

    /// Whether oneDNN's Winograd kernel (F(4x4, 3x3), AVX-512) is worth trying for this geometry: 3x3,
    /// stride 1, dense, "same" padding, channels in multiples of its 16-wide vectors. On the U-Net's
    /// shapes it is faster than the direct kernels, the reorders of its blocked activations included
    /// (docs/architecture.md, Measurements and history).
    static func winogradApplies(_ g: ConvGeometry) -> Bool {
        g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideH == 1 && g.strideW == 1 && g.dilationH == 1
            && g.dilationW == 1 && g.padTop == 1 && g.padLeft == 1 && g.padBottom == 1 && g.padRight == 1
            && g.inChannels % 16 == 0 && g.outChannels % 16 == 0
    }

    init(_ g: ConvGeometry, pass: ConvolutionPass, bias: Bool, winograd: Bool, engine: dnnl_engine_t,
         hint: ConvPrimitive?, op: String) {
        self.pass = pass
        self.hint = hint
        let n = Int64(g.batch)
        var srcMD = dnnl_memory_desc_t(), dstMD = dnnl_memory_desc_t()
        var anySrcMD = dnnl_memory_desc_t(), anyDstMD = dnnl_memory_desc_t()
        var anyWeightMD = dnnl_memory_desc_t(), userWeightMD = dnnl_memory_desc_t()
        dnnlCheck(cdnnl_md_init_4d(&srcMD, n, Int64(g.inChannels), Int64(g.inHeight), Int64(g.inWidth), dnnl_nhwc),
              "\(op): source memory descriptor for \(g)")
        dnnlCheck(cdnnl_md_init_4d(&dstMD, n, Int64(g.outChannels), Int64(g.outHeight), Int64(g.outWidth), dnnl_nhwc),
              "\(op): destination memory descriptor for \(g)")
        dnnlCheck(cdnnl_md_init_4d(&anySrcMD, n, Int64(g.inChannels), Int64(g.inHeight), Int64(g.inWidth),
                                   dnnl_format_tag_any), "\(op): source memory descriptor for \(g)")
        dnnlCheck(cdnnl_md_init_4d(&anyDstMD, n, Int64(g.outChannels), Int64(g.outHeight), Int64(g.outWidth),
                                   dnnl_format_tag_any), "\(op): destination memory descriptor for \(g)")
        dnnlCheck(cdnnl_md_init_4d(&anyWeightMD, Int64(g.outChannels), Int64(g.inChannels), Int64(g.kernelHeight),
                               Int64(g.kernelWidth), dnnl_format_tag_any), "\(op): weight memory descriptor")
        dnnlCheck(cdnnl_md_init_4d(&userWeightMD, Int64(g.outChannels), Int64(g.inChannels), Int64(g.kernelHeight),
                               Int64(g.kernelWidth), dnnl_oihw), "\(op): OIHW memory descriptor")

        let passCode: Int32 = switch pass { case .forward: 0; case .backwardData: 2; case .backwardWeights: 3 }
        var biasMD = dnnl_memory_desc_t()
        if bias { dnnlCheck(cdnnl_md_init_1d(&biasMD, Int64(g.outChannels)), "\(op): bias memory descriptor") }
        /// The operation: direct on NHWC activations, or Winograd on whatever layout it wants.
        func describe(winograd: Bool) -> dnnl_convolution_desc_t? {
            var desc = dnnl_convolution_desc_t()
            var sourceMD = winograd ? anySrcMD : srcMD, destinationMD = winograd ? anyDstMD : dstMD
            let status = withUnsafePointer(to: &biasMD) { biasPointer in
                cdnnl_conv2d_desc_init(&desc, passCode, &sourceMD, &anyWeightMD,
                                       bias ? biasPointer : nil, &destinationMD, Int64(g.strideH),
                                       Int64(g.strideW), Int64(g.dilationH - 1), Int64(g.dilationW - 1),
                                       Int64(g.padTop), Int64(g.padLeft), Int64(g.padBottom), Int64(g.padRight),
                                       winograd ? 1 : 0)
            }
            if winograd { return status == dnnl_success ? desc : nil }
            dnnlCheck(status, "\(op): convolution descriptor for \(g)")
            return desc
        }
        if bias {
            dnnlCheck(dnnl_memory_create(&biasMemory, &biasMD, engine, cdnnl_memory_none()), "\(op): bias memory")
        }

        var attr: dnnl_primitive_attr_t?
        dnnlCheck(dnnl_primitive_attr_create(&attr), "\(op): attribute create")
        defer { dnnl_primitive_attr_destroy(attr) }
        dnnlCheck(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "\(op): scratchpad mode")
        // Winograd where asked and applicable (oneDNN answers "unimplemented" on CPUs without its
        // kernel: then direct). Otherwise oneDNN's first choice is its fastest kernel, except that the
        // jit backward-data kernels vectorize over input channels: with one input channel (the DCGAN
        // generator's last ConvTranspose2d, the discriminator's first conv) they are slow, and the
        // im2col + sgemm ("gemm") kernel is preferred (figures: docs/architecture.md, Measurements and
        // history).
        if winograd && Self.winogradApplies(g), var desc = describe(winograd: true) {
            var candidate: dnnl_primitive_desc_t?
            if dnnl_primitive_desc_create(&candidate, &desc, attr, engine, hint?.pd) == dnnl_success { pd = candidate }
        }
        if pd == nil {
            var desc = describe(winograd: false)!
            pd = dnnlPrimitiveDescriptor(&desc, attr, engine, hint: hint?.pd,
                                         preferring: pass == .backwardData && g.inChannels == 1 ? "gemm" : nil,
                                         "\(op): primitive descriptor for \(pass.rawValue) \(g)")
        }
        dnnlCheck(dnnl_primitive_create(&primitive, pd), "\(op): primitive create for \(g)")
        implementationName = cdnnl_impl_info(pd).map { String(cString: $0) } ?? "unknown"

        let (activationQuery, otherQuery, weightQuery): (dnnl_query_t, dnnl_query_t, dnnl_query_t) = switch pass {
        case .forward: (dnnl_query_src_md, dnnl_query_dst_md, dnnl_query_weights_md)
        case .backwardData: (dnnl_query_diff_src_md, dnnl_query_diff_dst_md, dnnl_query_weights_md)
        case .backwardWeights: (dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md)
        }
        guard let activationMD = dnnl_primitive_desc_query_md(pd, activationQuery, 0),
              let otherMD = dnnl_primitive_desc_query_md(pd, otherQuery, 0),
              let weightMD = dnnl_primitive_desc_query_md(pd, weightQuery, 0),
              let scratchMD = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)
        else { fatalError("\(op): memory descriptor query failed for \(g)") }
        activation = ConvOperand(user: &srcMD, primitive: activationMD, isInput: pass != .backwardData,
                                 workspaceSlot: 0, engine: engine, op: op)
        other = ConvOperand(user: &dstMD, primitive: otherMD, isInput: pass != .forward,
                            workspaceSlot: 1, engine: engine, op: op)
        weight = ConvOperand(user: &userWeightMD, primitive: weightMD, isInput: pass != .backwardWeights,
                             workspaceSlot: 3, engine: engine, op: op)
        scratchpadBytes = dnnl_memory_desc_get_size(scratchMD)
        if scratchpadBytes > 0 {
            dnnlCheck(dnnl_memory_create(&scratchpadMemory, scratchMD, engine, cdnnl_memory_none()), "\(op): scratchpad")
        }
        switch pass {
        case .forward:
            args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: activation.primitiveMemory),
                    dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weight.primitiveMemory),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: other.primitiveMemory)]
        case .backwardData:
            args = [dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_SRC, memory: activation.primitiveMemory),
                    dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weight.primitiveMemory),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_DST, memory: other.primitiveMemory)]
        case .backwardWeights:
            args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: activation.primitiveMemory),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_WEIGHTS, memory: weight.primitiveMemory),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_DST, memory: other.primitiveMemory)]
        }
        if let biasMemory {  // the bias (forward) or its gradient (backward-weights)
            args.append(dnnl_exec_arg_t(arg: pass == .backwardWeights ? DNNL_ARG_DIFF_BIAS : DNNL_ARG_BIAS,
                                        memory: biasMemory))
        }
        if let scratchpadMemory {
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpadMemory))
        }
    }

    deinit {
        for memory in [scratchpadMemory, biasMemory] where memory != nil {
            dnnl_memory_destroy(memory)
        }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// Runs the pass on the caller's buffers: `activation` is src (forward, backward-weights) or
    /// diff_src (backward-data); `other` is dst or diff_dst; `weight` is the OIHW weight or, for
    /// backward-weights, the OIHW weight gradient to write.
    func run(activation activationPointer: UnsafeMutableRawPointer, other otherPointer: UnsafeMutableRawPointer,
             weight weightPointer: UnsafeRawPointer, bias: UnsafePointer<Float>? = nil, workspace: ConvWorkspace,
             stream: dnnl_stream_t, op: String) {
        precondition((bias != nil) == (biasMemory != nil), "\(op): bias given to a primitive built without one, or missing")
        if let bias { dnnlCheck(dnnl_memory_set_data_handle(biasMemory, UnsafeMutableRawPointer(mutating: bias)), op) }
        activation.bind(activationPointer, workspace: workspace, op: op)
        other.bind(otherPointer, workspace: workspace, op: op)
        weight.bind(UnsafeMutableRawPointer(mutating: weightPointer), workspace: workspace, op: op)
        if let scratchpadMemory {
            dnnlCheck(dnnl_memory_set_data_handle(scratchpadMemory, workspace.buffer(2, bytes: scratchpadBytes)), op)
        }
        let operands = [activation!, other!, weight!]
        for operand in operands { operand.convert(before: true, stream: stream, op: op) }
        dnnlCheck(dnnl_primitive_execute(primitive, stream, Int32(args.count), args), "\(op): execute")
        for operand in operands { operand.convert(before: false, stream: stream, op: op) }
        dnnlCheck(dnnl_stream_wait(stream), "\(op): stream wait")
    }
}

/// The oneDNN engine and stream, the primitive caches and the workspace behind every `CPUBackend`.
final class DNNLState: @unchecked Sendable {
    static let shared = DNNLState()

    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Serializes calls: cached buffers and the stream are shared.
    let lock = NSLock()
    var cache: [CPUBackend.ConvKey: ConvPrimitive] = [:]
    var matmulCache: [MatmulKey: MatmulPrimitive] = [:]
    let workspace = ConvWorkspace()

    private init() {
        var engine: dnnl_engine_t?
        dnnlCheck(dnnl_engine_create(&engine, dnnl_cpu, 0), "CPUBackend: engine create")
        var stream: dnnl_stream_t?
        dnnlCheck(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "CPUBackend: stream create")
        self.engine = engine!
        self.stream = stream!
    }
}
