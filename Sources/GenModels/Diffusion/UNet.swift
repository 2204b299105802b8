import Foundation
import GenTensor
import GenFormats
import GenNN

/// The architecture of a DDPM noise-prediction `UNet` (the reference `UNet` of scripts/torch_reference/models.py).
///
/// The defaults are the reference workload: 1 input channel, width 64, channel multipliers
/// (1, 2, 2) (28x28 -> 14x14 -> 7x7), 2 residual blocks per level, GroupNorm with 8 groups,
/// self-attention at the lowest resolution level, unconditional (`numClasses` 0).
public struct UNetConfig: Sendable, Equatable {
    /// Image channels in and out (1 for grey images).
    public var inChannels: Int
    /// The base width `ch`; the time embedding has `4 * width` features.
    public var width: Int
    /// Channel multiplier of each resolution level; every level but the last halves the resolution.
    public var channelMultipliers: [Int]
    /// Residual blocks per level on the way down (one more per level on the way up).
    public var numRes: Int
    /// Number of class labels; 0 for an unconditional model. When positive, the class embedding has
    /// `numClasses + 1` rows and label `numClasses` is the "no label" token of classifier-free guidance.
    public var numClasses: Int
    /// GroupNorm groups.
    public var groups: Int
    /// Channels out (nil: `inChannels`); fewer when conditioning channels are concatenated to the input.
    public var outChannels: Int?
    /// Text conditioning (nil: none): the labels y are token ids (B, length), read by a `TextEncoder`
    /// and cross-attention after every self-attention.
    public var text: UNetTextConfig?

    public init(inChannels: Int = 1, width: Int = 64, channelMultipliers: [Int] = [1, 2, 2], numRes: Int = 2,
                numClasses: Int = 0, groups: Int = 8, outChannels: Int? = nil, text: UNetTextConfig? = nil) {
        precondition(!channelMultipliers.isEmpty, "UNetConfig: no channel multipliers")
        precondition(width % 2 == 0, "UNetConfig: width \(width) must be even (sinusoidal embedding)")
        self.inChannels = inChannels
        self.width = width
        self.channelMultipliers = channelMultipliers
        self.numRes = numRes
        self.numClasses = numClasses
        self.groups = groups
        self.outChannels = outChannels
        self.text = text
    }

    /// Features of the time (and class) embedding: 4 * width.
    public var timeEmbeddingDim: Int { width * 4 }
    /// The label that means "no label" (classifier-free guidance), or nil for an unconditional model.
    public var nullLabel: Int? { numClasses > 0 ? numClasses : nil }
}

/// The text conditioning of a `UNet`: vocabulary size, tokens per prompt, encoder width.
public struct UNetTextConfig: Codable, Sendable, Equatable {
    public var vocabulary: Int
    public var length: Int
    public var dimension: Int
    public init(vocabulary: Int, length: Int, dimension: Int) {
        self.vocabulary = vocabulary
        self.length = length
        self.dimension = dimension
    }
}

/// Sinusoidal timestep embedding, as scripts/torch_reference/models.py's `sinusoidal_embedding` (float32 throughout).
///
/// freqs[i] = exp(-ln(10000) * i / half) for i < half = dim / 2; args = t * freqs;
/// the result is [sin(args), cos(args)] along the last axis.
///
/// - Parameters:
///   - t: int64 timesteps, shape (B).
///   - dim: embedding size (even).
/// - Returns: float32 (B, dim), with no gradient history.
public func timestepEmbedding(_ t: Tensor, dim: Int) -> Tensor {
    precondition(t.rank == 1, "timestepEmbedding: t must be (B), got \(t.shape)")
    precondition(dim % 2 == 0, "timestepEmbedding: dim \(dim) must be even")
    let half = dim / 2
    // PyTorch: the Python float -ln(10000) meets a float32 arange, so the product, the division by
    // `half` and the exp are all float32.
    let scale = Float(-log(10000.0))
    let freqs: [Float] = (0..<half).map { i in exp(scale * Float(i) / Float(half)) }
    let args = t.cast(to: .float32).reshaped([t.shape[0], 1]) * Tensor(freqs, shape: [1, half])
    return Tensor.concatenate([args.sin(), args.cos()], axis: 1).detached()
}

