import Foundation
@testable import GenTensor
import GenNN
@testable import GenModels
import GenTestSupport
import XCTest

/// Every flow layer, and whole RealNVP and Glow stacks, invert within 1e-4 in float32, and their
/// log-determinants match the log |det| of a brute-force Jacobian (central differences in float64).
final class FlowLayerTests: XCTestCase {
    /// Moves every float parameter away from its identity initialisation (zero output convolutions,
    /// unit scales, an uninitialised actnorm), so that no layer is trivially invertible.
    static func perturb(_ module: Module, seed: UInt64, dtype: DType = .float32, amplitude: Double = 0.3) {
        let g = RandomGenerator(seed: seed)
        for (name, p) in module.namedParameters where p.value.dtype == .float32 {
            let value: Tensor
            if name.hasSuffix("permutation") || name.hasSuffix("sign_s") || name.hasSuffix("initialized") || name.hasSuffix("running_var") {
                value = p.value
            } else {
                value = p.value + Tensor.uniform(p.value.shape, low: -amplitude, high: amplitude, generator: g)
            }
            p.assign(value.cast(to: dtype))
        }
    }

    /// The layers on (N, 4, 4, C) input, each configuration once.
    static func layers(channels c: Int) -> [(String, FlowLayer)] {
        let g = RandomGenerator(seed: 3)
        var out: [(String, FlowLayer)] = [("actnorm", ActNorm(channels: c)),
                                          ("1x1 convolution", InvertibleConvolution(channels: c, generator: g))]
        for mask in CouplingMask.allCases {
            for kind in CouplingKind.allCases {
                for reversed in [false, true] {
                    out.append(("\(kind) \(mask) coupling\(reversed ? " (reversed)" : "")",
                                CouplingLayer(channels: c, midChannels: 8, blocks: 1, mask: mask, reversed: reversed, kind: kind,
                                              generator: g)))
                }
            }
        }
        for (i, (_, layer)) in out.enumerated() { perturb(layer, seed: UInt64(10 + i)) }
        return out
    }

    func testEveryLayerInverts() {
        let x = Tensor.normal([3, 4, 4, 4], generator: RandomGenerator(seed: 1))
        for (name, layer) in Self.layers(channels: 4) {
            let (y, logDet) = withoutGradients { layer.forward(x, training: false) }
            XCTAssertEqual(logDet.shape, [3], name)
            XCTAssertGreaterThan(zip(y.doubleScalars(), x.doubleScalars()).map { abs($0 - $1) }.max() ?? 0, 1e-3, "\(name) is not the identity")
            assertClose(withoutGradients { layer.inverse(y) }, x, relative: 0, floor: 1e-4, name)
        }
    }

    func testSqueezeInverts() {
        let x = Tensor.normal([2, 4, 6, 3], generator: RandomGenerator(seed: 2))
        let s = squeezed2x2(x)
        XCTAssertEqual(s.shape, [2, 2, 3, 12])
        // Channel (dy, dx, c) of output pixel (h, w) is input pixel (2h + dy, 2w + dx, c).
        let xs = x.scalars(as: Float.self), ss = s.scalars(as: Float.self)
        let (h, w, dy, dx, c) = (1, 2, 1, 0, 2)
        let squeezedIndex: Int = (h * 3 + w) * 12 + (dy * 2 + dx) * 3 + c
        let inputIndex: Int = ((2 * h + dy) * 6 + (2 * w + dx)) * 3 + c
        XCTAssertEqual(ss[squeezedIndex], xs[inputIndex])
        XCTAssertEqual(unsqueezed2x2(s).scalars(as: Float.self), xs)
    }

    /// A small stack of either kind: one residual block per coupling, two Glow steps per scale.
    static func smallConfig(_ architecture: FlowArchitecture, channels: Int, imageShape: [Int]) -> FlowConfiguration {
        var config = FlowConfiguration()
        config.architecture = architecture
        config.channels = channels
        config.blocks = 1
        config.steps = 2
        config.imageShape = imageShape
        return config
    }

