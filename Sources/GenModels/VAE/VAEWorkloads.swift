import GenTensor
import GenNN

extension WorkloadBenchmark {
    /// `bench --workload vae`: the MLP VAE. Train is one Adam step on the ELBO (batch 128); sample
    /// decodes prior draws through the sigmoid (batch 1024).
    public static let vae = Suite(name: "vae") { override, rng in
        func b(_ own: Int) -> Int { batchSize(own, override: override) }
        let vae = MLPVAE(generator: rng)
        let adam = Adam(vae.trainableParameters, learningRate: 1e-3)
        let x = Tensor.uniform([b(128)] + referenceImageShape, generator: rng)
        return [
            Workload(name: "vae", phase: "train", batch: x.shape[0], flopsPerItem: 3.28e6) {
                let eps = Tensor.normal([x.shape[0], 20], generator: rng)
                let loss = vae.loss(x, eps: eps).loss
                adam.step(gradients(of: loss, wrt: adam.parameters.map { $0.value }))
            },
            Workload(name: "vae", phase: "sample", batch: b(1024), flopsPerItem: 0.643e6) {
                withoutGradients { _ = vae.decodeProbabilities(Tensor.normal([b(1024), 20], generator: rng)) }
            },
        ]
    }
}
