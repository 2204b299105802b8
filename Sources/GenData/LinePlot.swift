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

/// An axis' scale: linear, or logarithmic (base 10; only positive values are drawn).
public enum PlotScale: String, Sendable, CaseIterable {
    case linear, log
}

/// One series of a plot: named points (x, y), joined by lines, drawn as markers, or both.
public struct PlotSeries {
    public var name: String
    public var points: [(x: Double, y: Double)]
    /// A polyline through the points.
    public var lines: Bool
    /// A small square at each point.
    public var markers: Bool

    public init(name: String, points: [(x: Double, y: Double)], lines: Bool = true, markers: Bool = false) {
        self.name = name
        self.points = points
        self.lines = lines
        self.markers = markers
    }
}

/// Renders loss curves as a raster line plot: value i of a series sits at x = `firstX` + i. See
/// `renderPlot`, which this calls.
public func renderLinePlot(series: [(name: String, values: [Double])], xLabel: String? = nil, yLabel: String? = nil,
                           firstX: Double = 0, yScale: PlotScale = .linear, width: Int = 640, height: Int = 400) -> Tensor {
    renderPlot(series: series.map { s in PlotSeries(name: s.name, points: s.values.enumerated().map { (firstX + Double($0.offset), $0.element) }) },
               xLabel: xLabel, yLabel: yLabel, yScale: yScale, width: width, height: height)
}

/// Whether values span enough decades to be read on a log scale: all positive, and the largest at
/// least `ratio` times the smallest.
public func spansDecades(_ values: [Double], ratio: Double = 30) -> Bool {
    let finite = values.filter { $0.isFinite }
    guard let low = finite.min(), let high = finite.max(), low > 0 else { return false }
    return high / low >= ratio
}

