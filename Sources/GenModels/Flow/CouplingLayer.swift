import GenTensor
import GenNN

/// Which half of the input a coupling layer leaves unchanged.
public enum CouplingMask: String, Sendable, Codable, CaseIterable {
    /// Pixels with (h + w) even (odd when reversed) condition the others.
    case checkerboard
    /// The first half of the channels (the second when reversed) conditions the other half.
    case channel
}

/// How a coupling layer changes the other half.
public enum CouplingKind: String, Sendable, Codable, CaseIterable {
    /// y = x exp(s) + t, s = scale * tanh(raw s) (RealNVP, Glow's affine coupling).
    case affine
    /// y = x + t (NICE, Glow's additive coupling): volume-preserving.
    case additive
}

/// A coupling layer (Dinh et al. 2017): one part of the input passes unchanged and conditions an
/// elementwise affine (or additive) map of the other, so the Jacobian is triangular and its
/// log-determinant is the sum of the log-scales.
///
/// - Input and output: (N, H, W, C); C even for the channel mask.
/// - Parameters: `net.*` (the `CouplingNetwork`), `scale` (C_changed), the learned factor on tanh
///   (ones; affine only).
public final class CouplingLayer: FlowLayer {
    public let mask: CouplingMask, reversed: Bool, kind: CouplingKind
    public let net: CouplingNetwork
    public let scale: Parameter?

    public init(channels: Int, midChannels: Int, blocks: Int, mask: CouplingMask, reversed: Bool, kind: CouplingKind,
                generator: RandomGenerator) {
        precondition(mask == .checkerboard || channels % 2 == 0, "CouplingLayer: a channel mask needs an even channel count, not \(channels)")
        self.mask = mask; self.reversed = reversed; self.kind = kind
        let changed = mask == .checkerboard ? channels : channels / 2
        net = CouplingNetwork(inChannels: changed == channels ? channels : channels / 2, midChannels: midChannels,
                              outChannels: changed, blocks: blocks, generator: generator)
        scale = kind == .affine ? Parameter(Tensor.ones([changed])) : nil
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("net", net.namedParameters) + (scale.map { [("scale", $0)] } ?? [])
    }

    /// The checkerboard (1, H, W, 1): 1 where a pixel conditions, 0 where it is changed.
    func checkerboard(height: Int, width: Int, dtype: DType) -> Tensor {
        let parity = reversed ? 1 : 0
        let values = (0..<(height * width)).map { Float(($0 / width + $0 % width) % 2 == parity ? 1 : 0) }
        return Tensor(values, shape: [1, height, width, 1]).cast(to: dtype)
    }

    /// The log-scale and translation for the changed part, given the conditioning input.
    func parameters(_ condition: Tensor, training: Bool) -> (Tensor?, Tensor) {
        let (raw, translation) = net(condition, training: training)
        guard let scale else { return (nil, translation) }
        return (raw.tanh() * scale.value, translation)
    }

    public func forward(_ x: Tensor, training: Bool) -> (y: Tensor, logDeterminant: Tensor) {
        switch mask {
        case .checkerboard:
            let b = checkerboard(height: x.shape[1], width: x.shape[2], dtype: x.dtype), changed = 1 - b
            let (s, t) = parameters(x * b, training: training)
            guard let s else { return (x + t * changed, Tensor.zeros([x.shape[0]], dtype: x.dtype)) }
            let logScale = s * changed
            return (x * logScale.exp() + t * changed, perImageSum(logScale))
        case .channel:
            let (keep, change) = halves(x)
            let (s, t) = parameters(keep, training: training)
            guard let s else { return (joined(keep, change + t), Tensor.zeros([x.shape[0]], dtype: x.dtype)) }
            return (joined(keep, change * s.exp() + t), perImageSum(s))
        }
    }

    public func inverse(_ y: Tensor) -> Tensor {
        switch mask {
        case .checkerboard:
            let b = checkerboard(height: y.shape[1], width: y.shape[2], dtype: y.dtype), changed = 1 - b
            let (s, t) = parameters(y * b, training: false)
            guard let s else { return y - t * changed }
            return (y - t * changed) * (s * changed * -1).exp()
        case .channel:
            let (keep, change) = halves(y)
            let (s, t) = parameters(keep, training: false)
            guard let s else { return joined(keep, change - t) }
            return joined(keep, (change - t) * (s * -1).exp())
        }
    }

    /// (conditioning half, changed half) of the channels.
    func halves(_ x: Tensor) -> (Tensor, Tensor) {
        let parts = x.chunked(2, axis: 3)
        return reversed ? (parts[1], parts[0]) : (parts[0], parts[1])
    }

    /// The channels back in their order.
    func joined(_ keep: Tensor, _ change: Tensor) -> Tensor {
        Tensor.concatenate(reversed ? [change, keep] : [keep, change], axis: 3)
    }
}
