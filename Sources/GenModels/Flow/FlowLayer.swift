import GenTensor
import GenNN

/// One invertible layer of a normalising flow over channels-last activations (N, H, W, C).
///
/// `forward` maps data toward the latent and returns the log-determinant of its Jacobian per image
/// (N); `inverse` maps back. The shape is kept: squeezing and factoring out are the flow's own steps.
public protocol FlowLayer: Module {
    /// y = f(x) and log |det df/dx| per image, (N). `training` selects batch statistics (and
    /// initialises data-dependent layers on the first call) instead of the stored ones.
    func forward(_ x: Tensor, training: Bool) -> (y: Tensor, logDeterminant: Tensor)
    /// x = f^-1(y), with the stored statistics.
    func inverse(_ y: Tensor) -> Tensor
}

/// Space to depth: (N, H, W, C) to (N, H/2, W/2, 4C), channel (dy, dx, c) of the output holding
/// pixel (2h + dy, 2w + dx, c). Volume-preserving (log-determinant 0).
public func squeezed2x2(_ x: Tensor) -> Tensor {
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(h % 2 == 0 && w % 2 == 0, "squeeze: \(h) x \(w) does not halve")
    return x.reshaped([n, h / 2, 2, w / 2, 2, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([n, h / 2, w / 2, 4 * c])
}

/// Depth to space, the inverse of `squeezed2x2`: (N, H, W, 4C) to (N, 2H, 2W, C).
public func unsqueezed2x2(_ x: Tensor) -> Tensor {
    let (n, h, w, c4) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(c4 % 4 == 0, "unsqueeze: \(c4) channels is not a multiple of 4")
    let c = c4 / 4
    return x.reshaped([n, h, w, 2, 2, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([n, 2 * h, 2 * w, c])
}

/// The sum of every element of each image: (N, ...) to (N).
func perImageSum(_ x: Tensor) -> Tensor {
    x.reshaped([x.shape[0], x.elementCount / max(x.shape[0], 1)]).sum(axis: 1)
}
