import Foundation
import GenTensor

// PNG (ISO/IEC 15948, https://www.w3.org/TR/png/) decoded and encoded in Swift over zlib.
//
// libpng is not used for reading: its errors longjmp out of the failing call, which Swift can
// neither set up nor survive, so a corrupt file would abort the process. The format is small:
//
//   signature 89 50 4E 47 0D 0A 1A 0A, then chunks [u32 length][4-byte type][data][u32 CRC-32 of type+data]:
//   IHDR (width, height, bit depth, colour type, compression 0, filter 0, interlace 0/1), PLTE (palette),
//   IDAT (one zlib stream split over the chunks), IEND. Each scanline of the inflated stream starts
//   with a filter byte (0 none, 1 sub, 2 up, 3 average, 4 Paeth); interlace 1 is Adam7 (7 passes).

/// Decodes PNG files of any colour type (grey, grey+alpha, RGB, RGBA, palette), any bit depth
/// (1, 2, 4, 8, 16) and either interlace method to grey levels in [0, 1].
///
/// Colour becomes luma with the ITU-R BT.601 weights that PIL's `convert("L")` and torchvision use,
/// in integer arithmetic on the stored samples, `(299 R + 587 G + 114 B + 500) / 1000`, so a grey
/// pixel stored as colour keeps its exact level. Alpha (an alpha channel or tRNS) is discarded, not
/// composited, as libpng's `png_set_strip_alpha` does; gamma and colour-profile chunks are ignored.
/// A palette index past the end of the palette reads as black. Every malformed input (a bad
/// signature, a CRC mismatch in a critical chunk, an invalid header, a truncated file or zlib
/// stream, a bad filter type) throws a `DataError` naming the file.
public enum PNGReader {
    /// The largest image accepted, in pixels (a guard against headers that would exhaust memory).
    public static let maxPixels = 1 << 28

    /// Reads the PNG at `url` as a float32 tensor (H, W, 1) of grey levels in [0, 1].
    public static func readGray(_ url: URL) throws -> Tensor {
        try decodeGray(FileIO.read(url), path: url.path)
    }

    /// Decodes PNG bytes as a float32 tensor (H, W, 1) of grey levels in [0, 1]; `path` names the
    /// source in errors.
    public static func decodeGray(_ data: Data, path: String = "<PNG data>") throws -> Tensor {
        let image = try decodeGrayPixels(data, path: path)
        return Tensor(image.pixels, shape: [image.height, image.width, 1])
    }

    /// The decoded grey levels, row-major.
    package static func decodeGrayPixels(_ data: Data, path: String) throws -> (width: Int, height: Int, pixels: [Float]) {
        try data.withUnsafeBytes { try decode($0, path: path) }
    }

