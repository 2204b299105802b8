import GenTensor
import GenTestSupport
import XCTest

/// Finite-difference gradient checks (Float64 central differences, `GradientCheck.check`) for every
/// differentiable op, and second-order checks for the ops on the WGAN-GP path.
///
/// Inputs are small (a few dozen elements each) and chosen away from kinks and ties: |x| >= 0.1
/// around the kinks of abs, relu, leakyRelu and softplus's pieces; values at least 0.05 from clamp
/// bounds; distinct values spaced >= 0.02 apart for max and max pooling. A step of 1e-6 cannot cross
/// such gaps, so central differences are exact to ~1e-8 and the helper's 1e-6 tolerance applies.
///
/// "Non-contiguous" inputs: this engine materialises every view, so the case is covered by feeding
/// ops the outputs of permuted, transposed and sliced inputs inside the checked function.
final class OpGradientTests: XCTestCase {
    // MARK: - Inputs

    /// Uniform Float64 leaf in [low, high).
    static func input(_ shape: [Int], _ seed: UInt64, _ low: Double = -1, _ high: Double = 1) -> Tensor {
        GradientCheck.input(shape, seed: seed, low: low, high: high)
    }

    /// Float64 leaf with |x| in [0.1, 1) * scale and random signs: away from the kink at 0.
    static func awayFromZero(_ shape: [Int], _ seed: UInt64, scale: Double = 1) -> Tensor {
        let g = RandomGenerator(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ -> Double in
            let magnitude = (0.1 + 0.9 * g.nextUnitDouble()) * scale
            return g.nextUnitDouble() < 0.5 ? -magnitude : magnitude
        }
        return Tensor(values, shape: shape, requiresGrad: true)
    }

    /// Float64 leaf in [-1, 1) whose values are at least `margin` away from each of `points`.
    static func avoiding(_ points: [Double], _ shape: [Int], _ seed: UInt64, margin: Double = 0.05) -> Tensor {
        let g = RandomGenerator(seed: seed)
        let values = (0..<shape.reduce(1, *)).map { _ -> Double in
            var v = -1 + 2 * g.nextUnitDouble()
            while let p = points.first(where: { Swift.abs(v - $0) < margin }) { v = p + (v < p ? -margin : margin) * 1.5 }
            return v
        }
        return Tensor(values, shape: shape, requiresGrad: true)
    }

    /// Float64 leaf of distinct values spaced `spacing` apart, in random order (no ties for max).
    static func distinct(_ shape: [Int], _ seed: UInt64, spacing: Double = 0.05) -> Tensor {
        let n = shape.reduce(1, *)
        let order = RandomGenerator(seed: seed).permutation(n)
        return Tensor(order.map { (Double($0) - Double(n) / 2) * spacing }, shape: shape, requiresGrad: true)
    }

    /// Float64 constant (no gradient) in [low, high).
    static func constant(_ shape: [Int], _ seed: UInt64, _ low: Double = -1, _ high: Double = 1) -> Tensor {
        Tensor.uniform(shape, low: low, high: high, dtype: .float64, generator: RandomGenerator(seed: seed))
    }

    /// Checks a one-input op.
    static func checkUnary(_ x: Tensor, _ label: String, file: StaticString = #filePath, line: UInt = #line,
                           _ f: @escaping (Tensor) -> Tensor) {
        GradientCheck.check([x], label, file: file, line: line) { f($0[0]) }
    }

    // MARK: - Binary arithmetic with broadcasting

    /// Shape pairs covering broadcasting in both argument orders: trailing axis, middle axis of size
    /// 1, leading axis of size 1, rank-0 scalar, both operands broadcast, and equal shapes.
    static let broadcastPairs: [([Int], [Int])] = [
        ([2, 3, 4], [2, 3, 4]),
        ([2, 3, 4], [4]), ([4], [2, 3, 4]),
        ([2, 3, 4], [3, 1]), ([3, 1], [2, 3, 4]),
        ([2, 3, 4], [2, 1, 4]), ([2, 1, 4], [2, 3, 4]),
        ([2, 3, 4], []), ([], [2, 3, 4]),
        ([3, 1], [1, 4]), ([2, 1, 4], [3, 1]),
    ]

    func testAddBroadcasting() {
        for (k, (sa, sb)) in Self.broadcastPairs.enumerated() {
            GradientCheck.check([Self.input(sa, 10 + UInt64(k)), Self.input(sb, 30 + UInt64(k))], "add \(sa) + \(sb)") {
                $0[0] + $0[1]
            }
        }
    }

    func testSubBroadcasting() {
        for (k, (sa, sb)) in Self.broadcastPairs.enumerated() {
            GradientCheck.check([Self.input(sa, 10 + UInt64(k)), Self.input(sb, 30 + UInt64(k))], "sub \(sa) - \(sb)") {
                $0[0] - $0[1]
            }
        }
    }

    func testMulBroadcasting() {
        for (k, (sa, sb)) in Self.broadcastPairs.enumerated() {
            GradientCheck.check([Self.input(sa, 10 + UInt64(k)), Self.input(sb, 30 + UInt64(k))], "mul \(sa) * \(sb)") {
                $0[0] * $0[1]
            }
        }
    }

    func testDivBroadcasting() {
        for (k, (sa, sb)) in Self.broadcastPairs.enumerated() {
            // Denominators of both signs, away from 0: |b| in [0.1, 1) * 2.
            GradientCheck.check([Self.input(sa, 10 + UInt64(k)), Self.awayFromZero(sb, 30 + UInt64(k), scale: 2)],
                                "div \(sa) / \(sb)") { $0[0] / $0[1] }
        }
    }

    func testSameTensorOnBothSides() {
        GradientCheck.check([Self.input([3, 4], 50)], "x * x") { $0[0] * $0[0] }
        GradientCheck.check([Self.awayFromZero([3, 4], 51)], "x / x + x - x * x") { $0[0] / $0[0] + $0[0] - $0[0] * $0[0] }
    }

