import Foundation
import GenTensor
import GenFormats
import GenNN

/// Text prompts for latent diffusion: a word vocabulary and tokenizer of its own, captions made
/// from Fashion-MNIST's class names and an attribute, a small transformer text encoder, and the
/// cross-attention through which the U-Net reads the encoded tokens.

/// A word-level tokenizer over a fixed vocabulary. Ids: 0 padding, 1 an unknown word, 2 the start
/// token that begins every sequence (so the empty prompt, classifier-free guidance's null
/// condition, is the start token alone), then the words.
public struct PromptVocabulary: Codable, Equatable, Sendable {
    public static let padding = 0, unknown = 1, start = 2
    /// The words, id 3 onwards.
    public let words: [String]
    /// Tokens per sequence, the start token included.
    public let length: Int

    public init(words: [String], length: Int) {
        self.words = words
        self.length = length
    }

    /// Ids in the table: the three special tokens and the words.
    public var size: Int { words.count + 3 }

    /// Lower-case words of `text`: letters, digits and inner hyphens.
    public static func split(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0.isNumber || $0 == "-") }.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "-")) }
            .filter { !$0.isEmpty }
    }

    /// The ids of `text` (start token, words, padding; cut to `length`), and its unknown words.
    public func encode(_ text: String) -> (ids: [Int], unknown: [String]) {
        let index = Dictionary(uniqueKeysWithValues: words.enumerated().map { ($0.element, $0.offset + 3) })
        var ids = [Self.start], unknown: [String] = []
        for word in Self.split(text) {
            if let id = index[word] { ids.append(id) } else { ids.append(Self.unknown); unknown.append(word) }
        }
        ids = Array(ids.prefix(length))
        return (ids + Array(repeating: Self.padding, count: length - ids.count), unknown)
    }

    /// Token ids (N, length) int64 of prompts.
    public func tokens(_ prompts: [String]) -> Tensor {
        Tensor(prompts.flatMap { encode($0).ids.map(Int64.init) }, shape: [prompts.count, length])
    }
}

/// Captions of Fashion-MNIST images: a template around a name of the image's class and, sometimes,
/// its brightness ("dark" or "light", from the mean grey level). The words of every caption make
/// the vocabulary.
public enum FashionCaptions {
    /// Names per class (0 T-shirt/top ... 9 Ankle boot); a caption picks one.
    public static let names: [[String]] = [
        ["t-shirt", "top", "tee"], ["pair of trousers", "trousers", "pants"], ["pullover", "sweater", "jumper"],
        ["dress"], ["coat", "jacket"], ["sandal", "pair of sandals"], ["shirt", "blouse"], ["sneaker", "trainer", "running shoe"],
        ["bag", "handbag"], ["ankle boot", "boot"],
    ]
    static let templates = ["a photo of a {}", "a {}", "a picture of a {}", "an image of a {}", "{}"]
    static let attributes = ["dark", "light"]
    /// Words that name no class or attribute: a prompt of only these (and unknown words) is refused.
    public static let fillers: Set<String> = ["a", "an", "photo", "picture", "image", "of", "pair"]

    /// The plain prompt naming class `label` by its first name ("a sneaker", "an ankle boot"): what a
    /// prompt model is asked when it is given a class (`sample ldm --class`, `eval`'s balanced labels).
    public static func prompt(naming label: Int) -> String {
        article("a \(names[label][0])")
    }

    /// "a" before a vowel sound reads "an", as users write it.
    static func article(_ text: String) -> String {
        text.replacingOccurrences(of: "a ankle", with: "an ankle")
    }

    /// Why `prompt` cannot condition a model of this vocabulary (it names no known class or
    /// attribute), or nil.
    public static func problem(with prompt: String, vocabulary: PromptVocabulary) -> String? {
        let known = Set(vocabulary.words).subtracting(fillers)
        if PromptVocabulary.split(prompt).contains(where: known.contains) { return nil }
        let names = Set(Self.names.flatMap { $0 }).sorted().joined(separator: ", ")
        return "the prompt \"\(prompt)\" names no clothing item or attribute the model knows (items: \(names); attributes: dark, light)"
    }

