import Foundation

/// What a benchmarked kernel computes.
public enum KernelBenchmarkKind: String, Sendable {
    case gemm = "gemm"
    case convForward = "conv forward"
    case convBackwardData = "conv backward-data"
    case convBackwardWeights = "conv backward-weights"

    init(_ pass: ConvolutionPass) {
        switch pass {
        case .forward: self = .convForward
        case .backwardData: self = .convBackwardData
        case .backwardWeights: self = .convBackwardWeights
        }
    }
}

/// One timed kernel: its throughput and the implementation oneDNN chose for it.
public struct KernelBenchmarkResult: Sendable {
    /// The workload and layer, e.g. "unet conv 3x3 32->32 @28" (with "x N" uses per step).
    public var name: String
    /// The shape: M x N x K for a GEMM, the convolution geometry otherwise.
    public var shape: String
    /// Which kernel ran.
    public var kind: KernelBenchmarkKind
    /// Useful FLOPs (2 per multiply-add) per second, in billions.
    public var gflopsPerSecond: Double
    /// Milliseconds per call, the mean over the fastest timing round (including weight reorders for
    /// convolutions).
    public var msPerCall: Double
    /// oneDNN's implementation name (e.g. "jit:avx512_core"); "dnnl_sgemm" for GEMMs.
    public var implementation: String
}

/// Times the CPU backend's GEMMs and convolutions on the shapes of the reference workloads
/// (their PyTorch twins: scripts/torch_reference/models.py, timed by scripts/torch-bench.py): the
/// DCGAN generator and discriminator at batch 64, the DDPM U-Net (ch 32, mult (1, 2, 2), 2 residual
/// blocks per level) at batch 64, and the MLP VAE's linears at batch 128. Every convolution is timed in all three passes (training needs all of them;
/// a transposed convolution's forward is the backward-data pass of the convolution listed).
public enum KernelBenchmark {
    /// A convolution of a workload: name, geometry at the workload's batch size, uses per step.
    public struct ConvolutionShape: Sendable {
        public var name: String
        public var geometry: ConvGeometry
        public var uses: Int
    }

    /// A linear layer (y = x W^T) of a workload: name, batch rows, in and out features, uses per step.
    public struct LinearShape: Sendable {
        public var name: String
        public var batch: Int, inFeatures: Int, outFeatures: Int
        public var uses: Int
    }

    /// The distinct convolutions of the DCGAN (batch 64) and U-Net (ch 32, batch 64) workloads.
    public static var convolutionShapes: [ConvolutionShape] {
        func conv(_ name: String, _ cin: Int, _ cout: Int, _ size: Int, k: Int, s: Int = 1, p: Int = 0,
                  uses: Int = 1) -> ConvolutionShape {
            ConvolutionShape(name: name,
                             geometry: ConvGeometry(batch: 64, inChannels: cin, inHeight: size, inWidth: size,
                                                    outChannels: cout, kernelHeight: k, kernelWidth: k,
                                                    stride: (s, s), padding: (p, p)),
                             uses: uses)
        }
        return [
            // DCGAN generator: ConvTranspose2d layers, listed as the convolutions they transpose.
            conv("dcgan G ConvT 100->256 k7 1->7", 256, 100, 7, k: 7),
            conv("dcgan G ConvT 256->128 k4s2p1 7->14", 128, 256, 14, k: 4, s: 2, p: 1),
            conv("dcgan G ConvT 128->1 k4s2p1 14->28", 1, 128, 28, k: 4, s: 2, p: 1),
            // DCGAN discriminator.
            conv("dcgan D conv 1->64 k4s2p1 28->14", 1, 64, 28, k: 4, s: 2, p: 1),
            conv("dcgan D conv 64->128 k4s2p1 14->7", 64, 128, 14, k: 4, s: 2, p: 1),
            conv("dcgan D conv 128->1 k7 7->1", 128, 1, 7, k: 7),
            // U-Net 3x3 convolutions (conv_in, residual blocks, upsample convs, conv_out).
            conv("unet 3x3 1->32 @28 (conv_in)", 1, 32, 28, k: 3, p: 1),
            conv("unet 3x3 32->32 @28", 32, 32, 28, k: 3, p: 1, uses: 7),
            conv("unet 3x3 64->64 @28 (upsample conv)", 64, 64, 28, k: 3, p: 1),
            conv("unet 3x3 96->32 @28", 96, 32, 28, k: 3, p: 1),
            conv("unet 3x3 64->32 @28", 64, 32, 28, k: 3, p: 1, uses: 2),
            conv("unet 3x3 32->1 @28 (conv_out)", 32, 1, 28, k: 3, p: 1),
            conv("unet 3x3 32->64 @14", 32, 64, 14, k: 3, p: 1),
            conv("unet 3x3 64->64 @14", 64, 64, 14, k: 3, p: 1, uses: 7),
            conv("unet 3x3 128->64 @14", 128, 64, 14, k: 3, p: 1, uses: 2),
            conv("unet 3x3 96->64 @14", 96, 64, 14, k: 3, p: 1),
            conv("unet 3x3 64->64 @7", 64, 64, 7, k: 3, p: 1, uses: 11),
            conv("unet 3x3 128->64 @7", 128, 64, 7, k: 3, p: 1, uses: 3),
            // U-Net stride-2 downsampling.
            conv("unet 3x3s2 32->32 28->14", 32, 32, 28, k: 3, s: 2, p: 1),
            conv("unet 3x3s2 64->64 14->7", 64, 64, 14, k: 3, s: 2, p: 1),
            // U-Net 1x1: attention qkv and proj, residual skips.
            conv("unet 1x1 64->192 @7 (qkv)", 64, 192, 7, k: 1, uses: 6),
            conv("unet 1x1 64->64 @7 (proj)", 64, 64, 7, k: 1, uses: 6),
            conv("unet 1x1 128->64 @7 (skip)", 128, 64, 7, k: 1, uses: 3),
            conv("unet 1x1 32->64 @14 (skip)", 32, 64, 14, k: 1),
            conv("unet 1x1 128->64 @14 (skip)", 128, 64, 14, k: 1, uses: 2),
            conv("unet 1x1 96->64 @14 (skip)", 96, 64, 14, k: 1),
            conv("unet 1x1 96->32 @28 (skip)", 96, 32, 28, k: 1),
            conv("unet 1x1 64->32 @28 (skip)", 64, 32, 28, k: 1, uses: 2),
        ]
    }

