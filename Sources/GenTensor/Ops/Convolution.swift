/// 2-D convolutions on channels-last activations, through the backend.
///
/// Three bilinear primitives close under differentiation, so second-order gradients need no special
/// case: with y = conv(x, w),
///   dx = convBackwardData(dy, w),  dw = convBackwardWeights(x, dy),
/// and each of those is itself differentiated into the other two (⟨conv(x,w), dy⟩ is the one
/// trilinear form behind all three).
extension Tensor {
    /// Geometry of conv(x, w) for x (N, H, W, I) and w (O, I, KH, KW).
    static func convGeometry(input: [Int], weight: [Int], stride: (Int, Int), padding: (Int, Int),
                             dilation: (Int, Int), op: String) -> ConvGeometry {
        precondition(input.count == 4, "\(op): input must be (N, H, W, C), got \(input)")
        precondition(weight.count == 4, "\(op): weight must be (O, I, KH, KW), got \(weight)")
        precondition(input[3] == weight[1], "\(op): input has \(input[3]) channels, weight expects \(weight[1])")
        let g = ConvGeometry(batch: input[0], inChannels: input[3], inHeight: input[1], inWidth: input[2],
                             outChannels: weight[0], kernelHeight: weight[2], kernelWidth: weight[3],
                             stride: stride, padding: padding, dilation: dilation)
        precondition(g.outHeight > 0 && g.outWidth > 0, "\(op): input \(input) is too small for kernel \(weight)")
        return g
    }

