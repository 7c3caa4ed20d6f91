//! Block-scaled formats: OCP Microscaling (MXFP8/6/4, MXINT8) with its scale rules, generic
//! block floating point `bfp<M,block>` and single-level NVFP4. Blocks are runs of `block`
//! consecutive elements along the last axis; a row's last block may be shorter.
//!
//! Owns the shared-scale computation, the quantized values ([`quantize_blocks`]) and the
//! bit-level encoding ([`encode_blocks`], [`EncodedBlocks::decode`]); the two agree (tested).
//! See `spec/scaled-formats.md`, "Block formats".

use super::fixed::{map_rounded, round_to_grid};
use super::float::{exponent_of, pow2, FloatFormat, Specials};
use super::float_extra::{decode_e8m0, encode_e8m0};
use super::float_fast::{quantize_pow2_blocks, quantize_slice, quantize_uniform_blocks, BlockExp, ScaledBlock};
use super::format::{BlockElement, BlockFormat, BlockScale, QuantizeError, ScaleRule};
use super::rng::{Draw, RandomStream};
use super::rounding::Rounding;
use super::scaled::check_lengths;
use super::simd::{self, Level};

/// The E4M3 format of NVFP4 scales (OCP E4M3: no infinities, NaN at all ones).
const E4M3: FloatFormat = FloatFormat::ieee(4, 3).with_specials(Specials::Fn);
/// The E8M0 scale of a block holding NaN or ±∞.
const E8M0_NAN: u8 = 0xFF;
/// Shared exponents are clamped to E8M0's range.
const MIN_EXP: i32 = -127;
const MAX_EXP: i32 = 127;

/// The element of a block in its own domain (before the shared scale).
#[derive(Clone, Copy, Debug)]
enum Element {
    /// A float, made saturating.
    Float(FloatFormat),
    /// Integers `|k| ≤ 2^bits − 1` times `2^(1 − bits)`; two's complement codes (MXINT8,
    /// `bits` = 7) or sign–magnitude codes (`bfp`).
    Int { bits: u32, twos_complement: bool },
}

impl Element {
    fn of(b: &BlockFormat) -> Element {
        match b.element {
            BlockElement::Float(f) => Element::Float(FloatFormat { saturate: true, ..f }),
            BlockElement::Int8 => Element::Int { bits: 7, twos_complement: true },
            BlockElement::SignMagnitude(m) => Element::Int { bits: m, twos_complement: false },
        }
    }

    /// The exponent of the largest binade (`emax_elem` of OCP MX).
    fn emax(&self) -> i32 {
        match self {
            Element::Float(f) => f.emax(),
            Element::Int { .. } => 0,
        }
    }

    /// Mantissa bits after the leading one (the `even` scale rule rounds amax to these).
    fn man_bits(&self) -> u32 {
        match self {
            Element::Float(f) => f.man_bits,
            Element::Int { bits, .. } => bits - 1,
        }
    }

    /// The largest magnitude.
    fn max(&self) -> f64 {
        match self {
            Element::Float(f) => f.max(),
            Element::Int { bits, .. } => ((1u64 << bits) - 1) as f64 * pow2(1 - *bits as i32),
        }
    }

    /// `q` (the exact value x / scale) rounded to the element, saturating.
    fn round(&self, q: f64, rounding: Rounding, draw: Draw<'_>) -> f64 {
        match self {
            Element::Float(f) => f.round(q, rounding, draw),
            Element::Int { bits, .. } => {
                let max = self.max();
                round_to_grid(q, 1 - *bits as i32, rounding, draw).clamp(-max, max) + 0.0
            }
        }
    }

    /// The code of an element value.
    fn encode(&self, v: f64) -> u32 {
        match *self {
            // Element values are finite: the format is saturating and NaN blocks have no elements.
            Element::Float(f) => f.encode(v).unwrap_or(0),
            Element::Int { bits, twos_complement } => {
                let k = (v * pow2(bits as i32 - 1)) as i64;
                if twos_complement {
                    (k as u32) & ((1 << (bits + 1)) - 1)
                } else {
                    ((k < 0) as u32) << bits | k.unsigned_abs() as u32
                }
            }
        }
    }

