import Foundation
import GenTensor
import GenFormats
import GenNN

/// The reference workloads of `scripts/torch-bench.py` (PyTorch), timed the same way (two warm-up
/// steps, then steps until `seconds` have passed and at least three ran), so that the toolkit and
/// PyTorch can be compared side by side.
public enum WorkloadBenchmark {
    /// One timed workload.
    public struct Workload {
        public let name: String
        public let phase: String
        public let batch: Int
        /// FLOPs per image, counted by torch.utils.flop_counter on the reference workloads.
        public let flopsPerItem: Double
        public let step: () -> Void
    }

    /// One result line.
    public struct Result: Codable {
        public let workload: String
        public let phase: String
        public let batch: Int
        public let items_per_s: Double
        public let ms_per_step: Double
        public let gflops_per_s: Double
        public let framework: String
    }

    /// The workloads' names, in the order they run (each has a train phase, a sample phase or both).
    public static let names = ["vae", "dcgan", "unet", "ddpm", "ldm", "classifier"]

    /// The framework tag printed in each result line.
    public static let framework = "generative-swift"

    /// The workloads, built with a seeded generator; `batch` overrides every batch size when > 0.
    public static func workloads(batch override: Int = 0, seed: UInt64 = 0) -> [Workload] {
        func b(_ d: Int) -> Int { override > 0 ? override : d }
        // The reference workloads' images: Fashion-MNIST's 28 x 28 grey, as scripts/torch-bench.py.
        let image = [28, 28, 1]
        let rng = RandomGenerator(seed: seed)
        var list: [Workload] = []

        // VAE: one Adam step on the ELBO; sampling decodes prior draws through a sigmoid.
        let vae = MLPVAE(generator: rng)
        let adamV = Adam(vae.trainableParameters, learningRate: 1e-3)
        let xv = Tensor.uniform([b(128)] + image, generator: rng)
        list.append(Workload(name: "vae", phase: "train", batch: xv.shape[0], flopsPerItem: 3.28e6) {
            let eps = Tensor.normal([xv.shape[0], 20], generator: rng)
            let loss = vae.loss(xv, eps: eps).loss
            adamV.step(gradients(of: loss, wrt: adamV.parameters.map { $0.value }))
        })
        list.append(Workload(name: "vae", phase: "sample", batch: b(1024), flopsPerItem: 0.643e6) {
            withoutGradients { _ = vae.decodeProbabilities(Tensor.normal([b(1024), 20], generator: rng)) }
        })

        // DCGAN: one discriminator step and one generator step (non-saturating loss).
        let g = DCGANGenerator(generator: rng), d = DCGANDiscriminator(generator: rng)
        let adamG = Adam(g.trainableParameters, learningRate: 2e-4, betas: (0.5, 0.999))
        let adamD = Adam(d.trainableParameters, learningRate: 2e-4, betas: (0.5, 0.999))
        let xg = Tensor.uniform([b(64)] + image, low: -1, high: 1, generator: rng)
        list.append(Workload(name: "dcgan", phase: "train", batch: xg.shape[0], flopsPerItem: 280.1e6) {
            let fake = g(Tensor.normal([xg.shape[0], 100], generator: rng), training: true)
            let lossD = ganDiscriminatorLoss(realLogits: d(xg, training: true), fakeLogits: d(fake.detached(), training: true))
            adamD.step(gradients(of: lossD, wrt: adamD.parameters.map { $0.value }))
            let lossG = ganGeneratorLoss(fakeLogits: d(fake, training: true))
            adamG.step(gradients(of: lossG, wrt: adamG.parameters.map { $0.value }))
        })
        list.append(Workload(name: "dcgan", phase: "sample", batch: b(1024), flopsPerItem: 54.7e6) {
            withoutGradients { _ = g(Tensor.normal([b(1024), 100], generator: rng), training: false) }
        })

        // DDPM U-Net (width 32, 10 classes): one Adam step on the noise-prediction loss; one network
        // evaluation per image.
        let unet = UNet(UNetConfig(width: 32, numClasses: 10), generator: rng)
        let adamU = Adam(unet.trainableParameters, learningRate: 2e-4)
        let schedule = NoiseSchedule.linear()
        let xu = Tensor.normal([b(64)] + image, generator: rng)
        let yu = Tensor.randomIntegers([xu.shape[0]], low: 0, high: 11, generator: rng)
        list.append(Workload(name: "unet", phase: "train", batch: xu.shape[0], flopsPerItem: 1662.7e6) {
            let t = Tensor.randomIntegers([xu.shape[0]], low: 0, high: schedule.steps, generator: rng)
            let eps = Tensor.normal(xu.shape, generator: rng)
            let loss = schedule.ddpmLoss(model: unet, x0: xu, t: t, eps: eps, y: yu)
            adamU.step(gradients(of: loss, wrt: adamU.parameters.map { $0.value }))
        })
        let xs = Tensor.normal([b(256)] + image, generator: rng)
        let ts = Tensor([Int64](repeating: 500, count: xs.shape[0]))
        let ys = Tensor.randomIntegers([xs.shape[0]], low: 0, high: 11, generator: rng)
        list.append(Workload(name: "unet", phase: "sample", batch: xs.shape[0], flopsPerItem: 554.4e6) {
            withoutGradients { _ = unet(xs, t: ts, y: ys) }
        })

        // Latent diffusion against pixel diffusion, whole samples: DDIM-20 of the pixel U-Net (width
        // 32, 28x28x1) against DDIM-20 of the latent U-Net (width 32, levels (1, 2), 7x7x4) plus one
        // decoder pass of the KL autoencoder (width 32); and one training step of each (the pixel
        // one is `unet train`). FLOPs are not counted for these (0).
        // Twenty evaluations at DDIM-20's timesteps (999, 949, ..., 49).
        func ddim20(_ net: UNet, _ x: Tensor, _ y: Tensor) {
            for i in 0..<20 { _ = net(x, t: Tensor([Int64](repeating: Int64(999 - 50 * i), count: x.shape[0])), y: y) }
        }
        let xd = Tensor.normal([b(64)] + image, generator: rng)
        let yd = Tensor.randomIntegers([xd.shape[0]], low: 0, high: 11, generator: rng)
        list.append(Workload(name: "ddpm", phase: "sample", batch: xd.shape[0], flopsPerItem: 0) {
            withoutGradients { ddim20(unet, xd, yd) }
        })
        var aeConfig = AutoencoderKLConfiguration()
        aeConfig.width = 32
        let autoencoder = AutoencoderKL(aeConfig, generator: rng)
        let latentNet = UNet(UNetConfig(inChannels: aeConfig.latentChannels, width: 32, channelMultipliers: [1, 2], numClasses: 10),
                             generator: rng)
        let adamL = Adam(latentNet.trainableParameters, learningRate: 2e-4)
        let zl = Tensor.normal([b(64)] + aeConfig.latentShape, generator: rng)
        let yl = Tensor.randomIntegers([zl.shape[0]], low: 0, high: 11, generator: rng)
        list.append(Workload(name: "ldm", phase: "train", batch: zl.shape[0], flopsPerItem: 0) {
            let t = Tensor.randomIntegers([zl.shape[0]], low: 0, high: schedule.steps, generator: rng)
            let eps = Tensor.normal(zl.shape, generator: rng)
            let loss = schedule.ddpmLoss(model: latentNet, x0: zl, t: t, eps: eps, y: yl)
            adamL.step(gradients(of: loss, wrt: adamL.parameters.map { $0.value }))
        })
        let zs = Tensor.normal([b(64)] + aeConfig.latentShape, generator: rng)
        let ysl = Tensor.randomIntegers([zs.shape[0]], low: 0, high: 11, generator: rng)
        list.append(Workload(name: "ldm", phase: "sample", batch: zs.shape[0], flopsPerItem: 0) {
            withoutGradients {
                ddim20(latentNet, zs, ysl)
                _ = autoencoder.decode(zs)
            }
        })

        // The evaluator CNN: feature extraction for FID / IS.
        let clf = Classifier(generator: rng)
        let xc = Tensor.normal([b(1024)] + image, generator: rng)
        list.append(Workload(name: "classifier", phase: "sample", batch: xc.shape[0], flopsPerItem: 15.2e6) {
            withoutGradients { _ = clf(xc) }
        })
        return list
    }

