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
/// power of ten) with their labels on the left, x ticks below (value i of a series sits at
/// x = `firstX` + i), one polyline per series in `linePlotPalette`'s colours, and a legend naming
/// each series in the top right corner. `xLabel` is written under the x ticks and `yLabel` above the
/// axes. Non-finite values (NaN, infinities) break a line rather than stretching the axes (so do
/// values beyond 1e100). The built-in 5 x 7 font has digits, lower-case letters (upper case is
/// drawn in lower case) and `.-+_/():,` and space.
public func renderLinePlot(series: [(name: String, values: [Double])], xLabel: String? = nil, yLabel: String? = nil,
                           firstX: Double = 0, width: Int = 640, height: Int = 400) -> Tensor {
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
    let xMin = firstX, xMax = firstX + Double(max(longest - 1, 1))
    let xStep = max(1, niceStep((xMax - xMin) / 6))
    let xTicks = stride(from: (xMin / xStep).rounded(.up) * xStep, through: xMax + 1e-9, by: xStep).map { $0 }

    func label(_ value: Double, step: Double) -> String {
        abs(value) < step * 1e-6 ? "0" : String(format: "%g", value)
    }
    let yLabels = yTicks.map { label($0, step: yStep) }
    let xLabels = xTicks.map { label($0, step: xStep) }

    // Layout: labels left of and below the box.
    let left = (yLabels.map { Canvas.textWidth($0) }.max() ?? 0) + 8
    let right = max(12, (Canvas.textWidth(xLabels.last ?? "") + 1) / 2 + 4)
    let labelBand = Canvas.glyphHeight + 6
    let top = 10 + (yLabel == nil ? 0 : labelBand), bottom = Canvas.glyphHeight + 10 + (xLabel == nil ? 0 : labelBand)
    let (x0, x1, y0, y1) = (left, width - 1 - right, top, height - 1 - bottom)
    guard x1 - x0 >= 10, y1 - y0 >= 10 else { return canvas.tensor() }

    func px(_ x: Double) -> Double { Double(x0) + (x - xMin) / (xMax - xMin) * Double(x1 - x0) }
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
    if let xLabel { canvas.text(xLabel, centreX: (x0 + x1) / 2, top: y1 + 6 + labelBand, ink) }
    if let yLabel { canvas.text(yLabel, left: max(0, x0 - Canvas.textWidth(yLabel) / 2), top: y0 - labelBand, ink) }

    canvas.clip = (x0 + 1, y0 + 1, x1 - 1, y1 - 1)
    for (k, s) in series.enumerated() {
        let colour = linePlotPalette[k % linePlotPalette.count]
        var previous: (Int, Int)?
        for (i, v) in s.values.enumerated() {
            guard usable(v) else { previous = nil; continue }
            let point = (Int(px(firstX + Double(i)).rounded()), Int(py(v).rounded()))
            if let p = previous {
                canvas.line(p.0, p.1, point.0, point.1, colour, thick: true)
            } else {
                canvas.line(point.0, point.1, point.0, point.1, colour, thick: true)
            }
            previous = point
        }
    }
    canvas.legend(series.map(\.name), right: x1 - 4, top: y0 + 4)
    return canvas.tensor()
}

/// Whether the plot's font draws `character` (upper case is drawn as lower case).
public func linePlotFontDraws(_ character: Character) -> Bool {
    Canvas.glyphs[character] != nil || Canvas.glyphs[Character(character.lowercased())] != nil
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
        "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0], " ": [0, 0, 0, 0, 0, 0, 0],
        "_": [0, 0, 0, 0, 0, 0, 0x1F], "/": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0], ",": [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        "a": [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F], "b": [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
        "c": [0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E], "d": [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        "e": [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E], "f": [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        "g": [0, 0, 0x0F, 0x11, 0x0F, 0x01, 0x0E], "h": [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        "i": [0x04, 0, 0x0C, 0x04, 0x04, 0x04, 0x0E], "j": [0x02, 0, 0x06, 0x02, 0x02, 0x12, 0x0C],
        "k": [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], "l": [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "m": [0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11], "n": [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        "o": [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E], "p": [0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        "q": [0, 0, 0x0F, 0x11, 0x0F, 0x01, 0x01], "r": [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10],
        "s": [0, 0, 0x0F, 0x10, 0x0E, 0x01, 0x1E], "t": [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        "u": [0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D], "v": [0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04],
        "w": [0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A], "x": [0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        "y": [0, 0, 0x11, 0x11, 0x0F, 0x01, 0x0E], "z": [0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F],
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
            guard let rows = Canvas.glyphs[character] ?? Canvas.glyphs[Character(character.lowercased())] else { continue }
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

    /// A boxed legend with its top-right corner at (right, top): a short line in each series'
    /// colour beside its name, one row per series, drawn over whatever is there.
    mutating func legend(_ names: [String], right: Int, top: Int) {
        guard !names.isEmpty else { return }
        let ink: (Float, Float, Float) = (0.15, 0.15, 0.15), row = Canvas.glyphHeight + 4
        let boxWidth = (names.map { Canvas.textWidth($0) }.max() ?? 0) + 26, boxHeight = names.count * row + 6
        let left = right - boxWidth
        for y in top...(top + boxHeight) { for x in left...right { set(x, y, (1, 1, 1)) } }
        line(left, top, right, top, ink)
        line(left, top + boxHeight, right, top + boxHeight, ink)
        line(left, top, left, top + boxHeight, ink)
        line(right, top, right, top + boxHeight, ink)
        for (k, name) in names.enumerated() {
            let y = top + 4 + k * row + Canvas.glyphHeight / 2
            let colour = linePlotPalette[k % linePlotPalette.count]
            line(left + 5, y, left + 17, y, colour, thick: true)
            text(name, left: left + 22, top: y - Canvas.glyphHeight / 2, ink)
        }
    }

    func tensor() -> Tensor { Tensor(pixels, shape: [height, width, 3]) }
}
