import GenTensor

/// Uniform dequantisation of 8-bit images, for the likelihood of a continuous model: pixel x in
/// [0, 1] is the level k = round(255 x), and y = (k + u) / 256 with u ~ U[0, 1) lies in k's bin.
/// Then -log2 P(k) <= E_u[-log2 p(y)] + 8 bits per dimension.
public enum Dequantization {
    /// y (the images' shape) in [0, 1) for images in [0, 1] (values outside are clamped) and noise
    /// `uniform` of the same shape.
    public static func dequantize(_ images: Tensor, uniform: Tensor) -> Tensor {
        precondition(images.shape == uniform.shape, "dequantize: images \(images.shape) and noise \(uniform.shape) differ")
        let pixels = images.scalars(as: Float.self), noise = uniform.scalars(as: Float.self)
        let values = zip(pixels, noise).map { (level($0) + $1) / 256 }
        return Tensor(values, shape: images.shape)
    }

    /// The same with noise keyed by (seed, image index): image i of a batch that starts at the data
    /// set's `startIndex` reads the stream RandomGenerator(seed ^ 0xDE0A7715, counter: (startIndex + i) D),
    /// D its dimensions, so a likelihood does not depend on how the images are batched.
    public static func dequantize(_ images: Tensor, startIndex: Int, seed: UInt64) -> Tensor {
        let n = images.shape[0]
        let dimensions = images.elementCount / max(n, 1)
        let pixels = images.scalars(as: Float.self)
        var values = [Float](repeating: 0, count: pixels.count)
        for i in 0..<n {
            let uniform = RandomGenerator(seed: seed ^ 0xDE0A_7715, counter: UInt64((startIndex + i) * dimensions))
            for d in 0..<dimensions {
                values[i * dimensions + d] = (level(pixels[i * dimensions + d]) + Float(uniform.nextUnitDouble())) / 256
            }
        }
        return Tensor(values, shape: images.shape)
    }

    /// The 8-bit level of a pixel in [0, 1], as a float.
    public static func level(_ pixel: Float) -> Float { (min(max(pixel, 0), 1) * 255).rounded() }

    /// The 8-bit levels of images in [0, 1] on the grid of [-1, 1]: 2 level / 255 - 1, shaped alike.
    public static func gridValues(_ images: Tensor) -> Tensor {
        Tensor(images.scalars(as: Float.self).map { level($0) * (2.0 / 255) - 1 }, shape: images.shape)
    }
}