    func testScalarDoubleOperands() {
        let x = Self.awayFromZero([3, 4], 52)
        Self.checkUnary(x, "x + 2.5") { $0 + 2.5 }
        Self.checkUnary(x, "x - 2.5") { $0 - 2.5 }
        Self.checkUnary(x, "x * 3") { $0 * 3 }
        Self.checkUnary(x, "x / 3") { $0 / 3 }
        Self.checkUnary(x, "2.5 + x") { 2.5 + $0 }
        Self.checkUnary(x, "2.5 - x") { 2.5 - $0 }
        Self.checkUnary(x, "3 * x") { 3 * $0 }
        Self.checkUnary(x, "2 / x") { 2 / $0 }
    }

    // MARK: - Unary math

    func testNeg() { Self.checkUnary(Self.input([3, 4], 60), "neg") { -$0 } }

    func testPowPositiveBase() {
        for p in [2.0, 3.0, 2.5, 0.5, -1.5, 1.0] {
            Self.checkUnary(Self.input([3, 4], 61, 0.2, 2), "pow \(p)") { $0.pow(p) }
        }
    }

    func testSquare() { Self.checkUnary(Self.input([3, 4], 62), "square") { $0.square() } }
    func testExp() { Self.checkUnary(Self.input([3, 4], 63, -2, 2), "exp") { $0.exp() } }
    func testLog() { Self.checkUnary(Self.input([3, 4], 64, 0.1, 3), "log") { $0.log() } }
    func testLog1p() { Self.checkUnary(Self.input([3, 4], 65, -0.5, 2), "log1p") { $0.log1p() } }
    func testSqrt() { Self.checkUnary(Self.input([3, 4], 66, 0.1, 3), "sqrt") { $0.sqrt() } }
    func testTanh() { Self.checkUnary(Self.input([3, 4], 67, -3, 3), "tanh") { $0.tanh() } }
    func testSigmoid() { Self.checkUnary(Self.input([3, 4], 68, -6, 6), "sigmoid") { $0.sigmoid() } }
    func testSin() { Self.checkUnary(Self.input([3, 4], 69, -4, 4), "sin") { $0.sin() } }
    func testCos() { Self.checkUnary(Self.input([3, 4], 70, -4, 4), "cos") { $0.cos() } }
    func testAbs() { Self.checkUnary(Self.awayFromZero([3, 4], 71), "abs") { $0.abs() } }
    func testRelu() { Self.checkUnary(Self.awayFromZero([3, 4], 72), "relu") { $0.relu() } }

    func testLeakyRelu() {
        Self.checkUnary(Self.awayFromZero([3, 4], 73), "leakyRelu default slope") { $0.leakyRelu() }
        Self.checkUnary(Self.awayFromZero([3, 4], 74), "leakyRelu 0.2") { $0.leakyRelu(0.2) }
    }

    func testSilu() { Self.checkUnary(Self.input([3, 4], 75, -5, 5), "silu") { $0.silu() } }

    func testSoftplus() {
        Self.checkUnary(Self.awayFromZero([3, 4], 76, scale: 6), "softplus") { $0.softplus() }
    }

    func testClamped() {
        let x = Self.avoiding([-0.5, 0.5], [4, 5], 77)
        Self.checkUnary(x, "clamp [-0.5, 0.5]") { $0.clamped(min: -0.5, max: 0.5) }
        Self.checkUnary(x, "clamp min -0.5") { $0.clamped(min: -0.5) }
        Self.checkUnary(x, "clamp max 0.5") { $0.clamped(max: 0.5) }
    }

    /// Sigmoid and tanh gradients at large magnitudes: finite, and equal to the closed forms
    /// sigmoid'(x) = e^-|x| / (1 + e^-|x|)^2 and tanh'(x) = 1 - tanh(x)^2.
    func testSigmoidAndTanhGradientsAtLargeMagnitudes() {
        let values: [Double] = [-30, -12, 0, 12, 30]
        let x = Tensor(values, requiresGrad: true)
        let gs = gradients(of: x.sigmoid().sum(), wrt: [x])[0].doubleScalars()
        let gt = gradients(of: x.tanh().sum(), wrt: [x])[0].doubleScalars()
        for (i, v) in values.enumerated() {
            let e = exp(-Swift.abs(v))
            let expected = e / ((1 + e) * (1 + e))
            XCTAssert(gs[i].isFinite && gt[i].isFinite, "sigmoid/tanh gradient at \(v) is not finite")
            if v <= 0 {
                // Computed from out = sigmoid(x) directly: relative accuracy.
                XCTAssertEqual(gs[i], expected, accuracy: 1e-12 * expected, "sigmoid' at \(v)")
            } else {
                // out * (1 - out) with out near 1 loses the relative accuracy (1 - out cancels, as in
                // PyTorch), but stays within one ulp of 1 in absolute terms.
                XCTAssertEqual(gs[i], expected, accuracy: 1e-15, "sigmoid' at \(v)")
            }
            let t = tanh(v)
            XCTAssertEqual(gt[i], 1 - t * t, accuracy: 1e-15, "tanh' at \(v)")
        }
        // Float32: sigmoid(±30) saturates to 0/1 with a zero (not NaN) gradient.
        let x32 = Tensor([-30, 30] as [Float], requiresGrad: true)
        let g32 = gradients(of: x32.sigmoid().sum(), wrt: [x32])[0].doubleScalars()
        XCTAssert(g32.allSatisfy { $0.isFinite && $0 >= 0 && $0 < 1e-12 }, "float32 sigmoid' at ±30: \(g32)")
    }

    // MARK: - Selection and dtype conversion

    func testSelect() {
        let mask = Tensor((0..<12).map { Double($0 % 3 == 1 ? 1 : 0) }, shape: [3, 4])
        GradientCheck.check([Self.input([3, 4], 80), Self.input([3, 4], 81)], "where same shapes") {
            Tensor.select(mask, $0[0], $0[1])
        }
        let column = Tensor([1.0, 0, 1], shape: [3, 1])
        GradientCheck.check([Self.input([2, 3, 4], 82), Self.input([4], 83)], "where [3,1] ? [2,3,4] : [4]") {
            Tensor.select(column, $0[0], $0[1])
        }
        GradientCheck.check([Self.input([], 84), Self.input([3, 1], 85)], "where [3,4] ? scalar : [3,1]") {
            Tensor.select(mask, $0[0], $0[1])
        }
        // A float32 mask with float64 values.
        let mask32 = Tensor([0, 1, 1, 0] as [Float], shape: [4])
        GradientCheck.check([Self.input([3, 4], 86), Self.input([3, 4], 87)], "where float32 mask") {
            Tensor.select(mask32, $0[0], $0[1])
        }
    }

