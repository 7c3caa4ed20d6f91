//! Inline rounding: Cranelift code that rounds one exact value to an element-wise format with
//! a rounding mode, specialised to both at compile time, plus the exact-arithmetic helpers
//! that produce such values (TwoSum, remainders) and the counter-based random words.
//!
//! **The rounding input** is an `f64` that carries every bit the rounding needs:
//! - either the exact value (a product of two f32 values, an f32, an index, a libm result),
//! - or the exact value *rounded to odd* to 53 bits (sums, quotients, square roots): the
//!   value truncated toward zero to 53 bits with the last bit set when anything was cut.
//!   For a target of precision `p` bits (at the value's binade), rounding the odd-rounded
//!   value gives the same result as rounding the exact value in every deterministic mode
//!   when `p + 2 ≤ 53` (Boldo–Melquiond): the bits down to position `p + 1` are the exact
//!   ones and the sticky bit below them is set exactly when the exact value has more.
//!   `stochastic:R` reads the `R` bits after the kept ones (`p + R ≤ 52` keeps them exact),
//!   `stochastic-unbiased:R` one more; [`odd_rounding_is_exact`] checks this per op. Exact
//!   `stochastic` needs every bit of the fraction: those roundings call the runtime
//!   (`exact_call`).
//!   E8M0 rounds through a float format with no mantissa bits (`E8M0_MAGNITUDES`).
//!
//! The f64 never overflows or meets f64 subnormals on these inputs (every value is an f32
//! value, products are within 2^±298), except for libm results, which the code handles too.
//!
//! **The rounding itself** follows `FloatFormat::round` and `fixed::round_to_grid`: the
//! magnitude `sig·2^lsb` lies in `[k·2^s, (k+1)·2^s)` for the grid exponent `s` of the format
//! at that binade; `frac` is the exact position in the gap as a 64-bit fixed-point fraction;
//! the mode decides `k` or `k+1` exactly as `Rounding::away_from_zero`; then overflow,
//! sign, signed zero and NaN as the format says. All of it is branch-free integer code.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use qc_runtime::numerics::fixed::fixed_range;
use qc_runtime::numerics::scaled::int_range;
use qc_runtime::numerics::{FloatFormat, Format, Rounding, Specials};

/// Where the rounding grid of a format lies.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    Float(FloatFormat),
    /// A uniform grid `2^s` saturating into `[lo, hi]` (fixed point, unscaled integers); the
    /// result has no negative zero.
    Grid { s: i32, lo: f64, hi: f64, precision: u32 },
    /// E8M0: NaN for zero, negative and NaN inputs; otherwise the input raised to at least
    /// 2^-127 and rounded to [`E8M0_MAGNITUDES`].
    E8m0,
}

/// E8M0's positive values 2^-127 ..= 2^127 as a float format with no mantissa bits: every
/// exponent field a value (bias 128), saturating. Its gap `[2^e, 2^(e+1)]` has `k = 1`, so
/// ties go up, as spec/numerics.md §3.5 says; inputs below 2^-127 never reach it.
const E8M0_MAGNITUDES: FloatFormat = FloatFormat { exp_bits: 8, man_bits: 0, bias: 128, subnormals: false, specials: Specials::None, saturate: true };

impl Target {
    /// The target of an element-wise format, or why the JIT cannot round to it.
    pub(super) fn of(format: &Format) -> Result<Target, String> {
        match format {
            Format::Float { format, .. } => Ok(Target::Float(*format)),
            Format::Fixed(f) => {
                let (lo, max) = fixed_range(f);
                // The largest f32 not above the maximum, as `Format::quantize` delivers.
                let mut hi32 = max as f32;
                if hi32 as f64 > max {
                    hi32 = f32::from_bits(hi32.to_bits() - 1);
                }
                Ok(Target::Grid { s: -(f.frac_bits as i32), lo, hi: hi32 as f64, precision: f.int_bits + f.frac_bits })
            }
            Format::Int(i) if i.unscaled => {
                let (lo, hi) = int_range(i);
                Ok(Target::Grid { s: 0, lo: lo as f64, hi: hi as f64, precision: i.bits })
            }
            Format::E8m0 => Ok(Target::E8m0),
            other => Err(format!("the JIT cannot round a scalar to `{other}`")),
        }
    }

    /// The significant bits a value of the format has at most.
    fn precision(&self) -> u32 {
        match self {
            Target::Float(f) => f.man_bits + 1,
            Target::Grid { precision, .. } => *precision,
            Target::E8m0 => 1,
        }
    }

