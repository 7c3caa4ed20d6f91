//! Fast rounding of `f32` slices to float formats: branch-free integer code per element that
//! the compiler vectorises (compiled for each level of [`simd`]).
//!
//! Agrees to the bit with the exact path in `float`: an element whose rounding needs more
//! than the first 32 bits of its fraction (a stochastic rounding of a value more than 2^8
//! below the spacing, drawing a random word equal to those bits) is recomputed there.

use super::float::{FloatFormat, Specials};
use super::rng::RandomStream;
use super::rounding::Rounding;
use super::simd::{self, Level};

/// Per-format constants of the kernel.
#[derive(Clone, Copy, Debug)]
struct Consts {
    /// Bits dropped from an f32 in the format's normal range: 23 − M.
    drop_normal: u32,
    /// The biased f32 exponent of the format's smallest normal binade.
    e_norm: u32,
    /// Spacing exponent below the normal range, plus 150.
    low_grid: i32,
    /// 2^(spacing exponent) below the normal range, when that is a normal f32.
    low_scale: f32,
    /// Otherwise (the format's normal range starts at 2^-126, like bf16) results below it are
    /// f32 subnormals, whose encoding is linear: `k << low_shift`. Multiplying by a subnormal
    /// constant instead would cost a microcode assist on every element.
    low_linear: bool,
    low_shift: u32,
    /// 2^(spacing exponent + 23), for rounding below the normal range to nearest.
    low_magic: f32,
    /// f32 bits of the largest finite magnitude.
    max_bits: u32,
    /// Magnitude an overflow rounds to, for positive and negative values.
    overflow_pos: u32,
    overflow_neg: u32,
    /// Magnitude of ±∞ inputs.
    inf_bits: u32,
    /// Whether a zero result keeps its sign.
    signed_zero: bool,
}

impl Consts {
    fn new(f: &FloatFormat, rounding: Rounding) -> Self {
        let m = f.man_bits as i32;
        let max_bits = (f.max() as f32).to_bits();
        let inf_bits = if f.has_inf() { f32::INFINITY.to_bits() } else { max_bits };
        let to_inf = |neg: bool| match rounding {
            Rounding::TowardZero => false,
            Rounding::Up => !neg,
            Rounding::Down => neg,
            _ => true,
        };
        let ovf = |neg: bool| if to_inf(neg) && f.has_inf() && !f.saturate { f32::INFINITY.to_bits() } else { max_bits };
        let low_exp = if f.subnormals { f.emin() - m } else { f.emin() };
        Consts {
            drop_normal: (23 - m) as u32,
            e_norm: (f.emin() + 127) as u32,
            low_grid: low_exp + 150,
            low_scale: super::float::pow2(low_exp.max(-126)) as f32,
            low_linear: low_exp < -126,
            low_shift: (low_exp + 149).max(0) as u32,
            low_magic: super::float::pow2(low_exp + 23) as f32,
            max_bits,
            overflow_pos: ovf(false),
            overflow_neg: ovf(true),
            inf_bits,
            signed_zero: f.specials != Specials::Fnuz,
        }
    }
}

/// Whether the kernel handles this format (else the exact path runs per element): the
/// spacing below the normal range must be a normal f32, or every result there an f32
/// subnormal (smallest normal 2^-126).
fn applies(f: &FloatFormat) -> bool {
    let low_exp = if f.subnormals { f.emin() - f.man_bits as i32 } else { f.emin() };
    (1..=22).contains(&f.man_bits)
        && f.emin() >= -126
        && (low_exp >= -126 || f.emin() == -126)
        && f.validate().is_ok()
}