/// A residual block with a time-embedding injection (scripts/torch_reference/models.py's `ResBlock`).
///
/// h = conv1(silu(norm1(x))) + temb(silu(e)); h = conv2(silu(norm2(h))); out = h + skip(x),
/// with `skip` a 1x1 convolution when the channel count changes, else the identity.
///
/// - Input: x (B, H, W, inChannels) channels-last, e (B, tdim). Output: (B, H, W, outChannels).
/// - Parameters: `norm1.*`, `conv1.*`, `temb.*`, `norm2.*`, `conv2.*`, and `skip.*` only when
///   inChannels != outChannels.
public final class ResBlock: Module {
    public let norm1: GroupNorm, conv1: Conv2d, temb: Linear, norm2: GroupNorm, conv2: Conv2d
    public let skip: Conv2d?

    public init(_ inChannels: Int, _ outChannels: Int, timeEmbeddingDim: Int, groups: Int = 8,
                generator: RandomGenerator) {
        norm1 = GroupNorm(groups: groups, channels: inChannels)
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        temb = Linear(timeEmbeddingDim, outChannels, generator: generator)
        norm2 = GroupNorm(groups: groups, channels: outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1, generator: generator)
        skip = inChannels != outChannels
            ? Conv2d(inChannels, outChannels, kernelSize: 1, generator: generator) : nil
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("norm1", norm1.namedParameters) + prefixed("conv1", conv1.namedParameters)
            + prefixed("temb", temb.namedParameters) + prefixed("norm2", norm2.namedParameters)
            + prefixed("conv2", conv2.namedParameters) + (skip.map { prefixed("skip", $0.namedParameters) } ?? [])
    }

    public func callAsFunction(_ x: Tensor, _ e: Tensor) -> Tensor {
        var h = conv1(norm1.withSiLU(x))
        let t = temb(e.silu())
        h = h + t.reshaped([t.shape[0], 1, 1, t.shape[1]])
        h = conv2(norm2.withSiLU(h))
        return h + (skip.map { $0(x) } ?? x)
    }
}

/// Single-head spatial self-attention with a residual connection (scripts/torch_reference/models.py's `SelfAttention`).
///
/// q, k, v = split(qkv(norm(x))) along channels (PyTorch's `reshape(b, 3, c, h*w)` order: q is
/// channels 0..<C, k is C..<2C, v is 2C..<3C); attn = softmax(q kᵀ / sqrt(C)) over the keys;
/// out = x + proj(attn v).
///
/// - Input and output: (B, H, W, C) channels-last.
/// - Parameters: `norm.*` (C), `qkv.*` (1x1 conv C -> 3C), `proj.*` (1x1 conv C -> C).
public final class SelfAttention: Module {
    public let norm: GroupNorm, qkv: Conv2d, proj: Conv2d
    public let channels: Int

    public init(_ channels: Int, groups: Int = 8, generator: RandomGenerator) {
        self.channels = channels
        norm = GroupNorm(groups: groups, channels: channels)
        qkv = Conv2d(channels, channels * 3, kernelSize: 1, generator: generator)
        proj = Conv2d(channels, channels, kernelSize: 1, generator: generator)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("norm", norm.namedParameters) + prefixed("qkv", qkv.namedParameters)
            + prefixed("proj", proj.namedParameters)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let parts = qkv(norm(x)).reshaped([b, h * w, 3 * c]).chunked(3, axis: 2)
        let (q, k, v) = (parts[0], parts[1], parts[2])
        let scores = Tensor.matmul(q, k, transposeB: true) / Double(c).squareRoot()  // (B, HW, HW)
        let attn = scores.softmax(axis: -1)
        let out = Tensor.matmul(attn, v).reshaped([b, h, w, c])  // (B, HW, C) -> (B, H, W, C)
        return x + proj(out)
    }
}

/// DDPM noise-prediction U-Net for small images (scripts/torch_reference/models.py's `UNet`), channels-last.
///
/// conv_in, then per level `numRes` residual blocks (with self-attention at the lowest level) and a
/// stride-2 3x3 conv between levels; mid1, mid_attn, mid2; on the way up `numRes + 1` residual blocks
/// per level, each taking the concatenation [h, skip] along channels, and a nearest 2x upsample plus
/// 3x3 conv between levels; then GroupNorm, SiLU, conv_out. The time embedding is
/// time_mlp(timestepEmbedding(t, width)) (Linear, SiLU, Linear), plus class_emb(y) when conditional.
///
/// - Input: x (B, H, W, inChannels) channels-last (an odd H or W halves by rounding up, and the way
///   up crops its upsampled rows and columns to the skip connection's), t int64 (B)
///   0-based timesteps, y int64 (B) labels (required when `numClasses` > 0, ignored otherwise).
/// - Output: predicted noise (B, H, W, outChannels), outChannels = inChannels unless the config says.
/// - Parameter names are the PyTorch state_dict names (`time_mlp.0.weight`, `down.2.0.weight`,
///   `up.3.1.weight`, ...), so `load(from:strict:)` reads a PyTorch checkpoint directly.
public final class UNet: Module {
    /// One entry of `down`: a residual block (with attention at the lowest level), or a downsampling conv.
    enum DownStage {
        case residual(ResBlock, SelfAttention?)
        case downsample(Conv2d)
    }