    /// Cross-correlation (PyTorch's conv2d) without bias.
    ///
    /// - Parameters:
    ///   - x: (N, H, W, I), channels-last.
    ///   - weight: (O, I, KH, KW), PyTorch's layout.
    /// - Returns: (N, OH, OW, O) with OH = (H + 2 pad - dil (KH - 1) - 1) / stride + 1.
    public static func conv2d(_ x: Tensor, _ weight: Tensor, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                              dilation: (Int, Int) = (1, 1)) -> Tensor {
        let g = convGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                             dilation: dilation, op: "conv2d")
        return convForward(x, weight, g)
    }

    /// Cross-correlation plus a bias (O) added at every output position, in one pass of the kernel
    /// (oneDNN adds it while writing the output). Same shapes as `conv2d(_:_:)`.
    public static func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor, stride: (Int, Int) = (1, 1),
                              padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1)) -> Tensor {
        let g = convGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                             dilation: dilation, op: "conv2d")
        precondition(bias.shape == [g.outChannels] && bias.dtype == x.dtype,
                     "conv2d: bias must be (\(g.outChannels)) \(x.dtype), got \(bias.shape) \(bias.dtype)")
        precondition(x.dtype == weight.dtype && x.dtype.isFloatingPoint, "conv2d: dtypes \(x.dtype) and \(weight.dtype)")
        let out = Tensor(uninitializedShape: convOutputShape(g), dtype: x.dtype)
        switch x.dtype {
        case .float32:
            Backend.current.conv2dForward(g, input: x.floatPointer, weight: weight.floatPointer, bias: bias.floatPointer,
                                          output: out.floatPointer)
        case .float64:
            ReferenceKernels.conv2dForward(g, input: UnsafePointer(x.doublePointer), weight: UnsafePointer(weight.doublePointer),
                                           output: out.doublePointer)
            let (o, b, c) = (out.doublePointer, bias.doublePointer, g.outChannels)
            for i in 0..<(out.elementCount / Swift.max(c, 1)) {
                for k in 0..<c { o[i * c + k] += b[k] }
            }
        case .int64: break
        }
        return out.recording("conv2d", [x, weight, bias]) { dy, needs in
            let dx = needs[0] ? convBackwardData(dy, weight, g) : nil
            if needs[1] && needs[2] && dy.dtype == .float32 && !GradMode.isEnabled {
                // First order: both parameter gradients from one backend pass.
                let (dw, db) = convBackwardWeightsAndBias(x, dy, g)
                return [dx, dw, db]
            }
            return [dx, needs[1] ? convBackwardWeights(x, dy, g) : nil, needs[2] ? dy.sumToShape(bias.shape) : nil]
        }
    }

    /// The weight and bias gradients of a Float32 convolution in one backend call, not recorded.
    static func convBackwardWeightsAndBias(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry) -> (Tensor, Tensor) {
        precondition(x.shape == convInputShape(g) && dy.shape == convOutputShape(g) && x.dtype == .float32
                     && dy.dtype == .float32, "conv backward-weights and bias: shapes or dtypes")
        let dw = Tensor(uninitializedShape: convWeightShape(g), dtype: .float32)
        let db = Tensor(uninitializedShape: [g.outChannels], dtype: .float32)
        Backend.current.conv2dBackwardWeights(g, input: x.floatPointer, gradOutput: dy.floatPointer,
                                              gradWeight: dw.floatPointer, gradBias: db.floatPointer)
        return (dw, db)
    }

    /// Transposed convolution (PyTorch's conv_transpose2d) without bias.
    ///
    /// - Parameters:
    ///   - x: (N, H, W, I), channels-last.
    ///   - weight: (I, O, KH, KW), PyTorch's ConvTranspose2d layout.
    /// - Returns: (N, OH, OW, O) with OH = (H - 1) stride - 2 pad + dil (KH - 1) + outputPadding + 1.
    public static func convTranspose2d(_ x: Tensor, _ weight: Tensor, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                                       outputPadding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1)) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[3] == weight.shape[0],
                     "convTranspose2d: input \(x.shape) and weight \(weight.shape) (I, O, KH, KW) disagree")
        precondition(outputPadding.0 < Swift.max(stride.0, dilation.0) && outputPadding.1 < Swift.max(stride.1, dilation.1),
                     "convTranspose2d: output padding must be smaller than stride or dilation")
        let oh = (x.shape[1] - 1) * stride.0 - 2 * padding.0 + dilation.0 * (weight.shape[2] - 1) + outputPadding.0 + 1
        let ow = (x.shape[2] - 1) * stride.1 - 2 * padding.1 + dilation.1 * (weight.shape[3] - 1) + outputPadding.1 + 1
        precondition(oh > 0 && ow > 0, "convTranspose2d: output size \(oh)x\(ow) is not positive")
        // The convolution being transposed maps (N, oh, ow, O) to x's shape with weight (I, O, KH, KW) as OIHW.
        let g = convGeometry(input: [x.shape[0], oh, ow, weight.shape[1]], weight: weight.shape, stride: stride,
                             padding: padding, dilation: dilation, op: "convTranspose2d")
        precondition(g.outHeight == x.shape[1] && g.outWidth == x.shape[2], "convTranspose2d: inconsistent geometry")
        return convBackwardData(x, weight, g)
    }

    static func convOutputShape(_ g: ConvGeometry) -> [Int] { [g.batch, g.outHeight, g.outWidth, g.outChannels] }
    static func convInputShape(_ g: ConvGeometry) -> [Int] { [g.batch, g.inHeight, g.inWidth, g.inChannels] }
    static func convWeightShape(_ g: ConvGeometry) -> [Int] { [g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth] }

    static func convForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry) -> Tensor {
        precondition(x.dtype == w.dtype && x.dtype.isFloatingPoint, "conv2d: dtypes \(x.dtype) and \(w.dtype)")
        let out = Tensor(uninitializedShape: convOutputShape(g), dtype: x.dtype)
        switch x.dtype {
        case .float32: Backend.current.conv2dForward(g, input: x.floatPointer, weight: w.floatPointer, output: out.floatPointer)
        case .float64: ReferenceKernels.conv2dForward(g, input: UnsafePointer(x.doublePointer), weight: UnsafePointer(w.doublePointer), output: out.doublePointer)
        case .int64: break
        }
        return out.recording("conv2d", [x, w]) { dy, needs in
            [needs[0] ? convBackwardData(dy, w, g) : nil, needs[1] ? convBackwardWeights(x, dy, g) : nil]
        }
    }

    static func convBackwardData(_ dy: Tensor, _ w: Tensor, _ g: ConvGeometry) -> Tensor {
        precondition(dy.shape == convOutputShape(g) && w.shape == convWeightShape(g), "conv backward-data: shapes")
        let out = Tensor(uninitializedShape: convInputShape(g), dtype: dy.dtype)
        switch dy.dtype {
        case .float32: Backend.current.conv2dBackwardData(g, gradOutput: dy.floatPointer, weight: w.floatPointer, gradInput: out.floatPointer)
        case .float64: ReferenceKernels.conv2dBackwardData(g, gradOutput: UnsafePointer(dy.doublePointer), weight: UnsafePointer(w.doublePointer), gradInput: out.doublePointer)
        case .int64: break
        }
        return out.recording("convBackwardData", [dy, w]) { gx, needs in
            [needs[0] ? convForward(gx, w, g) : nil, needs[1] ? convBackwardWeights(gx, dy, g) : nil]
        }
    }

    static func convBackwardWeights(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry) -> Tensor {
        precondition(x.shape == convInputShape(g) && dy.shape == convOutputShape(g), "conv backward-weights: shapes")
        let out = Tensor(uninitializedShape: convWeightShape(g), dtype: x.dtype)
        switch x.dtype {
        case .float32: Backend.current.conv2dBackwardWeights(g, input: x.floatPointer, gradOutput: dy.floatPointer, gradWeight: out.floatPointer)
        case .float64: ReferenceKernels.conv2dBackwardWeights(g, input: UnsafePointer(x.doublePointer), gradOutput: UnsafePointer(dy.doublePointer), gradWeight: out.doublePointer)
        case .int64: break
        }
        return out.recording("convBackwardWeights", [x, dy]) { gw, needs in
            [needs[0] ? convBackwardData(dy, gw, g) : nil, needs[1] ? convForward(x, gw, g) : nil]
        }
    }
}
