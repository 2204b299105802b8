import Foundation
import GenTensor
import GenTestSupport
import XCTest

/// The CPU backend (oneDNN, Float32) against `ReferenceKernels` run in Float64 on the same values, and
/// the reference kernels against each other (adjoint identities, 1x1 convolution = GEMM).
///
/// Tolerance: a Float32 sum of K products carries rounding error of order eps32 * sqrt(K) (eps32 =
/// 6e-8) of the magnitudes involved; inputs are exact in both precisions. We allow 1e-5 * sqrt(K) of
/// the largest reference magnitude (never under 2e-5), a margin of over 100x, while a wrong index,
/// sign, padding offset or missing term moves elements by a sizeable fraction of that magnitude.
/// Outputs are pre-filled with NaN, so an element the backend fails to write fails the test.
final class BackendTests: XCTestCase {
    let backend = CPUBackend()

    // MARK: GEMM

    func testGemmAllTransposesOddSizesAgainstReference() {
        let m = 37, n = 29, k = 53
        for transA in [false, true] {
            for transB in [false, true] {
                for (alpha, beta) in [(Float(1.5), Float(0.5)), (Float(1), Float(0))] {
                    let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2
                    let a = randomFloats((transA ? k : m) * lda, seed: 11)
                    let b = randomFloats((transB ? n : k) * ldb, seed: 12)
                    var c = randomFloats(m * ldc, seed: 13)
                    if beta == 0 {  // C must not be read: NaN there must not leak into the result
                        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = .nan } }
                    }
                    var cRef = c.map(Double.init)
                    let ad = a.map(Double.init), bd = b.map(Double.init)
                    backend.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                 b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
                    ReferenceKernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: Double(alpha),
                                          a: ad, lda: lda, b: bd, ldb: ldb, beta: Double(beta), c: &cRef, ldc: ldc)
                    assertClose(c.map(Double.init), cRef, relative: tolerance(k), floor: 0,
                                "gemm transA \(transA) transB \(transB) alpha \(alpha) beta \(beta)")
                }
            }
        }
    }

    func testReferenceGemmHandExample() {
        // [1 2 3; 4 5 6] * [1 0; 0 1; 1 1] = [4 5; 10 11]; C = 2 * that + 1 * [1 1; 1 1].
        let a: [Double] = [1, 2, 3, 4, 5, 6], b: [Double] = [1, 0, 0, 1, 1, 1]
        var c: [Double] = [1, 1, 1, 1]
        ReferenceKernels.gemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 2, a: a, lda: 3, b: b, ldb: 2,
                              beta: 1, c: &c, ldc: 2)
        XCTAssertEqual(c, [9, 11, 21, 23])
        // The same product from A^T stored (3 x 2) and B^T stored (2 x 3).
        let at: [Double] = [1, 4, 2, 5, 3, 6], bt: [Double] = [1, 0, 1, 0, 1, 1]
        var c2: [Double] = [.nan, .nan, .nan, .nan]
        ReferenceKernels.gemm(transA: true, transB: true, m: 2, n: 2, k: 3, alpha: 1, a: at, lda: 2, b: bt, ldb: 3,
                              beta: 0, c: &c2, ldc: 2)
        XCTAssertEqual(c2, [4, 5, 10, 11])
    }

    // MARK: Convolutions against the reference

    func testConvolutions() {
        for (label, g) in Self.convolutionCases { checkConvolution(g, label) }
    }

    func testTransposedConvolutionsOfDCGANGenerator() {
        for (label, g) in Self.transposedCases { checkConvolution(g, label) }
    }

    /// Whole-input windows (one output pixel) run as one GEMM, with the activations transposed when the
    /// batch is no larger than the output channels and the weights otherwise; backward-data with one
    /// input channel runs as a GEMM and col2im. Both agree with the reference, at the DCGAN's full sizes too.
    func testConvolutionsRunAsGemm() {
        let wholeInput: [(String, ConvGeometry)] = [
            ("whole input 5x3, 6->9, batch 4 (activations transposed)",
             ConvGeometry(batch: 4, inChannels: 6, inHeight: 5, inWidth: 3, outChannels: 9, kernelHeight: 5,
                          kernelWidth: 3)),
            ("whole input 5x3, 6->2, batch 7 (weights transposed)",
             ConvGeometry(batch: 7, inChannels: 6, inHeight: 5, inWidth: 3, outChannels: 2, kernelHeight: 5,
                          kernelWidth: 3)),
            ("whole input 1x1, 5->3 (a linear layer)",
             ConvGeometry(batch: 4, inChannels: 5, inHeight: 1, inWidth: 1, outChannels: 3, kernelHeight: 1,
                          kernelWidth: 1)),
            ("DCGAN G ConvT 100->256 k7 (conv 256->100, 7->1), batch 64",
             ConvGeometry(batch: 64, inChannels: 256, inHeight: 7, inWidth: 7, outChannels: 100, kernelHeight: 7,
                          kernelWidth: 7)),
            ("DCGAN D conv 128->1 k7, batch 64",
             ConvGeometry(batch: 64, inChannels: 128, inHeight: 7, inWidth: 7, outChannels: 1, kernelHeight: 7,
                          kernelWidth: 7)),
        ]
        var oneChannel: [(String, ConvGeometry)] = [
            ("one channel, 3x3 dilation 2 pad 1 stride (2,1), 1->5 at 9x8",
             ConvGeometry(batch: 3, inChannels: 1, inHeight: 9, inWidth: 8, outChannels: 5, kernelHeight: 3,
                          kernelWidth: 3, stride: (2, 1), padding: (1, 1), dilation: (2, 2))),
            ("DCGAN G ConvT 128->1 k4 s2 p1 14->28 (conv 1->128), batch 64",
             ConvGeometry(batch: 64, inChannels: 1, inHeight: 28, inWidth: 28, outChannels: 128, kernelHeight: 4,
                          kernelWidth: 4, stride: (2, 2), padding: (1, 1))),
        ]
        // Rows and columns no window reaches (k2 s2 on 7x9 -> 3x4): their gradient is zero.
        oneChannel.append(("one channel, k2 s2 7x9 -> 3x4 (pad -1/-1)",
                           ConvGeometry(batch: 2, inChannels: 1, inHeight: 7, inWidth: 9, outChannels: 4,
                                        kernelHeight: 2, kernelWidth: 2, stride: (2, 2))))
        for (label, g) in wholeInput {
            for pass in ConvolutionPass.allCases {
                XCTAssertEqual(CPUBackend().implementationName(g, pass: pass), "gemm (whole-input window)", label)
            }
            checkConvolution(g, label)
        }
        for (label, g) in oneChannel {
            XCTAssertEqual(CPUBackend().implementationName(g, pass: .backwardData),
                           "gemm + col2im (one input channel)", label)
            XCTAssertFalse(CPUBackend().implementationName(g, pass: .forward).hasPrefix("gemm"), label)
            checkConvolution(g, label)
        }
    }

    func testNegativeBottomRightPadding() {
        for (label, g) in Self.negativePaddingCases {
            XCTAssert(g.padBottom < 0 || g.padRight < 0, label)
            checkConvolution(g, label)
        }
    }

    /// The U-Net's 3x3 stride-1 shapes run oneDNN's Winograd kernel (on CPUs with AVX-512, as this
    /// project's machines) in all three passes and agree with the reference like the direct kernels;
    /// switched off, the same shapes run direct.
    func testWinogradOnTheUNetShapes() {
        let shapes: [(String, ConvGeometry)] = [
            ("32->32 @28", ConvGeometry(batch: 2, inChannels: 32, inHeight: 28, inWidth: 28, outChannels: 32,
                                        kernelHeight: 3, kernelWidth: 3, padding: (1, 1))),
            ("96->32 @28", ConvGeometry(batch: 1, inChannels: 96, inHeight: 28, inWidth: 28, outChannels: 32,
                                        kernelHeight: 3, kernelWidth: 3, padding: (1, 1))),
            ("128->64 @14", ConvGeometry(batch: 2, inChannels: 128, inHeight: 14, inWidth: 14, outChannels: 64,
                                         kernelHeight: 3, kernelWidth: 3, padding: (1, 1))),
            ("64->64 @7", ConvGeometry(batch: 4, inChannels: 64, inHeight: 7, inWidth: 7, outChannels: 64,
                                       kernelHeight: 3, kernelWidth: 3, padding: (1, 1))),
        ]
        let hasAVX512 = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" avx512f")
        for winograd in [true, false] {
            let backend = CPUBackend(winogradConvolutions: winograd)
            for (label, g) in shapes {
                for pass in ConvolutionPass.allCases {
                    let name = backend.implementationName(g, pass: pass)
                    if !winograd {
                        XCTAssertFalse(name.contains("wino"), "\(label) \(pass.rawValue) with Winograd off: \(name)")
                    } else if hasAVX512 {
                        XCTAssert(name.contains("wino"), "\(label) \(pass.rawValue): \(name)")
                    }
                }
                checkConvolution(g, "\(label), Winograd \(winograd ? "on" : "off")", backend: backend)
            }
        }
    }

    func testCachedPrimitiveSeesNewWeightsAndInputs() {
        let g = ConvGeometry(batch: 2, inChannels: 16, inHeight: 9, inWidth: 9, outChannels: 16,
                             kernelHeight: 3, kernelWidth: 3, padding: (1, 1))
        for seed in [UInt64(100), 200, 300] { checkConvolution(g, "repeat seed \(seed)", seed: seed) }
    }

    func testSeparateBackendInstancesAgreeAndRelease() {
        let g = ConvGeometry(batch: 2, inChannels: 8, inHeight: 7, inWidth: 7, outChannels: 16,
                             kernelHeight: 3, kernelWidth: 3, padding: (1, 1))
        let x = randomFloats(inputCount(g), seed: 41), w = randomFloats(weightCount(g), seed: 42)
        var expected = [Float](repeating: .nan, count: outputCount(g))
        backend.conv2dForward(g, input: x, weight: w, output: &expected)
        for _ in 0..<2 {
            let other = CPUBackend()  // its engine, stream and primitives are destroyed at the end of scope
            var y = [Float](repeating: .nan, count: outputCount(g))
            other.conv2dForward(g, input: x, weight: w, output: &y)
            assertClose(y.map(Double.init), expected.map(Double.init), relative: 1e-6, floor: 0,
                        "second instance")
        }
    }

    func testEmptyBatch() {
        let g = ConvGeometry(batch: 0, inChannels: 4, inHeight: 5, inWidth: 5, outChannels: 3,
                             kernelHeight: 3, kernelWidth: 3, padding: (1, 1))
        let w = randomFloats(weightCount(g), seed: 51)
        var gw = [Float](repeating: .nan, count: weightCount(g))
        var gwRef = [Double](repeating: .nan, count: weightCount(g))
        backend.conv2dForward(g, input: [], weight: w, output: &gw)  // writes nothing
        backend.conv2dBackwardData(g, gradOutput: [], weight: w, gradInput: &gw)  // writes nothing
        XCTAssert(gw.allSatisfy(\.isNaN))
        backend.conv2dBackwardWeights(g, input: [], gradOutput: [], gradWeight: &gw)
        ReferenceKernels.conv2dBackwardWeights(g, input: [], gradOutput: [], gradWeight: &gwRef)
        XCTAssertEqual(gw, [Float](repeating: 0, count: weightCount(g)))
        XCTAssertEqual(gwRef, [Double](repeating: 0, count: weightCount(g)))
        var gb = [Float](repeating: .nan, count: g.outChannels)
        gw = [Float](repeating: .nan, count: weightCount(g))
        backend.conv2dBackwardWeights(g, input: [], gradOutput: [], gradWeight: &gw, gradBias: &gb)
        XCTAssertEqual(gw + gb, [Float](repeating: 0, count: weightCount(g) + g.outChannels))
    }

    func testOneThreadThenAllThreads() {
        let all = Swift.max(CPUBackend.defaultThreads, 2)
        let g = ConvGeometry(batch: 2, inChannels: 32, inHeight: 14, inWidth: 14, outChannels: 32,
                             kernelHeight: 3, kernelWidth: 3, padding: (1, 1))
        checkConvolution(g, "1 thread", backend: CPUBackend(threads: 1))
        checkConvolution(g, "\(all) threads", backend: CPUBackend(threads: all))
    }

    func testConcurrentCallers() {
        let cases = Array(Self.convolutionCases.prefix(4))
        let expected = cases.map { (_, g) -> [Double] in
            var y = [Double](repeating: .nan, count: g.batch * g.outHeight * g.outWidth * g.outChannels)
            ReferenceKernels.conv2dForward(g, input: randomDoubles(inputCount(g), seed: 1),
                                           weight: randomDoubles(weightCount(g), seed: 2), output: &y)
            return y
        }
        let results = LockedArray(count: cases.count * 3)
        let backend = self.backend
        DispatchQueue.concurrentPerform(iterations: cases.count * 3) { job in
            let g = cases[job % cases.count].1
            var y = [Float](repeating: .nan, count: g.batch * g.outHeight * g.outWidth * g.outChannels)
            backend.conv2dForward(g, input: randomFloats(inputCount(g), seed: 1),
                                  weight: randomFloats(weightCount(g), seed: 2), output: &y)
            results.set(job, y.map(Double.init))
        }
        for job in 0..<cases.count * 3 {
            let (label, g) = cases[job % cases.count]
            assertClose(results.get(job), expected[job % cases.count], relative: tolerance(forwardTerms(g)),
                        floor: 0, "concurrent \(label)")
        }
    }

    // MARK: The reference kernels against each other

    /// <conv(x, w), gy> = <x, bwdData(gy, w)> = <w, bwdWeights(x, gy)>: the backward passes are the
    /// adjoints of the forward pass (in Float64, to 1e-10 of the Cauchy-Schwarz bound ||conv(x,w)|| ||gy||).
    func testReferenceBackwardPassesAreAdjointsOfForward() {
        let cases = Self.convolutionCases + Self.transposedCases + Self.negativePaddingCases
        for (label, g) in cases {
            let x = randomDoubles(inputCount(g), seed: 21), w = randomDoubles(weightCount(g), seed: 22)
            let gy = randomDoubles(outputCount(g), seed: 23)
            var y = [Double](repeating: .nan, count: outputCount(g))
            var gx = [Double](repeating: .nan, count: inputCount(g))
            var gw = [Double](repeating: .nan, count: weightCount(g))
            ReferenceKernels.conv2dForward(g, input: x, weight: w, output: &y)
            ReferenceKernels.conv2dBackwardData(g, gradOutput: gy, weight: w, gradInput: &gx)
            ReferenceKernels.conv2dBackwardWeights(g, input: x, gradOutput: gy, gradWeight: &gw)
            let a = dot(y, gy), b = dot(x, gx), c = dot(w, gw)
            let scale = (dot(y, y) * dot(gy, gy)).squareRoot()
            XCTAssertGreaterThan(scale, 0, label)
            XCTAssertLessThanOrEqual(abs(a - b), 1e-10 * scale, "\(label): <conv(x,w),gy> \(a) vs <x,bwdData> \(b)")
            XCTAssertLessThanOrEqual(abs(a - c), 1e-10 * scale, "\(label): <conv(x,w),gy> \(a) vs <w,bwdWeights> \(c)")
        }
    }

    /// A 1x1 convolution is a GEMM of (N*H*W, I) by the (O, I) weight transposed.
    func testReferenceOneByOneConvolutionIsGemm() {
        let g = ConvGeometry(batch: 3, inChannels: 7, inHeight: 5, inWidth: 4, outChannels: 6,
                             kernelHeight: 1, kernelWidth: 1)
        let x = randomDoubles(inputCount(g), seed: 31), w = randomDoubles(weightCount(g), seed: 32)
        var y = [Double](repeating: .nan, count: outputCount(g))
        var z = [Double](repeating: .nan, count: outputCount(g))
        ReferenceKernels.conv2dForward(g, input: x, weight: w, output: &y)
        ReferenceKernels.gemm(transA: false, transB: true, m: 3 * 5 * 4, n: 6, k: 7, alpha: 1, a: x, lda: 7, b: w,
                              ldb: 7, beta: 0, c: &z, ldc: 6)
        assertClose(y, z, relative: 1e-14, floor: 0, "1x1 conv vs gemm")
    }

    // MARK: Cases

    /// Forward convolutions of the workloads (channel counts cut down), in (label, geometry) pairs.
    static let convolutionCases: [(String, ConvGeometry)] = [
        ("3x3 pad 1 stride 1, 5->7 at 9x9",
         ConvGeometry(batch: 2, inChannels: 5, inHeight: 9, inWidth: 9, outChannels: 7, kernelHeight: 3,
                      kernelWidth: 3, padding: (1, 1))),
        ("3x3 pad 1 stride 1, 16->32 at 14x14",
         ConvGeometry(batch: 2, inChannels: 16, inHeight: 14, inWidth: 14, outChannels: 32, kernelHeight: 3,
                      kernelWidth: 3, padding: (1, 1))),
        ("4x4 stride 2 pad 1, 1->16, 28->14 (DCGAN D)",
         ConvGeometry(batch: 2, inChannels: 1, inHeight: 28, inWidth: 28, outChannels: 16, kernelHeight: 4,
                      kernelWidth: 4, stride: (2, 2), padding: (1, 1))),
        ("4x4 stride 2 pad 1, 16->32, 14->7 (DCGAN D)",
         ConvGeometry(batch: 2, inChannels: 16, inHeight: 14, inWidth: 14, outChannels: 32, kernelHeight: 4,
                      kernelWidth: 4, stride: (2, 2), padding: (1, 1))),
        ("7x7 pad 0, 32->1, 7->1 (DCGAN D)",
         ConvGeometry(batch: 3, inChannels: 32, inHeight: 7, inWidth: 7, outChannels: 1, kernelHeight: 7,
                      kernelWidth: 7)),
        ("1x1, 12->20 at 7x7",
         ConvGeometry(batch: 2, inChannels: 12, inHeight: 7, inWidth: 7, outChannels: 20, kernelHeight: 1,
                      kernelWidth: 1)),
        ("1x1, 32->48 at 7x7 (qkv)",
         ConvGeometry(batch: 2, inChannels: 32, inHeight: 7, inWidth: 7, outChannels: 48, kernelHeight: 1,
                      kernelWidth: 1)),
        ("3x3 stride 2 pad 1, 8->8, 8->4 (even)",
         ConvGeometry(batch: 2, inChannels: 8, inHeight: 8, inWidth: 8, outChannels: 8, kernelHeight: 3,
                      kernelWidth: 3, stride: (2, 2), padding: (1, 1))),
        ("3x3 stride 2 pad 1, 16->16, 9->5 (odd)",
         ConvGeometry(batch: 2, inChannels: 16, inHeight: 9, inWidth: 9, outChannels: 16, kernelHeight: 3,
                      kernelWidth: 3, stride: (2, 2), padding: (1, 1))),
        ("3x3 dilation 2 pad 2, 6->5 at 10x10",
         ConvGeometry(batch: 2, inChannels: 6, inHeight: 10, inWidth: 10, outChannels: 5, kernelHeight: 3,
                      kernelWidth: 3, padding: (2, 2), dilation: (2, 2))),
        ("3x2 kernel, stride (2,1), pad (0,1), 3->4 at 9x6 (non-square)",
         ConvGeometry(batch: 2, inChannels: 3, inHeight: 9, inWidth: 6, outChannels: 4, kernelHeight: 3,
                      kernelWidth: 2, stride: (2, 1), padding: (0, 1))),
    ]

    /// The DCGAN generator's ConvTranspose2d layers as the convolutions they transpose (the transposed
    /// conv's forward is that conv's backward-data; channel counts cut down).
    static let transposedCases: [(String, ConvGeometry)] = [
        // ConvTranspose2d(100 -> 256, k7, s1, p0) on 1x1 = backward data of conv 256 -> 100, k7, 7x7 -> 1x1.
        ("ConvT k7 s1 p0 1->7 (conv 48->20, 7->1)",
         ConvGeometry(batch: 2, inChannels: 48, inHeight: 7, inWidth: 7, outChannels: 20, kernelHeight: 7,
                      kernelWidth: 7)),
        // ConvTranspose2d(k4, s2, p1) 7 -> 14 = backward data of conv k4 s2 p1 14 -> 7.
        ("ConvT k4 s2 p1 7->14 (conv 16->32, 14->7)",
         ConvGeometry(batch: 2, inChannels: 16, inHeight: 14, inWidth: 14, outChannels: 32, kernelHeight: 4,
                      kernelWidth: 4, stride: (2, 2), padding: (1, 1))),
        // ConvTranspose2d(k4, s2, p1) 14 -> 28, to one channel.
        ("ConvT k4 s2 p1 14->28 (conv 1->16, 28->14)",
         ConvGeometry(batch: 2, inChannels: 1, inHeight: 28, inWidth: 28, outChannels: 16, kernelHeight: 4,
                      kernelWidth: 4, stride: (2, 2), padding: (1, 1))),
        // ConvTranspose2d(k3, s2, p1, output_padding 1) 7 -> 14: conv k3 s2 p1 14 -> 7, padBottom 0 < padTop 1.
        ("ConvT k3 s2 p1 op1 7->14 (conv 6->10, 14->7)",
         ConvGeometry(batch: 2, inChannels: 6, inHeight: 14, inWidth: 14, outChannels: 10, kernelHeight: 3,
                      kernelWidth: 3, stride: (2, 2), padding: (1, 1))),
    ]

    /// Inputs with rows or columns the window never reaches (transposed convs with output padding).
    static let negativePaddingCases: [(String, ConvGeometry)] = {
        // ConvTranspose2d(k1, s2, output_padding 1) 4 -> 8: conv k1 s2 8 -> 4, padBottom = padRight = -1.
        let a = ConvGeometry(batch: 2, inChannels: 6, inHeight: 8, inWidth: 8, outChannels: 5, kernelHeight: 1,
                             kernelWidth: 1, stride: (2, 2))
        // ConvTranspose2d(k3, s1, dilation 2, output_padding 1) 5 -> 10: padBottom = padRight = -1 = -stride.
        var b = ConvGeometry(batch: 2, inChannels: 4, inHeight: 9, inWidth: 9, outChannels: 7, kernelHeight: 3,
                             kernelWidth: 3, dilation: (2, 2))
        b.inHeight = 10; b.inWidth = 10
        // Only the bottom: k2 s2 on 7x8 -> 3x4, padBottom -1, padRight 0.
        let c = ConvGeometry(batch: 2, inChannels: 16, inHeight: 7, inWidth: 8, outChannels: 16, kernelHeight: 2,
                             kernelWidth: 2, stride: (2, 2))
        // Padding 1 on top/left with 2 spare rows/cols: k3 s3 p1 on 12x12 -> 4x4, padBottom = padRight = -1.
        let d = ConvGeometry(batch: 2, inChannels: 8, inHeight: 12, inWidth: 12, outChannels: 8, kernelHeight: 3,
                             kernelWidth: 3, stride: (3, 3), padding: (1, 1))
        return [("k1 s2 8->4 (pad -1/-1)", a), ("k3 s1 d2 10->5 (pad -1/-1, = -stride)", b),
                ("k2 s2 7x8->3x4 (pad -1/0)", c), ("k3 s3 p1 12->4 (pad -1/-1)", d)]
    }()

    // MARK: Helpers

    /// Runs the three passes on the backend (Float32) and the reference (Float64) and compares them.
    private func checkConvolution(_ g: ConvGeometry, _ label: String, seed: UInt64 = 1,
                                  backend: CPUBackend = CPUBackend(), file: StaticString = #filePath, line: UInt = #line) {
        let x = randomFloats(inputCount(g), seed: seed), w = randomFloats(weightCount(g), seed: seed + 1)
        let gy = randomFloats(outputCount(g), seed: seed + 2)
        let xd = x.map(Double.init), wd = w.map(Double.init), gyd = gy.map(Double.init)

        var y = [Float](repeating: .nan, count: outputCount(g))
        var yRef = [Double](repeating: .nan, count: outputCount(g))
        backend.conv2dForward(g, input: x, weight: w, output: &y)
        ReferenceKernels.conv2dForward(g, input: xd, weight: wd, output: &yRef)
        assertClose(y.map(Double.init), yRef, relative: tolerance(forwardTerms(g)), floor: 0,
                    "\(label): forward", file: file, line: line)
        // With a bias, added by oneDNN while it writes the output.
        let bias = randomFloats(g.outChannels, seed: seed + 3)
        var yb = [Float](repeating: .nan, count: outputCount(g))
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                bias.withUnsafeBufferPointer { bp in
                    yb.withUnsafeMutableBufferPointer { yp in
                        backend.conv2dForward(g, input: xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress!,
                                              output: yp.baseAddress!)
                    }
                }
            }
        }
        let yRefBiased = yRef.enumerated().map { $0.element + Double(bias[$0.offset % g.outChannels]) }
        assertClose(yb.map(Double.init), yRefBiased, relative: tolerance(forwardTerms(g) + 1), floor: 0,
                    "\(label): forward with bias", file: file, line: line)

        var gx = [Float](repeating: .nan, count: inputCount(g))
        var gxRef = [Double](repeating: .nan, count: inputCount(g))
        backend.conv2dBackwardData(g, gradOutput: gy, weight: w, gradInput: &gx)
        ReferenceKernels.conv2dBackwardData(g, gradOutput: gyd, weight: wd, gradInput: &gxRef)
        assertClose(gx.map(Double.init), gxRef, relative: tolerance(g.outChannels * g.kernelHeight * g.kernelWidth),
                    floor: 0, "\(label): backward data", file: file, line: line)

        var gw = [Float](repeating: .nan, count: weightCount(g))
        var gwRef = [Double](repeating: .nan, count: weightCount(g))
        backend.conv2dBackwardWeights(g, input: x, gradOutput: gy, gradWeight: &gw)
        ReferenceKernels.conv2dBackwardWeights(g, input: xd, gradOutput: gyd, gradWeight: &gwRef)
        assertClose(gw.map(Double.init), gwRef, relative: tolerance(g.batch * g.outHeight * g.outWidth),
                    floor: 0, "\(label): backward weights", file: file, line: line)

        // With the bias gradient from the same pass: dy summed over every output position.
        var gwWithBias = [Float](repeating: .nan, count: weightCount(g))
        var gb = [Float](repeating: .nan, count: g.outChannels)
        x.withUnsafeBufferPointer { xp in
            gy.withUnsafeBufferPointer { gyp in
                gwWithBias.withUnsafeMutableBufferPointer { gwp in
                    gb.withUnsafeMutableBufferPointer { gbp in
                        backend.conv2dBackwardWeights(g, input: xp.baseAddress!, gradOutput: gyp.baseAddress!,
                                                      gradWeight: gwp.baseAddress!, gradBias: gbp.baseAddress!)
                    }
                }
            }
        }
        var gbRef = [Double](repeating: 0, count: g.outChannels)
        for (i, v) in gyd.enumerated() { gbRef[i % g.outChannels] += v }
        assertClose(gwWithBias.map(Double.init), gwRef, relative: tolerance(g.batch * g.outHeight * g.outWidth),
                    floor: 0, "\(label): backward weights with bias", file: file, line: line)
        assertClose(gb.map(Double.init), gbRef, relative: tolerance(g.batch * g.outHeight * g.outWidth),
                    floor: 0, "\(label): bias gradient", file: file, line: line)
    }
}

