import ArgumentParser
import Foundation
import GenTrain
import GenDistributed
import GenTensor
import GenFormats
import GenNN
import GenModels
import GenData
import GenEval

/// The GAN family: one `train` and one `sample` command per variant, CycleGAN's translation, and the
/// verb `cyclegan translate`.
let ganFamily = FamilyCommands(
    name: "gan",
    train: [TrainGAN.self, TrainDCGAN.self, TrainWGAN.self, TrainWGANGP.self, TrainLSGAN.self, TrainSNGAN.self, TrainCGAN.self,
            TrainCycleGAN.self],
    sample: [SampleCommand<GANSample<MLPGANVariant>>.self, SampleCommand<GANSample<DCGANVariant>>.self,
             SampleCommand<GANSample<WGANVariant>>.self, SampleCommand<GANSample<WGANGPVariant>>.self,
             SampleCommand<GANSample<LSGANVariant>>.self, SampleCommand<GANSample<SNGANVariant>>.self,
             SampleCommand<GANSample<CGANVariant>>.self, SampleCycleGAN.self],
    verbs: [CycleGANVerbs.self],
    models: [GANTraining.self],
    benchmarks: [WorkloadBenchmark.dcgan],
    trainingWorkloads: [TrainingWorkload(name: "dcgan", batchSize: 64) { GANTraining(config: GANConfiguration(variant: .dcgan), seed: 0) }],
    reportFigures: [ReportFigureMaker(kind: CycleGANTraining.kind) { checkpoint, context in
        try CycleGANTraining.load(checkpoint).reportTranslations(columns: context.columns).map { [$0] } ?? []
    }])

/// `generative cyclegan VERB`: what a CycleGAN checkpoint does besides `sample cyclegan`.
struct CycleGANVerbs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cyclegan", abstract: "Translate images between a CycleGAN's two domains.", subcommands: [Translate.self])
}

/// A GAN variant as a type, so that each has a `sample` command of its own name.
protocol GANVariantName { static var variant: GANVariant { get } }
enum MLPGANVariant: GANVariantName { static let variant = GANVariant.gan }
enum DCGANVariant: GANVariantName { static let variant = GANVariant.dcgan }
enum WGANVariant: GANVariantName { static let variant = GANVariant.wgan }
enum WGANGPVariant: GANVariantName { static let variant = GANVariant.wganGP }
enum LSGANVariant: GANVariantName { static let variant = GANVariant.lsgan }
enum SNGANVariant: GANVariantName { static let variant = GANVariant.sngan }
enum CGANVariant: GANVariantName { static let variant = GANVariant.cgan }

/// `generative sample VARIANT`: z ~ N(0, I) through the generator in eval mode (BatchNorm running
/// statistics), with its EMA weights unless `--no-ema`; the conditional GAN draws image i from
/// class i mod 10 unless `--class`.
enum GANSample<V: GANVariantName>: SampleCommandSpec {
    static var commandName: String { V.variant.rawValue }
    static var abstract: String {
        V.variant == .cgan
            ? "Sample the conditional GAN's generator (EMA weights, eval mode): one class with --class, else image i of class i mod 10."
            : "Sample the \(V.variant.rawValue.uppercased())'s generator (EMA weights, eval mode)."
    }

    static func accept(_ model: any GenerativeModel, path: String) throws {
        guard let gan = model as? GANTraining else {
            throw ValidationError("\(path) is a '\(type(of: model).kind)' checkpoint, not a \(V.variant.rawValue) one")
        }
        guard gan.config.variant == V.variant else {
            throw ValidationError("\(path) is a \(gan.config.variant.rawValue) checkpoint, not a \(V.variant.rawValue) one: "
                                  + "use `generative sample \(gan.config.variant.rawValue)`")
        }
    }
}

/// Flags of CycleGAN translation (`sample cyclegan` and `translate`).
struct TranslateFlags: ParsableArguments {
    @Option(help: "The CycleGAN checkpoint.")
    var checkpoint: String

    @Option(help: "Images to translate: a .npy (N x 28 x 28, uint8 or float in [0, 1]), a .png, or a folder of images.")
    var input: String

    @Option(help: "Where to write: a .png grid, a .npy array or a folder.")
    var out: String = "translated.png"

    @OptionGroup var compute: ComputeFlags

    @Option(help: "a2b (domain A to B) or b2a.")
    var direction: TranslationDirection = .aToB

    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.")
    var noEMA = false

    func validate() throws {
        try validateImageOutput(out)
    }

    func run() throws {
        let checkpoint = try Checkpoint.finite(contentsOf: URL(fileURLWithPath: self.checkpoint))
        let model = try CycleGANTraining.load(checkpoint)
        let url = URL(fileURLWithPath: input)
        let images: Tensor
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
            images = try ImageDataset.load(directory: url, split: .train).images
        } else if url.pathExtension.lowercased() == "png" {
            let image = try PNGReader.readGray(url)
            images = image.reshaped([1] + image.shape)
        } else {
            images = try NPY.readImages(url)
        }
        guard images.shape[1] == 28, images.shape[2] == 28 else {
            throw ValidationError("\(input) holds \(images.shape[1])x\(images.shape[2]) images; the CycleGAN translates 28x28 ones")
        }
        let from = direction == .aToB ? model.config.domainA : model.config.domainB
        let to = direction == .aToB ? model.config.domainB : model.config.domainA
        // Split over the ranks of mpirun by index (the generator normalises each image on its own).
        guard let translated = try shardedSampling(count: images.shape[0], batchSize: images.shape[0], imageShape: Array(images.shape.dropFirst()),
                                                   world: try Communicator.current, showProgress: false, { range, _ in
            model.translate(images.sliced(axis: 0, range), direction, ema: !noEMA)
        }) else { return }
        print("translated \(images.shape[0]) images from \(from) to \(to): " + (try writeImages(translated, to: out)))
    }
}

/// `generative sample cyclegan`: translation of given images (CycleGAN has no noise to sample).
struct SampleCycleGAN: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "cyclegan", abstract: "Translate images to the other domain with a CycleGAN (EMA weights by default).")
    @OptionGroup var flags: TranslateFlags
    func run() throws { try flags.run() }
}

/// `generative cyclegan translate`: a CycleGAN's translation of images into the other domain.
struct Translate: DistributedCommand {
    static let configuration = CommandConfiguration(
        abstract: "Translate images of one domain into the other with a CycleGAN checkpoint (EMA weights by default).")
    @OptionGroup var flags: TranslateFlags
    func run() throws { try flags.run() }
}

extension TranslationDirection: ExpressibleByArgument {}