/// Rounds `src` to `f` into `dst`; element `i` draws from `rng` at index `base + i`.
pub fn quantize_slice(f: &FloatFormat, rounding: Rounding, rng: &RandomStream, base: u64, src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "quantize_slice: source and destination lengths differ");
    let Some(c) = applies(f).then(|| Consts::new(f, rounding)) else {
        exact(f, rounding, rng, base, src, dst);
        return;
    };
    let job = Job { f: *f, c, rounding, rng, base, shift: 0 };
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { job.run_avx512(src, dst) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { job.run_avx2(src, dst) },
        _ => job.run_inline::<false>(src, dst),
    }
}

/// The exact path, element by element.
fn exact(f: &FloatFormat, rounding: Rounding, rng: &RandomStream, base: u64, src: &[f32], dst: &mut [f32]) {
    for (i, (x, y)) in src.iter().zip(dst.iter_mut()).enumerate() {
        *y = f.round(*x as f64, rounding, rng.at(base + i as u64)) as f32;
    }
}

/// What a block of [`quantize_uniform_blocks`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockExp {
    /// Elements scaled by 2^e, with the shifted format valid.
    Pow2(i32),
    /// Every element is NaN.
    Nan,
}

/// Rounds `src` — consecutive blocks of `block` elements (a multiple of 16), block `b`
/// scaled by `exps[b]` — to `elem` with each block's bias lowered by its exponent, into `dst`.
/// Element `i` draws at index `base + i`. The flat loop keeps the kernel's constants in registers
/// and moves each lane's exponent in and out (see [`round_lane_shifted`]).
pub(crate) fn quantize_uniform_blocks(elem: &FloatFormat, rounding: Rounding, rng: &RandomStream, base: u64, exps: &[BlockExp], src: &[f32], dst: &mut [f32]) {
    if exps.is_empty() {
        return;
    }
    let block = src.len() / exps.len();
    assert!(block.is_multiple_of(LANES) && src.len() == exps.len() * block && dst.len() == src.len(), "quantize_uniform_blocks: blocks do not tile the data");
    if !applies(elem) {
        for (b, e) in exps.iter().enumerate() {
            let range = b * block..(b + 1) * block;
            match *e {
                BlockExp::Nan => dst[range].fill(f32::NAN),
                BlockExp::Pow2(e) => {
                    let f = FloatFormat { bias: elem.bias - e, ..*elem };
                    exact(&f, rounding, rng, base + range.start as u64, &src[range.clone()], &mut dst[range]);
                }
            }
        }
        return;
    }
    let job = Job { f: *elem, c: Consts::new(elem, rounding), rounding, rng, base, shift: 0 };
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { job.run_blocks_avx512(block, exps, src, dst) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { job.run_blocks_avx2(block, exps, src, dst) },
        _ => job.run_blocks_inline(block, exps, src, dst),
    }
}

/// One block of a power-of-two-scaled block format: `len` elements from `start`, scaled by
/// 2^`exp`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScaledBlock {
    pub start: usize,
    pub len: usize,
    pub exp: i32,
}