    /// One entry of `up`: a residual block (with attention at the lowest level), or upsample + conv.
    enum UpStage {
        case residual(ResBlock, SelfAttention?)
        case upsample(Conv2d)
    }

    public let config: UNetConfig
    public let timeLinear1: Linear, timeLinear2: Linear
    public let classEmbedding: Embedding?
    public let convIn: Conv2d
    let down: [DownStage]
    public let mid1: ResBlock, midAttention: SelfAttention, mid2: ResBlock
    let up: [UpStage]
    public let normOut: GroupNorm, convOut: Conv2d
    /// Text conditioning: the encoder, and a cross-attention after each self-attention (by stage index).
    public let textEncoder: TextEncoder?
    let downCross: [Int: CrossAttention], upCross: [Int: CrossAttention]
    let midCross: CrossAttention?

    public init(_ config: UNetConfig = UNetConfig(), generator: RandomGenerator) {
        self.config = config
        let ch = config.width, tdim = config.timeEmbeddingDim, groups = config.groups
        let mult = config.channelMultipliers, last = mult.count - 1
        timeLinear1 = Linear(ch, tdim, generator: generator)
        timeLinear2 = Linear(tdim, tdim, generator: generator)
        classEmbedding = config.numClasses > 0 ? Embedding(config.numClasses + 1, tdim, generator: generator) : nil
        convIn = Conv2d(config.inChannels, ch, kernelSize: 3, padding: 1, generator: generator)
        var chans = [ch], c = ch
        var down: [DownStage] = []
        for (level, m) in mult.enumerated() {
            for _ in 0..<config.numRes {
                let block = ResBlock(c, ch * m, timeEmbeddingDim: tdim, groups: groups, generator: generator)
                c = ch * m
                down.append(.residual(block, level == last ? SelfAttention(c, groups: groups, generator: generator) : nil))
                chans.append(c)
            }
            if level != last {
                down.append(.downsample(Conv2d(c, c, kernelSize: 3, stride: 2, padding: 1, generator: generator)))
                chans.append(c)
            }
        }
        self.down = down
        mid1 = ResBlock(c, c, timeEmbeddingDim: tdim, groups: groups, generator: generator)
        midAttention = SelfAttention(c, groups: groups, generator: generator)
        mid2 = ResBlock(c, c, timeEmbeddingDim: tdim, groups: groups, generator: generator)
        var up: [UpStage] = []
        for (level, m) in mult.enumerated().reversed() {
            for _ in 0..<(config.numRes + 1) {
                let block = ResBlock(c + chans.removeLast(), ch * m, timeEmbeddingDim: tdim, groups: groups,
                                     generator: generator)
                c = ch * m
                up.append(.residual(block, level == last ? SelfAttention(c, groups: groups, generator: generator) : nil))
            }
            if level != 0 {
                up.append(.upsample(Conv2d(c, c, kernelSize: 3, padding: 1, generator: generator)))
            }
        }
        self.up = up
        normOut = GroupNorm(groups: groups, channels: c)
        convOut = Conv2d(c, config.outChannels ?? config.inChannels, kernelSize: 3, padding: 1, generator: generator)
        if let text = config.text {
            textEncoder = TextEncoder(vocabulary: text.vocabulary, length: text.length, dimension: text.dimension, generator: generator)
            func cross(_ stages: [(Int, Int?)]) -> [Int: CrossAttention] {
                Dictionary(uniqueKeysWithValues: stages.compactMap { index, channels in
                    channels.map { (index, CrossAttention(channels: $0, contextDimension: text.dimension, groups: groups, generator: generator)) }
                })
            }
            downCross = cross(self.down.enumerated().map { i, stage in
                if case let .residual(_, attention?) = stage { return (i, attention.channels) } else { return (i, nil) }
            })
            upCross = cross(self.up.enumerated().map { i, stage in
                if case let .residual(_, attention?) = stage { return (i, attention.channels) } else { return (i, nil) }
            })
            midCross = CrossAttention(channels: midAttention.channels, contextDimension: text.dimension, groups: groups, generator: generator)
        } else {
            textEncoder = nil
            downCross = [:]
            upCross = [:]
            midCross = nil
        }
    }