    /// Float64 -> Float32 -> Float64 rounds, so it is not checkable in Float64 precision: check the
    /// gradient's shape, dtype and (exactly representable) values instead.
    func testCastGradientShapeAndDtype() {
        let x = Self.input([2, 3], 90)
        let y = x.cast(to: .float32)
        XCTAssertEqual(y.dtype, .float32)
        XCTAssertTrue(y.tracksGradient)
        let w = Tensor([1, -2, 3, 0.5, 4, -8] as [Float], shape: [2, 3])
        let g = gradients(of: (y * w).sum(), wrt: [x])[0]
        XCTAssertEqual(g.dtype, .float64)
        XCTAssertEqual(g.shape, [2, 3])
        assertClose(g, w.cast(to: .float64), relative: 0, floor: 0, "cast float64->float32 gradient")

        let roundTrip = x.cast(to: .float32).cast(to: .float64)
        XCTAssertEqual(roundTrip.dtype, .float64)
        let w64 = Tensor([0.25, 1, -3, 2, 0.5, 7], shape: [2, 3])
        let g2 = gradients(of: (roundTrip * w64).sum(), wrt: [x])[0]
        XCTAssertEqual(g2.dtype, .float64)
        assertClose(g2, w64, relative: 0, floor: 0, "cast round trip gradient")

        let x32 = Tensor([1, 2, 3] as [Float], requiresGrad: true)
        let g3 = gradients(of: x32.cast(to: .float64).square().sum(), wrt: [x32])[0]
        XCTAssertEqual(g3.dtype, .float32)
        assertClose(g3, Tensor([2, 4, 6] as [Float]), relative: 0, floor: 0, "cast float32->float64 gradient")
        XCTAssertTrue(x.cast(to: .float64) === x, "cast to the same dtype is the identity")
    }

    // MARK: - Reductions

    /// Axis sets for a rank-4 input: all, suffix, prefix, middle, non-adjacent, negative, unsorted,
    /// duplicated, single.
    static let axisSets: [[Int]?] = [nil, [3], [-1], [0], [1], [2, 3], [0, 1], [1, 2], [0, 2], [1, 3], [0, 3],
                                     [0, 2, 3], [0, 1, 2, 3], [3, 1], [-1, 0], [2, 2], []]

    func testSumOverAxes() {
        let x = Self.input([2, 3, 2, 3], 100)
        for axes in Self.axisSets {
            for keep in [false, true] {
                Self.checkUnary(x, "sum axes \(String(describing: axes)) keepDims \(keep)") { $0.sum(axes: axes, keepDims: keep) }
            }
        }
        Self.checkUnary(x, "sum axis 2") { $0.sum(axis: 2) }
        Self.checkUnary(Self.input([], 101), "sum of a scalar") { $0.sum() }
    }

    func testMeanOverAxes() {
        let x = Self.input([2, 3, 2, 3], 102)
        for axes in Self.axisSets {
            for keep in [false, true] {
                Self.checkUnary(x, "mean axes \(String(describing: axes)) keepDims \(keep)") { $0.mean(axes: axes, keepDims: keep) }
            }
        }
        Self.checkUnary(x, "mean axis -2 keepDims") { $0.mean(axis: -2, keepDims: true) }
    }

    func testVarianceOverAxes() {
        let x = Self.input([2, 3, 2, 3], 103)
        for axes in Self.axisSets where axes != [] {
            for keep in [false, true] {
                for unbiased in [false, true] {
                    Self.checkUnary(x, "variance axes \(String(describing: axes)) keepDims \(keep) unbiased \(unbiased)") {
                        $0.variance(axes: axes, keepDims: keep, unbiased: unbiased)
                    }
                }
            }
        }
    }

    func testMaxOverAxes() {
        let x = Self.distinct([2, 3, 4], 104)
        let sets: [[Int]?] = [nil, [0], [1], [2], [-1], [0, 2], [1, 2], [0, 1], [2, 0], [0, 1, 2]]
        for axes in sets {
            for keep in [false, true] {
                Self.checkUnary(x, "max axes \(String(describing: axes)) keepDims \(keep)") { $0.max(axes: axes, keepDims: keep) }
            }
        }
        Self.checkUnary(x, "max axis 1") { $0.max(axis: 1) }
    }

    func testLogSumExp() {
        for (scale, seed) in [(1.0, UInt64(105)), (20.0, 106)] {
            let x = Self.input([3, 4], seed, -scale, scale)
            for axis in [0, 1, -1] {
                for keep in [false, true] {
                    Self.checkUnary(x, "logSumExp scale \(scale) axis \(axis) keepDims \(keep)") { $0.logSumExp(axis: axis, keepDims: keep) }
                }
            }
        }
    }

    func testSoftmaxAndLogSoftmax() {
        let x = Self.input([2, 3, 4], 107, -3, 3)
        for axis in [-1, 0, 1, 2] {
            Self.checkUnary(x, "softmax axis \(axis)") { $0.softmax(axis: axis) }
            Self.checkUnary(x, "logSoftmax axis \(axis)") { $0.logSoftmax(axis: axis) }
        }
    }

    // MARK: - Broadcasting and shape ops

    func testExpanded() {
        let cases: [([Int], [Int])] = [([3, 1], [2, 3, 4]), ([4], [2, 3, 4]), ([], [2, 3]), ([2, 1, 4], [2, 3, 4]),
                                       ([1, 3, 1], [2, 3, 4]), ([2, 3], [2, 3])]
        for (k, (from, to)) in cases.enumerated() {
            Self.checkUnary(Self.input(from, 110 + UInt64(k)), "expand \(from) -> \(to)") { $0.expanded(to: to) }
        }
    }