    /// The vocabulary of every caption, words sorted.
    public static let vocabulary: PromptVocabulary = {
        var words = Set<String>(attributes)
        for template in templates { words.formUnion(PromptVocabulary.split(template.replacingOccurrences(of: "{}", with: ""))) }
        for variants in names { for name in variants { words.formUnion(PromptVocabulary.split(name)) } }
        return PromptVocabulary(words: words.sorted(), length: 10)
    }()

    /// The brightness word of an image (H, W, C) in [0, 1] with mean grey level `mean`, or nil
    /// between the two thresholds (most images).
    public static func attribute(meanGrey mean: Double) -> String? {
        mean < 0.2 ? "dark" : mean > 0.45 ? "light" : nil
    }

    /// The attribute codes that travel with class labels: 0 none, 1 dark, 2 light.
    public static func attributeCode(meanGrey: Double) -> Int {
        attribute(meanGrey: meanGrey).map { attributes.firstIndex(of: $0)! + 1 } ?? 0
    }

    /// A random caption of an image of class `label` with attribute code `attributeCode` (used half
    /// of the time when there is one).
    public static func caption(label: Int, attributeCode: Int, generator rng: RandomGenerator) -> String {
        func pick<T>(_ items: [T]) -> T { items[min(items.count - 1, Int(rng.nextUnitDouble() * Double(items.count)))] }
        var name = pick(names[label])
        if attributeCode > 0, rng.nextUnitDouble() < 0.5 {
            let attribute = attributes[attributeCode - 1]
            name = name.hasPrefix("pair of ") ? "pair of \(attribute) " + name.dropFirst(8) : "\(attribute) \(name)"
        }
        let template = pick(templates)
        return article(template.replacingOccurrences(of: "{}", with: name))
    }
}

/// Scaled dot-product attention of queries (B, Q, C) over keys and values (B, K, C), with an additive
/// `bias` (B, 1, K) (0 to attend, -1e9 to ignore a key): softmax(q kᵀ / sqrt(C) + bias) v, (B, Q, C).
public func maskedAttention(queries q: Tensor, keys k: Tensor, values v: Tensor, bias: Tensor?) -> Tensor {
    var scores = Tensor.matmul(q, k, transposeB: true) / Double(q.shape[2]).squareRoot()
    if let bias { scores = scores + bias }
    return Tensor.matmul(scores.softmax(axis: -1), v)
}

/// The additive attention bias (B, 1, L) of token ids (B, L): 0 for tokens, -1e9 for padding.
public func paddingBias(_ tokens: Tensor) -> Tensor {
    let ids = tokens.scalars(as: Int64.self)
    return Tensor(ids.map { $0 == Int64(PromptVocabulary.padding) ? Float(-1e9) : 0 }, shape: [tokens.shape[0], 1, tokens.shape[1]])
}

/// A small transformer text encoder: token and position embeddings, one pre-norm block
/// (single-head self-attention over the non-padding tokens, then a SiLU MLP of width 4D), and a
/// final LayerNorm. Input: token ids (B, L) int64. Output: (B, L, D).
///
/// Names: `token_emb.weight` (V, D), `pos_emb` (L, D), `norm1`, `qkv` (D -> 3D), `proj`, `norm2`,
/// `mlp.0` (D -> 4D), `mlp.2` (4D -> D), `norm_out`.
public final class TextEncoder: Module {
    public let dimension: Int
    let tokenEmbedding: Embedding
    let positions: Parameter
    let norm1: LayerNorm, qkv: Linear, proj: Linear, norm2: LayerNorm, mlp1: Linear, mlp2: Linear, normOut: LayerNorm