    public var namedParameters: [(String, Parameter)] {
        var out = prefixed("time_mlp.0", timeLinear1.namedParameters) + prefixed("time_mlp.2", timeLinear2.namedParameters)
        if let classEmbedding { out += prefixed("class_emb", classEmbedding.namedParameters) }
        out += prefixed("conv_in", convIn.namedParameters)
        if let textEncoder { out += prefixed("text", textEncoder.namedParameters) }
        for (i, stage) in down.enumerated() {
            switch stage {
            case let .residual(block, attention):
                out += prefixed("down.\(i).0", block.namedParameters)
                if let attention { out += prefixed("down.\(i).1", attention.namedParameters) }
                if let cross = downCross[i] { out += prefixed("down.\(i).2", cross.namedParameters) }
            case let .downsample(conv):
                out += prefixed("down.\(i).0", conv.namedParameters)
            }
        }
        out += prefixed("mid1", mid1.namedParameters) + prefixed("mid_attn", midAttention.namedParameters)
        if let midCross { out += prefixed("mid_xattn", midCross.namedParameters) }
        out += prefixed("mid2", mid2.namedParameters)
        for (i, stage) in up.enumerated() {
            switch stage {
            case let .residual(block, attention):
                out += prefixed("up.\(i).0", block.namedParameters)
                if let attention { out += prefixed("up.\(i).1", attention.namedParameters) }
                if let cross = upCross[i] { out += prefixed("up.\(i).2", cross.namedParameters) }
            case let .upsample(conv):
                // Index 0 of this nn.ModuleList is the parameterless nn.Upsample.
                out += prefixed("up.\(i).1", conv.namedParameters)
            }
        }
        return out + prefixed("norm_out", normOut.namedParameters) + prefixed("conv_out", convOut.namedParameters)
    }

    /// The time (and class) embedding, (B, 4 * width).
    public func embedding(_ t: Tensor, _ y: Tensor?) -> Tensor {
        var e = timeLinear2(timeLinear1(timestepEmbedding(t, dim: config.width), activation: .silu))
        if let classEmbedding {
            guard let y else { preconditionFailure("UNet: a class-conditional model needs labels y") }
            precondition(y.shape == t.shape, "UNet: labels \(y.shape) and timesteps \(t.shape) differ in shape")
            e = e + classEmbedding(y)
        }
        return e
    }

    /// Predicts the noise in `x` at timesteps `t` (see the type's documentation for shapes).
    public func callAsFunction(_ x: Tensor, t: Tensor, y: Tensor? = nil) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == config.inChannels,
                     "UNet: input must be (B, H, W, \(config.inChannels)), got \(x.shape)")
        precondition(t.shape == [x.shape[0]], "UNet: timesteps \(t.shape) do not match batch \(x.shape[0])")
        // Text models: y holds token ids (B, length), read by the encoder, not the time embedding.
        let context = textEncoder.map { $0(y!) }
        let bias = context == nil ? nil : paddingBias(y!)
        let e = embedding(t, textEncoder == nil ? y : nil)
        var h = convIn(x)
        var hs = [h]
        for (i, stage) in down.enumerated() {
            switch stage {
            case let .residual(block, attention):
                h = block(h, e)
                if let attention { h = attention(h) }
                if let cross = downCross[i], let context { h = cross(h, context: context, bias: bias) }
            case let .downsample(conv):
                h = conv(h)
            }
            hs.append(h)
        }
        h = midAttention(mid1(h, e))
        if let midCross, let context { h = midCross(h, context: context, bias: bias) }
        h = mid2(h, e)
        for (i, stage) in up.enumerated() {
            switch stage {
            case let .residual(block, attention):
                h = block(Tensor.concatenate([h, hs.removeLast()], axis: 3), e)
                if let attention { h = attention(h) }
                if let cross = upCross[i], let context { h = cross(h, context: context, bias: bias) }
            case let .upsample(conv):
                // An odd size (7 halves to 4) comes back one row and column larger: crop to the skip's.
                h = h.upsampleNearest(scale: 2)
                if let skip = hs.last, h.shape[1] != skip.shape[1] || h.shape[2] != skip.shape[2] {
                    h = h.sliced(axis: 1, 0..<skip.shape[1]).sliced(axis: 2, 0..<skip.shape[2])
                }
                h = conv(h)
            }
        }
        return convOut(normOut.withSiLU(h))
    }
}
