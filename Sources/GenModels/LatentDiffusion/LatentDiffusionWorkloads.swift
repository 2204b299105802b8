import GenTensor
import GenNN

extension WorkloadBenchmark {
    /// `bench --workload ldm`: latent diffusion against the `ddpm` workload's pixel diffusion. Train is
    /// one Adam step of the latent U-Net (width 32, levels (1, 2)) on 7x7x4 latents (batch 64); sample
    /// is its DDIM-20 plus one decoder pass of the KL autoencoder (width 32). FLOPs are not counted (0).
    public static let ldm = Suite(name: "ldm") { override, rng in
        func b(_ own: Int) -> Int { batchSize(own, override: override) }
        var aeConfig = AutoencoderKLConfiguration()
        aeConfig.width = 32
        let autoencoder = AutoencoderKL(aeConfig, generator: rng)
        let latentNet = UNet(UNetConfig(inChannels: aeConfig.latentChannels, width: 32, channelMultipliers: [1, 2], numClasses: 10),
                             generator: rng)
        let adam = Adam(latentNet.trainableParameters, learningRate: 2e-4)
        let schedule = NoiseSchedule.linear()
        let z = Tensor.normal([b(64)] + aeConfig.latentShape, generator: rng)
        let y = Tensor.randomIntegers([z.shape[0]], low: 0, high: 11, generator: rng)
        let zs = Tensor.normal([b(64)] + aeConfig.latentShape, generator: rng)
        let ys = Tensor.randomIntegers([zs.shape[0]], low: 0, high: 11, generator: rng)
        return [
            Workload(name: "ldm", phase: "train", batch: z.shape[0], flopsPerItem: 0,
                     step: ddpmTrainingStep(latentNet, adam, schedule, z, y, rng)),
            Workload(name: "ldm", phase: "sample", batch: zs.shape[0], flopsPerItem: 0) {
                withoutGradients {
                    ddim20Evaluations(latentNet, zs, ys)
                    _ = autoencoder.decode(zs)
                }
            },
        ]
    }
}
