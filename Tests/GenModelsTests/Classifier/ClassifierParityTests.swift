import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// The FID/IS feature network against PyTorch (`classifier.params`, `classifier.io`); fc1's weight
/// goes through the channels-last flatten layout conversion at load.
final class ClassifierParityTests: XCTestCase {
    func testFeaturesAndLogitsMatchPyTorch() throws {
        let io = try Fixtures.open("classifier.io.safetensors")
        assertKeys(of: io, are: ["x", "features", "logits"], besides: [])
        let model = Classifier(generator: RandomGenerator(seed: 1))
        try Fixtures.load(model, from: "classifier.params.safetensors")
        let x = try io.image("x")

        let (features, logits) = withoutGradients { () -> (Tensor, Tensor) in
            let f = model.features(x)
            return (f, model.fc2(f))
        }
        assertParity(features, try io.required("features"), "features")
        assertParity(logits, try io.required("logits"), "logits")
        assertParity(withoutGradients { model(x) }, try io.required("logits"), "callAsFunction logits")
    }

    /// The exported state_dict restores PyTorch's fc1 layout exactly.
    func testStateDictRoundTripsFc1Layout() throws {
        let params = try Fixtures.open("classifier.params.safetensors")
        let model = Classifier(generator: RandomGenerator(seed: 1))
        try model.load(from: params, strict: true)
        let exported = model.stateDict()
        XCTAssertEqual(Set(exported.keys), Set(params.names))
        XCTAssertEqual(exported["fc1.weight"]?.scalars(as: Float.self), try params.required("fc1.weight").scalars(as: Float.self))
    }
}