    func testWholeFlowsInvert() {
        for architecture in FlowArchitecture.allCases {
            let config = Self.smallConfig(architecture, channels: 8, imageShape: [8, 8, 1])
            let flow = NormalizingFlow(config, generator: RandomGenerator(seed: 5))
            // Small moves: a stack of ten strongly perturbed layers is too ill-conditioned to invert in float32.
            Self.perturb(flow, seed: 6, amplitude: 0.05)
            let x = Tensor.normal([2, 8, 8, 1], generator: RandomGenerator(seed: 7))
            let z = withoutGradients { flow.forward(x, training: false).z }
            XCTAssertEqual(z.shape, [2, 64])
            assertClose(withoutGradients { flow.inverse(z) }, x, relative: 0, floor: 1e-4, architecture.rawValue)
            let images = Tensor.uniform([2, 8, 8, 1], generator: RandomGenerator(seed: 8))
            let pixels = withoutGradients { flow.images(fromLatents: flow.latents(of: images)) }
            let levels = { (t: Tensor) in t.scalars(as: Float.self).map { ($0 * 255).rounded() } }
            XCTAssertEqual(levels(pixels), levels(images), "encode then decode returns the 8-bit pixels (\(architecture))")
        }
    }

    /// log |det J| of `f` at x (1, H, W, C), J by central differences in float64.
    static func bruteForceLogDeterminant(_ x: Tensor, _ f: (Tensor) -> Tensor) -> Double {
        let d = x.elementCount, h = 1e-6
        var jacobian = [Double](repeating: 0, count: d * d)
        let p = x.doublePointer
        for j in 0..<d {
            let saved = p[j]
            p[j] = saved + h
            let plus = f(x).doubleScalars()
            p[j] = saved - h
            let minus = f(x).doubleScalars()
            p[j] = saved
            for i in 0..<d { jacobian[i * d + j] = (plus[i] - minus[i]) / (2 * h) }
        }
        return logAbsDeterminant(jacobian, size: d)
    }

    /// log |det A| = sum log |U_ii| of A = P L U (L unit lower-triangular).
    static func logAbsDeterminant(_ a: [Double], size n: Int) -> Double {
        let u = HostMatrix.luDecomposition(a, size: n).u
        return (0..<n).reduce(0) { $0 + Foundation.log(abs(u[$1 * n + $1])) }
    }

    func testLayerLogDeterminantsMatchTheJacobian() {
        for (name, layer) in Self.layers(channels: 2) {
            for (_, p) in layer.namedParameters where p.value.dtype == .float32 { p.assign(p.value.cast(to: .float64)) }
            let x = Tensor.normal([1, 4, 4, 2], dtype: .float64, generator: RandomGenerator(seed: 9))
            let logDet = withoutGradients { layer.forward(x, training: false).logDeterminant.item }
            let brute = withoutGradients { Self.bruteForceLogDeterminant(x) { layer.forward($0, training: false).y } }
            XCTAssertEqual(logDet, brute, accuracy: 1e-6, name)
        }
    }

    func testFlowAndLogitLogDeterminantsMatchTheJacobian() {
        for architecture in FlowArchitecture.allCases {
            let config = Self.smallConfig(architecture, channels: 4, imageShape: [4, 4, 1])
            let flow = NormalizingFlow(config, generator: RandomGenerator(seed: 11))
            Self.perturb(flow, seed: 12, dtype: .float64)
            let x = Tensor.normal([1, 4, 4, 1], dtype: .float64, generator: RandomGenerator(seed: 13))
            let logDet = withoutGradients { flow.forward(x, training: false).layerLogDeterminants.map(\.item).reduce(0, +) }
            let brute = withoutGradients { Self.bruteForceLogDeterminant(x) { flow.forward($0, training: false).z } }
            XCTAssertEqual(logDet, brute, accuracy: 1e-6, architecture.rawValue)
        }
        let y = Tensor.uniform([1, 2, 2, 1], low: 0.01, high: 0.99, dtype: .float64, generator: RandomGenerator(seed: 14))
        let logDet = withoutGradients { FlowDensity.logit(y, alpha: 0.05).logDeterminant.item }
        XCTAssertEqual(logDet, Self.bruteForceLogDeterminant(y) { FlowDensity.logit($0, alpha: 0.05).x }, accuracy: 1e-6, "logit")
    }
}