    private struct Header {
        var width = 0, height = 0, bitDepth = 0, colorType = 0, interlaced = false
        var channels: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType] ?? 1 }
        var bitsPerPixel: Int { channels * bitDepth }
        func rowBytes(_ pixels: Int) -> Int { (pixels * bitsPerPixel + 7) / 8 }
    }

    /// Adam7 passes: (x start, y start, x step, y step); a non-interlaced image is one pass.
    private static let adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]

    private static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> (width: Int, height: Int, pixels: [Float]) {
        func fail(_ kind: DataError.Kind, _ problem: String) -> DataError {
            DataError(path: path, kind: kind, problem: problem)
        }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 8, signature.indices.allSatisfy({ bytes[$0] == signature[$0] }) else {
            throw fail(.wrongMagic, "not a PNG file: the PNG signature 89 50 4E 47 0D 0A 1A 0A is missing")
        }
        func u32(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
        }

        var header: Header?
        var palette: [Float]?
        var compressed: [UInt8] = []
        var sawEnd = false
        var position = 8
        while position < bytes.count && !sawEnd {
            guard bytes.count - position >= 8 else {
                throw fail(.truncated, "truncated PNG file: it ends inside a chunk header at byte \(position)")
            }
            let length = Int(u32(position))
            let typeBytes = (0..<4).map { bytes[position + 4 + $0] }
            guard typeBytes.allSatisfy({ (65...90).contains($0) || (97...122).contains($0) }) else {
                throw fail(.corruptImage, "corrupt PNG file: invalid chunk type bytes \(typeBytes) at byte \(position)")
            }
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard length <= 0x7fff_ffff else {
                throw fail(.corruptImage, "corrupt PNG file: chunk \(type) declares an invalid length \(length)")
            }
            guard bytes.count - position - 12 >= length else {
                throw fail(.truncated, "truncated PNG file: chunk \(type) declares \(length) bytes but the file ends first")
            }
            let body = UnsafeRawBufferPointer(rebasing: bytes[(position + 8)..<(position + 8 + length)])
            let isCritical = typeBytes[0] & 0x20 == 0
            let crc = crc32Of(UnsafeRawBufferPointer(rebasing: bytes[(position + 4)..<(position + 8 + length)]))
            if crc != u32(position + 8 + length) {
                // Like libpng: a bad CRC is an error in a critical chunk; an ancillary chunk is dropped.
                if isCritical { throw fail(.corruptImage, "corrupt PNG file: CRC mismatch in chunk \(type)") }
                position += 12 + length
                continue
            }
            if header == nil && type != "IHDR" {
                throw fail(.invalidHeader, "invalid PNG file: the first chunk is \(type), not IHDR")
            }
            switch type {
            case "IHDR":
                guard header == nil else { throw fail(.invalidHeader, "invalid PNG file: a second IHDR chunk") }
                guard length == 13 else { throw fail(.invalidHeader, "invalid PNG file: IHDR has \(length) bytes, not 13") }
                var h = Header()
                h.width = Int(u32(position + 8))
                h.height = Int(u32(position + 12))
                h.bitDepth = Int(body[8])
                h.colorType = Int(body[9])
                let allowedDepths: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
                guard h.width > 0, h.height > 0, h.width <= 0x7fff_ffff, h.height <= 0x7fff_ffff else {
                    throw fail(.invalidHeader, "invalid PNG header: size \(h.width) x \(h.height)")
                }
                guard let depths = allowedDepths[h.colorType], depths.contains(h.bitDepth) else {
                    throw fail(.invalidHeader, "invalid PNG header: colour type \(h.colorType) with bit depth \(h.bitDepth)")
                }
                guard body[10] == 0, body[11] == 0, body[12] <= 1 else {
                    throw fail(.invalidHeader, "invalid PNG header: compression \(body[10]), filter \(body[11]), interlace \(body[12])")
                }
                guard h.width.multipliedReportingOverflow(by: h.height).partialValue <= maxPixels,
                      h.width <= maxPixels, h.height <= maxPixels else {
                    throw fail(.unsupported, "PNG image of \(h.width) x \(h.height) pixels is larger than the \(maxPixels) accepted")
                }
                h.interlaced = body[12] == 1
                header = h
            case "PLTE":
                guard length % 3 == 0, length >= 3, length <= 768 else {
                    throw fail(.corruptImage, "corrupt PNG file: PLTE has \(length) bytes (a multiple of 3, at most 768)")
                }
                palette = stride(from: 0, to: length, by: 3).map { i in
                    Float(luma(Int(body[i]), Int(body[i + 1]), Int(body[i + 2]))) / 255
                }
            case "IDAT":
                compressed.append(contentsOf: body)
            case "IEND":
                sawEnd = true
            default:
                if isCritical { throw fail(.unsupported, "unsupported PNG file: unknown critical chunk \(type)") }
            }
            position += 12 + length
        }
        guard let h = header else { throw fail(.truncated, "truncated PNG file: no IHDR chunk") }
        guard sawEnd else { throw fail(.truncated, "truncated PNG file: it ends without an IEND chunk") }
        guard !compressed.isEmpty else { throw fail(.corruptImage, "corrupt PNG file: no IDAT chunk") }
        if h.colorType == 3 && palette == nil {
            throw fail(.corruptImage, "corrupt PNG file: a palette image without a PLTE chunk")
        }

        // The inflated size, from the header: each pass's rows, each with its filter byte.
        let passes = h.interlaced ? adam7 : [(0, 0, 1, 1)]
        var passSizes: [(width: Int, height: Int)] = []
        var expected = 0
        for (x0, y0, dx, dy) in passes {
            let w = h.width > x0 ? (h.width - x0 + dx - 1) / dx : 0
            let rows = h.height > y0 ? (h.height - y0 + dy - 1) / dy : 0
            passSizes.append((w, rows))
            if w > 0 && rows > 0 { expected += rows * (1 + h.rowBytes(w)) }
        }
        // Deflate cannot expand data more than about 1032:1, so a header promising more than that is
        // refused before its buffer is allocated (a few corrupt bytes must not allocate gigabytes).
        guard expected / 1100 <= compressed.count else {
            throw fail(.corruptImage, "corrupt PNG file: \(compressed.count) bytes of image data cannot hold the \(expected) bytes a \(h.width) x \(h.height) image needs")
        }
        var raw = [UInt8](repeating: 0, count: expected)
        let inflater = try Inflater(compressed, format: .zlib, path: path)
        let got = try raw.withUnsafeMutableBytes { try inflater.read(into: $0) }
        guard got == expected else {
            throw fail(.corruptImage, "corrupt PNG file: the image data inflates to \(got) bytes, the header needs \(expected)")
        }

        var pixels = [Float](repeating: 0, count: h.width * h.height)
        let maxValue = Float((1 << h.bitDepth) - 1)
        let levels = palette ?? []
        let filterUnit = max(1, h.bitsPerPixel / 8)
        try raw.withUnsafeMutableBufferPointer { rawBuffer in
            let data = rawBuffer.baseAddress!
            var offset = 0
            for (pass, size) in passSizes.enumerated() where size.width > 0 && size.height > 0 {
                let (x0, y0, dx, dy) = passes[pass]
                let rowBytes = h.rowBytes(size.width)
                for row in 0..<size.height {
                    let filter = data[offset]
                    let line = data + offset + 1
                    let previous: UnsafeMutablePointer<UInt8>? = row > 0 ? line - (1 + rowBytes) : nil
                    try unfilter(line, previous: previous, count: rowBytes, unit: filterUnit, filter: filter, path: path)
                    let y = y0 + row * dy
                    for i in 0..<size.width {
                        let level: Float
                        switch h.colorType {
                        case 0: level = Float(sample(line, i, h.bitDepth)) / maxValue
                        case 4: level = Float(sample(line, 2 * i, h.bitDepth)) / maxValue
                        case 2: level = Float(luma(sample(line, 3 * i, h.bitDepth), sample(line, 3 * i + 1, h.bitDepth),
                                                   sample(line, 3 * i + 2, h.bitDepth))) / maxValue
                        case 6: level = Float(luma(sample(line, 4 * i, h.bitDepth), sample(line, 4 * i + 1, h.bitDepth),
                                                   sample(line, 4 * i + 2, h.bitDepth))) / maxValue
                        default:
                            let index = sample(line, i, h.bitDepth)
                            level = index < levels.count ? levels[index] : 0
                        }
                        pixels[y * h.width + x0 + i * dx] = level
                    }
                    offset += 1 + rowBytes
                }
            }
        }
        return (h.width, h.height, pixels)
    }

    /// BT.601 luma of integer samples, rounded.
    @inline(__always)
    static func luma(_ r: Int, _ g: Int, _ b: Int) -> Int { (299 * r + 587 * g + 114 * b + 500) / 1000 }

    /// The `index`-th sample of a scanline of `depth`-bit samples (big-endian, packed high bits first).
    @inline(__always)
    private static func sample(_ line: UnsafeMutablePointer<UInt8>, _ index: Int, _ depth: Int) -> Int {
        switch depth {
        case 8: return Int(line[index])
        case 16: return Int(line[2 * index]) << 8 | Int(line[2 * index + 1])
        default:
            let bit = index * depth
            let shift = 8 - depth - (bit & 7)
            return Int(line[bit >> 3] >> UInt8(shift)) & ((1 << depth) - 1)
        }
    }

    /// Reverses one scanline's filter in place.
    private static func unfilter(_ line: UnsafeMutablePointer<UInt8>, previous: UnsafeMutablePointer<UInt8>?, count: Int,
                                 unit: Int, filter: UInt8, path: String) throws {
        switch filter {
        case 0:
            break
        case 1:
            if count > unit { for i in unit..<count { line[i] &+= line[i - unit] } }
        case 2:
            if let up = previous { for i in 0..<count { line[i] &+= up[i] } }
        case 3:
            for i in 0..<count {
                let left = i >= unit ? Int(line[i - unit]) : 0
                let up = previous.map { Int($0[i]) } ?? 0
                line[i] &+= UInt8((left + up) >> 1)
            }
        case 4:
            for i in 0..<count {
                let a = i >= unit ? Int(line[i - unit]) : 0
                let b = previous.map { Int($0[i]) } ?? 0
                let c = i >= unit ? (previous.map { Int($0[i - unit]) } ?? 0) : 0
                let p = a + b - c
                let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                line[i] &+= UInt8(pa <= pb && pa <= pc ? a : (pb <= pc ? b : c))
            }
        default:
            throw DataError(path: path, kind: .corruptImage, problem: "corrupt PNG file: invalid scanline filter type \(filter)")
        }
    }
}

