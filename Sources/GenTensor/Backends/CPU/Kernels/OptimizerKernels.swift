/// The CPU backend's optimizer and EMA updates, in place, in Float32.
enum OptimizerKernels {
    static func sgd(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ n: Int,
                    buffer b: UnsafeMutablePointer<Float>?, learningRate lr: Float, momentum mu: Float,
                    weightDecay wd: Float, firstStep: Bool) {
        guard let b else {
            for j in 0..<n { p[j] -= lr * (g[j] + wd * p[j]) }
            return
        }
        for j in 0..<n {
            let d = g[j] + wd * p[j]
            b[j] = firstStep ? d : mu * b[j] + d
            p[j] -= lr * b[j]
        }
    }

    static func adam(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ n: Int,
                     m mp: UnsafeMutablePointer<Float>, v vp: UnsafeMutablePointer<Float>,
                     stepSize: Float, b1: Float, b2: Float, e: Float, bc2Sqrt: Float, decay: Float, l2: Float) {
        parallelChunks((n + 15) / 16, costPerItem: 16) { range in
            // 16 lanes at a time (the four arrays are distinct, which the compiler cannot know).
            typealias V = SIMD16<Float>
            let end = Swift.min(range.upperBound * 16, n)
            var j = range.lowerBound * 16
            while j + 16 <= end {
                let pj = UnsafeRawPointer(p + j).loadUnaligned(as: V.self)
                let gj = UnsafeRawPointer(g + j).loadUnaligned(as: V.self) + l2 * pj
                let mj = b1 * UnsafeRawPointer(mp + j).loadUnaligned(as: V.self) + (1 - b1) * gj
                let vj = b2 * UnsafeRawPointer(vp + j).loadUnaligned(as: V.self) + (1 - b2) * gj * gj
                let updated = pj * decay - stepSize * mj / (vj.squareRoot() / bc2Sqrt + e)
                UnsafeMutableRawPointer(mp + j).storeBytes(of: mj, as: V.self)
                UnsafeMutableRawPointer(vp + j).storeBytes(of: vj, as: V.self)
                UnsafeMutableRawPointer(p + j).storeBytes(of: updated, as: V.self)
                j += 16
            }
            while j < end {
                let gj = g[j] + l2 * p[j]
                p[j] *= decay
                mp[j] = b1 * mp[j] + (1 - b1) * gj
                vp[j] = b2 * vp[j] + (1 - b2) * gj * gj
                p[j] -= stepSize * mp[j] / (vp[j].squareRoot() / bc2Sqrt + e)
                j += 1
            }
        }
    }

    static func rmsprop(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ n: Int,
                        v vp: UnsafeMutablePointer<Float>, learningRate lr: Float, alpha a: Float, eps e: Float,
                        weightDecay wd: Float) {
        for j in 0..<n {
            let gj = g[j] + wd * p[j]
            vp[j] = a * vp[j] + (1 - a) * gj * gj
            p[j] -= lr * gj / (vp[j].squareRoot() + e)
        }
    }

    static func movingAverage(_ s: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ n: Int, decay d: Float) {
        for i in 0..<n { s[i] = d * s[i] + (1 - d) * v[i] }
    }
}
