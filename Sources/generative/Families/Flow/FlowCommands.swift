import ArgumentParser
import Foundation
import GenTrain
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The flow family: `train realnvp` (RealNVP or Glow), `sample realnvp`, and the verbs
/// `realnvp encode` and `realnvp decode` between images and latents.
let flowFamily = FamilyCommands(name: "flow", train: [TrainRealNVP.self], sample: [SampleRealNVP.self],
                                verbs: [FlowVerbs.self], models: [FlowTraining.self])

/// `generative realnvp VERB`: a flow checkpoint's exact maps between images and latents.
struct FlowVerbs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "realnvp", abstract: "Map images to a flow's latents and back (RealNVP or Glow checkpoints).",
        subcommands: [Encode.self, Decode.self])
}

extension FlowArchitecture: ExpressibleByArgument {}
extension CouplingKind: ExpressibleByArgument {}

/// The flows' defaults for the shared training flags: batch 64, Adam 1e-3 (chrischute/real-nvp's),
/// a checkpoint every 500 steps; --minutes or --max-steps usually stop training first.
enum FlowTrainingDefaults: TrainingDefaults {
    static let epochs = 100, batchSize = 64, saveEvery = 500
    static let learningRate: Double? = 1e-3
    static let learningRateHelp = "1e-3"
}

/// `generative train realnvp`.
struct TrainRealNVP: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "realnvp",
        abstract: "Train a normalising flow (RealNVP, or Glow with --flow glow) by maximum likelihood of dequantised images.",
        discussion: "Images are dequantised with uniform noise and mapped by logit(alpha + (1 - 2 alpha) x), alpha = 0.05; "
            + "the log-determinant of both counts in the likelihood. 28 x 28 images squeeze to 14 x 14 and 7 x 7 "
            + "without padding. The loss is the test metric itself: bits per dimension.")

    @OptionGroup var flags: TrainingFlags<FlowTrainingDefaults>

    @Option(help: "The stack: realnvp (checkerboard and channel couplings) or glow (actnorm, invertible 1x1 convolutions, couplings).")
    var flow: FlowArchitecture = .realnvp

    @Option(help: "Scales of the multi-scale architecture (half of the dimensions leaves after each but the last).")
    var scales: Int = FlowConfiguration().scales

    @Option(help: "Channels of the coupling networks at the first scale (doubled at each later one).")
    var channels: Int = FlowConfiguration().channels

    @Option(help: "Residual blocks per coupling network.")
    var blocks: Int = FlowConfiguration().blocks

    @Option(help: "Glow: flow steps (actnorm, 1x1 convolution, coupling) per scale.")
    var flowSteps: Int = FlowConfiguration().steps

    @Option(help: "Coupling: affine (y = x exp(s) + t) or additive (y = x + t).")
    var coupling: CouplingKind = .affine

    @Option(help: "L2 weight decay added to the gradients.")
    var weightDecay: Double = 5e-5

    func validate() throws {
        guard scales >= 1, channels >= 1, blocks >= 0, flowSteps >= 1 else {
            throw ValidationError("--scales, --channels and --flow-steps must be at least 1, --blocks at least 0")
        }
        guard weightDecay >= 0, weightDecay.isFinite else { throw ValidationError("--weight-decay must not be negative") }
    }

    func run() throws {
        let dataset = try flags.loadTraining()
        var config = FlowConfiguration()
        config.architecture = flow
        config.scales = scales
        config.channels = channels
        config.blocks = blocks
        config.steps = flowSteps
        config.coupling = coupling
        config.imageShape = Array(dataset.images.shape.dropFirst())
        if let problem = config.problem { throw ValidationError("\(dataset.source): \(problem)") }
        let (run, lock) = try flags.start(FlowTraining.kind)
        defer { lock.release() }
        let model = FlowTraining(config: config, learningRate: flags.lr, weightDecay: weightDecay, seed: flags.seed)
        var stored = ["model": FlowTraining.kind, "flow": flow.rawValue, "scales": String(scales), "channels": String(channels),
                      "blocks": String(blocks), "flow_steps": String(flowSteps), "coupling": coupling.rawValue,
                      "weight_decay": String(weightDecay), "lr": String(flags.lr),
                      "batch_size": String(flags.batchSize), "seed": String(flags.seed)]
        if let clip = flags.clipGradNorm { stored["clip_grad_norm"] = String(clip) }
        let loop = TrainingLoop(model: model, options: flags.options(), run: run, config: stored)
        flags.configure(loop) { [config, flags, weightDecay] in
            FlowTraining(config: config, learningRate: flags.lr, weightDecay: weightDecay, seed: flags.seed)
        }
        logLine("training \(flow.rawValue) (\(scales) scales, \(channels) channels, \(blocks) blocks, \(coupling.rawValue) couplings, "
                + "\(model.model.layers.count) layers, \(model.model.parameterCount) parameters) on \(dataset.count) images (\(dataset.source))")
        try loop.train(images: dataset.images, labels: nil, resume: flags.resume)
        print("checkpoint: \(run.checkpoint.path)\nmetrics: \(run.metrics.path)")
    }
}