    /// Whether this is IEEE binary32 itself (so `nearest` is the hardware's f32 rounding).
    pub(super) fn is_binary32(&self) -> bool {
        matches!(self, Target::Float(f) if *f == FloatFormat::ieee(8, 23))
    }
}

/// Whether rounding an odd-rounded (53-bit) value to `target` with `mode` gives the rounding
/// of the exact value (module doc); the rest goes through `exact_call`.
pub(super) fn odd_rounding_is_exact(target: &Target, mode: Rounding) -> bool {
    let p = target.precision();
    let needed = match mode {
        Rounding::Stochastic => return false,
        Rounding::StochasticBits(r) => p + r,
        Rounding::StochasticUnbiased(r) => p + r + 1,
        _ => p + 1,
    };
    needed <= 52
}

/// Emits code into a function under construction; `keys` holds, per random stream, the
/// value (loaded once at entry) of its key `k0 | k1 << 32` for the run's seed.
pub(super) struct Emit<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub keys: std::collections::HashMap<u64, Value>,
}

const SIGN64: i64 = i64::MIN;
const INF64: i64 = 0x7ff0_0000_0000_0000;

impl Emit<'_, '_> {
    pub fn i64c(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }
    pub fn f64c(&mut self, v: f64) -> Value {
        self.b.ins().f64const(v)
    }
    fn bits(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(types::I64, MemFlagsData::new(), x)
    }
    fn float(&mut self, bits: Value) -> Value {
        self.b.ins().bitcast(types::F64, MemFlagsData::new(), bits)
    }

    /// Random word `j` of `RandomStream::new(seed, stream)` at index `draw` (an i64), inline:
    /// `hash32(hash32(lo ^ k0 ^ j·φ32) ^ hi ^ k1)`.
    pub fn random_word(&mut self, stream: u64, draw: Value, j: u32) -> Value {
        let key = *self.keys.get(&stream).expect("the kernel's streams are loaded at entry");
        let k0 = self.b.ins().ireduce(types::I32, key);
        let k1_64 = self.b.ins().ushr_imm_s(key, 32);
        let k1 = self.b.ins().ireduce(types::I32, k1_64);
        let lo = self.b.ins().ireduce(types::I32, draw);
        let hi64 = self.b.ins().ushr_imm_s(draw, 32);
        let hi = self.b.ins().ireduce(types::I32, hi64);
        let x = self.b.ins().bxor(lo, k0);
        let x = self.b.ins().bxor_imm_s(x, j.wrapping_mul(0x9E37_79B9) as i32 as i64);
        let h = self.hash32(x);
        let y = self.b.ins().bxor(h, hi);
        let y = self.b.ins().bxor(y, k1);
        self.hash32(y)
    }

    fn hash32(&mut self, x: Value) -> Value {
        let b = &mut *self.b;
        let s = b.ins().ushr_imm_s(x, 16);
        let x = b.ins().bxor(x, s);
        let x = b.ins().imul_imm_s(x, 0x7FEB_352D);
        let s = b.ins().ushr_imm_s(x, 15);
        let x = b.ins().bxor(x, s);
        let x = b.ins().imul_imm_s(x, 0x846C_A68B_u32 as i32 as i64);
        let s = b.ins().ushr_imm_s(x, 16);
        b.ins().bxor(x, s)
    }