/// Rounds each block of `src` to `elem` scaled by the block's power of two — that is, to
/// `elem` with its bias lowered by the exponent — into `dst`. Element `i` draws at index `i`.
/// Every shifted format must be valid (`FloatFormat::validate`).
pub(crate) fn quantize_pow2_blocks(elem: &FloatFormat, rounding: Rounding, rng: &RandomStream, blocks: &[ScaledBlock], src: &[f32], dst: &mut [f32]) {
    match simd::level() {
        // SAFETY: `simd::level` returns only levels the CPU supports.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { pow2_blocks_avx512(elem, rounding, rng, blocks, src, dst) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { pow2_blocks_avx2(elem, rounding, rng, blocks, src, dst) },
        _ => pow2_blocks(elem, rounding, rng, blocks, src, dst),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn pow2_blocks_avx512(elem: &FloatFormat, rounding: Rounding, rng: &RandomStream, blocks: &[ScaledBlock], src: &[f32], dst: &mut [f32]) {
    pow2_blocks(elem, rounding, rng, blocks, src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pow2_blocks_avx2(elem: &FloatFormat, rounding: Rounding, rng: &RandomStream, blocks: &[ScaledBlock], src: &[f32], dst: &mut [f32]) {
    pow2_blocks(elem, rounding, rng, blocks, src, dst)
}

#[inline(always)]
fn pow2_blocks(elem: &FloatFormat, rounding: Rounding, rng: &RandomStream, blocks: &[ScaledBlock], src: &[f32], dst: &mut [f32]) {
    if !applies(elem) {
        for b in blocks {
            let f = FloatFormat { bias: elem.bias - b.exp, ..*elem };
            let range = b.start..b.start + b.len;
            exact(&f, rounding, rng, b.start as u64, &src[range.clone()], &mut dst[range]);
        }
        return;
    }
    // One set of constants, for the element itself; each lane's exponent is moved instead.
    let job = Job { f: *elem, c: Consts::new(elem, rounding), rounding, rng, base: 0, shift: 0 };
    for b in blocks {
        let range = b.start..b.start + b.len;
        Job { base: b.start as u64, shift: b.exp, ..job }.run_inline::<true>(&src[range.clone()], &mut dst[range]);
    }
}

/// Whether moving an input's exponent by −e and its result's magnitude back by +e stays
/// among normal f32 numbers (or zero), so that the move is exact.
#[inline(always)]
fn moves_exactly(input_bits: u32, result_mag: u32, e: i32) -> bool {
    let abs = input_bits & 0x7FFF_FFFF;
    let e32 = (abs >> 23) as i32;
    let input_ok = abs == 0 || (e32 >= 1 && e32 - e >= 1);
    let output_ok = result_mag == 0 || (result_mag >> 23) as i32 + e >= 1;
    input_ok && output_ok
}

/// Elements per chunk of the kernels' inner loops.
const LANES: usize = 16;

#[derive(Clone, Copy)]
struct Job<'a> {
    f: FloatFormat,
    c: Consts,
    rounding: Rounding,
    rng: &'a RandomStream,
    base: u64,
    /// With `SHIFTED` kernels: the block's exponent e, rounding to `f` with bias lowered by e.
    shift: i32,
}

// The rounding decisions: given the fraction's first 32 bits, whether any bit follows them,
// the parity of k, the sign, the random word and R, return (away, needs the exact path).

#[inline(always)]
fn nearest_away(frac32: u32, _: bool, _: bool, _: bool, _: u32, _: u32) -> (bool, bool) {
    (frac32 >= 0x8000_0000, false)
}
#[inline(always)]
fn toward_zero(_: u32, _: bool, _: bool, _: bool, _: u32, _: u32) -> (bool, bool) {
    (false, false)
}
#[inline(always)]
fn up(frac32: u32, sticky: bool, _: bool, negative: bool, _: u32, _: u32) -> (bool, bool) {
    ((frac32 != 0 || sticky) && !negative, false)
}
#[inline(always)]
fn down(frac32: u32, sticky: bool, _: bool, negative: bool, _: u32, _: u32) -> (bool, bool) {
    ((frac32 != 0 || sticky) && negative, false)
}
#[inline(always)]
fn stochastic(frac32: u32, sticky: bool, _: bool, _: bool, word: u32, _: u32) -> (bool, bool) {
    (word < frac32, word == frac32 && sticky)
}
#[inline(always)]
fn stochastic_bits(frac32: u32, _: bool, _: bool, _: bool, word: u32, r: u32) -> (bool, bool) {
    // R random bits added below the kept bits: a carry iff t + rnd ≥ 2^R.
    let t = (frac32 as u64) >> (32 - r);
    let rnd = (word as u64) >> (32 - r);
    ((t + rnd) >> r != 0, false)
}
#[inline(always)]
fn stochastic_unbiased(frac32: u32, sticky: bool, _: bool, _: bool, word: u32, r: u32) -> (bool, bool) {
    let f = frac32 as u64;
    let t = f >> (32 - r);
    let rest = f & ((1u64 << (32 - r)) - 1);
    let half = 1u64 << (31 - r.min(31));
    // With R = 32 the rest lies past the first word: only the exact path knows it.
    let (t, unknown) = if r == 32 {
        (t, sticky)
    } else {
        let up = rest > half || (rest == half && (sticky || t & 1 == 1));
        (t + up as u64, false)
    };
    let rnd = (word as u64) >> (32 - r);
    ((t + rnd) >> r != 0, unknown)
}

impl Job<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    unsafe fn run_avx512(&self, src: &[f32], dst: &mut [f32]) {
        self.run_inline::<false>(src, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, src: &[f32], dst: &mut [f32]) {
        self.run_inline::<false>(src, dst)
    }

    #[inline(always)]
    fn run_inline<const SHIFTED: bool>(&self, src: &[f32], dst: &mut [f32]) {
        match self.rounding {
            Rounding::Nearest => self.kernel_with::<SHIFTED, _>(src, dst, |c, bits, _| (round_lane_nearest(c, bits), false)),
            Rounding::NearestAway => self.kernel_with::<SHIFTED, _>(src, dst, |c, bits, w| round_lane(c, bits, nearest_away, w, 0)),
            Rounding::TowardZero => self.kernel_with::<SHIFTED, _>(src, dst, |c, bits, w| round_lane(c, bits, toward_zero, w, 0)),
            Rounding::Up => self.kernel_with::<SHIFTED, _>(src, dst, |c, bits, w| round_lane(c, bits, up, w, 0)),
            Rounding::Down => self.kernel_with::<SHIFTED, _>(src, dst, |c, bits, w| round_lane(c, bits, down, w, 0)),
            Rounding::Stochastic => self.kernel_with::<SHIFTED, _>(src, dst, |c, bits, w| round_lane(c, bits, stochastic, w, 0)),
            Rounding::StochasticBits(r) => self.kernel_with::<SHIFTED, _>(src, dst, move |c, bits, w| round_lane(c, bits, stochastic_bits, w, r)),
            Rounding::StochasticUnbiased(r) => self.kernel_with::<SHIFTED, _>(src, dst, move |c, bits, w| round_lane(c, bits, stochastic_unbiased, w, r)),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
    unsafe fn run_blocks_avx512(&self, block: usize, exps: &[BlockExp], src: &[f32], dst: &mut [f32]) {
        self.run_blocks_inline(block, exps, src, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_blocks_avx2(&self, block: usize, exps: &[BlockExp], src: &[f32], dst: &mut [f32]) {
        self.run_blocks_inline(block, exps, src, dst)
    }

    #[inline(always)]
    fn run_blocks_inline(&self, block: usize, exps: &[BlockExp], src: &[f32], dst: &mut [f32]) {
        match self.rounding {
            Rounding::Nearest => self.blocks_kernel(block, exps, src, dst, |c, bits, _| (round_lane_nearest(c, bits), false)),
            Rounding::NearestAway => self.blocks_kernel(block, exps, src, dst, |c, bits, w| round_lane(c, bits, nearest_away, w, 0)),
            Rounding::TowardZero => self.blocks_kernel(block, exps, src, dst, |c, bits, w| round_lane(c, bits, toward_zero, w, 0)),
            Rounding::Up => self.blocks_kernel(block, exps, src, dst, |c, bits, w| round_lane(c, bits, up, w, 0)),
            Rounding::Down => self.blocks_kernel(block, exps, src, dst, |c, bits, w| round_lane(c, bits, down, w, 0)),
            Rounding::Stochastic => self.blocks_kernel(block, exps, src, dst, |c, bits, w| round_lane(c, bits, stochastic, w, 0)),
            Rounding::StochasticBits(r) => self.blocks_kernel(block, exps, src, dst, move |c, bits, w| round_lane(c, bits, stochastic_bits, w, r)),
            Rounding::StochasticUnbiased(r) => self.blocks_kernel(block, exps, src, dst, move |c, bits, w| round_lane(c, bits, stochastic_unbiased, w, r)),
        }
    }

    /// Uniform blocks, chunk by chunk, each rounded with its block's exponent shift.
    #[inline(always)]
    fn blocks_kernel<L: Fn(&Consts, u32, u32) -> (u32, bool) + Copy>(&self, block: usize, exps: &[BlockExp], src: &[f32], dst: &mut [f32], lane: L) {
        for (b, (&exp, (xs, ys))) in exps.iter().zip(src.chunks_exact(block).zip(dst.chunks_exact_mut(block))).enumerate() {
            let BlockExp::Pow2(e) = exp else {
                ys.fill(f32::NAN);
                continue;
            };
            let job = Job { shift: e, ..*self };
            for (c, (xs, ys)) in xs.chunks_exact(LANES).zip(ys.chunks_exact_mut(LANES)).enumerate() {
                let xs: &[f32; LANES] = xs.try_into().expect("chunks_exact yields whole chunks");
                let ys: &mut [f32; LANES] = ys.try_into().expect("chunks_exact yields whole chunks");
                job.chunk::<true, _>(b * block + c * LANES, xs, ys, lane);
            }
        }
    }

    /// One lane: plain, or moved by the block's exponent.
    #[inline(always)]
    fn lane<const SHIFTED: bool, L: Fn(&Consts, u32, u32) -> (u32, bool)>(&self, bits: u32, lane: L, word: u32) -> (u32, bool) {
        if SHIFTED { round_lane_shifted(&self.c, bits, self.shift, lane, word) } else { lane(&self.c, bits, word) }
    }

    #[inline(always)]
    fn kernel_with<const SHIFTED: bool, L: Fn(&Consts, u32, u32) -> (u32, bool) + Copy>(&self, src: &[f32], dst: &mut [f32], lane: L) {
        let whole = src.len() / LANES * LANES;
        for (c, (xs, ys)) in src[..whole].chunks_exact(LANES).zip(dst[..whole].chunks_exact_mut(LANES)).enumerate() {
            let xs: &[f32; LANES] = xs.try_into().expect("chunks_exact yields whole chunks");
            let ys: &mut [f32; LANES] = ys.try_into().expect("chunks_exact yields whole chunks");
            self.chunk::<SHIFTED, _>(c * LANES, xs, ys, lane);
        }
        // The tail, padded to a whole chunk with zeros (which round to themselves).
        let tail = src.len() - whole;
        if tail > 0 {
            let (mut xs, mut ys) = ([0f32; LANES], [0f32; LANES]);
            xs[..tail].copy_from_slice(&src[whole..]);
            self.chunk::<SHIFTED, _>(whole, &xs, &mut ys, lane);
            dst[whole..].copy_from_slice(&ys[..tail]);
        }
    }

    /// Rounds the `LANES` elements from index `start` (relative to `base`): one straight loop
    /// over fixed-size arrays, which vectorises; lanes that need the exact path are redone.
    #[inline(always)]
    fn chunk<const SHIFTED: bool, L: Fn(&Consts, u32, u32) -> (u32, bool) + Copy>(&self, start: usize, xs: &[f32; LANES], ys: &mut [f32; LANES], lane: L) {
        let words = self.chunk_words(self.base + start as u64);
        if !SHIFTED && self.rounding.is_stochastic() {
            // All lanes finite and in the normal range: fewer than 32 bits are dropped, so the
            // fraction is exactly the dropped bits and each mode is a few integer operations.
            let mut all_normal = true;
            for x in xs {
                let abs = x.to_bits() & 0x7FFF_FFFF;
                all_normal &= abs >> 23 >= self.c.e_norm && abs < 0x7F80_0000;
            }
            if all_normal {
                for j in 0..LANES {
                    ys[j] = f32::from_bits(round_normal_stochastic(&self.c, self.rounding, xs[j].to_bits(), words[j]));
                }
                return;
            }
        }
        let mut any_exact = false;
        for j in 0..LANES {
            let (bits, exact) = self.lane::<SHIFTED, _>(xs[j].to_bits(), lane, words[j]);
            ys[j] = f32::from_bits(bits);
            any_exact |= exact;
        }
        if any_exact {
            let f = FloatFormat { bias: self.f.bias - self.shift, ..self.f };
            for j in 0..LANES {
                if self.lane::<SHIFTED, _>(xs[j].to_bits(), lane, words[j]).1 {
                    let index = self.base + (start + j) as u64;
                    ys[j] = f.round(xs[j] as f64, self.rounding, self.rng.at(index)) as f32;
                }
            }
        }
    }

    /// Word 0 of the random streams of the `LANES` elements from index `first` (zeros for the
    /// deterministic modes), in one straight loop that vectorises: the indices stay in 32-bit
    /// lanes unless their low half wraps inside the chunk.
    #[inline(always)]
    fn chunk_words(&self, first: u64) -> [u32; LANES] {
        let mut words = [0u32; LANES];
        if self.rounding.is_stochastic() {
            let (lo0, hi) = (first as u32, (first >> 32) as u32);
            if lo0.checked_add(LANES as u32).is_some() {
                for (j, w) in words.iter_mut().enumerate() {
                    *w = self.rng.word_split(lo0 + j as u32, hi, 0);
                }
            } else {
                for (j, w) in words.iter_mut().enumerate() {
                    *w = self.rng.word(first + j as u64, 0);
                }
            }
        }
        words
    }
}

/// Rounds one element to the format with its bias lowered by `e`, by moving the element's
/// exponent by −e, rounding, and moving the result back: exact while both stay normal f32
/// numbers (or zero); otherwise the lane asks for the exact path. The format must saturate
/// (no ∞), as block elements do, and the input must be finite.
#[inline(always)]
fn round_lane_shifted<L: Fn(&Consts, u32, u32) -> (u32, bool)>(c: &Consts, bits: u32, e: i32, lane: L, word: u32) -> (u32, bool) {
    let moved = (e as u32) << 23;
    let (out, exact) = lane(c, if bits & 0x7FFF_FFFF == 0 { bits } else { bits.wrapping_sub(moved) }, word);
    let mag = out & 0x7FFF_FFFF;
    let out = if mag == 0 { out } else { (out & 0x8000_0000) | mag.wrapping_add(moved) };
    (out, exact || !moves_exactly(bits, mag, e))
}

/// Rounds one element to nearest-even, the cheap way: in the normal range by integer
/// round-half-even on the bits; below it by `(|x| + C) − C` with `C = 2^(g+23)`, which rounds
/// exactly once onto the grid `2^g` with the FPU's ties-to-even (|x| < 2^(g+23) there) and
/// subtracts exactly. Agrees with the exact path (tested around every value of every small
/// format, and against the big-integer reference and ml_dtypes).
#[inline(always)]
fn round_lane_nearest(c: &Consts, bits: u32) -> u32 {
    let sign = bits & 0x8000_0000;
    let abs = bits & 0x7FFF_FFFF;
    let d = c.drop_normal;
    let lsb = (abs >> d) & 1;
    let normal = (abs + ((1 << d) >> 1) - 1 + lsb) & !((1u32 << d) - 1);
    let low = ((f32::from_bits(abs) + c.low_magic) - c.low_magic).to_bits();
    let mag = if abs >> 23 < c.e_norm { low } else { normal };
    let mag = if mag > c.max_bits { c.overflow_pos } else { mag };
    let mag = if abs == 0x7F80_0000 { c.inf_bits } else { mag };
    let out_sign = if mag == 0 && !c.signed_zero { 0 } else { sign };
    if abs > 0x7F80_0000 { bits } else { out_sign | mag }
}

/// A stochastic mode on a finite element in the format's normal range, where the `d` dropped
/// bits are the whole fraction (d = 23 − M < 32). `stochastic:R` is the hardware scheme: the R
/// random bits added just below the kept bits (or, when fewer than R bits are dropped, their
/// top bits at the lowest dropped position — the rest cannot carry), a carry rounding away.
/// Equal to the general lane (tested).
#[inline(always)]
fn round_normal_stochastic(c: &Consts, rounding: Rounding, bits: u32, word: u32) -> u32 {
    let sign = bits & 0x8000_0000;
    let abs = bits & 0x7FFF_FFFF;
    let d = c.drop_normal;
    let kept = abs & !((1u32 << d) - 1);
    let rem = abs - kept;
    let away = match rounding {
        Rounding::StochasticBits(r) => {
            let rnd = word >> (32 - r);
            let aligned = if r <= d { rnd << (d - r) } else { rnd >> (r - d) };
            (rem + aligned) >> d
        }
        Rounding::StochasticUnbiased(r) => {
            // t = RNE(frac·2^R), then a carry iff t + rnd ≥ 2^R.
            let t = if r <= d {
                let (t, rest, half) = (rem >> (d - r), rem & ((1u32 << (d - r)) - 1), (1u32 << (d - r)) >> 1);
                t + ((rest > half || (rest == half && half != 0 && t & 1 == 1)) as u32)
            } else {
                rem << (r - d)
            };
            ((t as u64 + (word >> (32 - r)) as u64) >> r) as u32
        }
        // Exact stochastic: u < frac, with frac's bits all within the first word.
        _ => (word < rem << (32 - d)) as u32,
    };
    let mag = kept + (away << d);
    let ovf = if sign != 0 { c.overflow_neg } else { c.overflow_pos };
    sign | if mag > c.max_bits { ovf } else { mag }
}

/// Rounds one element given as f32 bits. Returns (result bits, needs the exact path).
#[inline(always)]
fn round_lane<D: Fn(u32, bool, bool, bool, u32, u32) -> (bool, bool)>(
    c: &Consts,
    bits: u32,
    decide: D,
    word: u32,
    r: u32,
) -> (u32, bool) {
    let sign = bits & 0x8000_0000;
    let negative = sign != 0;
    let abs = bits & 0x7FFF_FFFF;
    let e32 = abs >> 23;
    let sig = (abs & 0x007F_FFFF) | if e32 != 0 { 0x0080_0000 } else { 0 };
    let eff = e32.max(1) as i32;
    let low = e32 < c.e_norm;
    let drop = if low { (c.low_grid - eff) as u32 } else { c.drop_normal };
    // k = ⌊sig / 2^drop⌋ and the fraction's first 32 bits, exactly.
    let dc = drop.min(31);
    let k = sig >> dc;
    let rem = sig - (k << dc);
    let t = drop.saturating_sub(32).min(31);
    let (frac32, sticky) = if drop < 32 {
        (rem << ((32 - drop) & 31), false)
    } else {
        let f = sig >> t;
        (f, (f << t) != sig)
    };
    let (away, exact) = decide(frac32, sticky, k & 1 == 1, negative, word, r);
    let away = away as u32;
    let mag = if low {
        if c.low_linear { (k + away) << c.low_shift } else { ((k + away) as f32 * c.low_scale).to_bits() }
    } else {
        ((abs >> c.drop_normal) + away) << c.drop_normal
    };
    let ovf = if negative { c.overflow_neg } else { c.overflow_pos };
    let mag = if mag > c.max_bits { ovf } else { mag };
    let mag = if abs == 0x7F80_0000 { c.inf_bits } else { mag };
    let out_sign = if mag == 0 && !c.signed_zero { 0 } else { sign };
    let out = if abs > 0x7F80_0000 { bits } else { out_sign | mag };
    (out, exact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::format::NAMED_FLOATS;

    /// A normal-range input whose fraction equals its element's random word exactly: exact
    /// stochastic rounding keeps it (u = frac is not below frac), for every position of the
    /// element in a chunk and with the chunk on both kernel paths (all normal, and mixed).
    #[test]
    fn stochastic_ties_between_the_word_and_the_fraction() {
        let f = FloatFormat::ieee(5, 10); // 13 dropped bits in the normal range
        let rng = RandomStream::new(3, 9);
        let index = (0..1u64 << 26).find(|&i| rng.word(i, 0) & ((1 << 19) - 1) == 0).expect("a word with 19 low zero bits");
        let w = rng.word(index, 0);
        let x = f32::from_bits((130 << 23) | (7 << 13) | (w >> 19)); // frac·2^32 = w exactly
        for (level, lane) in simd::supported().into_iter().flat_map(|l| (0..16u64).map(move |j| (l, j))) {
            for mixed in [false, true] {
                let mut src = [x; 16];
                if mixed {
                    src[(lane as usize + 1) % 16] = 1e-30; // below the normal range
                }
                let mut out = [0f32; 16];
                simd::with_level(level, || quantize_slice(&f, Rounding::Stochastic, &rng, index - lane, &src, &mut out));
                let want = f.round(x as f64, Rounding::Stochastic, rng.at(index)) as f32;
                assert_eq!(out[lane as usize].to_bits(), want.to_bits(), "lane {lane}, mixed {mixed}, {level:?}");
                assert_eq!(want.to_bits(), x.to_bits() & !((1 << 13) - 1), "u = frac keeps the lower neighbour");
            }
        }
    }

    /// The fast kernel against the exact path on inputs around every value of small formats.
    #[test]
    fn agrees_with_the_exact_path_around_every_value() {
        let modes = [
            Rounding::Nearest,
            Rounding::NearestAway,
            Rounding::TowardZero,
            Rounding::Up,
            Rounding::Down,
            Rounding::Stochastic,
            Rounding::StochasticBits(4),
            Rounding::StochasticBits(32),
            Rounding::StochasticUnbiased(9),
            Rounding::StochasticUnbiased(32),
        ];
        let mut formats: Vec<FloatFormat> = NAMED_FLOATS.iter().map(|(_, f)| *f).filter(|f| f.bits() <= 16).collect();
        formats.push(FloatFormat::ieee(6, 5).without_subnormals());
        formats.push(FloatFormat { saturate: true, ..FloatFormat::ieee(5, 2) });
        let rng = RandomStream::new(11, 2);
        for f in &formats {
            let mut inputs = Vec::new();
            for (_, v) in f.all_encodings().unwrap() {
                if !v.is_finite() {
                    continue;
                }
                let v = v as f32;
                let b = v.to_bits();
                for d in [0u32, 1, 2, 3, 1 << 10, 1 << 19, 0x3F_FFFF] {
                    inputs.push(f32::from_bits(b.wrapping_add(d)));
                    inputs.push(f32::from_bits(b.wrapping_sub(d)));
                }
                inputs.push(v * 1.5);
                inputs.push(v * 1e-30);
            }
            inputs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0, f32::MAX, f32::MIN_POSITIVE, 1e-45]);
            let mut out = vec![0f32; inputs.len()];
            for (level, mode) in simd::supported().into_iter().flat_map(|l| modes.map(|m| (l, m))) {
                simd::with_level(level, || quantize_slice(f, mode, &rng, 100, &inputs, &mut out));
                for (i, (x, y)) in inputs.iter().zip(&out).enumerate() {
                    let want = f.round(*x as f64, mode, rng.at(100 + i as u64)) as f32;
                    assert!(
                        want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                        "{f} {mode} {level:?}: {x:e} ({:#010x}) -> fast {y:e}, exact {want:e}",
                        x.to_bits()
                    );
                }
            }
        }
    }
}
