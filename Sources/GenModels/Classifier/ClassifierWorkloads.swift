import GenTensor
import GenNN

extension WorkloadBenchmark {
    /// `bench --workload classifier`: the evaluator's CNN extracting FID and IS features (batch 1024).
    public static let classifier = Suite(name: "classifier") { override, rng in
        let network = Classifier(generator: rng)
        let x = Tensor.normal([batchSize(1024, override: override)] + referenceImageShape, generator: rng)
        return [Workload(name: "classifier", phase: "sample", batch: x.shape[0], flopsPerItem: 15.2e6) {
            withoutGradients { _ = network(x) }
        }]
    }
}
