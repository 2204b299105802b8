/// Forward and backward loops of `Tensor.groupNorm`, threaded over samples. Statistics accumulate in
/// Double; `stats` holds (mean, 1 / sqrt(variance + eps)) per sample and group.
enum GroupNormKernels {
    /// Per-channel scale a and shift b with z = x a + b for sample `n`.
    @inline(__always)
    private static func affine<T: KernelFloat>(_ geo: GroupNormGeometry, _ n: Int, _ stats: UnsafeMutablePointer<Double>,
                                               _ weight: UnsafeMutablePointer<T>?, _ bias: UnsafeMutablePointer<T>?,
                                               _ scale: inout [T], _ shift: inout [T]) {
        let cpg = geo.channelsPerGroup
        for c in 0..<geo.channels {
            let g = c / cpg
            let mean = stats[(n * geo.groups + g) * 2], rstd = stats[(n * geo.groups + g) * 2 + 1]
            let w = weight.map { Double($0[c]) } ?? 1, b = bias.map { Double($0[c]) } ?? 0
            scale[c] = T(rstd * w)
            shift[c] = T(b - mean * rstd * w)
        }
    }

    static func forward<T: KernelFloat>(_ geo: GroupNormGeometry, _ x: UnsafeMutablePointer<T>,
                                        _ weight: UnsafeMutablePointer<T>?, _ bias: UnsafeMutablePointer<T>?,
                                        _ y: UnsafeMutablePointer<T>, _ stats: UnsafeMutablePointer<Double>) {
        let (s, c, groups, cpg) = (geo.spatial, geo.channels, geo.groups, geo.channelsPerGroup)
        let count = Double(geo.groupSize)
        parallelChunks(geo.batch, costPerItem: s * c * 3) { range in
            var channelSum = [Double](repeating: 0, count: c)
            var scale = [T](repeating: 0, count: c), shift = [T](repeating: 0, count: c)
            for n in range {
                let xn = x + n * s * c, yn = y + n * s * c
                // Mean per group.
                for k in 0..<c { channelSum[k] = 0 }
                channelSum.withUnsafeMutableBufferPointer { sum in
                    for p in 0..<s {
                        let row = xn + p * c
                        for k in 0..<c { sum[k] += Double(row[k]) }
                    }
                }
                for g in 0..<groups {
                    var m = 0.0
                    for k in (g * cpg)..<((g + 1) * cpg) { m += channelSum[k] }
                    stats[(n * groups + g) * 2] = m / count
                }
                // Variance per group, from the centred values (two passes: no cancellation).
                for k in 0..<c { scale[k] = T(stats[(n * groups + k / cpg) * 2]) }  // the mean, per channel
                for k in 0..<c { channelSum[k] = 0 }
                channelSum.withUnsafeMutableBufferPointer { sum in
                    scale.withUnsafeBufferPointer { mean in
                        for p in 0..<s {
                            let row = xn + p * c
                            for k in 0..<c {
                                let d = row[k] - mean[k]
                                sum[k] += Double(d * d)
                            }
                        }
                    }
                }
                for g in 0..<groups {
                    var v = 0.0
                    for k in (g * cpg)..<((g + 1) * cpg) { v += channelSum[k] }
                    stats[(n * groups + g) * 2 + 1] = 1 / (v / count + geo.eps).squareRoot()
                }
                affine(geo, n, stats, weight, bias, &scale, &shift)
                scale.withUnsafeBufferPointer { a in
                    shift.withUnsafeBufferPointer { b in
                        for p in 0..<s {
                            let row = xn + p * c, out = yn + p * c
                            for k in 0..<c { out[k] = row[k] * a[k] + b[k] }
                        }
                    }
                }
                if geo.silu { ElementwiseKernels.serialUnary(SiLUF.self, yn, yn, s * c) }
            }
        }
    }