    public init(vocabulary: Int, length: Int, dimension: Int, generator g: RandomGenerator) {
        self.dimension = dimension
        tokenEmbedding = Embedding(vocabulary, dimension, generator: g)
        positions = Parameter(Tensor.normal([length, dimension], std: 0.02, generator: g))
        norm1 = LayerNorm(dimension)
        qkv = Linear(dimension, 3 * dimension, generator: g)
        proj = Linear(dimension, dimension, generator: g)
        norm2 = LayerNorm(dimension)
        mlp1 = Linear(dimension, 4 * dimension, generator: g)
        mlp2 = Linear(4 * dimension, dimension, generator: g)
        normOut = LayerNorm(dimension)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("token_emb", tokenEmbedding.namedParameters) + [("pos_emb", positions)] + prefixed("norm1", norm1.namedParameters)
            + prefixed("qkv", qkv.namedParameters) + prefixed("proj", proj.namedParameters) + prefixed("norm2", norm2.namedParameters)
            + prefixed("mlp.0", mlp1.namedParameters) + prefixed("mlp.2", mlp2.namedParameters) + prefixed("norm_out", normOut.namedParameters)
    }

    /// Encodes token ids (B, L) to (B, L, D).
    public func callAsFunction(_ tokens: Tensor) -> Tensor {
        let (b, l, d) = (tokens.shape[0], tokens.shape[1], dimension)
        var h = tokenEmbedding(tokens) + positions.value.reshaped([1, l, d])
        let flat = { (x: Tensor) in x.reshaped([b * l, d]) }
        let parts = qkv(norm1(flat(h))).reshaped([b, l, 3 * d]).chunked(3, axis: 2)
        h = h + proj(flat(maskedAttention(queries: parts[0], keys: parts[1], values: parts[2], bias: paddingBias(tokens)))).reshaped([b, l, d])
        h = h + mlp2(mlp1(norm2(flat(h)), activation: .silu)).reshaped([b, l, d])
        return normOut(flat(h)).reshaped([b, l, d])
    }
}

/// Cross-attention from image features to a context, with a residual connection (the LDM paper's
/// conditioning on text): q = W_q norm(x), k = W_k c, v = W_v c, out = x + W_o attention(q, k, v).
///
/// - Input: x (B, H, W, C), context (B, L, D), bias (B, 1, L) (`paddingBias`). Output: (B, H, W, C).
/// - Names: `norm` (GroupNorm C), `q` (C -> C), `k` (D -> C), `v` (D -> C), `proj` (C -> C).
public final class CrossAttention: Module {
    let norm: GroupNorm, q: Linear, k: Linear, v: Linear, proj: Linear

    public init(channels: Int, contextDimension: Int, groups: Int = 8, generator g: RandomGenerator) {
        norm = GroupNorm(groups: groups, channels: channels)
        q = Linear(channels, channels, generator: g)
        k = Linear(contextDimension, channels, generator: g)
        v = Linear(contextDimension, channels, generator: g)
        proj = Linear(channels, channels, generator: g)
    }

    public var namedParameters: [(String, Parameter)] {
        prefixed("norm", norm.namedParameters) + prefixed("q", q.namedParameters) + prefixed("k", k.namedParameters)
            + prefixed("v", v.namedParameters) + prefixed("proj", proj.namedParameters)
    }

    public func callAsFunction(_ x: Tensor, context: Tensor, bias: Tensor?) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (l, d) = (context.shape[1], context.shape[2])
        let queries = q(norm(x).reshaped([b * h * w, c])).reshaped([b, h * w, c])
        let flatContext = context.reshaped([b * l, d])
        let keys = k(flatContext).reshaped([b, l, c]), values = v(flatContext).reshaped([b, l, c])
        let attended = maskedAttention(queries: queries, keys: keys, values: values, bias: bias)
        return x + proj(attended.reshaped([b * h * w, c])).reshaped([b, h, w, c])
    }
}
