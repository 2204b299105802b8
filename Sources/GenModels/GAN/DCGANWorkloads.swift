import GenTensor
import GenNN

extension WorkloadBenchmark {
    /// `bench --workload dcgan`. Train is one discriminator step and one generator step on the
    /// non-saturating loss (batch 64); sample runs the generator in eval mode (batch 1024).
    public static let dcgan = Suite(name: "dcgan") { override, rng in
        func b(_ own: Int) -> Int { batchSize(own, override: override) }
        let g = DCGANGenerator(generator: rng), d = DCGANDiscriminator(generator: rng)
        let adamG = Adam(g.trainableParameters, learningRate: 2e-4, betas: (0.5, 0.999))
        let adamD = Adam(d.trainableParameters, learningRate: 2e-4, betas: (0.5, 0.999))
        let x = Tensor.uniform([b(64)] + referenceImageShape, low: -1, high: 1, generator: rng)
        return [
            Workload(name: "dcgan", phase: "train", batch: x.shape[0], flopsPerItem: 280.1e6) {
                let fake = g(Tensor.normal([x.shape[0], 100], generator: rng), training: true)
                let lossD = ganDiscriminatorLoss(realLogits: d(x, training: true), fakeLogits: d(fake.detached(), training: true))
                adamD.step(gradients(of: lossD, wrt: adamD.parameters.map { $0.value }))
                let lossG = ganGeneratorLoss(fakeLogits: d(fake, training: true))
                adamG.step(gradients(of: lossG, wrt: adamG.parameters.map { $0.value }))
            },
            Workload(name: "dcgan", phase: "sample", batch: b(1024), flopsPerItem: 54.7e6) {
                withoutGradients { _ = g(Tensor.normal([b(1024), 100], generator: rng), training: false) }
            },
        ]
    }
}