    /// `a + b` (f64 values) rounded to odd: TwoSum, then the last bit set toward the error.
    pub fn sum_to_odd(&mut self, a: Value, b: Value) -> Value {
        let s = self.b.ins().fadd(a, b);
        let bb = self.b.ins().fsub(s, a);
        let t = self.b.ins().fsub(s, bb);
        let da = self.b.ins().fsub(a, t);
        let db = self.b.ins().fsub(b, bb);
        let err = self.b.ins().fadd(da, db);
        let zero = self.f64c(0.0);
        let inexact = self.b.ins().fcmp(FloatCC::OrderedNotEqual, err, zero);
        let sb = self.bits(s);
        let eb = self.bits(err);
        let x = self.b.ins().bxor(sb, eb);
        let away = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, x, 0);
        self.make_odd(s, inexact, away)
    }

    /// `a / b` rounded to odd: the f64 quotient, moved by the sign of `q·b − a`.
    pub fn div_to_odd(&mut self, a: Value, b: Value) -> Value {
        let q = self.b.ins().fdiv(a, b);
        let na = self.b.ins().fneg(a);
        let r = self.b.ins().fma(q, b, na);
        let zero = self.f64c(0.0);
        let inexact = self.b.ins().fcmp(FloatCC::OrderedNotEqual, r, zero);
        // true − q = −r/b is negative iff sign(r) = sign(b); |true| > |q| (away from zero)
        // iff sign(true − q) = sign(q).
        let rb = self.bits(r);
        let bb = self.bits(b);
        let qb = self.bits(q);
        let dev_neg = self.b.ins().bxor(rb, bb); // sign bit clear ⇔ deviation negative
        let dev_neg = self.b.ins().bnot(dev_neg);
        let x = self.b.ins().bxor(dev_neg, qb);
        let away = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, x, 0);
        self.make_odd(q, inexact, away)
    }

    /// `√x` rounded to odd: the f64 root, moved by the sign of `s² − x`.
    pub fn sqrt_to_odd(&mut self, x: Value) -> Value {
        let s = self.b.ins().sqrt(x);
        let nx = self.b.ins().fneg(x);
        let r = self.b.ins().fma(s, s, nx);
        let zero = self.f64c(0.0);
        let inexact = self.b.ins().fcmp(FloatCC::OrderedNotEqual, r, zero);
        let away = self.b.ins().fcmp(FloatCC::LessThan, r, zero);
        self.make_odd(s, inexact, away)
    }

    /// `s` with its last bit made odd toward the exact value when `inexact`: one step away
    /// from zero (`away`) or toward it. An odd `s` is already the odd rounding.
    fn make_odd(&mut self, s: Value, inexact: Value, away: Value) -> Value {
        let sb = self.bits(s);
        let low = self.b.ins().band_imm_s(sb, 1);
        let even = self.b.ins().icmp_imm_s(IntCC::Equal, low, 0);
        let fix = self.b.ins().band(inexact, even);
        let up = self.b.ins().iadd_imm_s(sb, 1);
        let down = self.b.ins().iadd_imm_s(sb, -1);
        let moved = self.b.ins().select(away, up, down);
        let r = self.b.ins().select(fix, moved, sb);
        self.float(r)
    }

    /// Rounds the f64 `x` (exact or odd-rounded, module doc) to `target` by `mode`, drawing
    /// from `stream` at `draw` when stochastic; returns the f32 value.
    pub fn round(&mut self, x: Value, target: &Target, mode: Rounding, stream: u64, draw: Option<Value>) -> Value {
        if let Target::E8m0 = target {
            return self.round_e8m0(x, mode, stream, draw);
        }
        if let (Target::Float(f), Rounding::Nearest) = (target, mode) {
            if target.is_binary32() {
                // IEEE 754 conversion rounds to nearest even, with subnormals, overflow to ∞
                // and NaN kept; an odd-rounded x has 29 more bits than binary32.
                return self.b.ins().fdemote(types::F32, x);
            }
            if f.subnormals {
                return self.round_nearest_with_subnormals(x, f);
            }
        }
        let bits = self.bits(x);
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, bits, 0);
        let abits = self.b.ins().band_imm_s(bits, i64::MAX);
        let bexp = self.b.ins().ushr_imm_s(abits, 52);
        let mant = self.b.ins().band_imm_s(abits, (1i64 << 52) - 1);
        let normal = self.b.ins().icmp_imm_s(IntCC::NotEqual, bexp, 0);
        let implicit = self.i64c(1 << 52);
        let zero = self.i64c(0);
        let implicit = self.b.ins().select(normal, implicit, zero);
        let sig = self.b.ins().bor(mant, implicit);
        let one = self.i64c(1);
        let bexp1 = self.b.ins().smax(bexp, one);
        let lsb = self.b.ins().iadd_imm_s(bexp1, -1075);
        let e = self.b.ins().iadd_imm_s(bexp, -1023);
        let s = match target {
            Target::Float(f) if f.subnormals => {
                let emin = self.i64c(f.emin() as i64);
                let top = self.b.ins().smax(e, emin);
                self.b.ins().iadd_imm_s(top, -(f.man_bits as i64))
            }
            Target::Float(f) => {
                let below = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, e, f.emin() as i64);
                let emin = self.i64c(f.emin() as i64);
                let normal_s = self.b.ins().iadd_imm_s(e, -(f.man_bits as i64));
                self.b.ins().select(below, emin, normal_s)
            }
            Target::Grid { s, .. } => self.i64c(*s as i64),
            Target::E8m0 => unreachable!("E8M0 rounds through E8M0_MAGNITUDES"),
        };
        let drop = self.b.ins().isub(s, lsb);
        // frac: the bits of sig below 2^drop as a 64-bit fraction — exact for drop ≤ 64; for
        // larger drops (the value is below 2^-11 of the gap) the first 64 bits with the last
        // one or-ed with the bits cut, which settles every deterministic and `stochastic:R`
        // decision; exact `stochastic` then compares 64 random bits (the reference compares
        // further words only when all 64 equal the fraction's).
        let c64 = self.i64c(64);
        let left = self.b.ins().isub(c64, drop);
        let left = self.b.ins().band_imm_s(left, 63);
        let f_small = self.b.ins().ishl(sig, left);
        let over = self.b.ins().iadd_imm_s(drop, -64);
        let c63 = self.i64c(63);
        let over = self.b.ins().umin(over, c63);
        let f_big = self.b.ins().ushr(sig, over);
        let one = self.i64c(1);
        let low_mask = self.b.ins().ishl(one, over);
        let low_mask = self.b.ins().iadd_imm_s(low_mask, -1);
        let lost = self.b.ins().band(sig, low_mask);
        let sticky = self.b.ins().icmp_imm_s(IntCC::NotEqual, lost, 0);
        let sticky = self.b.ins().uextend(types::I64, sticky);
        let f_big = self.b.ins().bor(f_big, sticky);
        let le64 = self.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, drop, 64);
        let frac = self.b.ins().select(le64, f_small, f_big);
        let lt64 = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, drop, 64);
        let shifted = self.b.ins().ushr(sig, drop);
        let k = self.b.ins().select(lt64, shifted, zero);
        let away = self.away(mode, frac, k, neg, stream, draw);
        let away = self.b.ins().uextend(types::I64, away);
        let kk = self.b.ins().iadd(k, away);
        // kk ≤ 2^53 + 1, so the signed conversion (one instruction on x86) is exact.
        let kf = self.b.ins().fcvt_from_sint(types::F64, kk);
        let biased = self.b.ins().iadd_imm_s(s, 1023);
        let p2 = self.b.ins().ishl_imm_s(biased, 52);
        let p2 = self.float(p2);
        let mut mag = self.b.ins().fmul(kf, p2);
        let is_nan = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, abits, INF64);
        let is_inf = self.b.ins().icmp_imm_s(IntCC::Equal, abits, INF64);
        let is_zero = self.b.ins().icmp_imm_s(IntCC::Equal, abits, 0);
        let result = match target {
            Target::Float(f) => {
                let max = f.max();
                let big = self.f64c(max);
                let ovf = self.b.ins().fcmp(FloatCC::GreaterThan, mag, big);
                let (pos, negv) = (overflow(f, false, mode), overflow(f, true, mode));
                let pos = self.f64c(pos);
                let negv = self.f64c(negv);
                let ovf_mag = self.b.ins().select(neg, negv, pos);
                mag = self.b.ins().select(ovf, ovf_mag, mag);
                let negated = self.b.ins().fneg(mag);
                let signed = if f.has_negative_zero() {
                    self.b.ins().select(neg, negated, mag)
                } else {
                    let z = self.f64c(0.0);
                    let nonzero = self.b.ins().fcmp(FloatCC::NotEqual, mag, z);
                    let apply = self.b.ins().band(neg, nonzero);
                    self.b.ins().select(apply, negated, mag)
                };
                // Specials: ±∞ (∞ or ±max), zeros (−0 only with a negative zero), NaN (the
                // canonical quiet NaN with x's sign).
                let inf_mag = self.f64c(if f.has_inf() { f64::INFINITY } else { max });
                let inf_neg = self.b.ins().fneg(inf_mag);
                let inf = self.b.ins().select(neg, inf_neg, inf_mag);
                let zero_v = if f.has_negative_zero() { x } else { self.f64c(0.0) };
                let sign = self.b.ins().band_imm_s(bits, SIGN64);
                let nan = self.b.ins().bor_imm_s(sign, 0x7ff8_0000_0000_0000);
                let nan = self.float(nan);
                let r = self.b.ins().select(is_zero, zero_v, signed);
                let r = self.b.ins().select(is_inf, inf, r);
                self.b.ins().select(is_nan, nan, r)
            }
            Target::Grid { lo, hi, .. } => {
                // A value already on the grid (drop ≤ 0) is kept.
                let coarse = self.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, drop, 0);
                let ax = self.b.ins().fabs(x);
                mag = self.b.ins().select(coarse, ax, mag);
                let negated = self.b.ins().fneg(mag);
                let signed = self.b.ins().select(neg, negated, mag);
                let special = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, abits, INF64);
                let keep = self.b.ins().bor(special, is_zero);
                let r = self.b.ins().select(keep, x, signed);
                let hi = self.f64c(*hi);
                let lo = self.f64c(*lo);
                let r = self.b.ins().fmin(r, hi);
                let r = self.b.ins().fmax(r, lo);
                let z = self.f64c(0.0);
                self.b.ins().fadd(r, z)
            }
            Target::E8m0 => unreachable!("E8M0 rounds through E8M0_MAGNITUDES"),
        };
        self.b.ins().fdemote(types::F32, result)
    }

    /// [`Emit::round`] to E8M0 (spec/numerics.md §3.5): zero, negative and NaN inputs give
    /// NaN; the rest is raised to at least 2^-127 (which every input below it becomes, in
    /// every mode; an odd-rounded input is below 2^-127 exactly when the exact one is) and
    /// rounded to [`E8M0_MAGNITUDES`], which saturates at 2^127.
    fn round_e8m0(&mut self, x: Value, mode: Rounding, stream: u64, draw: Option<Value>) -> Value {
        let zero = self.f64c(0.0);
        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
        let least = self.f64c(2f64.powi(-127));
        let small = self.b.ins().fcmp(FloatCC::LessThan, x, least);
        let raised = self.b.ins().select(small, least, x);
        let rounded = self.round(raised, &Target::Float(E8M0_MAGNITUDES), mode, stream, draw);
        let nan = self.b.ins().f32const(f32::NAN);
        self.b.ins().select(positive, rounded, nan)
    }

    /// [`Emit::round`] for `nearest` to a float format with subnormals, by floating-point
    /// addition instead of integer field surgery. With `u` the exponent of the format's spacing
    /// at x (`max(e, emin) − man_bits`, e the exponent of x), `C = 1.5·2^(u+52)` is a multiple
    /// of `2^u` and `x + C` lies in C's binade, whose f64 spacing is `2^u`: the f64 addition
    /// (ties to even) rounds x to the nearest multiple of `2^u`, ties to even — the format's
    /// rounding without an exponent bound — and `− C` is exact. x is exact or rounded to odd
    /// with at least two more bits than the format, so this is the rounding of the exact value
    /// (module doc). The sign is x's (a rounded zero keeps it where the format has −0); a
    /// magnitude above the format's maximum overflows as `FloatFormat` says; NaN and ±∞ as in
    /// the general path.
    fn round_nearest_with_subnormals(&mut self, x: Value, f: &FloatFormat) -> Value {
        let bits = self.bits(x);
        let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, bits, 0);
        let abits = self.b.ins().band_imm_s(bits, i64::MAX);
        let bexp = self.b.ins().ushr_imm_s(abits, 52);
        let lowest = self.i64c(f.emin() as i64 + 1023);
        let top = self.b.ins().smax(bexp, lowest);
        let cexp = self.b.ins().iadd_imm_s(top, 52 - f.man_bits as i64);
        let cbits = self.b.ins().ishl_imm_s(cexp, 52);
        let cbits = self.b.ins().bor_imm_s(cbits, 1 << 51);
        let c = self.float(cbits);
        let sum = self.b.ins().fadd(x, c);
        let rounded = self.b.ins().fsub(sum, c);
        let rounded = self.b.ins().fcopysign(rounded, x);
        let rounded = if f.has_negative_zero() {
            rounded
        } else {
            let z = self.f64c(0.0);
            self.b.ins().fadd(rounded, z)
        };
        let magnitude = self.b.ins().fabs(rounded);
        let max = self.f64c(f.max());
        let ovf = self.b.ins().fcmp(FloatCC::GreaterThan, magnitude, max);
        let pos = self.f64c(overflow(f, false, Rounding::Nearest));
        let negv = self.f64c(overflow(f, true, Rounding::Nearest));
        let ovf_magnitude = self.b.ins().select(neg, negv, pos);
        let ovf_value = self.b.ins().fcopysign(ovf_magnitude, x);
        let r = self.b.ins().select(ovf, ovf_value, rounded);
        let inf_mag = self.f64c(if f.has_inf() { f64::INFINITY } else { f.max() });
        let inf_neg = self.b.ins().fneg(inf_mag);
        let inf = self.b.ins().select(neg, inf_neg, inf_mag);
        let sign = self.b.ins().band_imm_s(bits, SIGN64);
        let nan = self.b.ins().bor_imm_s(sign, 0x7ff8_0000_0000_0000);
        let nan = self.float(nan);
        let is_nan = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, abits, INF64);
        let is_inf = self.b.ins().icmp_imm_s(IntCC::Equal, abits, INF64);
        let r = self.b.ins().select(is_inf, inf, r);
        let r = self.b.ins().select(is_nan, nan, r);
        self.b.ins().fdemote(types::F32, r)
    }

    /// Whether the magnitude rounds away from zero (an i8 0/1), as
    /// `Rounding::away_from_zero` decides from the 64-bit fraction `frac`.
    fn away(&mut self, mode: Rounding, frac: Value, k: Value, neg: Value, stream: u64, draw: Option<Value>) -> Value {
        const HALF: i64 = i64::MIN; // 2^63 as the fraction 1/2
        let nonzero = |e: &mut Self| e.b.ins().icmp_imm_s(IntCC::NotEqual, frac, 0);
        match mode {
            Rounding::Nearest => {
                let gt = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, frac, HALF);
                let eq = self.b.ins().icmp_imm_s(IntCC::Equal, frac, HALF);
                let odd = self.b.ins().band_imm_s(k, 1);
                let odd = self.b.ins().icmp_imm_s(IntCC::NotEqual, odd, 0);
                let tie = self.b.ins().band(eq, odd);
                self.b.ins().bor(gt, tie)
            }
            Rounding::NearestAway => self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, frac, HALF),
            Rounding::TowardZero => self.b.ins().iconst(types::I8, 0),
            Rounding::Up => {
                let nz = nonzero(self);
                let pos = self.b.ins().bxor_imm_s(neg, 1);
                self.b.ins().band(nz, pos)
            }
            Rounding::Down => {
                let nz = nonzero(self);
                self.b.ins().band(nz, neg)
            }
            Rounding::StochasticBits(r) | Rounding::StochasticUnbiased(r) => {
                let draw = draw.expect("a stochastic rounding has a draw counter (verified)");
                let mut t = self.b.ins().ushr_imm_s(frac, (64 - r) as i64);
                if let Rounding::StochasticUnbiased(_) = mode {
                    let rest = self.b.ins().ishl_imm_s(frac, r as i64);
                    let gt = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, rest, HALF);
                    let eq = self.b.ins().icmp_imm_s(IntCC::Equal, rest, HALF);
                    let odd = self.b.ins().band_imm_s(t, 1);
                    let odd = self.b.ins().icmp_imm_s(IntCC::NotEqual, odd, 0);
                    let tie = self.b.ins().band(eq, odd);
                    let inc = self.b.ins().bor(gt, tie);
                    let inc = self.b.ins().uextend(types::I64, inc);
                    t = self.b.ins().iadd(t, inc);
                }
                let w = self.random_word(stream, draw, 0);
                let w = self.b.ins().ushr_imm_s(w, (32 - r) as i64);
                let w = self.b.ins().uextend(types::I64, w);
                let sum = self.b.ins().iadd(t, w);
                let carry = self.b.ins().ushr_imm_s(sum, r as i64);
                self.b.ins().icmp_imm_s(IntCC::NotEqual, carry, 0)
            }
            Rounding::Stochastic => {
                // u < frac with u = 0.w0 w1 ...: exact when frac has at most 64 bits.
                let draw = draw.expect("a stochastic rounding has a draw counter (verified)");
                let w0 = self.random_word(stream, draw, 0);
                let w1 = self.random_word(stream, draw, 1);
                let w0 = self.b.ins().uextend(types::I64, w0);
                let w1 = self.b.ins().uextend(types::I64, w1);
                let hi = self.b.ins().ishl_imm_s(w0, 32);
                let u = self.b.ins().bor(hi, w1);
                self.b.ins().icmp(IntCC::UnsignedLessThan, u, frac)
            }
        }
    }
}

/// The magnitude an overflowing value rounds to (`FloatFormat`'s rule).
pub(super) fn overflow(f: &FloatFormat, negative: bool, mode: Rounding) -> f64 {
    let to_inf = match mode {
        Rounding::TowardZero => false,
        Rounding::Up => !negative,
        Rounding::Down => negative,
        _ => true,
    };
    if to_inf && f.specials == Specials::Ieee && !f.saturate { f64::INFINITY } else { f.max() }
}
