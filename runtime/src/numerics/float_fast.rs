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
    /// f32 bits of 2^(spacing exponent): the result of rounding away from zero a magnitude
    /// below it (a subnormal f32 when the format's normal range starts at 2^-126, like
    /// bf16's).
    low_one: u32,
    /// 2^(spacing exponent + 23), for rounding below the normal range to nearest.
    low_magic: f32,
    /// The least magnitude (f32 bits) on the bit grid: the spacing below the normal range
    /// with subnormals (at least 2^-126), the smallest normal without.
    grid_min: u32,
    /// With subnormals, `low_grid`; without, a value below any `23 − M` (see
    /// [`round_lane_grid`]).
    grid_low: i32,
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
    /// The constants of [`round_lane_nearest`] for the format with its bias lowered by `e`,
    /// when they are f32 normal numbers: its grid below the normal range 2^(low_exp + e) at
    /// least 2^-126, and `low_magic` (2^(low_exp + e + 23)) and its maximum finite. Only for
    /// saturating formats (as block elements are) and finite inputs.
    fn shifted(&self, e: i32) -> Option<Consts> {
        let moved = |bits: u32| bits.wrapping_add((e as u32) << 23);
        let exponent = |bits: u32| (bits >> 23) as i32 + e;
        let saturating = self.overflow_pos == self.max_bits && self.overflow_neg == self.max_bits;
        let ok = self.low_grid - 150 + e >= -126 && exponent(self.low_magic.to_bits()) < 255 && exponent(self.max_bits) < 255 && saturating;
        ok.then(|| Consts {
            e_norm: (self.e_norm as i32 + e) as u32,
            low_grid: self.low_grid + e,
            low_magic: f32::from_bits(moved(self.low_magic.to_bits())),
            max_bits: moved(self.max_bits),
            overflow_pos: moved(self.max_bits),
            overflow_neg: moved(self.max_bits),
            ..*self
        })
    }

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
            low_one: (super::float::pow2(low_exp) as f32).to_bits(),
            grid_min: (super::float::pow2(low_exp.max(-126)) as f32).to_bits(),
            grid_low: if f.subnormals { low_exp + 150 } else { 0 },
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
// the sign and the random word, return (away, needs the exact path).

#[inline(always)]
fn nearest_away(frac32: u32, _: bool, _: bool, _: u32) -> (bool, bool) {
    (frac32 >= 0x8000_0000, false)
}
#[inline(always)]
fn toward_zero(_: u32, _: bool, _: bool, _: u32) -> (bool, bool) {
    (false, false)
}
#[inline(always)]
fn up(frac32: u32, sticky: bool, negative: bool, _: u32) -> (bool, bool) {
    ((frac32 != 0 || sticky) && !negative, false)
}
#[inline(always)]
fn down(frac32: u32, sticky: bool, negative: bool, _: u32) -> (bool, bool) {
    ((frac32 != 0 || sticky) && negative, false)
}
#[inline(always)]
fn stochastic(frac32: u32, sticky: bool, _: bool, word: u32) -> (bool, bool) {
    (word < frac32, word == frac32 && sticky)
}

/// `stochastic:R` and `stochastic-unbiased:R` with R fixed: the shift 32 − R and the
/// largest R-bit integer, so every operation stays on 32-bit lanes.
#[derive(Clone, Copy)]
struct RandomBits {
    shift: u32,
    limit: u32,
}

impl RandomBits {
    fn new(r: u32) -> Self {
        RandomBits { shift: 32 - r, limit: u32::MAX >> (32 - r) }
    }

    /// Whether t + (the top R bits of the word) reaches 2^R, for t ≤ 2^R.
    #[inline(always)]
    fn carries(self, t: u32, word: u32) -> bool {
        let (sum, overflow) = t.overflowing_add(word >> self.shift);
        overflow || sum > self.limit
    }

    /// `stochastic:R`: the R random bits added below the kept bits carry.
    #[inline(always)]
    fn truncated(self, frac32: u32, _: bool, _: bool, word: u32) -> (bool, bool) {
        (self.carries(frac32 >> self.shift, word), false)
    }

    /// `stochastic-unbiased:R`: t = RNE(frac·2^R), then a carry. With R = 32 the rest lies
    /// past the first word: only the exact path knows it.
    #[inline(always)]
    fn unbiased(self, frac32: u32, sticky: bool, _: bool, word: u32) -> (bool, bool) {
        let t = frac32 >> self.shift;
        let rest = frac32 & !(u32::MAX << self.shift);
        let half = (1u32 << self.shift) >> 1;
        let up = half != 0 && (rest > half || (rest == half && (sticky || t & 1 == 1)));
        (self.carries(t + up as u32, word), self.shift == 0 && sticky)
    }
}

