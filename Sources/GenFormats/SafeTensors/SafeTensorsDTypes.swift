import GenTensor
// MARK: - Dtypes

extension SafeTensorsFile {
    // MARK: Half-precision conversion

    /// Widens IEEE 754 binary16 bits to a Float, exactly (subnormals, infinities and NaN payloads).
    static func halfToFloat(_ half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = UInt32(half >> 10) & 0x1f
        var mantissa = UInt32(half & 0x03ff)
        if exponent == 0x1f {  // infinity or NaN: all-ones exponent, payload kept
            return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13)
        }
        if exponent != 0 {  // normal: rebias 15 -> 127
            return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
        if mantissa == 0 { return Float(bitPattern: sign) }  // signed zero
        // Subnormal: mantissa * 2^-24; shift the leading one into the implicit bit position.
        var biased: UInt32 = 113  // the exponent of 2^-14 in binary32
        while mantissa & 0x0400 == 0 {
            mantissa <<= 1
            biased -= 1
        }
        return Float(bitPattern: sign | biased << 23 | (mantissa & 0x03ff) << 13)
    }

    /// Narrows a Float to IEEE 754 binary16 bits, rounding to nearest even: values beyond the
    /// largest half (65,504) become infinity, tiny ones subnormal or zero; NaN stays NaN.
    static func floatToHalf(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xff)
        let mantissa = bits & 0x7f_ffff
        if exponent == 0xff { return sign | 0x7c00 | (mantissa != 0 ? 0x200 : 0) }  // infinity or NaN
        let unbiased = exponent - 127
        if unbiased > 15 { return sign | 0x7c00 }  // overflow
        if unbiased >= -14 {  // normal half: 10 mantissa bits, round to nearest even
            var half = UInt32(unbiased + 15) << 10 | mantissa >> 13
            let rest = mantissa & 0x1fff
            if rest > 0x1000 || (rest == 0x1000 && half & 1 == 1) { half += 1 }  // may carry into the exponent (to infinity)
            return sign | UInt16(half)
        }
        if unbiased < -25 { return sign }  // below half the smallest subnormal: zero
        // Subnormal half: the significand with its implicit one, shifted to units of 2^-24.
        let significand = mantissa | 0x80_0000
        let shift = UInt32(-unbiased - 14 + 13)
        var half = significand >> shift
        let rest = significand & ((1 << shift) - 1), midpoint = UInt32(1) << (shift - 1)
        if rest > midpoint || (rest == midpoint && half & 1 == 1) { half += 1 }
        return sign | UInt16(half)
    }

    /// Widens bfloat16 bits to a Float (bfloat16 is the top half of a binary32).
    static func bfloat16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}

/// Bits per element of every safetensors dtype (the reference implementation's `Dtype`).
let safetensorsDTypeBits: [String: Int] = [
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
]
