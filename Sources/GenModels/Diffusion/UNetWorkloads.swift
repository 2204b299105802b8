import GenTensor
import GenNN

extension WorkloadBenchmark {
    /// `bench --workload unet`: the DDPM U-Net (width 32, 10 classes). Train is one Adam step on the
    /// noise-prediction loss (batch 64); sample is one network evaluation per image (batch 256).
    public static let unet = Suite(name: "unet") { override, rng in
        func b(_ own: Int) -> Int { batchSize(own, override: override) }
        let unet = UNet(UNetConfig(width: 32, numClasses: 10), generator: rng)
        let adam = Adam(unet.trainableParameters, learningRate: 2e-4)
        let schedule = NoiseSchedule.linear()
        let x = Tensor.normal([b(64)] + referenceImageShape, generator: rng)
        let y = Tensor.randomIntegers([x.shape[0]], low: 0, high: 11, generator: rng)
        let xs = Tensor.normal([b(256)] + referenceImageShape, generator: rng)
        let ts = Tensor([Int64](repeating: 500, count: xs.shape[0]))
        let ys = Tensor.randomIntegers([xs.shape[0]], low: 0, high: 11, generator: rng)
        return [
            Workload(name: "unet", phase: "train", batch: x.shape[0], flopsPerItem: 1662.7e6,
                     step: ddpmTrainingStep(unet, adam, schedule, x, y, rng)),
            Workload(name: "unet", phase: "sample", batch: xs.shape[0], flopsPerItem: 554.4e6) {
                withoutGradients { _ = unet(xs, t: ts, y: ys) }
            },
        ]
    }

    /// `bench --workload ddpm`: a whole DDIM-20 sample of the pixel U-Net (width 32, 28x28x1, batch
    /// 64), the baseline of the `ldm` workload. FLOPs are not counted (0).
    public static let ddpm = Suite(name: "ddpm") { override, rng in
        let unet = UNet(UNetConfig(width: 32, numClasses: 10), generator: rng)
        let x = Tensor.normal([batchSize(64, override: override)] + referenceImageShape, generator: rng)
        let y = Tensor.randomIntegers([x.shape[0]], low: 0, high: 11, generator: rng)
        return [Workload(name: "ddpm", phase: "sample", batch: x.shape[0], flopsPerItem: 0) {
            withoutGradients { ddim20Evaluations(unet, x, y) }
        }]
    }

    /// One Adam step of `network` on the noise-prediction loss of `x` (labels `y`), with fresh
    /// timesteps and noise from `rng` each time.
    static func ddpmTrainingStep(_ network: UNet, _ adam: Adam, _ schedule: NoiseSchedule, _ x: Tensor, _ y: Tensor,
                                 _ rng: RandomGenerator) -> () -> Void {
        {
            let t = Tensor.randomIntegers([x.shape[0]], low: 0, high: schedule.steps, generator: rng)
            let eps = Tensor.normal(x.shape, generator: rng)
            let loss = schedule.ddpmLoss(model: network, x0: x, t: t, eps: eps, y: y)
            adam.step(gradients(of: loss, wrt: adam.parameters.map { $0.value }))
        }
    }

    /// The twenty network evaluations of DDIM-20, at its timesteps 999, 949, ..., 49.
    static func ddim20Evaluations(_ network: UNet, _ x: Tensor, _ y: Tensor) {
        for i in 0..<20 { _ = network(x, t: Tensor([Int64](repeating: Int64(999 - 50 * i), count: x.shape[0])), y: y) }
    }
}
