import Foundation
import GenTensor
import GenNN
import GenModels
import XCTest

/// The prompt machinery of latent diffusion: the tokenizer and captions, and cross-attention
/// against a float64 computation written out here.
final class TextConditioningTests: XCTestCase {
    func testTokenizerMarksUnknownWordsAndPads() {
        let vocabulary = FashionCaptions.vocabulary
        let (ids, unknown) = vocabulary.encode("A dark Sneaker, please!")
        XCTAssertEqual(ids.count, vocabulary.length)
        XCTAssertEqual(ids[0], PromptVocabulary.start)
        XCTAssertEqual(unknown, ["please"])
        XCTAssertEqual(ids[4], PromptVocabulary.unknown)
        XCTAssertEqual(Array(ids[5...]), Array(repeating: PromptVocabulary.padding, count: vocabulary.length - 5))
        XCTAssertEqual(ids[1], vocabulary.words.firstIndex(of: "a")! + 3)
        XCTAssertEqual(vocabulary.encode("").ids, [PromptVocabulary.start] + Array(repeating: 0, count: vocabulary.length - 1))
    }

    /// Every caption's words are in the vocabulary and fit its length; a prompt must name an item or attribute.
    func testCaptionsUseTheVocabularyAndPromptsMustNameSomething() {
        let vocabulary = FashionCaptions.vocabulary
        let rng = RandomGenerator(seed: 3)
        var sawAttribute = false
        for i in 0..<500 {
            let caption = FashionCaptions.caption(label: i % 10, attributeCode: i % 3, generator: rng)
            let (ids, unknown) = vocabulary.encode(caption)
            XCTAssertTrue(unknown.isEmpty, caption)
            XCTAssertNotEqual(ids.last, nil)
            XCTAssertLessThanOrEqual(PromptVocabulary.split(caption).count + 1, vocabulary.length, caption)
            XCTAssertNil(FashionCaptions.problem(with: caption, vocabulary: vocabulary), caption)
            sawAttribute = sawAttribute || caption.contains("dark") || caption.contains("light")
        }
        XCTAssertTrue(sawAttribute)
        XCTAssertNotNil(FashionCaptions.problem(with: "a photo of a cat", vocabulary: vocabulary))
        XCTAssertNotNil(FashionCaptions.problem(with: "", vocabulary: vocabulary))
        XCTAssertNil(FashionCaptions.problem(with: "an ankle boot", vocabulary: vocabulary))
    }

    /// CrossAttention in float32 against GroupNorm, the projections, the masked softmax and the
    /// residual recomputed in float64 from the same weights.
    func testCrossAttentionMatchesAFloat64Computation() {
        let rng = RandomGenerator(seed: 7)
        let (b, h, w, c, l, d) = (2, 2, 3, 8, 5, 4)
        let attention = CrossAttention(channels: c, contextDimension: d, groups: 4, generator: rng)
        for (name, p) in attention.namedParameters where name.hasPrefix("norm") {
            p.assign(Tensor.normal(p.value.shape, mean: name.hasSuffix("weight") ? 1 : 0, std: 0.3, generator: rng))
        }
        let x = Tensor.normal([b, h, w, c], generator: rng)
        let context = Tensor.normal([b, l, d], generator: rng)
        let tokens = Tensor([Int64(2), 5, 7, 0, 0, 2, 4, 6, 8, 9], shape: [b, l])
        let out = attention(x, context: context, bias: paddingBias(tokens)).doubleScalars()

        let p = Dictionary(uniqueKeysWithValues: attention.namedParameters.map { ($0.0, $0.1.value.doubleScalars()) })
        let xs = x.doubleScalars(), cs = context.doubleScalars(), ids = tokens.scalars(as: Int64.self)
        func linear(_ input: [Double], _ name: String, _ inDim: Int, _ outDim: Int) -> [Double] {
            let weight = p[name + ".weight"]!, bias = p[name + ".bias"]!
            var out = bias
            for o in 0..<outDim { for i in 0..<inDim { out[o] += weight[o * inDim + i] * input[i] } }
            return out
        }
        var expected: [Double] = []
        for n in 0..<b {
            // GroupNorm: 4 groups of 2 channels over the 6 positions.
            var normed = [Double](repeating: 0, count: h * w * c)
            for g in 0..<4 {
                var values: [Double] = []
                for pos in 0..<(h * w) { for ch in (2 * g)..<(2 * g + 2) { values.append(xs[(n * h * w + pos) * c + ch]) } }
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
                let scale = p["norm.weight"]!, shift = p["norm.bias"]!, deviation = (variance + 1e-5).squareRoot()
                for pos in 0..<(h * w) { for ch in (2 * g)..<(2 * g + 2) {
                    let centred: Double = xs[(n * h * w + pos) * c + ch] - mean
                    normed[pos * c + ch] = centred / deviation * scale[ch] + shift[ch]
                } }
            }
            let keys = (0..<l).map { linear(Array(cs[((n * l + $0) * d)..<((n * l + $0 + 1) * d)]), "k", d, c) }
            let values = (0..<l).map { linear(Array(cs[((n * l + $0) * d)..<((n * l + $0 + 1) * d)]), "v", d, c) }
            for pos in 0..<(h * w) {
                let q = linear(Array(normed[(pos * c)..<((pos + 1) * c)]), "q", c, c)
                var logits = [Double](repeating: -Double.infinity, count: l)
                for j in 0..<l where ids[n * l + j] != 0 {
                    var dot = 0.0
                    for ch in 0..<c { dot += q[ch] * keys[j][ch] }
                    logits[j] = dot / Double(c).squareRoot()
                }
                let top = logits.max()!
                let weights = logits.map { exp($0 - top) }
                let total = weights.reduce(0, +)
                var attended = [Double](repeating: 0, count: c)
                for j in 0..<l { for ch in 0..<c { attended[ch] += weights[j] / total * values[j][ch] } }
                let projected = linear(attended, "proj", c, c)
                for ch in 0..<c { expected.append(xs[(n * h * w + pos) * c + ch] + projected[ch]) }
            }
        }
        XCTAssertEqual(out.count, expected.count)
        for i in out.indices { XCTAssertEqual(out[i], expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), "element \(i)") }
    }
}