    fn decode(&self, code: u32) -> f64 {
        match *self {
            Element::Float(f) => f.decode(code),
            Element::Int { bits, twos_complement } => {
                let width = bits + 1;
                let k = if twos_complement {
                    ((code << (32 - width)) as i32 >> (32 - width)) as i64
                } else {
                    let magnitude = (code & ((1 << bits) - 1)) as i64;
                    if code >> bits & 1 == 1 { -magnitude } else { magnitude }
                };
                k as f64 * pow2(1 - bits as i32)
            }
        }
    }
}

/// The shared scale of one block.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    /// The block holds a NaN or an infinity: all its values are NaN.
    Nan,
    /// `2^e`, `e` in [−127, 127] (E8M0 scales and shared exponents).
    Pow2(i32),
    /// An E4M3 value (NVFP4), possibly zero.
    E4m3(f64),
}

impl Scale {
    fn value(&self) -> f64 {
        match *self {
            Scale::Nan => f64::NAN,
            Scale::Pow2(e) => pow2(e),
            Scale::E4m3(s) => s,
        }
    }

    fn code(&self, kind: BlockScale) -> u8 {
        match (*self, kind) {
            (Scale::E4m3(s), _) => E4M3.encode(s).unwrap_or(0) as u8,
            (Scale::Nan, BlockScale::E4m3) => E4M3.encode(f64::NAN).unwrap_or(0) as u8,
            (Scale::Nan, _) => E8M0_NAN,
            (Scale::Pow2(e), _) => encode_e8m0(pow2(e)),
        }
    }

    fn decode(code: u8, kind: BlockScale) -> Scale {
        match kind {
            BlockScale::E4m3 => {
                let s = E4M3.decode(code as u32);
                if s.is_nan() { Scale::Nan } else { Scale::E4m3(s) }
            }
            BlockScale::E8m0(_) | BlockScale::SharedExponent => {
                let s = decode_e8m0(code);
                if s.is_nan() { Scale::Nan } else { Scale::Pow2(exponent_of(s)) }
            }
        }
    }
}

/// The exponent of the shared power-of-two scale for a block with largest magnitude
/// `amax` > 0 (finite), before clamping: by an E8M0 scale rule, or `⌊log2 amax⌋` (a `bfp`
/// shared exponent) without one.
fn pow2_exponent(rule: Option<ScaleRule>, element: &Element, amax: f64) -> i32 {
    let a = exponent_of(amax); // ⌊log2 amax⌋, exact for subnormal f32 too
    let is_pow2 = amax == pow2(a);
    let Some(rule) = rule else { return a };
    match rule {
        ScaleRule::Floor => a - element.emax(),
        ScaleRule::Ceil => a + !is_pow2 as i32 - element.emax(),
        ScaleRule::Even => {
            // amax = 2^a · s, s ∈ [1, 2): s rounded half up to M fraction bits reaches 2
            // iff s ≥ 2 − 2^−(M+1).
            let s = amax / pow2(a);
            let carry = s >= 2.0 - pow2(-(element.man_bits() as i32) - 1);
            a + carry as i32 - element.emax()
        }
        ScaleRule::RoundUp => {
            // ⌈log2(amax / max)⌉ is a − ⌊log2 max⌋ or one more; the comparison is exact.
            let max = element.max();
            let e = a - exponent_of(max);
            if amax > max * pow2(e) { e + 1 } else { e }
        }
    }
}

/// The scale of one block.
fn block_scale(f: &BlockFormat, element: &Element, block: &[f32]) -> Scale {
    scale_of_magnitude(f, element, magnitude_max(block))
}

/// The bits of the largest magnitude in `block` (an integer maximum; NaN and ±∞ have the
/// largest magnitude bits of all).
#[inline(always)]
fn magnitude_max(block: &[f32]) -> u32 {
    block.iter().map(|x| x.to_bits() & 0x7FFF_FFFF).fold(0, u32::max)
}