/// `generative sample realnvp`.
struct SampleRealNVP: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "realnvp",
        abstract: "Sample a flow (RealNVP or Glow): latents z ~ N(0, T^2 I) through the inverse flow.")

    @OptionGroup var flags: SampleFlags

    @Option(parsing: .unconditional, help: ArgumentHelp("The temperature T, the latent's standard deviation (default: \(FlowTraining.defaultTemperature))."))
    var temperature: Double?


    func validate() throws {
        if let temperature, !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be a non-negative number") }
    }

    func run() throws {
        let model = try loadModel(flags.checkpoint, as: FlowTraining.self)
        let options = SamplingOptions(batchSize: flags.batchSize, temperature: temperature)
        let start = Date()
        guard let images = try sampleShards(model, flags: flags, labels: nil, options: options) else { return }
        reportSamplingSpeed(count: flags.count, seconds: Date().timeIntervalSince(start), sampler: "inverse flow", evaluations: 1)
        print("wrote " + (try writeImages(images, to: flags.out)) + " (\(model.samplingSummary(options)))")
    }
}

/// `generative realnvp encode`: images to a flow's latents.
struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Map images to a flow's latents (N x D float32 .npy), dequantised at the bins' centres.")

    @Option(help: "The flow checkpoint.")
    var checkpoint: String

    @Option(help: "Images: an IDX file, a folder of PNGs or a .npy (N x H x W [x C] in [0, 1]).")
    var input: String

    @Option(help: "Where to write the latents (.npy).")
    var out: String


    @OptionGroup var compute: ComputeFlags

    func validate() throws {
        guard out.lowercased().hasSuffix(".npy") else { throw ValidationError("--out \(out): latents are written as .npy") }
    }

    func run() throws {
        let model = try loadModel(checkpoint, as: FlowTraining.self)
        let images = try readImageInput(input, flag: "--input")
        guard Array(images.shape.dropFirst()) == model.imageShape else {
            throw ValidationError("--input \(input) holds \(images.shape.dropFirst().map(String.init).joined(separator: " x ")) images; the flow's are \(model.imageShape.map(String.init).joined(separator: " x "))")
        }
        let z = withoutGradients { model.model.latents(of: images.clamped(min: 0, max: 1)) }
        try NPY.write(z, to: URL(fileURLWithPath: out))
        print("wrote \(z.shape[0]) latents of \(z.shape[1]) dimensions to \(out)")
    }
}

/// `generative realnvp decode`: a flow's latents to images.
struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Map a flow's latents (N x D .npy) back to images.")

    @Option(help: "The flow checkpoint.")
    var checkpoint: String

    @Option(help: "The latents: a .npy of N x D float32 (as `encode` writes).")
    var input: String

    @Option(help: "Output: .png grid, .npy or folder.")
    var out: String = "decoded.png"


    @OptionGroup var compute: ComputeFlags

    func validate() throws {
        try validateImageOutput(out)
    }

    func run() throws {
        let model = try loadModel(checkpoint, as: FlowTraining.self)
        let z: Tensor
        do { z = try NPY.read(URL(fileURLWithPath: input)) } catch let error as DataError {
            throw ValidationError("--input \(error.path): \(error.problem)")
        }
        let dimensions = model.model.dimensions
        guard z.rank == 2, z.shape[1] == dimensions, z.shape[0] >= 1 else {
            throw ValidationError("--input \(input) holds a \(z.shape.map(String.init).joined(separator: " x ")) array; the flow's latents are N x \(dimensions)")
        }
        let images = withoutGradients { model.model.images(fromLatents: z.cast(to: .float32)) }
        print("wrote " + (try writeImages(images, to: out)))
    }
}