    func testSumToShape() {
        let x = Self.input([2, 3, 4], 120)
        for target in [[3, 1], [4], [1, 4], [2, 1, 4], [1, 1, 1], [], [2, 3, 4], [3, 4], [2, 3, 1], [1, 3, 1]] {
            Self.checkUnary(x, "sumToShape \(target)") { $0.sumToShape(target) }
        }
    }

    func testReshapes() {
        let x = Self.input([2, 3, 4], 121)
        for shape in [[6, 4], [-1], [4, -1, 2], [24, 1], [1, 2, 12], [2, 3, 4]] {
            Self.checkUnary(x, "reshape \(shape)") { $0.reshaped(shape).square() }
        }
        for axis in [0, 1, 2, -1] {
            Self.checkUnary(x, "flatten from \(axis)") { $0.flattened(from: axis).square() }
        }
        Self.checkUnary(x, "unsqueeze/squeeze") { $0.unsqueezed(axis: 1).unsqueezed(axis: -1).squeezed(axis: 1).square() }
    }

    func testPermuteAndTranspose() {
        let x = Self.input([2, 3, 4], 122)
        for axes in [[2, 0, 1], [1, 2, 0], [0, 2, 1], [1, 0, 2], [-1, 0, 1], [0, 1, 2]] {
            Self.checkUnary(x, "permute \(axes)") { $0.permuted(axes) }
        }
        Self.checkUnary(Self.input([2, 3, 2, 3], 123), "permute NCHW -> NHWC") { $0.permuted([0, 2, 3, 1]) }
        Self.checkUnary(x, "transpose default") { $0.transposed() }
        Self.checkUnary(x, "transpose 0, 2") { $0.transposed(0, 2) }
        Self.checkUnary(Self.input([3, 5], 124), "transpose 2-D") { $0.transposed() }
    }

    func testSliceAndPad() {
        let x = Self.input([3, 4, 5], 125)
        for (axis, range) in [(0, 1..<3), (1, 0..<2), (2, 2..<5), (-1, 1..<4), (1, 1..<2), (0, 0..<3)] {
            Self.checkUnary(x, "slice axis \(axis) \(range)") { $0.sliced(axis: axis, range) }
        }
        for (axis, before, after) in [(0, 1, 2), (1, 0, 3), (2, 2, 0), (-1, 1, 1), (1, 0, 0)] {
            Self.checkUnary(x, "pad axis \(axis) (\(before), \(after))") { $0.padded(axis: axis, before: before, after: after) }
        }
    }

    func testConcatenate() {
        let a = Self.input([2, 1, 3], 126), b = Self.input([2, 2, 3], 127), c = Self.input([2, 3, 3], 128)
        GradientCheck.check([a, b, c], "concatenate axis 1") { Tensor.concatenate($0, axis: 1) }
        GradientCheck.check([a, b, c], "concatenate axis 1 reordered, a twice") {
            Tensor.concatenate([$0[2], $0[0], $0[1], $0[0]], axis: -2)
        }
        let p = Self.input([1, 3, 2], 129), q = Self.input([2, 3, 2], 130)
        GradientCheck.check([p, q], "concatenate axis 0") { Tensor.concatenate($0, axis: 0) }
        let r = Self.input([2, 3, 1], 131), s = Self.input([2, 3, 4], 132)
        GradientCheck.check([r, s], "concatenate axis 2") { Tensor.concatenate([$0[1], $0[0]], axis: 2) }
    }

    func testSplitAndChunk() {
        let x = Self.input([2, 3, 6], 133)
        Self.checkUnary(x, "split [1, 3, 2] axis 2") { t in
            let parts = t.split(sizes: [1, 3, 2], axis: 2)
            return Tensor.concatenate([parts[2].square(), parts[0], parts[1] * 3], axis: 2)
        }
        Self.checkUnary(x, "split [2, 1] axis 1") { t in
            let parts = t.split(sizes: [2, 1], axis: 1)
            return parts[0] * parts[1]
        }
        Self.checkUnary(x, "chunk 3 axis -1") { t in
            let parts = t.chunked(3, axis: -1)
            return parts[0] * parts[1] + parts[2].exp()
        }
        Self.checkUnary(x, "chunk 2 axis 0 (one piece unused)") { $0.chunked(2, axis: 0)[1] }
    }

    // MARK: - Matrix products

