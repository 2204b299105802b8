import Foundation
import GenModels
import GenTestSupport
import XCTest
import GenTensor
import GenFormats
import GenNN

/// Parity of the DDIM and DDPM samplers with PyTorch on `samplers.io.safetensors` (see
/// Tests/Fixtures/README.md): `unet.params` (UNet(ch=32, num_classes=10), no dropout, so eval mode is
/// the only mode), the linear float32 schedule, the file's x_T, labels and DDPM noise; no x0 clipping.
/// Every shape and the label count come from the files, so another draw of the fixtures passes
/// unchanged. Tolerance: the fixtures README's, 1e-4 of the sample's largest magnitude (the README
/// also says how far PyTorch's float32 and float64 answers lie apart).
final class SamplerParityTests: XCTestCase {
    /// The io file, the model, the labels and the batch description.
    func setUp(_ io: SafeTensorsFile) throws -> (UNet, SampleBatch, Tensor) {
        let model = try Fixtures.unet()
        let xT = try io.image("xT")  // (B, H, W, C)
        let labels = try io.required("y").scalars(as: Int64.self).map { Int($0) }
        let batch = SampleBatch(count: xT.shape[0], labels: labels, imageShape: Array(xT.shape.dropFirst()))
        return (model, batch, xT)
    }

    func report(_ label: String, _ actual: Tensor, _ expected: Tensor, seconds: Double) {
        let ratio = parityErrorRatio(actual, expected)
        let scale = expected.doubleScalars().reduce(0) { max($0, abs($1)) }
        print("parity \(label): max|diff| / max|expected| = " + String(format: "%.3g", ratio * parityRelativeTolerance)
              + String(format: " (max|expected| %.4g), %.2f s", scale, seconds))
    }

    func testFixtureKeys() throws {
        let io = try Fixtures.open("samplers.io.safetensors")
        assertKeys(of: io, are: ["xT", "y", "ddpm_z", "ddim_x0", "ddim_cfg_x0", "ddpm_x0"], besides: [])
        let xT = try io.required("xT"), z = try io.required("ddpm_z")
        XCTAssertEqual(Array(z.shape.dropFirst()), xT.shape, "ddpm_z is (T) + xT's shape")
        XCTAssertEqual(z.shape[0], NoiseSchedule.linear().steps)
    }

    /// DDIM, 10 steps at t = 900, 800, ..., 0 (leading spacing), eta 0, conditioned on y, no clipping.
    func testDDIMMatchesPyTorch() throws {
        let io = try Fixtures.open("samplers.io.safetensors")
        let (model, batch, xT) = try setUp(io)
        let schedule = NoiseSchedule.linear()
        let options = DDIMOptions(steps: 10, eta: 0, spacing: .leading, clipX0: false, recordTrajectory: true)
        let start = Date()
        let out = sampleDDIM(model, schedule: schedule, noise: ExplicitNoise(initial: xT), batch: batch, options: options)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(out.trajectory.map(\.t), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
        XCTAssertEqual(out.denoiserCalls, 10)
        let expected = try io.required("ddim_x0")
        report("ddim_x0", nchw(out.sample), expected, seconds: seconds)
        assertParity(nchw(out.sample), expected, "ddim_x0")
    }

    /// The same DDIM with classifier-free guidance: eps(x, t, null) + 3 (eps(x, t, y) - eps(x, t, null)).
    func testDDIMWithClassifierFreeGuidanceMatchesPyTorch() throws {
        let io = try Fixtures.open("samplers.io.safetensors")
        let (model, batch, xT) = try setUp(io)
        let nullLabel = try XCTUnwrap(model.config.nullLabel, "the fixtures' U-Net is class-conditional")
        let guided = ClassifierFreeGuidance(model, scale: 3, nullLabel: nullLabel)
        let start = Date()
        let out = sampleDDIM(guided, schedule: NoiseSchedule.linear(), noise: ExplicitNoise(initial: xT), batch: batch,
                             options: DDIMOptions(steps: 10, eta: 0, spacing: .leading, clipX0: false))
        let expected = try io.required("ddim_cfg_x0")
        report("ddim_cfg_x0", nchw(out.sample), expected, seconds: Date().timeIntervalSince(start))
        assertParity(nchw(out.sample), expected, "ddim_cfg_x0")
    }

    /// DDPM ancestral, t = 999 ... 0, sigma_t^2 = posterior variance, z_t = ddpm_z[t], none at t = 0.
    func testDDPMMatchesPyTorch() throws {
        let io = try Fixtures.open("samplers.io.safetensors")
        let (model, batch, xT) = try setUp(io)
        let z = try io.required("ddpm_z").permuted([0, 1, 3, 4, 2])  // (T, B, C, H, W) -> (T, B, H, W, C)
        let start = Date()
        let out = sampleDDPM(model, schedule: NoiseSchedule.linear(), noise: ExplicitNoise(initial: xT, steps: z),
                             batch: batch, options: DDPMOptions(variance: .posterior, clipX0: false))
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(out.denoiserCalls, 1000)
        let expected = try io.required("ddpm_x0")
        report("ddpm_x0", nchw(out.sample), expected, seconds: seconds)
        assertParity(nchw(out.sample), expected, "ddpm_x0")
    }
}