    /// The linear layers of the VAE (batch 128) and the U-Net's time embedding (batch 64).
    public static var linearShapes: [LinearShape] {
        [
            LinearShape(name: "vae fc1 784->400", batch: 128, inFeatures: 784, outFeatures: 400, uses: 1),
            LinearShape(name: "vae fc_mu/fc_logvar 400->20", batch: 128, inFeatures: 400, outFeatures: 20, uses: 2),
            LinearShape(name: "vae fc3 20->400", batch: 128, inFeatures: 20, outFeatures: 400, uses: 1),
            LinearShape(name: "vae fc4 400->784", batch: 128, inFeatures: 400, outFeatures: 784, uses: 1),
            LinearShape(name: "unet time_mlp 32->128", batch: 64, inFeatures: 32, outFeatures: 128, uses: 1),
            LinearShape(name: "unet time_mlp 128->128", batch: 64, inFeatures: 128, outFeatures: 128, uses: 1),
            LinearShape(name: "unet temb 128->32", batch: 64, inFeatures: 128, outFeatures: 32, uses: 5),
            LinearShape(name: "unet temb 128->64", batch: 64, inFeatures: 128, outFeatures: 64, uses: 12),
        ]
    }

    /// Times every shape on a CPU backend with `threads` threads, about `seconds` per kernel after a warm-up; with `workload`
    /// (vae, dcgan, unet, classifier) only the shapes of that workload.
    public static func run(threads: Int, seconds: Double, workload: String? = nil) -> [KernelBenchmarkResult] {
        func selected(_ name: String) -> Bool { workload.map { name.hasPrefix($0 + " ") } ?? true }
        let backend = CPUBackend(threads: threads)
        var results: [KernelBenchmarkResult] = []

        for shape in linearShapes where selected(shape.name) {
            let (b, i, o) = (shape.batch, shape.inFeatures, shape.outFeatures)
            let x = randomBuffer(b * i), w = randomBuffer(o * i), y = randomBuffer(b * o)
            defer { x.deallocate(); w.deallocate(); y.deallocate() }
            // forward y = x W^T; backward-data dx = dy W; backward-weights dW = dy^T x.
            let cases: [(String, Bool, Bool, Int, Int, Int, UnsafeMutablePointer<Float>, Int,
                         UnsafeMutablePointer<Float>, Int, UnsafeMutablePointer<Float>, Int)] = [
                ("forward", false, true, b, o, i, x, i, w, i, y, o),
                ("backward-data", false, false, b, i, o, y, o, w, i, x, i),
                ("backward-weights", true, false, o, i, b, y, o, x, i, w, i),
            ]
            for (label, ta, tb, m, n, k, a, lda, bb, ldb, c, ldc) in cases {
                let ms = time(seconds) {
                    backend.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: bb,
                                 ldb: ldb, beta: 0, c: c, ldc: ldc)
                }
                results.append(KernelBenchmarkResult(
                    name: "\(shape.name) \(label)" + (shape.uses > 1 ? " (x\(shape.uses))" : ""),
                    shape: "M \(m) N \(n) K \(k)" + (ta ? " A^T" : "") + (tb ? " B^T" : ""), kind: .gemm,
                    gflopsPerSecond: 2.0 * Double(m * n * k) / (ms * 1e6), msPerCall: ms,
                    implementation: "dnnl_sgemm"))
            }
        }

