import Foundation
import GenTensor
import GenNN

/// Which stack of layers a flow uses.
public enum FlowArchitecture: String, Sendable, Codable, CaseIterable {
    /// RealNVP (Dinh et al. 2017): per scale, three checkerboard couplings, a squeeze, three
    /// channel-wise couplings and a split; four checkerboard couplings at the last scale.
    case realnvp
    /// Glow (Kingma & Dhariwal 2018): per scale, a squeeze, then `steps` of activation
    /// normalisation, an invertible 1x1 convolution and a channel-wise coupling, then a split.
    case glow
}

/// A flow's typed configuration, stored in its checkpoints (metadata `flow_config`).
public struct FlowConfiguration: Codable, Equatable, Sendable {
    public var architecture = FlowArchitecture.realnvp
    /// Scales of the multi-scale architecture (half of the dimensions is factored out after each
    /// but the last).
    public var scales = 2
    /// Channels of the coupling networks at the first scale (doubled at each later one).
    public var channels = 32
    /// Residual blocks per coupling network.
    public var blocks = 2
    /// Glow: flow steps per scale.
    public var steps = 4
    /// Affine or additive couplings.
    public var coupling = CouplingKind.affine
    /// The logit pre-processing's alpha: x -> logit(alpha + (1 - 2 alpha) x).
    public var alpha = 0.05
    /// One image's shape [H, W, C]; H and W halve `scales` times (RealNVP: scales - 1).
    public var imageShape = [28, 28, 1]

    public init() {}

    /// Why this configuration cannot be built (nil when it can).
    public var problem: String? {
        guard scales >= 1, channels >= 1, blocks >= 0, steps >= 1 else { return "scales, channels and steps must be at least 1, blocks at least 0" }
        guard alpha > 0, alpha < 0.5 else { return "alpha must be in (0, 0.5)" }
        let squeezes = architecture == .glow ? scales : scales - 1
        let factor = 1 << squeezes
        guard imageShape.count == 3, imageShape[0] % factor == 0, imageShape[1] % factor == 0 else {
            return "\(imageShape.prefix(2).map(String.init).joined(separator: " x ")) images do not halve \(squeezes) times (\(scales) scales of \(architecture.rawValue))"
        }
        return nil
    }
}

/// A multi-scale normalising flow over images (RealNVP or Glow) with logit pre-processing and
/// uniform dequantisation, giving an exact log-likelihood.
///
/// - Images: (N, H, W, C) in [0, 1] (8-bit values k / 255). Latents: (N, H W C), standard normal
///   under the model; the factored-out parts first, in the order they leave, then the last scale's.
/// - Parameters: `layers.I.*` for the I-th invertible layer, in data-to-latent order.
public final class NormalizingFlow: Module {
    /// One step of the flow in data-to-latent order.
    enum Step {
        case layer(Int)
        case squeeze
        /// Half of the channels leaves for the latent.
        case factorOut
    }

    public let config: FlowConfiguration
    public let layers: [FlowLayer]
    let plan: [Step]
    /// The shapes (without N) of the latent's parts, in order.
    let latentParts: [[Int]]

    public init(_ config: FlowConfiguration, generator: RandomGenerator) {
        precondition(config.problem == nil, "NormalizingFlow: \(config.problem ?? "")")
        self.config = config
        var layers: [FlowLayer] = [], plan: [Step] = [], parts: [[Int]] = []
        var shape = config.imageShape
        func add(_ layer: FlowLayer) { plan.append(.layer(layers.count)); layers.append(layer) }
        func squeeze() { plan.append(.squeeze); shape = [shape[0] / 2, shape[1] / 2, shape[2] * 4] }
        func factorOut() {
            plan.append(.factorOut)
            let kept = shape[2] / 2
            parts.append([shape[0], shape[1], shape[2] - kept])
            shape[2] = kept
        }
        for scale in 0..<config.scales {
            let last = scale == config.scales - 1
            let mid = config.channels << scale
            func coupling(_ mask: CouplingMask, reversed: Bool, mid: Int) -> CouplingLayer {
                CouplingLayer(channels: shape[2], midChannels: mid, blocks: config.blocks, mask: mask, reversed: reversed,
                              kind: config.coupling, generator: generator)
            }
            switch config.architecture {
            case .realnvp:
                for i in 0..<(last ? 4 : 3) { add(coupling(.checkerboard, reversed: i % 2 == 1, mid: mid)) }
                if !last {
                    squeeze()
                    for i in 0..<3 { add(coupling(.channel, reversed: i % 2 == 1, mid: 2 * mid)) }
                    factorOut()
                }
            case .glow:
                squeeze()
                for _ in 0..<config.steps {
                    add(ActNorm(channels: shape[2]))
                    add(InvertibleConvolution(channels: shape[2], generator: generator))
                    add(coupling(.channel, reversed: false, mid: mid))
                }
                if !last { factorOut() }
            }
        }
        parts.append(shape)
        self.layers = layers
        self.plan = plan
        latentParts = parts
    }

    public var namedParameters: [(String, Parameter)] {
        layers.enumerated().flatMap { prefixed("layers.\($0.offset)", $0.element.namedParameters) }
    }

    /// Dimensions per image, H W C.
    public var dimensions: Int { config.imageShape.reduce(1, *) }

    /// The flow from pre-processed data (N, H, W, C) to the latent (N, D), with each layer's
    /// log-determinant (N) in layer order.
    public func forward(_ x: Tensor, training: Bool) -> (z: Tensor, layerLogDeterminants: [Tensor]) {
        var h = x, outs: [Tensor] = [], logDets: [Tensor] = []
        let n = x.shape[0]
        for step in plan {
            switch step {
            case let .layer(i):
                let (y, logDet) = layers[i].forward(h, training: training)
                h = y
                logDets.append(logDet)
            case .squeeze:
                h = squeezed2x2(h)
            case .factorOut:
                let kept = h.shape[3] / 2
                outs.append(h.sliced(axis: 3, kept..<h.shape[3]).reshaped([n, -1]))
                h = h.sliced(axis: 3, 0..<kept)
            }
        }
        outs.append(h.reshaped([n, -1]))
        return (outs.count == 1 ? outs[0] : Tensor.concatenate(outs, axis: 1), logDets)
    }

    /// The inverse flow: latents (N, D) to pre-processed data (N, H, W, C).
    public func inverse(_ z: Tensor) -> Tensor {
        let n = z.shape[0]
        var parts: [Tensor] = []
        var offset = 0
        for shape in latentParts {
            let size = shape.reduce(1, *)
            parts.append(z.sliced(axis: 1, offset..<(offset + size)).reshaped([n] + shape))
            offset += size
        }
        var h = parts.removeLast()
        for step in plan.reversed() {
            switch step {
            case let .layer(i): h = layers[i].inverse(h)
            case .squeeze: h = unsqueezed2x2(h)
            case .factorOut: h = Tensor.concatenate([h, parts.removeLast()], axis: 3)
            }
        }
        return h
    }

    /// The layers' names for messages ("layer 3 (checkerboard coupling, scale 1)").
    public func layerDescription(_ index: Int) -> String {
        let layer = layers[index]
        let what: String
        switch layer {
        case let c as CouplingLayer: what = "\(c.kind.rawValue) \(c.mask.rawValue) coupling"
        case is ActNorm: what = "actnorm"
        case is InvertibleConvolution: what = "invertible 1x1 convolution"
        default: what = String(describing: type(of: layer))
        }
        return "layers.\(index) (\(what))"
    }
}