    static func backward<T: KernelFloat>(_ geo: GroupNormGeometry, _ dy: UnsafeMutablePointer<T>, _ x: UnsafeMutablePointer<T>,
                                         _ weight: UnsafeMutablePointer<T>?, _ bias: UnsafeMutablePointer<T>?,
                                         _ stats: UnsafeMutablePointer<Double>, _ dx: UnsafeMutablePointer<T>,
                                         _ dw: UnsafeMutablePointer<T>, _ db: UnsafeMutablePointer<T>) {
        let (s, c, groups, cpg) = (geo.spatial, geo.channels, geo.groups, geo.channelsPerGroup)
        let count = Double(geo.groupSize)
        // Per sample and channel: sum of dz and of dz * xhat (for the parameter gradients and dx).
        var sumDz = [Double](repeating: 0, count: geo.batch * c), sumDzXhat = sumDz
        sumDz.withUnsafeMutableBufferPointer { sdz in
            sumDzXhat.withUnsafeMutableBufferPointer { sdzx in
                let sdzBase = sdz.baseAddress!, sdzxBase = sdzx.baseAddress!
                parallelChunks(geo.batch, costPerItem: s * c * 4) { range in
                    var scale = [T](repeating: 0, count: c), shift = [T](repeating: 0, count: c)
                    var mean = [T](repeating: 0, count: c), rstd = [T](repeating: 0, count: c)
                    var a1 = [T](repeating: 0, count: c), a2 = [T](repeating: 0, count: c), a3 = [T](repeating: 0, count: c)
                    for n in range {
                        let xn = x + n * s * c, dyn = dy + n * s * c, dxn = dx + n * s * c
                        let accDz = sdzBase + n * c, accDzX = sdzxBase + n * c
                        affine(geo, n, stats, weight, bias, &scale, &shift)
                        for k in 0..<c {
                            mean[k] = T(stats[(n * groups + k / cpg) * 2])
                            rstd[k] = T(stats[(n * groups + k / cpg) * 2 + 1])
                        }
                        // Pass 1: dz (through SiLU when fused) into dx, and the per-channel sums.
                        var fz = [T](repeating: 0, count: c), fzx = [T](repeating: 0, count: c)
                        if geo.silu {
                            for p in 0..<s {
                                let row = xn + p * c, z = dxn + p * c
                                for k in 0..<c { z[k] = row[k] * scale[k] + shift[k] }
                            }
                            ElementwiseKernels.serialBinary(SiLUGradF.self, dyn, dxn, dxn, s * c)
                        } else {
                            dxn.update(from: dyn, count: s * c)
                        }
                        for p in 0..<s {
                            let row = xn + p * c, dz = dxn + p * c
                            for k in 0..<c {
                                fz[k] += dz[k]
                                fzx[k] += dz[k] * (row[k] - mean[k]) * rstd[k]
                            }
                        }
                        for k in 0..<c { accDz[k] = Double(fz[k]); accDzX[k] = Double(fzx[k]) }
                        // dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dz w, per group.
                        for g in 0..<groups {
                            var m1 = 0.0, m2 = 0.0
                            for k in (g * cpg)..<((g + 1) * cpg) {
                                let w = weight.map { Double($0[k]) } ?? 1
                                m1 += w * accDz[k]
                                m2 += w * accDzX[k]
                            }
                            m1 /= count; m2 /= count
                            let r = stats[(n * groups + g) * 2 + 1]
                            for k in (g * cpg)..<((g + 1) * cpg) {
                                let w = weight.map { Double($0[k]) } ?? 1
                                // dx = a1 dz + a2 (x - mean) + a3, folded per channel:
                                a1[k] = T(r * w)
                                a2[k] = T(-r * r * m2)
                                a3[k] = T(-r * m1)
                            }
                        }
                        for p in 0..<s {
                            let row = xn + p * c, dz = dxn + p * c
                            for k in 0..<c { dz[k] = a1[k] * dz[k] + a2[k] * (row[k] - mean[k]) + a3[k] }
                        }
                    }
                }
            }
        }
        for k in 0..<c {
            var w = 0.0, b = 0.0
            for n in 0..<geo.batch { w += sumDzXhat[n * c + k]; b += sumDz[n * c + k] }
            dw[k] = T(w)
            db[k] = T(b)
        }
    }
}