        // Self-attention scores and output at 7x7, one image per call (64 per step and block).
        if selected("unet attention") {
            let q = randomBuffer(49 * 64), kv = randomBuffer(49 * 64), s = randomBuffer(49 * 49)
            defer { q.deallocate(); kv.deallocate(); s.deallocate() }
            let ms1 = time(seconds) {
                backend.gemm(transA: false, transB: true, m: 49, n: 49, k: 64, alpha: 1, a: q, lda: 64, b: kv,
                             ldb: 64, beta: 0, c: s, ldc: 49)
            }
            results.append(KernelBenchmarkResult(
                name: "unet attention q k^T (per image, x384)", shape: "M 49 N 49 K 64 B^T", kind: .gemm,
                gflopsPerSecond: 2.0 * 49 * 49 * 64 / (ms1 * 1e6), msPerCall: ms1, implementation: "dnnl_sgemm"))
            let ms2 = time(seconds) {
                backend.gemm(transA: false, transB: false, m: 49, n: 64, k: 49, alpha: 1, a: s, lda: 49, b: kv,
                             ldb: 64, beta: 0, c: q, ldc: 64)
            }
            results.append(KernelBenchmarkResult(
                name: "unet attention softmax v (per image, x384)", shape: "M 49 N 64 K 49", kind: .gemm,
                gflopsPerSecond: 2.0 * 49 * 64 * 49 / (ms2 * 1e6), msPerCall: ms2, implementation: "dnnl_sgemm"))
        }

        for shape in convolutionShapes where selected(shape.name) {
            let g = shape.geometry
            let x = randomBuffer(g.batch * g.inHeight * g.inWidth * g.inChannels)
            let w = randomBuffer(g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth)
            let y = randomBuffer(g.batch * g.outHeight * g.outWidth * g.outChannels)
            defer { x.deallocate(); w.deallocate(); y.deallocate() }
            for pass in ConvolutionPass.allCases {
                let implementation = backend.implementationName(g, pass: pass)
                let ms: Double
                switch pass {
                case .forward: ms = time(seconds) { backend.conv2dForward(g, input: x, weight: w, output: y) }
                case .backwardData:
                    ms = time(seconds) { backend.conv2dBackwardData(g, gradOutput: y, weight: w, gradInput: x) }
                case .backwardWeights:
                    ms = time(seconds) { backend.conv2dBackwardWeights(g, input: x, gradOutput: y, gradWeight: w) }
                }
                results.append(KernelBenchmarkResult(
                    name: shape.name + (shape.uses > 1 ? " (x\(shape.uses))" : ""), shape: describe(g),
                    kind: KernelBenchmarkKind(pass), gflopsPerSecond: g.flops / (ms * 1e6), msPerCall: ms,
                    implementation: implementation))
            }
        }
        return results
    }

    /// The results as an aligned text table.
    public static func table(_ results: [KernelBenchmarkResult]) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        let nameWidth = results.map(\.name.count).max() ?? 4
        var lines = [pad("name", nameWidth) + "  " + pad("kind", 21) + "  " + lpad("GFLOP/s", 8) + "  "
                     + lpad("ms/call", 9) + "  implementation"]
        for r in results {
            lines.append(pad(r.name, nameWidth) + "  " + pad(r.kind.rawValue, 21) + "  "
                         + lpad(String(format: "%.1f", r.gflopsPerSecond), 8) + "  "
                         + lpad(String(format: "%.4f", r.msPerCall), 9) + "  " + r.implementation)
        }
        return lines.joined(separator: "\n")
    }

    // MARK: - Helpers

    private static func describe(_ g: ConvGeometry) -> String {
        "N\(g.batch) \(g.inChannels)x\(g.inHeight)x\(g.inWidth) -> \(g.outChannels)x\(g.outHeight)x\(g.outWidth)"
            + " k\(g.kernelHeight)x\(g.kernelWidth) s\(g.strideH) p\(g.padTop)"
            + (g.dilationH > 1 ? " d\(g.dilationH)" : "")
    }

    /// Uniform values in [-1, 1) (no denormals), from a fixed-seed LCG.
    static func randomBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        for i in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            p[i] = Float(Int64(state >> 40) - (1 << 23)) / Float(1 << 23)
        }
        return p
    }

    /// Milliseconds per call: after a warm-up (at least 3 calls and a tenth of the budget), calls run in
    /// rounds of at least `seconds / 10` (and 2 calls) until `seconds` have elapsed; the result is the
    /// mean per call of the fastest round, which discounts rounds in which another process on a
    /// shared machine took a core from the OpenMP team.
    static func time(_ seconds: Double, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let warmUp = clock.now
        var calls = 0
        while calls < 3 || elapsed(since: warmUp, clock) < seconds * 0.1 {
            body(); calls += 1
        }
        let start = clock.now
        var best = Double.infinity
        repeat {
            let roundStart = clock.now
            var roundCalls = 0, roundTime = 0.0
            repeat {
                body(); roundCalls += 1
                roundTime = elapsed(since: roundStart, clock)
            } while roundCalls < 2 || roundTime < seconds / 10
            best = min(best, roundTime * 1000 / Double(roundCalls))
        } while elapsed(since: start, clock) < seconds
        return best
    }

    private static func elapsed(since start: ContinuousClock.Instant, _ clock: ContinuousClock) -> Double {
        let d = clock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
