import GenTensor
import GenFormats
import GenModels
import GenData

/// Test accuracy of a classifier.
public enum ClassifierAccuracy {
    /// Accuracy (fraction correct), the number correct and the confusion matrix (rows: true class,
    /// columns: predicted) of `classifier` on images (N, 28, 28, 1) in [0, 1] (mapped to [-1, 1])
    /// with int64 labels (N).
    public static func evaluate(_ classifier: Classifier, images: Tensor, labels: Tensor, batchSize: Int = 500)
        -> (accuracy: Double, correct: Int, confusion: [[Int]]) {
        precondition(labels.dtype == .int64 && labels.shape == [images.shape[0]],
                     "ClassifierAccuracy: labels must be int64 (\(images.shape[0])), got \(labels.dtype) \(labels.shape)")
        let n = images.shape[0]
        let y = labels.scalars(as: Int64.self)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: 10), count: 10)
        var correct = 0
        withoutGradients {
            var start = 0
            while start < n {
                let end = min(n, start + batchSize)
                let logits = classifier.fc2(FeatureNetwork.inferenceFeatures(classifier, images.sliced(axis: 0, start..<end) * 2 - 1))
                let c = logits.shape[1]
                logits.withUnsafeBufferPointer(as: Float.self) { p in
                    for i in 0..<(end - start) {
                        var best = 0
                        for j in 1..<c where p[i * c + j] > p[i * c + best] { best = j }
                        let truth = Int(y[start + i])
                        if best == truth { correct += 1 }
                        if truth >= 0 && truth < 10 && best < 10 { confusion[truth][best] += 1 }
                    }
                }
                start = end
            }
        }
        return (n == 0 ? 0 : Double(correct) / Double(n), correct, confusion)
    }
}
