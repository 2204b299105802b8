import ArgumentParser
import Foundation
import GenTrain

/// Loads a GAN checkpoint of `variant`; the error names the file and what it holds instead.
func loadGAN(_ path: String, variant: GANVariant) throws -> GANTraining {
    let checkpoint = try Checkpoint.finite(contentsOf: URL(fileURLWithPath: path))
    let config = try GANTraining.configuration(in: checkpoint)
    guard config.variant == variant else {
        throw ValidationError("\(path) is a \(config.variant.rawValue) checkpoint, not a \(variant.rawValue) one: "
                              + "use `generative sample \(config.variant.rawValue)`")
    }
    return try GANTraining.load(checkpoint)
}

/// Samples `variant` as the flags say (`label`: one class of the conditional GAN).
func sampleGAN(_ variant: GANVariant, flags: SampleFlags, noEMA: Bool, label: Int? = nil) throws {
    let gan = try loadGAN(flags.checkpoint, variant: variant)
    if let label, !(0..<gan.config.classCount).contains(label) {
        throw ValidationError("--class must lie in 0..<\(gan.config.classCount) for \(flags.checkpoint)")
    }
    let images = gan.sample(count: flags.count, generator: RandomGenerator(seed: flags.seed), ema: !noEMA, label: label)
    print("wrote " + (try writeImages(images, to: flags.out)) + (noEMA ? " (raw generator weights)" : " (EMA generator weights)"))
}

/// One `generative sample` command per GAN variant: z ~ N(0, I) through the generator in eval mode
/// (BatchNorm running statistics), with its EMA weights unless `--no-ema`.
protocol SampleGANCommand: ParsableCommand {
    static var variant: GANVariant { get }
    var flags: SampleFlags { get }
    var noEMA: Bool { get }
}

extension SampleGANCommand {
    func run() throws { try sampleGAN(Self.variant, flags: flags, noEMA: noEMA) }
}

struct SampleGAN: SampleGANCommand {
    static let configuration = CommandConfiguration(commandName: "gan", abstract: "Sample the MLP GAN's generator (EMA weights, eval mode).")
    static let variant = GANVariant.gan
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
}

struct SampleDCGAN: SampleGANCommand {
    static let configuration = CommandConfiguration(commandName: "dcgan", abstract: "Sample the DCGAN's generator (EMA weights, eval mode).")
    static let variant = GANVariant.dcgan
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
}

struct SampleWGAN: SampleGANCommand {
    static let configuration = CommandConfiguration(commandName: "wgan", abstract: "Sample the WGAN's generator (EMA weights, eval mode).")
    static let variant = GANVariant.wgan
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
}

struct SampleWGANGP: SampleGANCommand {
    static let configuration = CommandConfiguration(commandName: "wgan-gp", abstract: "Sample the WGAN-GP's generator (EMA weights, eval mode).")
    static let variant = GANVariant.wganGP
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
}

struct SampleLSGAN: SampleGANCommand {
    static let configuration = CommandConfiguration(commandName: "lsgan", abstract: "Sample the LSGAN's generator (EMA weights, eval mode).")
    static let variant = GANVariant.lsgan
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
}

struct SampleSNGAN: SampleGANCommand {
    static let configuration = CommandConfiguration(commandName: "sngan", abstract: "Sample the SNGAN's generator (EMA weights, eval mode).")
    static let variant = GANVariant.sngan
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
}

struct SampleCGAN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cgan",
        abstract: "Sample the conditional GAN's generator (EMA weights, eval mode): one class with --class, else image i of class i mod 10.")
    @OptionGroup var flags: SampleFlags
    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.") var noEMA = false
    @Option(name: .customLong("class"), help: "Draw every image from this class (0-based; default: all classes in turn).")
    var label: Int?

    @Option(help: "Also write the class of each image as a .npy of int64 (for `eval --labels`, class agreement).")
    var labelsOut: String?

    func run() throws {
        try sampleGAN(.cgan, flags: flags, noEMA: noEMA, label: label)
        if let labelsOut {
            let gan = try loadGAN(flags.checkpoint, variant: .cgan)
            let labels = label.map { Tensor([Int64](repeating: Int64($0), count: flags.count), shape: [flags.count]) }
                ?? balancedLabels(flags.count, gan.config.classCount)
            try NPY.write(labels, to: URL(fileURLWithPath: labelsOut))
            print("wrote the \(flags.count) class labels to \(labelsOut)")
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

    @Option(help: "a2b (domain A to B) or b2a.")
    var direction: TranslationDirection = .aToB

    @Flag(name: .customLong("no-ema"), help: "Use the raw generator weights instead of their EMA.")
    var noEMA = false

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
        let translated = model.translate(images, direction, ema: !noEMA)
        print("translated \(images.shape[0]) images from \(from) to \(to): " + (try writeImages(translated, to: out)))
    }
}

/// `generative sample cyclegan`: translation of given images (CycleGAN has no noise to sample).
struct SampleCycleGAN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cyclegan", abstract: "Translate images to the other domain with a CycleGAN (EMA weights by default).")
    @OptionGroup var flags: TranslateFlags
    func run() throws { try flags.run() }
}

/// `generative translate`: a CycleGAN's translation of images into the other domain.
struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Translate images of one domain into the other with a CycleGAN checkpoint (EMA weights by default).")
    @OptionGroup var flags: TranslateFlags
    func run() throws { try flags.run() }
}

extension TranslationDirection: ExpressibleByArgument {}
