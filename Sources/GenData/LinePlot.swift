import Foundation
import GenTensor
import GenFormats

/// The colours of a line plot's series, in order (matplotlib's "tab10"), as RGB in [0, 1]; the
/// series after the tenth reuse them.
public let linePlotPalette: [(red: Float, green: Float, blue: Float)] = {
    let bytes: [(Float, Float, Float)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ]
    return bytes.map { (red: $0.0 / 255, green: $0.1 / 255, blue: $0.2 / 255) }
}()

/// Renders loss curves as a raster line plot: an RGB float32 tensor (height, width, 3) in [0, 1]
/// to save with `PNGWriter.write`.
///
/// White background, a dark axes box, light grey grid lines at "nice" y values (1, 2 or 5 times a
/// power of ten) with their labels on the left, x ticks (the value's index, from 0) below, and one
/// polyline per series in `linePlotPalette`'s colours. Non-finite values (NaN, infinities) break a
/// line rather than stretching the axes (so do values beyond 1e100). The built-in 5 x 7 font has digits and `.-+e` only, so the
/// series names are not drawn: the colours follow the order of `series`.
public func renderLinePlot(series: [(name: String, values: [Double])], width: Int = 640, height: Int = 400) -> Tensor {
    precondition(width > 0 && height > 0, "renderLinePlot: size \(width) x \(height)")
    var canvas = Canvas(width: width, height: height)

    // Axis ranges: y snapped outwards to nice ticks; x over the longest series' indices.
    // Values beyond 1e100 are treated as non-finite, so that the axis arithmetic stays finite.
    func usable(_ v: Double) -> Bool { v.isFinite && abs(v) < 1e100 }
    let finite = series.flatMap { $0.values.filter(usable) }
    var low = finite.min() ?? 0, high = finite.max() ?? 1
    if high - low < max(abs(high), 1) * 1e-9 {
        let pad = max(abs(high) * 0.05, 0.5)
        low -= pad
        high += pad
    }
    let yStep = niceStep((high - low) / 5)
    let yMin = (low / yStep).rounded(.down) * yStep, yMax = (high / yStep).rounded(.up) * yStep
    let yTicks = stride(from: 0, through: Int(((yMax - yMin) / yStep).rounded()), by: 1).map { Double($0) * yStep + yMin }
    let longest = series.map(\.values.count).max() ?? 0
    let xMax = Double(max(longest - 1, 1))
    let xStep = max(1, niceStep(xMax / 6))
    let xTicks = stride(from: 0.0, through: xMax + 1e-9, by: xStep).map { $0 }

    func label(_ value: Double, step: Double) -> String {
        abs(value) < step * 1e-6 ? "0" : String(format: "%g", value)
    }
    let yLabels = yTicks.map { label($0, step: yStep) }
    let xLabels = xTicks.map { label($0, step: xStep) }

    // Layout: labels left of and below the box.
    let left = (yLabels.map { Canvas.textWidth($0) }.max() ?? 0) + 8
    let right = max(12, (Canvas.textWidth(xLabels.last ?? "") + 1) / 2 + 4)
    let top = 10, bottom = Canvas.glyphHeight + 10
    let (x0, x1, y0, y1) = (left, width - 1 - right, top, height - 1 - bottom)
    guard x1 - x0 >= 10, y1 - y0 >= 10 else { return canvas.tensor() }

    func px(_ x: Double) -> Double { Double(x0) + x / xMax * Double(x1 - x0) }
    func py(_ y: Double) -> Double { Double(y1) - (y - yMin) / (yMax - yMin) * Double(y1 - y0) }

    let grid: (Float, Float, Float) = (0.88, 0.88, 0.88), ink: (Float, Float, Float) = (0.15, 0.15, 0.15)
    for (tick, text) in zip(yTicks, yLabels) {
        let y = Int(py(tick).rounded())
        canvas.line(x0, y, x1, y, grid)
        canvas.text(text, right: x0 - 5, centreY: y, ink)
    }
    for (tick, text) in zip(xTicks, xLabels) {
        let x = Int(px(tick).rounded())
        canvas.line(x, y1, x, y1 + 3, ink)
        canvas.text(text, centreX: x, top: y1 + 6, ink)
    }
    canvas.line(x0, y0, x1, y0, ink)
    canvas.line(x0, y1, x1, y1, ink)
    canvas.line(x0, y0, x0, y1, ink)
    canvas.line(x1, y0, x1, y1, ink)

    canvas.clip = (x0 + 1, y0 + 1, x1 - 1, y1 - 1)
    for (k, s) in series.enumerated() {
        let colour = linePlotPalette[k % linePlotPalette.count]
        var previous: (Int, Int)?
        for (i, v) in s.values.enumerated() {
            guard usable(v) else { previous = nil; continue }
            let point = (Int(px(Double(i)).rounded()), Int(py(v).rounded()))
            if let p = previous {
                canvas.line(p.0, p.1, point.0, point.1, colour, thick: true)
            } else {
                canvas.line(point.0, point.1, point.0, point.1, colour, thick: true)
            }
            previous = point
        }
    }
    return canvas.tensor()
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
private func niceStep(_ raw: Double) -> Double {
    guard raw.isFinite, raw > 0 else { return 1 }
    let power = pow(10, (log10(raw)).rounded(.down))
    for m in [1.0, 2, 5, 10] where m * power >= raw * (1 - 1e-9) { return m * power }
    return 10 * power
}

/// An RGB raster with clipped line drawing and a 5 x 7 bitmap font.
private struct Canvas {
    let width: Int, height: Int
    var pixels: [Float]
    var clip: (Int, Int, Int, Int)

    static let glyphHeight = 7
    /// Each glyph is seven rows of five bits, the high bit on the left.
    static let glyphs: [Character: [UInt8]] = [
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], "-": [0, 0, 0, 0x0E, 0, 0, 0],
        "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0], "e": [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
    ]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [Float](repeating: 1, count: width * height * 3)
        clip = (0, 0, width - 1, height - 1)
    }

    static func textWidth(_ text: String) -> Int { max(0, text.count * 6 - 1) }

    mutating func set(_ x: Int, _ y: Int, _ c: (Float, Float, Float)) {
        guard x >= clip.0, x <= clip.2, y >= clip.1, y <= clip.3 else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0
        pixels[i + 1] = c.1
        pixels[i + 2] = c.2
    }

    /// Bresenham's line; `thick` stamps 2 x 2 pixels.
    mutating func line(_ xa: Int, _ ya: Int, _ xb: Int, _ yb: Int, _ c: (Float, Float, Float), thick: Bool = false) {
        var (x, y) = (xa, ya)
        let dx = abs(xb - xa), dy = -abs(yb - ya)
        let sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1
        var error = dx + dy
        while true {
            set(x, y, c)
            if thick { set(x + 1, y, c); set(x, y + 1, c); set(x + 1, y + 1, c) }
            if x == xb && y == yb { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    mutating func text(_ text: String, left: Int, top: Int, _ c: (Float, Float, Float)) {
        for (k, character) in text.enumerated() {
            guard let rows = Canvas.glyphs[character] else { continue }
            for (r, bits) in rows.enumerated() {
                for b in 0..<5 where bits & (0x10 >> UInt8(b)) != 0 { set(left + 6 * k + b, top + r, c) }
            }
        }
    }

    mutating func text(_ string: String, right: Int, centreY: Int, _ c: (Float, Float, Float)) {
        text(string, left: right - Canvas.textWidth(string), top: centreY - Canvas.glyphHeight / 2, c)
    }

    mutating func text(_ string: String, centreX: Int, top: Int, _ c: (Float, Float, Float)) {
        text(string, left: centreX - Canvas.textWidth(string) / 2, top: top, c)
    }

    func tensor() -> Tensor { Tensor(pixels, shape: [height, width, 3]) }
}