/// Renders a plot as a raster: an RGB float32 tensor (height, width, 3) in [0, 1] to save with
/// `PNGWriter.write`.
///
/// White background, a dark axes box, light grey grid lines at "nice" y values (1, 2 or 5 times a
/// power of ten; on a log scale the powers of ten, with 2 and 5 times them when the range spans
/// less than two decades) with their labels on the left, x ticks below, one polyline (or markers)
/// per series in `linePlotPalette`'s colours (markers alone drawn larger), and a legend naming each
/// series in the top right corner, or the top left when that one would hide a point, or outside the
/// axes on the right when both would. `xLabel` is written under the x ticks and `yLabel` above the axes. Non-finite values
/// (NaN, infinities), and values beyond 1e100 or not positive on a log scale, break a line rather
/// than stretching the axes. Integer x values get integer ticks. The built-in 5 x 7 font has
/// digits, lower-case letters (upper case is drawn in lower case) and `.-+_/():,` and space.
public func renderPlot(series: [PlotSeries], xLabel: String? = nil, yLabel: String? = nil,
                       xScale: PlotScale = .linear, yScale: PlotScale = .linear, width: Int = 640, height: Int = 400) -> Tensor {
    precondition(width > 0 && height > 0, "renderPlot: size \(width) x \(height)")
    var canvas = Canvas(width: width, height: height)

    // Values are mapped to the plotting coordinate (log10 on a log scale) before the axes are laid out.
    // Values beyond 1e100 are treated as non-finite, so that the axis arithmetic stays finite.
    func coordinate(_ v: Double, _ scale: PlotScale) -> Double? {
        guard v.isFinite, abs(v) < 1e100 else { return nil }
        if scale == .log { return v > 0 ? log10(v) : nil }
        return v
    }
    let mapped: [[(Double, Double)?]] = series.map { s in
        s.points.map { p in coordinate(p.x, xScale).flatMap { x in coordinate(p.y, yScale).map { (x, $0) } } }
    }
    let all = mapped.flatMap { $0.compactMap { $0 } }
    let markersOnly = !series.isEmpty && series.allSatisfy { !$0.lines }

    /// The axis range and ticks (in plotting coordinates) with their labels.
    func axis(_ values: [Double], scale: PlotScale, integer: Bool, ticks: Double) -> (Double, Double, [Double], [String]) {
        var low = values.min() ?? 0, high = values.max() ?? 1
        if high - low < max(abs(high), 1) * 1e-9 {
            let pad = scale == .log ? 0.5 : max(abs(high) * 0.05, 0.5)
            low -= pad
            high += pad
        } else if markersOnly {
            // Points alone keep a margin from the axes, so that a marker at an extreme is drawn whole.
            let pad = (high - low) * 0.04
            low -= pad
            high += pad
        }
        if scale == .log {
            let lo = low.rounded(.down), hi = high.rounded(.up)
            var positions: [Double] = []
            for e in Int(lo)...Int(hi) {
                let multiples: [Double] = hi - lo < 2 ? [1, 2, 5] : [1]
                for m in multiples { let v = Double(e) + log10(m); if v >= lo - 1e-9 && v <= hi + 1e-9 { positions.append(v) } }
            }
            return (lo, hi, positions, positions.map { String(format: "%g", pow(10, $0)) })
        }
        var step = niceStep((high - low) / ticks)
        if integer { step = max(1, step) }
        let lo = integer ? low : (low / step).rounded(.down) * step, hi = integer ? max(high, low + 1) : (high / step).rounded(.up) * step
        let positions = stride(from: (lo / step).rounded(.up) * step, through: hi + step * 1e-9, by: step).map { $0 }
        return (lo, hi, positions, positions.map { abs($0) < step * 1e-6 ? "0" : String(format: "%g", $0) })
    }
    let integerX = xScale == .linear && series.allSatisfy { $0.points.allSatisfy { $0.x == $0.x.rounded() } }
    let (xMin, xMax, xTicks, xLabels) = axis(all.map(\.0), scale: xScale, integer: integerX, ticks: 6)
    let (yMin, yMax, yTicks, yLabels) = axis(all.map(\.1), scale: yScale, integer: false, ticks: 5)

    // Layout: labels left of and below the box; the legend in a top corner of the box where it hides
    // no point, else outside the box on the right.
    let names = series.map(\.name)
    let (legendWidth, legendHeight) = Canvas.legendSize(names)
    let left = (yLabels.map { Canvas.textWidth($0) }.max() ?? 0) + 8
    let labelBand = Canvas.glyphHeight + 6
    let top = 10 + (yLabel == nil ? 0 : labelBand), bottom = Canvas.glyphHeight + 10 + (xLabel == nil ? 0 : labelBand)
    let (y0, y1) = (top, height - 1 - bottom)
    var right = max(12, (Canvas.textWidth(xLabels.last ?? "") + 1) / 2 + 4)
    var x1 = width - 1 - right
    let x0 = left
    func px(_ x: Double) -> Double { Double(x0) + (x - xMin) / (xMax - xMin) * Double(x1 - x0) }
    func py(_ y: Double) -> Double { Double(y1) - (y - yMin) / (yMax - yMin) * Double(y1 - y0) }
    /// Whether a legend box with its top-right corner at (r, y0 + 4) would cover a point (with a margin).
    func legendCoversAPoint(right r: Int) -> Bool {
        let box = (r - legendWidth - 4, y0, r + 4, y0 + 8 + legendHeight)
        return all.contains { point in
            let x = px(point.0), y = py(point.1)
            return x >= Double(box.0) && x <= Double(box.2) && y >= Double(box.1) && y <= Double(box.3)
        }
    }
    var legendRight = x1 - 4
    if !names.isEmpty && legendCoversAPoint(right: legendRight) {
        if !legendCoversAPoint(right: x0 + 4 + legendWidth) {
            legendRight = x0 + 4 + legendWidth
        } else {
            right += legendWidth + 10
            x1 = width - 1 - right
            legendRight = width - 1 - 4
        }
    }
    guard x1 - x0 >= 10, y1 - y0 >= 10 else { return canvas.tensor() }

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
        for point in mapped[k] {
            guard let (x, y) = point else { previous = nil; continue }
            let p = (Int(px(x).rounded()), Int(py(y).rounded()))
            if s.markers {
                // Markers alone (no line) are drawn larger, so that single points read at a glance.
                let r = s.lines ? 2 : 4
                for dy in -r...r { canvas.line(p.0 - r, p.1 + dy, p.0 + r, p.1 + dy, colour) }
            }
            if s.lines {
                let q = previous ?? p
                canvas.line(q.0, q.1, p.0, p.1, colour, thick: true)
            }
            previous = p
        }
    }
    canvas.clip = (0, 0, width - 1, height - 1)
    canvas.legend(names, right: legendRight, top: y0 + 4)
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

    /// The legend box's width and height in pixels.
    static func legendSize(_ names: [String]) -> (width: Int, height: Int) {
        ((names.map { textWidth($0) }.max() ?? 0) + 26, names.count * (glyphHeight + 4) + 6)
    }

    /// A boxed legend with its top-right corner at (right, top): a short line in each series'
    /// colour beside its name, one row per series, drawn over whatever is there.
    mutating func legend(_ names: [String], right: Int, top: Int) {
        guard !names.isEmpty else { return }
        let ink: (Float, Float, Float) = (0.15, 0.15, 0.15), row = Canvas.glyphHeight + 4
        let (boxWidth, boxHeight) = Self.legendSize(names)
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