/// How a rounding mode rounds one lane.
trait LaneRule: Copy {
    /// Whether the mode has a grid lane.
    const GRID: bool;
    /// Any lane: (result bits, needs the exact path).
    fn lane(self, c: &Consts, bits: u32, word: u32) -> (u32, bool);
    /// A lane on the bit grid (see [`round_lane_grid`]), when `GRID`.
    fn grid(self, c: &Consts, bits: u32, word: u32) -> u32;
}

/// Nearest-even: one lane kind for every element.
#[derive(Clone, Copy)]
struct NearestEven;

impl LaneRule for NearestEven {
    const GRID: bool = false;
    #[inline(always)]
    fn lane(self, c: &Consts, bits: u32, _: u32) -> (u32, bool) {
        (round_lane_nearest(c, bits), false)
    }
    #[inline(always)]
    fn grid(self, c: &Consts, bits: u32, _: u32) -> u32 {
        round_lane_nearest(c, bits)
    }
}

/// Every other mode: a decision on the fraction (see the functions above).
#[derive(Clone, Copy)]
struct Decided<D>(D);

impl<D: Fn(u32, bool, bool, u32) -> (bool, bool) + Copy> LaneRule for Decided<D> {
    const GRID: bool = true;
    #[inline(always)]
    fn lane(self, c: &Consts, bits: u32, word: u32) -> (u32, bool) {
        round_lane(c, bits, self.0, word)
    }
    #[inline(always)]
    fn grid(self, c: &Consts, bits: u32, word: u32) -> u32 {
        round_lane_grid(c, bits, self.0, word)
    }
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
            Rounding::Nearest => self.kernel_with::<SHIFTED, _>(src, dst, NearestEven),
            Rounding::NearestAway => self.kernel_with::<SHIFTED, _>(src, dst, Decided(nearest_away)),
            Rounding::TowardZero => self.kernel_with::<SHIFTED, _>(src, dst, Decided(toward_zero)),
            Rounding::Up => self.kernel_with::<SHIFTED, _>(src, dst, Decided(up)),
            Rounding::Down => self.kernel_with::<SHIFTED, _>(src, dst, Decided(down)),
            Rounding::Stochastic => self.kernel_with::<SHIFTED, _>(src, dst, Decided(stochastic)),
            Rounding::StochasticBits(r) => {
                let rb = RandomBits::new(r);
                self.kernel_with::<SHIFTED, _>(src, dst, Decided(move |f, s, n, w| rb.truncated(f, s, n, w)))
            }
            Rounding::StochasticUnbiased(r) => {
                let rb = RandomBits::new(r);
                self.kernel_with::<SHIFTED, _>(src, dst, Decided(move |f, s, n, w| rb.unbiased(f, s, n, w)))
            }
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
            Rounding::Nearest => self.blocks_nearest(block, exps, src, dst),
            Rounding::NearestAway => self.blocks_kernel(block, exps, src, dst, Decided(nearest_away)),
            Rounding::TowardZero => self.blocks_kernel(block, exps, src, dst, Decided(toward_zero)),
            Rounding::Up => self.blocks_kernel(block, exps, src, dst, Decided(up)),
            Rounding::Down => self.blocks_kernel(block, exps, src, dst, Decided(down)),
            Rounding::Stochastic => self.blocks_kernel(block, exps, src, dst, Decided(stochastic)),
            Rounding::StochasticBits(r) => {
                let rb = RandomBits::new(r);
                self.blocks_kernel(block, exps, src, dst, Decided(move |f, s, n, w| rb.truncated(f, s, n, w)))
            }
            Rounding::StochasticUnbiased(r) => {
                let rb = RandomBits::new(r);
                self.blocks_kernel(block, exps, src, dst, Decided(move |f, s, n, w| rb.unbiased(f, s, n, w)))
            }
        }
    }

    /// Nearest-even on uniform blocks: with the constants of each block's shifted format
    /// ([`Consts::shifted`]) every lane is [`round_lane_nearest`] on the element itself; a
    /// block whose shifted format has no such constants takes [`Job::blocks_kernel`]'s path.
    #[inline(always)]
    fn blocks_nearest(&self, block: usize, exps: &[BlockExp], src: &[f32], dst: &mut [f32]) {
        for (b, (&exp, (xs, ys))) in exps.iter().zip(src.chunks_exact(block).zip(dst.chunks_exact_mut(block))).enumerate() {
            let BlockExp::Pow2(e) = exp else {
                ys.fill(f32::NAN);
                continue;
            };
            if let Some(c) = self.c.shifted(e) {
                for (xs, ys) in xs.chunks_exact(LANES).zip(ys.chunks_exact_mut(LANES)) {
                    let xs: &[f32; LANES] = xs.try_into().expect("chunks_exact yields whole chunks");
                    let ys: &mut [f32; LANES] = ys.try_into().expect("chunks_exact yields whole chunks");
                    for j in 0..LANES {
                        ys[j] = f32::from_bits(round_lane_nearest(&c, xs[j].to_bits()));
                    }
                }
            } else {
                self.shifted_block(b * block, e, xs, ys, NearestEven);
            }
        }
    }

    /// Uniform blocks, chunk by chunk, each rounded with its block's exponent shift.
    #[inline(always)]
    fn blocks_kernel<R: LaneRule>(&self, block: usize, exps: &[BlockExp], src: &[f32], dst: &mut [f32], rule: R) {
        for (b, (&exp, (xs, ys))) in exps.iter().zip(src.chunks_exact(block).zip(dst.chunks_exact_mut(block))).enumerate() {
            let BlockExp::Pow2(e) = exp else {
                ys.fill(f32::NAN);
                continue;
            };
            self.shifted_block(b * block, e, xs, ys, rule);
        }
    }

    /// One block of elements from index `start`, scaled by 2^e, chunk by chunk.
    #[inline(always)]
    fn shifted_block<R: LaneRule>(&self, start: usize, e: i32, xs: &[f32], ys: &mut [f32], rule: R) {
        let job = Job { shift: e, ..*self };
        for (c, (xs, ys)) in xs.chunks_exact(LANES).zip(ys.chunks_exact_mut(LANES)).enumerate() {
            let xs: &[f32; LANES] = xs.try_into().expect("chunks_exact yields whole chunks");
            let ys: &mut [f32; LANES] = ys.try_into().expect("chunks_exact yields whole chunks");
            job.chunk::<true, _>(start + c * LANES, xs, ys, rule);
        }
    }

    /// One lane: plain, or moved by the block's exponent.
    #[inline(always)]
    fn lane<const SHIFTED: bool, R: LaneRule>(&self, bits: u32, rule: R, word: u32) -> (u32, bool) {
        if SHIFTED {
            round_lane_shifted(&self.c, bits, self.shift, |c, b, w| rule.lane(c, b, w), word)
        } else {
            rule.lane(&self.c, bits, word)
        }
    }

    #[inline(always)]
    fn kernel_with<const SHIFTED: bool, R: LaneRule>(&self, src: &[f32], dst: &mut [f32], rule: R) {
        let whole = src.len() / LANES * LANES;
        for (c, (xs, ys)) in src[..whole].chunks_exact(LANES).zip(dst[..whole].chunks_exact_mut(LANES)).enumerate() {
            let xs: &[f32; LANES] = xs.try_into().expect("chunks_exact yields whole chunks");
            let ys: &mut [f32; LANES] = ys.try_into().expect("chunks_exact yields whole chunks");
            self.chunk::<SHIFTED, _>(c * LANES, xs, ys, rule);
        }
        // The tail, padded to a whole chunk with zeros (which round to themselves).
        let tail = src.len() - whole;
        if tail > 0 {
            let (mut xs, mut ys) = ([0f32; LANES], [0f32; LANES]);
            xs[..tail].copy_from_slice(&src[whole..]);
            self.chunk::<SHIFTED, _>(whole, &xs, &mut ys, rule);
            dst[whole..].copy_from_slice(&ys[..tail]);
        }
    }

    /// Rounds the `LANES` elements from index `start` (relative to `base`): one straight loop
    /// over fixed-size arrays, which vectorises; lanes that need the exact path are redone.
    /// A chunk whose elements all lie on the bit grid (finite, at least the spacing below the
    /// normal range) takes the rule's grid lane.
    #[inline(always)]
    fn chunk<const SHIFTED: bool, R: LaneRule>(&self, start: usize, xs: &[f32; LANES], ys: &mut [f32; LANES], rule: R) {
        let words = self.chunk_words(self.base + start as u64);
        if !SHIFTED && R::GRID {
            let mut on_grid = true;
            for x in xs {
                let abs = x.to_bits() & 0x7FFF_FFFF;
                on_grid &= abs >= self.c.grid_min && abs < 0x7F80_0000;
            }
            if on_grid {
                for j in 0..LANES {
                    ys[j] = f32::from_bits(rule.grid(&self.c, xs[j].to_bits(), words[j]));
                }
                return;
            }
        }
        let mut any_exact = false;
        for j in 0..LANES {
            let (bits, exact) = self.lane::<SHIFTED, _>(xs[j].to_bits(), rule, words[j]);
            ys[j] = f32::from_bits(bits);
            any_exact |= exact;
        }
        if any_exact {
            let f = FloatFormat { bias: self.f.bias - self.shift, ..self.f };
            for j in 0..LANES {
                if self.lane::<SHIFTED, _>(xs[j].to_bits(), rule, words[j]).1 {
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

/// [`round_lane`] for a finite element of magnitude at least `grid_min`: the dropped bits,
/// 23 − M in the normal range and low_grid − (f32 exponent field) ≤ 23 below it (the larger
/// of the two with subnormals; without them only normal magnitudes are at least
/// `grid_min`), are the whole fraction, so the decision never needs the exact path.
#[inline(always)]
fn round_lane_grid<D: Fn(u32, bool, bool, u32) -> (bool, bool)>(c: &Consts, bits: u32, decide: D, word: u32) -> u32 {
    let sign = bits & 0x8000_0000;
    let abs = bits & 0x7FFF_FFFF;
    let drop = (c.drop_normal as i32).max(c.grid_low - (abs >> 23) as i32) as u32;
    let one = 1u32 << drop;
    let rem = abs & (one - 1);
    let (away, _) = decide(rem << (32 - drop), false, sign != 0, word);
    let mag = abs - rem + if away { one } else { 0 };
    let ovf = if sign != 0 { c.overflow_neg } else { c.overflow_pos };
    sign | if mag > c.max_bits { ovf } else { mag }
}

/// Rounds one element given as f32 bits by `decide`. Returns (result bits, needs the exact
/// path).
///
/// The grid spacing is 2^(drop) f32 ulps of the element (`drop` = 23 − M in the format's
/// normal range, more below it). Up to 23 dropped bits the grid points are the f32 values
/// whose low `drop` bits are zero, so rounding is integer arithmetic on the bits (a carry
/// into the exponent field is the next binade; f32 subnormals are linear too); from 24 on
/// the magnitude is below the spacing, and the result is 0 or the spacing itself.
#[inline(always)]
fn round_lane<D: Fn(u32, bool, bool, u32) -> (bool, bool)>(c: &Consts, bits: u32, decide: D, word: u32) -> (u32, bool) {
    let sign = bits & 0x8000_0000;
    let negative = sign != 0;
    let abs = bits & 0x7FFF_FFFF;
    let e32 = abs >> 23;
    let sig = (abs & 0x007F_FFFF) | if e32 != 0 { 0x0080_0000 } else { 0 };
    let drop = if e32 < c.e_norm { (c.low_grid - e32.max(1) as i32) as u32 } else { c.drop_normal };
    // The fraction sig / 2^drop: its first 32 bits, and whether any bit follows them.
    let beyond = drop.saturating_sub(32).min(31);
    let (frac32, sticky) = if drop <= 32 {
        (sig << ((32 - drop) & 31), false)
    } else {
        let f = sig >> beyond;
        (f, (f << beyond) != sig)
    };
    let (away, exact) = decide(frac32, sticky, negative, word);
    let one = 1u32 << drop.min(31);
    let mag = if drop <= 23 {
        (abs & !(one - 1)) + if away { one } else { 0 }
    } else if away {
        c.low_one
    } else {
        0
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
            // Below the spacing: its half (a tie) and neighbours, in chunks of their own.
            let half = f.min_positive() as f32 / 2.0;
            inputs.resize(inputs.len().next_multiple_of(LANES), 1.0);
            for x in [half, half.next_up(), half.next_down(), half / 2.0, half * 1.5, 0.0, 1e-45, half * 2.0] {
                inputs.extend([x, -x]);
            }
            // The same inputs without those off the bit grid, so that whole chunks take the
            // grid lane (ties, neighbours of every value, the grid's least value, overflow).
            let grid_min = Consts::new(f, Rounding::Nearest).grid_min;
            let on_grid: Vec<f32> = inputs.iter().copied().filter(|x| x.is_finite() && x.to_bits() & 0x7FFF_FFFF >= grid_min).collect();
            assert!(on_grid.len() > inputs.len() / 2, "{f}: most inputs are on the grid");
            inputs.extend(on_grid);
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
