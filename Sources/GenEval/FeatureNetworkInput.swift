import GenModels
import GenData
extension FeatureNetwork {
    /// The images the feature network scores, [H, W, C]: the classifier's 28 x 28 grey input.
    public static let imageShape = Classifier.imageShape
}