    /// Seconds per step: two warm-up steps, then steps until `minSeconds` and at least three.
    public static func time(_ step: () -> Void, warmup: Int = 2, minSeconds: Double) -> Double {
        for _ in 0..<warmup { step() }
        var n = 0
        let start = DispatchTime.now().uptimeNanoseconds
        while true {
            step()
            n += 1
            let dt = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if dt >= minSeconds && n >= 3 { return dt / Double(n) }
        }
    }

    /// Times the selected workloads, calling `report` after each.
    /// `started(done, total)` is called before each selected workload (and once after the last,
    /// with done == total), for progress.
    public static func run(workload: String? = nil, phase: String? = nil, batch: Int = 0, seconds: Double = 3,
                           started: (Int, Int) -> Void = { _, _ in }, report: (Result) -> Void) {
        let selected = workloads(batch: batch).filter { w in
            (workload == nil || w.name == workload) && (phase == nil || w.phase == phase)
        }
        for (i, w) in selected.enumerated() {
            started(i, selected.count)
            let s = time(w.step, minSeconds: seconds)
            let perSecond = Double(w.batch) / s
            report(Result(workload: w.name, phase: w.phase, batch: w.batch,
                          items_per_s: (perSecond * 100).rounded() / 100, ms_per_step: (s * 1e6).rounded() / 1e3,
                          gflops_per_s: (perSecond * w.flopsPerItem / 1e7).rounded() / 100, framework: framework))
        }
        started(selected.count, selected.count)
    }
}