/// [`magnitude_max`] of each block of `block` elements of `data`, into `out`, in one pass
/// compiled for each level of [`simd`] (the baseline x86-64 target has no 32-bit unsigned
/// maximum instruction).
fn block_magnitude_maxima(data: &[f32], block: usize, out: &mut Vec<u32>) {
    out.clear();
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { block_magnitude_maxima_avx512(data, block, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { block_magnitude_maxima_avx2(data, block, out) },
        _ => block_magnitude_maxima_inline(data, block, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn block_magnitude_maxima_avx512(data: &[f32], block: usize, out: &mut Vec<u32>) {
    block_magnitude_maxima_inline(data, block, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_magnitude_maxima_avx2(data: &[f32], block: usize, out: &mut Vec<u32>) {
    block_magnitude_maxima_inline(data, block, out)
}

#[inline(always)]
fn block_magnitude_maxima_inline(data: &[f32], block: usize, out: &mut Vec<u32>) {
    if block == 32 {
        // The OCP default as fixed-size arrays: straight-line vector code.
        out.extend(data.chunks_exact(32).map(|b| magnitude_max(<&[f32; 32]>::try_from(b).expect("chunks_exact(32)"))));
    } else {
        out.extend(data.chunks_exact(block).map(magnitude_max));
    }
}

/// The scale of a block whose largest magnitude has the bits `amax_bits`.
fn scale_of_magnitude(f: &BlockFormat, element: &Element, amax_bits: u32) -> Scale {
    if amax_bits >= f32::INFINITY.to_bits() {
        return Scale::Nan;
    }
    let amax = f32::from_bits(amax_bits);
    let rule = match f.scale {
        BlockScale::E4m3 => {
            // Correctly rounded quotient, then RNE to E4M3 (the draw is unused by `nearest`).
            let s = E4M3.round(amax as f64 / element.max(), Rounding::Nearest, RandomStream::new(0, 0).at(0));
            return Scale::E4m3(s);
        }
        BlockScale::E8m0(rule) => Some(rule),
        BlockScale::SharedExponent => None,
    };
    if amax == 0.0 {
        Scale::Pow2(MIN_EXP)
    } else {
        Scale::Pow2(pow2_exponent(rule, element, amax as f64).clamp(MIN_EXP, MAX_EXP))
    }
}

/// The element value (in the element's own domain) that `x` rounds to under `scale`, which
/// is not `Nan` and not zero.
fn element_value(element: &Element, scale: Scale, x: f32, rounding: Rounding, draw: Draw<'_>) -> f64 {
    let q = match scale {
        Scale::Pow2(e) => x as f64 * pow2(-e), // exact
        // Correctly rounded; never crosses a rounding boundary (spec: "Quotients").
        _ => x as f64 / scale.value(),
    };
    element.round(q, rounding, draw)
}

/// The rows of a tensor (its last axis) split into blocks: `(first index, block)` in order.
fn blocks<'a>(f: &BlockFormat, data: &'a [f32], shape: &[usize]) -> Result<impl Iterator<Item = (usize, &'a [f32])> + 'a, QuantizeError> {
    let row = *shape.last().ok_or(QuantizeError::Scalar)?;
    let block = f.block;
    // An empty row has no blocks (and `chunks` needs a positive size).
    let rows = if row == 0 { [].chunks(1) } else { data.chunks(row) };
    Ok(rows.enumerate().flat_map(move |(r, row_data)| row_data.chunks(block).enumerate().map(move |(b, x)| (r * row + b * block, x))))
}

/// Blocks per tile of the uniform path: a tile's input and output stay in the L1/L2 caches
/// between finding its scales and rounding its elements.
const TILE_BLOCKS: usize = 128;

/// The common case, rounded tile by tile with one flat vectorised loop: float elements
/// under E8M0 scales, rows that are whole numbers of blocks, blocks a multiple of 16
/// elements, and every block's shifted element format valid. Returns false, having written
/// only part of `out`, when the data is not of that kind.
fn quantize_uniform(f: &BlockFormat, elem: &FloatFormat, data: &[f32], shape: &[usize], rounding: Rounding, rng: &RandomStream, out: &mut [f32]) -> bool {
    let BlockScale::E8m0(_) = f.scale else { return false };
    let Some(&row) = shape.last() else { return false };
    if row == 0 || !row.is_multiple_of(f.block) || !f.block.is_multiple_of(16) {
        return false;
    }
    let tile = TILE_BLOCKS * f.block;
    let (mut maxima, mut exps) = (Vec::with_capacity(TILE_BLOCKS), Vec::with_capacity(TILE_BLOCKS));
    for (t, (src, dst)) in data.chunks(tile).zip(out.chunks_mut(tile)).enumerate() {
        block_magnitude_maxima(src, f.block, &mut maxima);
        if !uniform_exponents(f, elem, &maxima, &mut exps) {
            return false;
        }
        quantize_uniform_blocks(elem, rounding, rng, (t * tile) as u64, &exps, src, dst);
    }
    true
}

/// Each block's exponent (or NaN) from its largest magnitude, into `exps`; false when a
/// block's shifted element format would not be valid.
fn uniform_exponents(f: &BlockFormat, elem: &FloatFormat, maxima: &[u32], exps: &mut Vec<BlockExp>) -> bool {
    // The shifted format 2^e·elem stays within float32 (what `validate` checks) for these e.
    let (lo, hi) = (elem.min_positive_exponent(), elem.emax());
    let valid = (-149 - lo)..=(127 - hi);
    let floor_rule = f.scale == BlockScale::E8m0(ScaleRule::Floor);
    exps.clear();
    for &amax_bits in maxima {
        // OCP's rule for a normal, finite, non-zero amax reads its exponent field directly;
        // every other case takes the general computation.
        let field = (amax_bits >> 23) as i32;
        let scale = if floor_rule && (1..255).contains(&field) {
            Scale::Pow2((field - 127 - hi).clamp(MIN_EXP, MAX_EXP))
        } else {
            scale_of_magnitude(f, &Element::Float(*elem), amax_bits)
        };
        exps.push(match scale {
            Scale::Nan => BlockExp::Nan,
            Scale::Pow2(e) if valid.contains(&e) => BlockExp::Pow2(e),
            _ => return false,
        });
    }
    true
}

/// Elements per tile of [`quantize_quotients`].
const QUOTIENT_TILE: usize = 2048;

/// Float elements under E4M3 scales (NVFP4) in the deterministic modes, tile by tile: each
/// quotient RN64(x/s) rounded to odd in f32 ([`round_to_odd`]), then the whole tile rounded
/// to the element by the vectorised float path, then multiplied by its block's scale (exact:
/// an element value times an E4M3 value has at most 8 significant bits, and is normal).
/// Returns false, having written only part of `out`, for other formats and modes and for
/// data with a scale beyond E4M3's range.
fn quantize_quotients(f: &BlockFormat, elem: &FloatFormat, data: &[f32], shape: &[usize], rounding: Rounding, rng: &RandomStream, out: &mut [f32]) -> Result<bool, QuantizeError> {
    if f.scale != BlockScale::E4m3 || rounding.is_stochastic() || elem.man_bits > 21 || f.block > QUOTIENT_TILE {
        return Ok(false);
    }
    let max = Element::Float(*elem).max();
    let mut tile: Vec<(usize, &[f32])> = Vec::with_capacity(QUOTIENT_TILE);
    let (mut ratios, mut scales) = (Vec::with_capacity(QUOTIENT_TILE), vec![0f32; QUOTIENT_TILE]);
    let mut quotients = [0f32; QUOTIENT_TILE];
    let mut blocks = blocks(f, data, shape)?.peekable();
    while let Some(first) = blocks.next() {
        // A tile: whole blocks, consecutive in index order, at most QUOTIENT_TILE elements.
        tile.clear();
        tile.push(first);
        let tile_start = first.0;
        while let Some(&(start, block)) = blocks.peek() {
            if start + block.len() - tile_start > QUOTIENT_TILE {
                break;
            }
            tile.push((start, block));
            blocks.next();
        }
        // The scales RNE_E4M3(RN64(amax / max)), all at once (0 marks a NaN block, whose
        // ratio is NaN).
        ratios.clear();
        ratios.extend(tile.iter().map(|(_, block)| {
            let amax = f32::from_bits(magnitude_max(block));
            if amax.is_finite() { round_to_odd(amax as f64 / max) } else { f32::NAN }
        }));
        let scales = &mut scales[..tile.len()];
        quantize_slice(&E4M3, Rounding::Nearest, rng, 0, &ratios, scales);
        for (&(start, block), (&s, r)) in tile.iter().zip(scales.iter().zip(&ratios)) {
            if s.is_nan() && !r.is_nan() {
                return Ok(false); // a scale beyond E4M3's range: the general path
            }
            let q = &mut quotients[start - tile_start..start - tile_start + block.len()];
            if s > 0.0 {
                let s = s as f64;
                for (x, q) in block.iter().zip(q.iter_mut()) {
                    *q = round_to_odd(*x as f64 / s);
                }
            } else {
                q.fill(0.0);
            }
        }
        let tile_len = tile.last().map_or(0, |(start, block)| start + block.len()) - tile_start;
        let dst = &mut out[tile_start..tile_start + tile_len];
        quantize_slice(elem, rounding, rng, tile_start as u64, &quotients[..tile_len], dst);
        for (&(start, block), &s) in tile.iter().zip(scales.iter()) {
            let dst = &mut dst[start - tile_start..start - tile_start + block.len()];
            if s > 0.0 {
                dst.iter_mut().for_each(|y| *y *= s);
            } else {
                dst.fill(s); // NaN or 0
            }
        }
    }
    Ok(true)
}

/// `q` rounded to f32 to odd: truncated, with the last bit set when inexact. Rounding that
/// to a format with at most 22 significant bits, in any deterministic mode, gives what
/// rounding `q` itself gives: the format's values and midpoints are even f32 values, and
/// the odd result lies strictly between the same two of them as `q` (or equals `q`).
#[inline(always)]
fn round_to_odd(q: f64) -> f32 {
    let r = q as f32;
    let t = if (r as f64).abs() > q.abs() { f32::from_bits(r.to_bits() - 1) } else { r };
    f32::from_bits(t.to_bits() | ((t as f64) != q) as u32)
}

/// Quantizes `data` (row-major, `shape`) to the block format into `out`: each value is the
/// block's scale times the element its scaled value rounds to. Element `i` draws from `rng`
/// at index `i`.
pub fn quantize_blocks(
    f: &BlockFormat,
    data: &[f32],
    shape: &[usize],
    rounding: Rounding,
    rng: &RandomStream,
    out: &mut [f32],
) -> Result<(), QuantizeError> {
    check_lengths(data, shape, out)?;
    let element = Element::of(f);
    if let Element::Float(elem) = element {
        if quantize_uniform(f, &elem, data, shape, rounding, rng, out) || quantize_quotients(f, &elem, data, shape, rounding, rng, out)? {
            return Ok(());
        }
    }
    // Float elements under a power-of-two scale are gathered and rounded in one vectorised
    // pass (rounding x/2^e to the element and scaling back is rounding x to the element with
    // its bias lowered by e).
    let mut scaled_floats = Vec::new();
    for (start, block) in blocks(f, data, shape)? {
        let dst = &mut out[start..start + block.len()];
        let scale = block_scale(f, &element, block);
        match (scale, element) {
            (Scale::Nan, _) => dst.fill(f32::NAN),
            (Scale::E4m3(0.0), _) => dst.fill(0.0),
            (Scale::Pow2(e), Element::Float(elem)) => {
                let shifted = FloatFormat { bias: elem.bias - e, ..elem };
                if shifted.validate().is_ok() {
                    scaled_floats.push(ScaledBlock { start, len: block.len(), exp: e });
                } else {
                    // Only when the scaled maximum passes 2^127 (scale=ceil/even, amax near
                    // f32's maximum): the exact path, overflowing to ±∞ in f32.
                    for (j, (x, y)) in block.iter().zip(dst.iter_mut()).enumerate() {
                        *y = (elem.round(*x as f64 * pow2(-e), rounding, rng.at((start + j) as u64)) * pow2(e)) as f32;
                    }
                }
            }
            (Scale::Pow2(e), Element::Int { bits, .. }) => {
                // The grid 2^(e+1−bits), integers |k| ≤ 2^bits − 1.
                let step = e + 1 - bits as i32;
                let (down, up) = (pow2(-step), pow2(step));
                let kmax = ((1u64 << bits) - 1) as f64;
                let finish = |k: f64| (k.clamp(-kmax, kmax) * up + 0.0) as f32;
                map_rounded(rounding, rng, start as u64, block, dst, |x| x as f64 * down, finish);
            }
            _ => {
                let s = scale.value();
                for (j, (x, y)) in block.iter().zip(dst.iter_mut()).enumerate() {
                    *y = (element_value(&element, scale, *x, rounding, rng.at((start + j) as u64)) * s) as f32;
                }
            }
        }
    }
    if let Element::Float(elem) = element {
        quantize_pow2_blocks(&elem, rounding, rng, &scaled_floats, data, out);
    }
    Ok(())
}

/// A tensor in a block format at the bit level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBlocks {
    pub format: BlockFormat,
    pub shape: Vec<usize>,
    /// One scale code per block, row by row: E8M0 bits (biased exponent, 0xFF = NaN) for MX
    /// scales and `bfp` shared exponents, E4M3 bits for NVFP4.
    pub scales: Vec<u8>,
    /// One element code per element, in the tensor's order: the element format's bits
    /// (MXINT8: 8-bit two's complement; `bfp<M,..>`: sign bit M, magnitude below). Elements
    /// of a NaN block are 0.
    pub elements: Vec<u32>,
}

impl EncodedBlocks {
    /// Blocks per row (the last axis): ⌈row / block⌉.
    pub fn blocks_per_row(&self) -> usize {
        self.shape.last().map_or(0, |row| row.div_ceil(self.format.block))
    }

    /// The value of every element: the block's scale times the element's value, rounded
    /// once to f32 (NaN for a block whose scale is NaN).
    pub fn decode(&self) -> Vec<f32> {
        let element = Element::of(&self.format);
        let mut out = vec![0f32; self.elements.len()];
        let Some(&row) = self.shape.last() else { return out };
        if row == 0 {
            return out;
        }
        let mut scale_codes = self.scales.iter();
        for (codes, dst) in self.elements.chunks(row).zip(out.chunks_mut(row)) {
            for (codes, dst) in codes.chunks(self.format.block).zip(dst.chunks_mut(self.format.block)) {
                let code = scale_codes.next().copied().unwrap_or(E8M0_NAN);
                let s = Scale::decode(code, self.format.scale).value();
                for (c, y) in codes.iter().zip(dst.iter_mut()) {
                    *y = (element.decode(*c) * s) as f32;
                }
            }
        }
        out
    }
}

/// Encodes `data` (row-major, `shape`) in the block format: per-block scale codes and
/// per-element codes, chosen exactly as [`quantize_blocks`] chooses the values.
pub fn encode_blocks(
    f: &BlockFormat,
    data: &[f32],
    shape: &[usize],
    rounding: Rounding,
    rng: &RandomStream,
) -> Result<EncodedBlocks, QuantizeError> {
    let n: usize = shape.iter().product();
    if data.len() != n {
        return Err(QuantizeError::ShapeMismatch { expected: n, found: data.len() });
    }
    let element = Element::of(f);
    let mut scales = Vec::new();
    let mut elements = vec![0u32; n];
    for (start, block) in blocks(f, data, shape)? {
        let scale = block_scale(f, &element, block);
        scales.push(scale.code(f.scale));
        if scale == Scale::Nan || scale == Scale::E4m3(0.0) {
            continue;
        }
        for (j, x) in block.iter().enumerate() {
            let v = element_value(&element, scale, *x, rounding, rng.at((start + j) as u64));
            elements[start + j] = element.encode(v);
        }
    }
    Ok(EncodedBlocks { format: *f, shape: shape.to_vec(), scales, elements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::format::Format;
    use crate::numerics::simd;

    /// Rounding to odd in f32 and then to a narrower format gives the direct rounding of
    /// the f64, in every deterministic mode: at each value and midpoint of several formats
    /// and f64 steps either side far below f32's precision, and at zeros and tiny values.
    #[test]
    fn rounding_to_odd_then_to_the_element_is_rounding_once() {
        let draw = RandomStream::new(0, 0);
        let formats = [FloatFormat::ieee(2, 1), FloatFormat::ieee(4, 3).with_specials(Specials::Fn), FloatFormat::ieee(5, 10), FloatFormat::ieee(8, 7), FloatFormat::ieee(3, 12)];
        let modes = [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];
        for f in formats {
            let f = FloatFormat { saturate: true, ..f };
            let mut centres = vec![0.0, f64::MIN_POSITIVE, 1e-50, 1e-300];
            let values: Vec<f64> = f.all_encodings().unwrap().map(|(_, v)| v).filter(|v| v.is_finite() && *v >= 0.0).take(4000).collect();
            centres.extend(values.windows(2).flat_map(|w| [w[0], (w[0] + w[1]) / 2.0]));
            for c in centres {
                for d in [0.0, 1e-12, -1e-12, 1e-30, -1e-30] {
                    for q in [c + d * c.max(1e-40), -(c + d * c.max(1e-40))] {
                        let r = round_to_odd(q);
                        let inexact = r as f64 != q;
                        assert!(!inexact || r.to_bits() & 1 == 1, "{q:e}: {r:e} is even");
                        assert!((r.next_down() as f64) < q && q < r.next_up() as f64, "{q:e}: {r:e} is not a neighbour");
                        for mode in modes {
                            let once = f.round(q, mode, draw.at(0));
                            let twice = f.round(r as f64, mode, draw.at(0));
                            assert_eq!(once.to_bits(), twice.to_bits(), "{f} {mode}: {q:e} via {r:e}");
                        }
                    }
                }
            }
        }
    }

    /// NVFP4's quotient path (every vector level, every deterministic mode) against the
    /// encoding, which divides and rounds element by element: quotients exactly at the
    /// element's midpoints and values and one f32 ulp either side, for scales across E4M3's
    /// range (subnormal scales included); zeros and NaN blocks; rows that end in a partial
    /// block; and data whose scale overflows E4M3 (the general path).
    #[test]
    fn nvfp4_quotients_agree_with_the_encoding_at_every_level() {
        let e4m3 = FloatFormat::ieee(4, 3).with_specials(Specials::Fn);
        let scales: Vec<f32> = e4m3.all_encodings().unwrap().filter(|(_, v)| v.is_finite() && *v > 0.0).map(|(_, v)| v as f32).collect();
        let points = [0.0f32, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0];
        let mut data = Vec::new();
        for (b, &s0) in scales.iter().enumerate() {
            // The first element sets amax = 6·s0, so the block's scale is s0.
            data.push(6.0 * s0);
            for j in 1..16 {
                let x = points[(b + j) % points.len()] * s0;
                let x = match (b + j) % 3 {
                    0 => x,
                    1 => x.next_up(),
                    _ => x.next_down().max(0.0),
                };
                data.push(if (b * 7 + j) % 5 == 0 { -x } else { x });
            }
        }
        let mut tail = vec![0.0f32; 16];
        tail[3] = f32::NAN;
        tail.extend([0.0; 16]);
        tail.extend([1e-40, -3e-39, 1.0e-45, 0.0, 2.0e-38, 0.0, 0.0, 0.0, 5e-39, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        data.extend(tail);
        let modes = [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];
        let Ok(Format::Block(f)) = Format::parse("nvfp4") else { panic!("nvfp4 is a block format") };
        let huge: Vec<f32> = data.iter().map(|x| x * 1e30).collect();
        for (values, row) in [(&data, 16), (&data, 40), (&huge, 16)] {
            let values = &values[..values.len() / row * row];
            let shape = [values.len() / row, row];
            for mode in modes {
                let stream = RandomStream::new(1, 1);
                let want = encode_blocks(&f, values, &shape, mode, &stream).expect("shapes fit").decode();
                for level in simd::supported() {
                    let mut got = vec![0f32; values.len()];
                    simd::with_level(level, || quantize_blocks(&f, values, &shape, mode, &stream, &mut got)).expect("shapes fit");
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "row {row} {mode} {level:?} [{i}] {:e}: {g:e}, encoding {w:e}", values[i]);
                    }
                }
            }
        }
    }

    /// The tile path (every vector level) against the encoding, which rounds element by
    /// element on the exact path: blocks whose scales sit at E8M0's extremes and near them
    /// (amax from 2^-149 up to f32's maximum), huge dynamic ranges inside a block, ties of
    /// the element grid, zeros and NaN blocks, in every mode.
    #[test]
    fn tiles_agree_with_the_encoding_at_every_level() {
        let rng = RandomStream::new(5, 5);
        let (rows, row) = (96, 64);
        let mut data = Vec::with_capacity(rows * row);
        for i in 0..(rows * row) as u64 {
            let (r, u) = (i / row as u64, rng.word(i, 0));
            // Each block's binade: rows sweep f32's exponent range, both ends included.
            let top = ((r * 255 / rows as u64) as u32).clamp(0, 254);
            let x = match i % 32 {
                0 => f32::from_bits((top << 23) | (u & 0x7F_FFFF)),
                // Element-grid ties and their neighbours below the block maximum.
                1..=8 => f32::from_bits(((top.saturating_sub(i as u32 % 5)) << 23) | (0x40_0000 >> (i % 4)) | (u & (i as u32 % 3))),
                _ => match r % 8 {
                    0 => 0.0,
                    1 => f32::from_bits(u & 0x7FFF_FFFF).min(f32::from_bits(top << 23)),
                    _ => f32::from_bits((top.saturating_sub(u % 30) << 23) | (u >> 9)),
                },
            };
            let x = if r == 7 && i % 64 == 9 { f32::NAN } else { x };
            data.push(if u >> 31 == 1 { -x } else { x });
        }
        let shape = [rows, row];
        let modes = [
            Rounding::Nearest,
            Rounding::NearestAway,
            Rounding::TowardZero,
            Rounding::Up,
            Rounding::Down,
            Rounding::Stochastic,
            Rounding::StochasticBits(3),
            Rounding::StochasticUnbiased(5),
        ];
        for name in ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp8_e4m3<scale=ceil>", "mxfp4<scale=even,block=16>"] {
            let Ok(Format::Block(f)) = Format::parse(name) else { panic!("{name} is a block format") };
            for mode in modes {
                let stream = RandomStream::new(9, 1);
                let want = encode_blocks(&f, &data, &shape, mode, &stream).expect("shapes fit").decode();
                for level in simd::supported() {
                    let mut got = vec![0f32; data.len()];
                    simd::with_level(level, || quantize_blocks(&f, &data, &shape, mode, &stream, &mut got)).expect("shapes fit");
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{name} {mode} {level:?} [{i}] {:e}: {g:e}, encoding {w:e}", data[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn integer_element_codes_round_trip() {
        for element in [Element::Int { bits: 7, twos_complement: true }, Element::Int { bits: 3, twos_complement: false }] {
            let Element::Int { bits, .. } = element else { unreachable!() };
            let kmax = (1i64 << bits) - 1;
            for k in -kmax..=kmax {
                let v = k as f64 * pow2(1 - bits as i32);
                assert_eq!(element.decode(element.encode(v)), v, "{element:?} {k}");
            }
        }
        // MXINT8 codes are two's complement bytes.
        let mxint8 = Element::Int { bits: 7, twos_complement: true };
        assert_eq!(mxint8.encode(-1.0 / 64.0), 0xFF);
        assert_eq!(mxint8.encode(127.0 / 64.0), 0x7F);
        assert_eq!(mxint8.encode(-127.0 / 64.0), 0x81);
    }
}