    func testMatmul2DAllTransposes() {
        let (m, k, n) = (3, 4, 5)
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let a = Self.input(transposeA ? [k, m] : [m, k], 140)
                let b = Self.input(transposeB ? [n, k] : [k, n], 141)
                GradientCheck.check([a, b], "matmul 2-D transposeA \(transposeA) transposeB \(transposeB)") {
                    Tensor.matmul($0[0], $0[1], transposeA: transposeA, transposeB: transposeB)
                }
            }
        }
    }

    func testMatmulBatchedAllTransposes() {
        let (batch, m, k, n) = (2, 3, 4, 2)
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let a = Self.input(transposeA ? [batch, k, m] : [batch, m, k], 142)
                let b = Self.input(transposeB ? [batch, n, k] : [batch, k, n], 143)
                GradientCheck.check([a, b], "matmul batched transposeA \(transposeA) transposeB \(transposeB)") {
                    Tensor.matmul($0[0], $0[1], transposeA: transposeA, transposeB: transposeB)
                }
            }
        }
        let a4 = Self.input([2, 2, 2, 3], 144), b4 = Self.input([2, 2, 3, 2], 145)
        GradientCheck.check([a4, b4], "matmul 4-D") { Tensor.matmul($0[0], $0[1]) }
    }

    func testMatmul3DBy2D() {
        let a = Self.input([2, 3, 4], 146)
        GradientCheck.check([a, Self.input([4, 5], 147)], "matmul 3-D x 2-D") { Tensor.matmul($0[0], $0[1]) }
        GradientCheck.check([a, Self.input([5, 4], 148)], "matmul 3-D x 2-Dᵀ") {
            Tensor.matmul($0[0], $0[1], transposeB: true)
        }
    }

    // MARK: - Convolutions

    struct ConvCase {
        var input: [Int], weight: [Int]
        var stride = (1, 1), padding = (0, 0), dilation = (1, 1)
    }

    static let convCases: [ConvCase] = [
        ConvCase(input: [2, 5, 5, 3], weight: [4, 3, 3, 3]),
        ConvCase(input: [2, 5, 5, 3], weight: [2, 3, 3, 3], padding: (1, 1)),
        ConvCase(input: [1, 7, 6, 2], weight: [3, 2, 3, 2], stride: (2, 1), padding: (1, 0)),
        ConvCase(input: [2, 6, 6, 2], weight: [2, 2, 4, 4], stride: (2, 2), padding: (1, 1)),  // DCGAN critic
        ConvCase(input: [1, 7, 7, 2], weight: [2, 2, 3, 3], padding: (2, 2), dilation: (2, 2)),
        ConvCase(input: [1, 7, 6, 2], weight: [2, 2, 3, 2], padding: (1, 2), dilation: (2, 1)),
        ConvCase(input: [1, 6, 5, 2], weight: [2, 2, 3, 3], stride: (2, 2)),  // unread bottom row
        ConvCase(input: [2, 3, 4, 5], weight: [3, 5, 1, 1]),  // 1x1
    ]

    func testConv2d() {
        for (k, c) in Self.convCases.enumerated() {
            let x = Self.input(c.input, 150 + UInt64(k)), w = Self.input(c.weight, 170 + UInt64(k))
            GradientCheck.check([x, w], "conv2d \(c.input) * \(c.weight) stride \(c.stride) pad \(c.padding) dil \(c.dilation)") {
                Tensor.conv2d($0[0], $0[1], stride: c.stride, padding: c.padding, dilation: c.dilation)
            }
        }
    }

    func testLinearWithBias() {
        let x = Self.input([3, 5], 351), w = Self.input([4, 5], 352), b = Self.input([4], 353)
        GradientCheck.check([x, w, b], "linear") { Tensor.linear($0[0], $0[1], bias: $0[2]) }
        GradientCheck.checkSecondOrder([x, w, b], "linear, tanh") { Tensor.linear($0[0], $0[1], bias: $0[2]).tanh() }
        let x3 = Self.input([2, 3, 5], 354)
        GradientCheck.check([x3, w, b], "linear on rank 3") { Tensor.linear($0[0], $0[1], bias: $0[2]) }
        // Float32 (bias as the GEMM's starting C) against Float64.
        let y32 = Tensor.linear(x3.cast(to: .float32), w.cast(to: .float32), bias: b.cast(to: .float32))
        let y64 = Tensor.matmul(x3, w, transposeB: true) + b
        assertClose(y32.cast(to: .float64), y64, relative: 1e-5, floor: 1e-6, "linear Float32 against Float64")
    }

    func testConv2dWithFusedBias() {
        let x = Self.input([2, 5, 5, 2], 190), w = Self.input([3, 2, 3, 3], 191), b = Self.input([3], 192)
        GradientCheck.check([x, w, b], "conv2d + bias") {
            Tensor.conv2d($0[0], $0[1], stride: (2, 2), padding: (1, 1)) + $0[2]
        }
    }

    struct ConvTransposeCase {
        var input: [Int], weight: [Int]
        var stride = (1, 1), padding = (0, 0), outputPadding = (0, 0), dilation = (1, 1)
    }

    static let convTransposeCases: [ConvTransposeCase] = [
        ConvTransposeCase(input: [1, 3, 3, 2], weight: [2, 3, 3, 3], stride: (2, 2), padding: (1, 1)),
        ConvTransposeCase(input: [1, 3, 3, 2], weight: [2, 3, 3, 3], stride: (2, 2), padding: (1, 1), outputPadding: (1, 1)),
        ConvTransposeCase(input: [2, 3, 2, 2], weight: [2, 2, 3, 3], stride: (2, 2), padding: (1, 1), outputPadding: (0, 1)),
        ConvTransposeCase(input: [2, 3, 3, 2], weight: [2, 2, 4, 4], stride: (2, 2), padding: (1, 1)),  // DCGAN generator
        ConvTransposeCase(input: [1, 3, 4, 3], weight: [3, 2, 2, 3]),
        ConvTransposeCase(input: [1, 3, 3, 2], weight: [2, 2, 3, 3], padding: (1, 1), dilation: (2, 2)),
        ConvTransposeCase(input: [2, 1, 1, 3], weight: [3, 2, 3, 3]),  // from one pixel: the backend's GEMM path in Float32
    ]

    func testConvTranspose2d() {
        for (k, c) in Self.convTransposeCases.enumerated() {
            let x = Self.input(c.input, 200 + UInt64(k)), w = Self.input(c.weight, 220 + UInt64(k))
            GradientCheck.check([x, w], "convTranspose2d \(c.input) * \(c.weight) stride \(c.stride) pad \(c.padding) "
                                + "outPad \(c.outputPadding) dil \(c.dilation)") {
                Tensor.convTranspose2d($0[0], $0[1], stride: c.stride, padding: c.padding, outputPadding: c.outputPadding,
                                       dilation: c.dilation)
            }
        }
    }

    func testConvTranspose2dFromOnePixelSecondOrder() {
        let x = Self.input([2, 1, 1, 3], 230), w = Self.input([3, 2, 3, 3], 231)
        GradientCheck.checkSecondOrder([x, w], "convTranspose2d from one pixel, tanh") {
            Tensor.convTranspose2d($0[0], $0[1]).tanh()
        }
    }

    // MARK: - Gathers, scatters, pooling

    func testGatherFlat() {
        let indices = [0, 5, 5, 11, 3, 7, 0, 2]  // repeats: gradients accumulate
        Self.checkUnary(Self.input([3, 4], 240), "gatherFlat") { Tensor.gatherFlat($0, indices: indices, shape: [2, 4]) }
    }

    func testScatterAddFlat() {
        let indices = [8, 0, 4, 4, 1, 8]
        Self.checkUnary(Self.input([2, 3], 241), "scatterAddFlat") { Tensor.scatterAddFlat($0, indices: indices, shape: [3, 3]) }
    }

    func testEmbeddingTableGradient() {
        let indices = Tensor([3, 0, 3, 1, 4, 3] as [Int64], shape: [2, 3])
        Self.checkUnary(Self.input([5, 3], 242), "embedding") { Tensor.embedding($0, indices: indices) }
    }

    func testMaxPool2d() {
        Self.checkUnary(Self.distinct([2, 4, 4, 2], 243, spacing: 0.02), "maxPool2d k2") { $0.maxPool2d(kernel: 2) }
        Self.checkUnary(Self.distinct([1, 5, 5, 2], 244, spacing: 0.02), "maxPool2d k3 s2 (overlapping)") {
            $0.maxPool2d(kernel: 3, stride: 2)
        }
        Self.checkUnary(Self.distinct([1, 5, 4, 3], 245, spacing: 0.02), "maxPool2d k2 s1") { $0.maxPool2d(kernel: 2, stride: 1) }
    }

    func testAvgPool2d() {
        Self.checkUnary(Self.input([2, 4, 4, 2], 246), "avgPool2d k2") { $0.avgPool2d(kernel: 2) }
        Self.checkUnary(Self.input([1, 5, 7, 2], 247), "avgPool2d k2 cropped") { $0.avgPool2d(kernel: 2) }
        Self.checkUnary(Self.input([1, 6, 6, 1], 248), "avgPool2d k3") { $0.avgPool2d(kernel: 3) }
    }

    func testUpsampleNearest() {
        Self.checkUnary(Self.input([1, 2, 3, 2], 249), "upsampleNearest x2") { $0.upsampleNearest(scale: 2) }
        Self.checkUnary(Self.input([2, 2, 2, 1], 250), "upsampleNearest x3") { $0.upsampleNearest(scale: 3) }
    }

    // MARK: - Normalisation and dropout

    func testBatchNormTraining() {
        let x = Self.input([4, 2, 2, 3], 260), w = Self.input([3], 261, 0.5, 1.5), b = Self.input([3], 262)
        GradientCheck.check([x, w, b], "batchNormTraining affine") {
            Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2]).output
        }
        Self.checkUnary(x, "batchNormTraining no affine") { Tensor.batchNormTraining($0, weight: nil, bias: nil).output }
        Self.checkUnary(Self.input([6, 3], 263), "batchNormTraining 2-D") { Tensor.batchNormTraining($0, weight: nil, bias: nil).output }
    }

    func testBatchNormInference() {
        let x = Self.input([3, 2, 2, 3], 264), w = Self.input([3], 265, 0.5, 1.5), b = Self.input([3], 266)
        let mean = Self.input([3], 267), variance = Self.input([3], 268, 0.5, 2)
        GradientCheck.check([x, w, b, mean, variance], "batchNormInference") {
            Tensor.batchNormInference($0[0], weight: $0[1], bias: $0[2], mean: $0[3], variance: $0[4])
        }
        let m = Self.constant([3], 269), v = Self.constant([3], 270, 0.5, 2)
        Self.checkUnary(x, "batchNormInference no affine") { Tensor.batchNormInference($0, weight: nil, bias: nil, mean: m, variance: v) }
    }

    func testConv2dWithBias() {
        let x = Self.input([2, 5, 5, 3], 341), w = Self.input([4, 3, 3, 3], 342), b = Self.input([4], 343)
        GradientCheck.check([x, w, b], "conv2d with bias") { Tensor.conv2d($0[0], $0[1], bias: $0[2], stride: (2, 2), padding: (1, 1)) }
        GradientCheck.checkSecondOrder([x, w, b], "conv2d with bias, tanh") {
            Tensor.conv2d($0[0], $0[1], bias: $0[2], padding: (1, 1)).tanh()
        }
        // Float32 (oneDNN's fused bias) against Float64 (reference kernel plus bias).
        let y32 = Tensor.conv2d(x.cast(to: .float32), w.cast(to: .float32), bias: b.cast(to: .float32), stride: (2, 2), padding: (1, 1))
        let y64 = Tensor.conv2d(x, w, stride: (2, 2), padding: (1, 1)) + b
        assertClose(y32.cast(to: .float64), y64, relative: 1e-5, floor: 1e-6, "conv2d with bias, Float32 against Float64")
        // First-order Float32 gradients (weight and bias from one oneDNN pass) against Float64.
        let seed = Self.constant(y64.shape, 344)
        let grads64 = gradients(of: y64, wrt: [x, w, b], seed: seed)
        let inputs32 = [x, w, b].map { $0.cast(to: .float32).detached().requiringGrad() }
        let grads32 = gradients(of: Tensor.conv2d(inputs32[0], inputs32[1], bias: inputs32[2], stride: (2, 2), padding: (1, 1)),
                                wrt: inputs32, seed: seed.cast(to: .float32))
        for (k, name) in ["x", "weight", "bias"].enumerated() {
            assertClose(grads32[k].cast(to: .float64), grads64[k], relative: 1e-5, floor: 1e-6,
                        "conv2d with bias, Float32 gradient of \(name)")
        }
    }

    func testGroupNorm() {
        let x = Self.input([2, 2, 2, 4], 271), w = Self.input([4], 272, 0.5, 1.5), b = Self.input([4], 273)
        for groups in [1, 2, 4] {
            GradientCheck.check([x, w, b], "groupNorm \(groups) groups") {
                Tensor.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2])
            }
        }
        Self.checkUnary(Self.input([2, 3, 4], 274), "groupNorm rank 3 no affine") { Tensor.groupNorm($0, groups: 2, weight: nil, bias: nil) }
    }

    func testLayerNorm() {
        let x = Self.input([3, 4], 275), w = Self.input([4], 276, 0.5, 1.5), b = Self.input([4], 277)
        GradientCheck.check([x, w, b], "layerNorm last axis") { Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        let x3 = Self.input([2, 3, 4], 278), w3 = Self.input([3, 4], 279, 0.5, 1.5), b3 = Self.input([3, 4], 280)
        GradientCheck.check([x3, w3, b3], "layerNorm last two axes") {
            Tensor.layerNorm($0[0], normalizedAxes: 2, weight: $0[1], bias: $0[2])
        }
        Self.checkUnary(x3, "layerNorm no affine") { Tensor.layerNorm($0, weight: nil, bias: nil) }
    }

    func testDropout() {
        let x = Self.input([4, 5], 281)
        // A fresh generator with a fixed seed inside the closure: the same mask on every evaluation.
        Self.checkUnary(x, "dropout 0.3") { $0.dropout(0.3, generator: RandomGenerator(seed: 7)) }
        Self.checkUnary(x, "dropout 0") { $0.dropout(0, generator: RandomGenerator(seed: 7)) }
        let g = gradients(of: x.dropout(0.5, generator: RandomGenerator(seed: 8)).sum(), wrt: [x])[0].doubleScalars()
        XCTAssert(g.allSatisfy { $0 == 0 || $0 == 2 }, "dropout 0.5 gradient is 0 or 1/(1-p): \(g)")
        XCTAssert(g.contains(0) && g.contains(2), "dropout 0.5 of 20 elements drops some and keeps some")
    }

    // MARK: - Non-contiguous inputs (views are materialised: feed ops permuted/sliced tensors)

    func testConvOfPermutedAndSlicedInputs() {
        let xNCHW = Self.input([2, 3, 5, 4], 290), wHWIO = Self.input([3, 3, 3, 2], 291)
        GradientCheck.check([xNCHW, wHWIO], "conv2d(NCHW input permuted, HWIO weight permuted)") {
            Tensor.conv2d($0[0].permuted([0, 2, 3, 1]), $0[1].permuted([3, 2, 0, 1]), padding: (1, 1))
        }
        let x = Self.input([1, 6, 7, 3], 292), w = Self.input([2, 2, 3, 3], 293)
        GradientCheck.check([x, w], "conv2d(sliced input)") {
            Tensor.conv2d($0[0].sliced(axis: 2, 1..<6).sliced(axis: 3, 1..<3), $0[1], stride: (2, 1))
        }
        let xt = Self.input([1, 3, 3, 2], 294), wt = Self.input([3, 2, 3, 3], 295)
        GradientCheck.check([xt, wt], "convTranspose2d(transposed input, permuted weight)") {
            Tensor.convTranspose2d($0[0].transposed(1, 2), $0[1].permuted([1, 0, 2, 3]), stride: (2, 2), padding: (1, 1))
        }
    }

    func testMatmulOfTransposedInputs() {
        let a = Self.input([4, 3], 296), b = Self.input([5, 4], 297)
        GradientCheck.check([a, b], "matmul(aᵀ, bᵀ) materialised") { Tensor.matmul($0[0].transposed(), $0[1].transposed()) }
        GradientCheck.check([a, Self.input([5, 3], 305)], "matmul with both flags on a materialised transpose") {
            Tensor.matmul($0[0].transposed(), $0[1], transposeA: true, transposeB: true)
        }
        let c = Self.input([3, 2, 4], 298), d = Self.input([2, 5, 4], 299)
        GradientCheck.check([c, d], "batched matmul of permuted operands") {
            Tensor.matmul($0[0].permuted([1, 0, 2]), $0[1].transposed())
        }
        let e = Self.input([2, 6, 4], 300)
        GradientCheck.check([e, Self.input([4, 3], 301)], "matmul of sliced 3-D by 2-D") {
            Tensor.matmul($0[0].sliced(axis: 1, 1..<4), $0[1])
        }
    }

    func testElementwiseAndReductionsOfViews() {
        let p = Self.input([4, 2, 3], 302), q = Self.input([4, 3, 4], 303)
        GradientCheck.check([p, q], "permuted * sliced, broadcast") {
            $0[0].permuted([1, 2, 0]) * $0[1].sliced(axis: 0, 1..<2).sliced(axis: 1, 0..<3)
        }
        Self.checkUnary(p, "softmax of transposed") { $0.transposed(0, 2).softmax(axis: 1) }
        Self.checkUnary(p, "sum of permuted over [0, 2]") { $0.permuted([2, 0, 1]).sum(axes: [0, 2]) }
        Self.checkUnary(Self.input([2, 4, 3, 3], 304), "groupNorm of NCHW permuted") {
            Tensor.groupNorm($0.permuted([0, 2, 3, 1]), groups: 2, weight: nil, bias: nil)
        }
    }

    // MARK: - Second order

    /// Guards the second-order helper itself: its finite differences must be taken with gradient
    /// recording on, or the inner `gradients(..., createGraph: true)` sees no graph and every numeric
    /// second-order gradient comes out 0 (history: docs/architecture.md, Measurements and history).
    func testGradientCheckSecondOrderSeesTheInnerGraph() {
        GradientCheck.checkSecondOrder([Self.input([2, 3], 310)], "exp through GradientCheck.checkSecondOrder") { $0[0].exp() }
    }

    func testSecondOrderConv2dWithBias() {
        let x = Self.input([2, 5, 5, 2], 311), w = Self.input([3, 2, 3, 3], 312), b = Self.input([3], 313)
        GradientCheck.checkSecondOrder([x, w, b], "conv2d + bias") {
            Tensor.conv2d($0[0], $0[1], stride: (2, 2), padding: (1, 1)) + $0[2]
        }
        GradientCheck.checkSecondOrder([x, w, b], "(conv2d + bias)^2") {
            (Tensor.conv2d($0[0], $0[1], padding: (1, 1)) + $0[2]).square()
        }
    }

    func testSecondOrderElementwise() {
        let a = Self.input([3, 4], 314), b = Self.awayFromZero([4], 315)
        GradientCheck.checkSecondOrder([a, b], "mul broadcast") { $0[0] * $0[1] }
        GradientCheck.checkSecondOrder([a, b], "div broadcast") { $0[0] / $0[1] }
        GradientCheck.checkSecondOrder([a], "exp") { $0[0].exp() }
        GradientCheck.checkSecondOrder([a], "tanh") { $0[0].tanh() }
        GradientCheck.checkSecondOrder([a], "sigmoid") { ($0[0] * 3).sigmoid() }
        GradientCheck.checkSecondOrder([a], "square") { $0[0].square() }
        GradientCheck.checkSecondOrder([Self.input([3, 4], 316, 0.2, 2)], "sqrt") { $0[0].sqrt() }
        let k = Self.awayFromZero([3, 4], 317)
        GradientCheck.checkSecondOrder([k], "leakyRelu") { $0[0].leakyRelu(0.2) }
        GradientCheck.checkSecondOrder([k, a], "leakyRelu(x) * y") { $0[0].leakyRelu(0.2) * $0[1] }
        GradientCheck.checkSecondOrder([k], "leakyRelu(x)^2") { $0[0].leakyRelu(0.2).square() }
    }

    func testSecondOrderShapesAndReductions() {
        let x = Self.input([2, 3, 4], 318), y = Self.input([4, 6], 319)
        GradientCheck.checkSecondOrder([x, y], "reshaped") { $0[0].reshaped([4, 6]) * $0[1] }
        GradientCheck.checkSecondOrder([x], "sum over axis then square") { $0[0].sum(axis: 1).square() }
        GradientCheck.checkSecondOrder([x], "sum of squares") { $0[0].square().sum() }
        GradientCheck.checkSecondOrder([x], "mean over [0, 2] then exp") { $0[0].mean(axes: [0, 2]).exp() }
        GradientCheck.checkSecondOrder([x], "mean of cubes") { ($0[0] * $0[0] * $0[0]).mean() }
    }

    func testSecondOrderMatmul() {
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Self.input(transposeA ? [4, 3] : [3, 4], 320), b = Self.input(transposeB ? [2, 4] : [4, 2], 321)
            GradientCheck.checkSecondOrder([a, b], "matmul transposeA \(transposeA) transposeB \(transposeB)") {
                Tensor.matmul($0[0], $0[1], transposeA: transposeA, transposeB: transposeB).square()
            }
        }
        GradientCheck.checkSecondOrder([Self.input([2, 3, 4], 322), Self.input([2, 4, 2], 323)], "batched matmul") {
            Tensor.matmul($0[0], $0[1]).tanh()
        }
    }

    func testSecondOrderConvTranspose2d() {
        let x = Self.input([1, 3, 3, 2], 324), w = Self.input([2, 2, 4, 4], 325)
        GradientCheck.checkSecondOrder([x, w], "convTranspose2d k4 s2 p1") {
            Tensor.convTranspose2d($0[0], $0[1], stride: (2, 2), padding: (1, 1))
        }
        GradientCheck.checkSecondOrder([x, Self.input([2, 2, 3, 3], 326)], "convTranspose2d k3 s2 p1 outPad 1, tanh") {
            Tensor.convTranspose2d($0[0], $0[1], stride: (2, 2), padding: (1, 1), outputPadding: (1, 1)).tanh()
        }
    }

    func testSecondOrderGroupNorm() {
        let x = Self.input([2, 2, 2, 4], 327), w = Self.input([4], 328, 0.5, 1.5), b = Self.input([4], 329)
        GradientCheck.checkSecondOrder([x, w, b], "groupNorm 2 groups") { Tensor.groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2]) }
    }

    /// The WGAN-GP penalty ((‖∂f/∂x‖ per sample - 1)²).mean() of a small critic
    /// f(x) = sum(leakyRelu(conv2d(x, w) + b)), differentiated w.r.t. x, w and b. With a piecewise
    /// linear critic the penalty depends on x and b only through the leakyRelu masks (zero
    /// gradient almost everywhere); the second case puts a tanh layer first so that it depends on x
    /// smoothly, exercising the derivative of conv backward-data w.r.t. its gradient input.
    func testSecondOrderWGANGradientPenalty() {
        let x = Self.input([2, 5, 5, 2], 330), w = Self.input([3, 2, 3, 3], 331, -0.5, 0.5), b = Self.input([3], 332, -0.2, 0.2)
        GradientCheck.check([x, w, b], "WGAN-GP penalty, conv + leakyRelu critic") { t in
            let (x, w, b) = (t[0], t[1], t[2])
            let critic = (Tensor.conv2d(x, w, stride: (2, 2), padding: (1, 1)) + b).leakyRelu(0.2).reshaped([2, -1]).sum()
            let g = gradients(of: critic, wrt: [x], createGraph: true)[0]
            let norm = g.reshaped([2, -1]).square().sum(axis: 1).sqrt()
            return (norm - 1).square().mean()
        }
        let w2 = Self.input([2, 3, 3, 3], 333, -0.5, 0.5), b2 = Self.input([2], 334, -0.2, 0.2)
        // The smooth critic's penalty really depends on x (so the check above is not 0 == 0).
        let h = (Tensor.conv2d(x, w, padding: (1, 1)) + b).tanh()
        let critic = (Tensor.conv2d(h, w2, stride: (2, 2)) + b2).leakyRelu(0.2).reshaped([2, -1]).sum()
        let g = gradients(of: critic, wrt: [x], createGraph: true)[0]
        let penalty = (g.reshaped([2, -1]).square().sum(axis: 1).sqrt() - 1).square().mean()
        let dx = gradients(of: penalty, wrt: [x])[0].doubleScalars()
        XCTAssertGreaterThan(dx.map { Swift.abs($0) }.max() ?? 0, 1e-3, "penalty gradient w.r.t. x of the smooth critic")
        GradientCheck.check([x, w, b, w2, b2], "WGAN-GP penalty, conv + tanh + conv + leakyRelu critic") { t in
            let (x, w, b, w2, b2) = (t[0], t[1], t[2], t[3], t[4])
            let h = (Tensor.conv2d(x, w, padding: (1, 1)) + b).tanh()
            let critic = (Tensor.conv2d(h, w2, stride: (2, 2)) + b2).leakyRelu(0.2).reshaped([2, -1]).sum()
            let g = gradients(of: critic, wrt: [x], createGraph: true)[0]
            let norm = g.reshaped([2, -1]).square().sum(axis: 1).sqrt()
            return (norm - 1).square().mean()
        }
    }
}