/// Writes 8-bit PNG files (grey or RGB) from float tensors in [0, 1], with zlib; values are
/// clamped to [0, 1], NaN is written as 0, and each value `v` is stored as `round(v * 255)`.
public enum PNGWriter {
    /// Encodes an image: (H, W) or (H, W, 1) gives a grey PNG, (H, W, 3) an RGB PNG. The tensor
    /// must be float32 or float64 with H and W at least 1.
    public static func encode(_ image: Tensor) throws -> Data {
        let shape = image.shape
        guard image.dtype.isFloatingPoint, shape.count == 2 || (shape.count == 3 && (shape[2] == 1 || shape[2] == 3)),
              shape[0] > 0, shape[1] > 0 else {
            throw DataError(path: "<PNG image>", kind: .invalidArgument,
                            problem: "cannot write a \(image.dtype) tensor of shape \(shape) as a PNG: expected a float tensor (H, W), (H, W, 1) or (H, W, 3)")
        }
        let channels = shape.count == 3 ? shape[2] : 1
        let bytes = image.dtype == .float32
            ? image.withUnsafeBufferPointer(as: Float.self) { $0.map { quantize(Double($0)) } }
            : image.withUnsafeBufferPointer(as: Double.self) { $0.map(quantize) }
        return encode(bytes: bytes, width: shape[1], height: shape[0], channels: channels)
    }