/// 1e-5 * sqrt(K) of the largest reference magnitude for sums of K products (see the class comment).
private func tolerance(_ terms: Int) -> Double { max(2e-5, 1e-5 * Double(terms).squareRoot()) }

private func forwardTerms(_ g: ConvGeometry) -> Int { g.inChannels * g.kernelHeight * g.kernelWidth }
private func inputCount(_ g: ConvGeometry) -> Int { g.batch * g.inHeight * g.inWidth * g.inChannels }
private func outputCount(_ g: ConvGeometry) -> Int { g.batch * g.outHeight * g.outWidth * g.outChannels }
private func weightCount(_ g: ConvGeometry) -> Int {
    g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth
}

private func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in a.indices { s += a[i] * b[i] }
    return s
}

/// Deterministic values in [-1, 1), multiples of 2^-23 (exact in Float and Double), from a 64-bit LCG.
private func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(state >> 40) - (1 << 23)) / Float(1 << 23)
    }
}

private func randomDoubles(_ count: Int, seed: UInt64) -> [Double] { randomFloats(count, seed: seed).map(Double.init) }

/// Results written from concurrent jobs.
private final class LockedArray: @unchecked Sendable {
    private var values: [[Double]]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Double]) { lock.lock(); values[i] = v; lock.unlock() }
    func get(_ i: Int) -> [Double] { lock.lock(); defer { lock.unlock() }; return values[i] }
}