    /// Encodes `image` (see `encode(_:)`) and writes it to `url` atomically (a temporary file renamed
    /// over `url`).
    public static func write(_ image: Tensor, to url: URL) throws {
        let data: Data
        do { data = try encode(image) } catch let error as DataError {
            throw DataError(path: url.path, kind: error.kind, problem: error.problem)
        }
        try FileIO.writeAtomically(data, to: url)
    }

    /// Encodes 8-bit samples, row-major with `channels` (1 grey, 2 grey+alpha, 3 RGB or 4 RGBA) per pixel.
    public static func encode(bytes: [UInt8], width: Int, height: Int, channels: Int) -> Data {
        precondition(width > 0 && height > 0 && (1...4).contains(channels) && bytes.count == width * height * channels,
                     "PNGWriter: \(bytes.count) bytes for \(width) x \(height) x \(channels)")
        let rowBytes = width * channels
        var filtered = [UInt8](repeating: 0, count: height * (1 + rowBytes))
        for y in 0..<height {
            // Filter 0 (none) on every row: sample grids and plots are mostly flat and compress well.
            let start = y * (1 + rowBytes)
            filtered.replaceSubrange((start + 1)..<(start + 1 + rowBytes), with: bytes[(y * rowBytes)..<((y + 1) * rowBytes)])
        }
        let colorType: UInt8 = [1: 0, 2: 4, 3: 2, 4: 6][channels]!
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var ihdr = [UInt8]()
        appendBigEndian(UInt32(width), to: &ihdr)
        appendBigEndian(UInt32(height), to: &ihdr)
        ihdr += [8, colorType, 0, 0, 0]
        appendChunk("IHDR", ihdr, to: &out)
        let compressed = filtered.withUnsafeBytes { deflateBytes($0, gzip: false) }
        var start = compressed.startIndex
        repeat {
            let end = min(start + (1 << 20), compressed.endIndex)
            appendChunk("IDAT", [UInt8](compressed[start..<end]), to: &out)
            start = end
        } while start < compressed.endIndex
        appendChunk("IEND", [], to: &out)
        return out
    }

    /// Appends one chunk: length, type, data, CRC-32 of type and data.
    static func appendChunk(_ type: String, _ body: [UInt8], to out: inout Data) {
        var chunk = [UInt8]()
        appendBigEndian(UInt32(body.count), to: &chunk)
        chunk += Array(type.utf8) + body
        let crc = chunk.withUnsafeBytes { crc32Of(UnsafeRawBufferPointer(rebasing: $0[4...])) }
        appendBigEndian(crc, to: &chunk)
        out.append(contentsOf: chunk)
    }

    @inline(__always)
    static func quantize(_ value: Double) -> UInt8 {
        value.isNaN ? 0 : UInt8((Swift.min(Swift.max(value, 0), 1) * 255).rounded())
    }
}
