//! Rounding sequences on `f32x4` lanes for the contraction code (`contract`): the exact sum
//! rounded to odd, the counter-based random words, and rounding a lane to a float format by
//! each mode, bit-exact to `FloatFormat::round`.

use super::codegen::Gen;
use super::round::{overflow, Target};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value,
};
use qc_runtime::numerics::{FloatFormat, Rounding};

pub(super) fn ivec(g: &mut Gen, v: i32) -> Value {
    let c = g.e.b.ins().iconst(types::I32, v as i64);
    g.e.b.ins().splat(types::I32X4, c)
}

pub(super) fn fvec(g: &mut Gen, v: f32) -> Value {
    let c = g.e.b.ins().f32const(v);
    g.e.b.ins().splat(types::F32X4, c)
}

pub(super) fn as_int(g: &mut Gen, x: Value) -> Value {
    g.e.b.ins().bitcast(types::I32X4, MemFlagsData::new(), x)
}

pub(super) fn as_float(g: &mut Gen, x: Value) -> Value {
    g.e.b.ins().bitcast(types::F32X4, MemFlagsData::new(), x)
}

/// TwoSum (Knuth): the f32 sums `s = RN(a + b)` and the exact errors `a + b − s` per lane
/// (+0 where the sum is exact).
fn two_sum(g: &mut Gen, a: Value, b: Value) -> (Value, Value) {
    let s = g.e.b.ins().fadd(a, b);
    let bb = g.e.b.ins().fsub(s, a);
    let t = g.e.b.ins().fsub(s, bb);
    let da = g.e.b.ins().fsub(a, t);
    let db = g.e.b.ins().fsub(b, bb);
    (s, g.e.b.ins().fadd(da, db))
}

/// `a + b` (f32x4) rounded to odd: TwoSum, then the last bit stepped toward the error.
pub(super) fn sum_to_odd(g: &mut Gen, a: Value, b: Value) -> Value {
    let (s, err) = two_sum(g, a, b);
    let sb = as_int(g, s);
    let eb = as_int(g, err);
    // err ≠ 0 and not NaN, on the bits (x86 has no vector `one`).
    let abs_mask = ivec(g, i32::MAX);
    let eabs = g.e.b.ins().band(eb, abs_mask);
    let zero_i = ivec(g, 0);
    let inf_bits = ivec(g, 0x7f80_0000);
    let nonzero = g.e.b.ins().icmp(IntCC::NotEqual, eabs, zero_i);
    let not_nan =
        g.e.b
            .ins()
            .icmp(IntCC::SignedLessThanOrEqual, eabs, inf_bits);
    let inexact = g.e.b.ins().band(nonzero, not_nan);
    let x = g.e.b.ins().bxor(sb, eb);
    let minus_one = ivec(g, -1);
    let away = g.e.b.ins().icmp(IntCC::SignedGreaterThan, x, minus_one);
    let one = ivec(g, 1);
    let low = g.e.b.ins().band(sb, one);
    let even = g.e.b.ins().icmp(IntCC::Equal, low, zero_i);
    let fix = g.e.b.ins().band(inexact, even);
    let delta = g.e.b.ins().bitselect(away, one, minus_one);
    let delta = g.e.b.ins().band(fix, delta);
    let r = g.e.b.ins().iadd(sb, delta);
    as_float(g, r)
}

/// `hash32` of `RandomStream` in four lanes.
fn hash32(g: &mut Gen, x: Value) -> Value {
    let m1 = ivec(g, 0x7FEB_352D);
    let m2 = ivec(g, 0x846C_A68B_u32 as i32);
    let b = &mut *g.e.b;
    let s = b.ins().ushr_imm_s(x, 16);
    let x = b.ins().bxor(x, s);
    let x = b.ins().imul(x, m1);
    let s = b.ins().ushr_imm_s(x, 15);
    let x = b.ins().bxor(x, s);
    let x = b.ins().imul(x, m2);
    let s = b.ins().ushr_imm_s(x, 16);
    b.ins().bxor(x, s)
}

/// Four lanes' draw counters as `i32x4` halves; `high: None` where every counter of the
/// kernel is below 2^32 (its high halves are zero).
#[derive(Clone, Copy)]
pub(super) struct DrawCounters {
    pub low: Value,
    pub high: Option<Value>,
}

/// Where a step's random words come from: its draw counters (hashed where used) or words
/// already drawn and stored at `address + offset`.
#[derive(Clone, Copy)]
pub(super) enum Draw {
    Counters(DrawCounters),
    Stored { address: Value, offset: i32 },
}

impl Draw {
    /// Random word 0 of `stream` for the four lanes; a stored word is loaded here, where it
    /// is used, so that the load folds into its first use.
    pub(super) fn word(self, g: &mut Gen, stream: u64) -> Value {
        match self {
            Draw::Counters(counters) => random_word(g, stream, counters),
            Draw::Stored { address, offset } => {
                g.e.b
                    .ins()
                    .load(types::I32X4, MemFlagsData::trusted(), address, offset)
            }
        }
    }
}

/// Random word 0 of `stream` at the four draw counters (`Emit::random_word` per lane).
pub(super) fn random_word(g: &mut Gen, stream: u64, counters: DrawCounters) -> Value {
    let key =
        *g.e.keys
            .get(&stream)
            .expect("the kernel's streams are loaded at entry");
    let k0 = g.e.b.ins().ireduce(types::I32, key);
    let k1 = g.e.b.ins().ushr_imm_s(key, 32);
    let k1 = g.e.b.ins().ireduce(types::I32, k1);
    let k0 = g.e.b.ins().splat(types::I32X4, k0);
    let k1 = g.e.b.ins().splat(types::I32X4, k1);
    let x = g.e.b.ins().bxor(counters.low, k0);
    let h = hash32(g, x);
    let y = match counters.high {
        Some(high) => g.e.b.ins().bxor(h, high),
        None => h,
    };
    let y = g.e.b.ins().bxor(y, k1);
    hash32(g, y)
}

/// `(v + C) − C` of [`round_nearest_with_subnormals`]: the rounded bits, and the same with
/// `sign` (v's sign bits) restored where the format has −0.
fn nearest_by_magic_constant(
    g: &mut Gen,
    v: Value,
    sign: Value,
    f: &FloatFormat,
) -> (Value, Value) {
    let bits = as_int(g, v);
    let exponent_mask = ivec(g, 0x7f80_0000);
    let exponent = g.e.b.ins().band(bits, exponent_mask);
    let smallest = ivec(g, (f.emin() + 127) << 23);
    let exponent = g.e.b.ins().smax(exponent, smallest);
    let shift = ivec(g, ((23 - f.man_bits as i32) << 23) + (1 << 22));
    let cbits = g.e.b.ins().iadd(exponent, shift);
    let c = as_float(g, cbits);
    let sum = g.e.b.ins().fadd(v, c);
    let r = g.e.b.ins().fsub(sum, c);
    let rbits = as_int(g, r);
    let signed = if f.has_negative_zero() {
        g.e.b.ins().bor(rbits, sign)
    } else {
        rbits
    };
    (rbits, signed)
}

/// `nearest` rounding of `v` to `f` in its range (smallest normal exponent at least −126) by
/// the magic constant alone, a zero's sign not restored: for sums that are never −0 and
/// never round to it (`contract::RangeGuard::positive_zero`).
pub(super) fn nearest_without_zero_sign(g: &mut Gen, v: Value, f: &FloatFormat) -> Value {
    let unused_sign = ivec(g, 0);
    let (rbits, _) = nearest_by_magic_constant(g, v, unused_sign, f);
    as_float(g, rbits)
}

/// Rounds `v` (f32x4) to the float format `f`, which has subnormals and a smallest normal
/// exponent of at least −126, to nearest (ties to even), as `FloatFormat::round`:
/// `(v + C) − C` with `C = 1.5·2^(s+23)`, `2^s` the format's spacing at v's binade (`C`'s
/// exponent field is v's, at least the format's smallest normal one, plus `23 − man`; `C` is
/// finite for the finite `v` of a contraction, which are below 2^101). The sum's sign stays
/// on a nonzero result and is restored on a zero where the format has −0; overflow, ±∞ and
/// NaN as the format says.
pub(super) fn round_nearest_with_subnormals(g: &mut Gen, v: Value, f: &FloatFormat) -> Value {
    let bits = as_int(g, v);
    let sign_mask = ivec(g, i32::MIN);
    let sign = g.e.b.ins().band(bits, sign_mask);
    let (rbits, signed) = nearest_by_magic_constant(g, v, sign, f);
    let abs_mask = ivec(g, i32::MAX);
    let magnitude = g.e.b.ins().band(rbits, abs_mask);
    let magnitude = as_float(g, magnitude);
    let max = fvec(g, f.max() as f32);
    let ovf = g.e.b.ins().fcmp(FloatCC::GreaterThan, magnitude, max);
    let ovf_magnitude = ivec(
        g,
        (overflow(f, false, Rounding::Nearest) as f32).to_bits() as i32,
    );
    let ovf_value = g.e.b.ins().bor(sign, ovf_magnitude);
    let mut result = g.e.b.ins().bitselect(ovf, ovf_value, signed);
    // ±∞ overflows above, to the right value unless the format keeps ∞ but saturates.
    let inf_magnitude = if f.has_inf() {
        f32::INFINITY
    } else {
        f.max() as f32
    };
    if inf_magnitude != overflow(f, false, Rounding::Nearest) as f32 {
        let abits = g.e.b.ins().band(bits, abs_mask);
        let inf_bits = ivec(g, 0x7f80_0000);
        let is_inf = g.e.b.ins().icmp(IntCC::Equal, abits, inf_bits);
        let inf_magnitude = ivec(g, inf_magnitude.to_bits() as i32);
        let inf = g.e.b.ins().bor(sign, inf_magnitude);
        result = g.e.b.ins().bitselect(is_inf, inf, result);
    }
    let is_nan = g.e.b.ins().fcmp(FloatCC::Unordered, v, v);
    let qnan = ivec(g, 0x7fc0_0000);
    let nan = g.e.b.ins().bor(sign, qnan);
    let result = g.e.b.ins().bitselect(is_nan, nan, result);
    as_float(g, result)
}

/// Rounds `v` (f32x4, each lane exact or rounded to odd with two bits to spare) to `f` by
/// `mode` (`random`: the lanes' random words for stochastic modes), as `FloatFormat::round`.
pub(super) fn round(
    g: &mut Gen,
    v: Value,
    f: &FloatFormat,
    mode: Rounding,
    random: Option<Value>,
) -> Value {
    let bits = as_int(g, v);
    let sign_mask = ivec(g, i32::MIN);
    let sign = g.e.b.ins().band(bits, sign_mask);
    let abs_mask = ivec(g, i32::MAX);
    let abits = g.e.b.ins().band(bits, abs_mask);
    let bexp = g.e.b.ins().ushr_imm_s(abits, 23);
    let bias = ivec(g, -127);
    let e = g.e.b.ins().iadd(bexp, bias);
    let emin = ivec(g, f.emin());
    let man = ivec(g, -(f.man_bits as i32));
    // s: the exponent of the format's spacing at each lane's binade.
    let s = if f.subnormals {
        let top = g.e.b.ins().smax(e, emin);
        g.e.b.ins().iadd(top, man)
    } else {
        let below = g.e.b.ins().icmp(IntCC::SignedLessThan, e, emin);
        let normal = g.e.b.ins().iadd(e, man);
        g.e.b.ins().bitselect(below, emin, normal)
    };
    let negative = g.e.b.ins().sshr_imm_s(bits, 31);
    let max = fvec(g, f.max() as f32);
    let magnitude = if mode == Rounding::Nearest {
        // (v + C) − C with C = 1.5·2^(s+23) rounds to a multiple of 2^s, ties to even.
        let c150 = ivec(g, 150);
        let cexp = g.e.b.ins().iadd(s, c150);
        let cbits = g.e.b.ins().ishl_imm_s(cexp, 23);
        let half = ivec(g, 1 << 22);
        let cbits = g.e.b.ins().bor(cbits, half);
        let c = as_float(g, cbits);
        let sum = g.e.b.ins().fadd(v, c);
        let r = g.e.b.ins().fsub(sum, c);
        let rb = as_int(g, r);
        g.e.b.ins().band(rb, abs_mask)
    } else {
        let c127 = ivec(g, 127);
        let up = g.e.b.ins().iadd(s, c127);
        let q = g.e.b.ins().ishl_imm_s(up, 23);
        let q = as_float(g, q);
        let down = g.e.b.ins().isub(c127, s);
        let qinv = g.e.b.ins().ishl_imm_s(down, 23);
        let qinv = as_float(g, qinv);
        let av = as_float(g, abits);
        let y = g.e.b.ins().fmul(av, qinv);
        let k = g.e.b.ins().trunc(y);
        let frac = g.e.b.ins().fsub(y, k);
        let zero = fvec(g, 0.0);
        let half = fvec(g, 0.5);
        let away = match mode {
            Rounding::TowardZero => ivec(g, 0),
            Rounding::NearestAway => g.e.b.ins().fcmp(FloatCC::GreaterThanOrEqual, frac, half),
            Rounding::Up | Rounding::Down => {
                let nz = g.e.b.ins().fcmp(FloatCC::GreaterThan, frac, zero);
                let side = if mode == Rounding::Down {
                    negative
                } else {
                    g.e.b.ins().bnot(negative)
                };
                g.e.b.ins().band(nz, side)
            }
            Rounding::StochasticBits(r) | Rounding::StochasticUnbiased(r) => {
                let scale = fvec(g, (1u64 << r) as f32);
                let fr = g.e.b.ins().fmul(frac, scale);
                let mut t = g.e.b.ins().trunc(fr);
                if let Rounding::StochasticUnbiased(_) = mode {
                    let rest = g.e.b.ins().fsub(fr, t);
                    let ti = g.e.b.ins().fcvt_to_sint_sat(types::I32X4, t);
                    let one = ivec(g, 1);
                    let odd = g.e.b.ins().band(ti, one);
                    let zero_i = ivec(g, 0);
                    let odd = g.e.b.ins().icmp(IntCC::NotEqual, odd, zero_i);
                    let gt = g.e.b.ins().fcmp(FloatCC::GreaterThan, rest, half);
                    let eq = g.e.b.ins().fcmp(FloatCC::Equal, rest, half);
                    let tie = g.e.b.ins().band(eq, odd);
                    let inc = g.e.b.ins().bor(gt, tie);
                    let onef = ivec(g, 1f32.to_bits() as i32);
                    let inc = g.e.b.ins().band(inc, onef);
                    let inc = as_float(g, inc);
                    t = g.e.b.ins().fadd(t, inc);
                }
                let w = random.expect("a stochastic rounding has a draw counter (verified)");
                let w = g.e.b.ins().ushr_imm_s(w, (32 - r) as i64);
                let wf = g.e.b.ins().fcvt_from_sint(types::F32X4, w);
                let total = g.e.b.ins().fadd(t, wf);
                g.e.b.ins().fcmp(FloatCC::GreaterThanOrEqual, total, scale)
            }
            _ => unreachable!("modes are checked by `step_of`"),
        };
        let onef = ivec(g, 1f32.to_bits() as i32);
        let inc = g.e.b.ins().band(away, onef);
        let inc = as_float(g, inc);
        let kk = g.e.b.ins().fadd(k, inc);
        let m = g.e.b.ins().fmul(kk, q);
        as_int(g, m)
    };
    // Overflow, sign, specials.
    let mf = as_float(g, magnitude);
    let ovf = g.e.b.ins().fcmp(FloatCC::GreaterThan, mf, max);
    let pos = ivec(g, (overflow(f, false, mode) as f32).to_bits() as i32);
    let neg = ivec(g, (overflow(f, true, mode) as f32).to_bits() as i32);
    let ovf_bits = g.e.b.ins().bitselect(negative, neg, pos);
    let magnitude = g.e.b.ins().bitselect(ovf, ovf_bits, magnitude);
    let result = if f.has_negative_zero() {
        g.e.b.ins().bor(magnitude, sign)
    } else {
        let zero_i = ivec(g, 0);
        let nonzero = g.e.b.ins().icmp(IntCC::NotEqual, magnitude, zero_i);
        let s = g.e.b.ins().band(sign, nonzero);
        g.e.b.ins().bor(magnitude, s)
    };
    let inf_bits = ivec(g, 0x7f80_0000);
    let is_nan = g.e.b.ins().icmp(IntCC::SignedGreaterThan, abits, inf_bits);
    let is_inf = g.e.b.ins().icmp(IntCC::Equal, abits, inf_bits);
    let inf_mag = ivec(
        g,
        if f.has_inf() {
            0x7f80_0000
        } else {
            (f.max() as f32).to_bits() as i32
        },
    );
    let inf = g.e.b.ins().bor(sign, inf_mag);
    let qnan = ivec(g, 0x7fc0_0000);
    let nan = g.e.b.ins().bor(sign, qnan);
    let result = g.e.b.ins().bitselect(is_inf, inf, result);
    let result = g.e.b.ins().bitselect(is_nan, nan, result);
    as_float(g, result)
}

/// A lane's rounding on the fast path, and the lanes it does not cover (all ones): those
/// must take the general sequence instead.
pub(super) struct FastLane {
    pub value: Value,
    pub outside: Value,
}

/// `stochastic:R` rounding of `acc + x` to `f` on the bits, for sums whose magnitude lies
/// in the format's normal range and whose result is finite (`outside` flags the others):
/// the f32 sum's magnitude, one step lower where TwoSum says it was rounded away from zero,
/// truncates to the same `p + R ≤ 23` bits as the exact sum; the random bits `r` added just
/// below the format's last bit carry into it exactly when `t + r ≥ 2^R`, and the bits below
/// it are cleared. `random`: the lanes' random words.
pub(super) fn sum_stochastic_bits(
    g: &mut Gen,
    acc: Value,
    x: Value,
    f: &FloatFormat,
    bits: u32,
    random: Value,
) -> FastLane {
    // Few constants (the magnitude mask gives the sign too; the kept grid is two shifts):
    // the rest of a block's step is many vectors wide and would spill them.
    let (s, err) = two_sum(g, acc, x);
    let sb = as_int(g, s);
    let abs_mask = ivec(g, i32::MAX);
    let sign = g.e.b.ins().band_not(sb, abs_mask);
    let magnitude = g.e.b.ins().band(sb, abs_mask);
    // The error relative to the sum's sign is negative where |s| > |exact| (an exact sum
    // has error +0).
    let eb = as_int(g, err);
    let relative = g.e.b.ins().bxor(eb, sign);
    let relative = as_float(g, relative);
    let zero = fvec(g, 0.0);
    let away = g.e.b.ins().fcmp(FloatCC::LessThan, relative, zero);
    let truncatable = g.e.b.ins().iadd(magnitude, away);
    let quantum_shift = 23 - f.man_bits;
    let r = g.e.b.ins().ushr_imm_s(random, (32 - bits) as i64);
    let r = g.e.b.ins().ishl_imm_s(r, (quantum_shift - bits) as i64);
    let carried = g.e.b.ins().iadd(truncatable, r);
    let rounded = g.e.b.ins().ushr_imm_s(carried, quantum_shift as i64);
    let rounded = g.e.b.ins().ishl_imm_s(rounded, quantum_shift as i64);
    let value = g.e.b.ins().bor(rounded, sign);
    // Signed comparisons of the magnitude (one instruction each on x86). Up to the largest
    // value the rounding cannot overflow: the largest value lies on the kept grid.
    let smallest_normal = ivec(g, (f.emin() + 127) << 23);
    let below =
        g.e.b
            .ins()
            .icmp(IntCC::SignedLessThan, truncatable, smallest_normal);
    let max = ivec(g, (f.max() as f32).to_bits() as i32);
    let above = g.e.b.ins().icmp(IntCC::SignedGreaterThan, truncatable, max);
    let outside = g.e.b.ins().bor(below, above);
    FastLane {
        value: as_float(g, value),
        outside,
    }
}

/// `nearest` rounding of `v = acc + x` (the binary32 sum, [`super::contract`]'s
/// `nearest_through_binary32`) to `f` for lanes up to the format's largest value (`outside`
/// flags the others: overflow, ±∞, NaN): `(v + C) − C` as [`round_nearest_with_subnormals`],
/// the sign kept on a zero where the format has −0.
pub(super) fn sum_nearest(g: &mut Gen, v: Value, f: &FloatFormat) -> FastLane {
    let bits = as_int(g, v);
    let sign_mask = ivec(g, i32::MIN);
    let sign = g.e.b.ins().band(bits, sign_mask);
    let (_, signed) = nearest_by_magic_constant(g, v, sign, f);
    let value = as_float(g, signed);
    let abs_mask = ivec(g, i32::MAX);
    let magnitude = g.e.b.ins().band(bits, abs_mask);
    let max = ivec(g, (f.max() as f32).to_bits() as i32);
    let outside = g.e.b.ins().icmp(IntCC::SignedGreaterThan, magnitude, max);
    FastLane { value, outside }
}

/// `nearest` rounding of `acc + x` to `f` (smallest normal exponent at least −126) when the
/// terms are wider than `f`: the binary32 sum rounds like the exact sum unless it is a
/// midpoint of `f`'s values that TwoSum says is inexact (the exact sum lies to one side: a
/// false tie), since binary32 holds every midpoint and its rounding is monotone. Lanes with
/// a false tie, sums below the normal range or beyond `f`'s largest value are `outside`.
pub(super) fn sum_nearest_exact(g: &mut Gen, acc: Value, x: Value, f: &FloatFormat) -> FastLane {
    let (s, err) = two_sum(g, acc, x);
    let rounded = sum_nearest(g, s, f);
    let sb = as_int(g, s);
    let below_quantum = ivec(g, (1 << (23 - f.man_bits)) - 1);
    let low = g.e.b.ins().band(sb, below_quantum);
    let half = ivec(g, 1 << (22 - f.man_bits));
    let midpoint = g.e.b.ins().icmp(IntCC::Equal, low, half);
    let zero = fvec(g, 0.0);
    let inexact = g.e.b.ins().fcmp(FloatCC::NotEqual, err, zero);
    let false_tie = g.e.b.ins().band(midpoint, inexact);
    let abs_mask = ivec(g, i32::MAX);
    let magnitude = g.e.b.ins().band(sb, abs_mask);
    let smallest_normal = ivec(g, (f.emin() + 127) << 23);
    let below =
        g.e.b
            .ins()
            .icmp(IntCC::SignedLessThan, magnitude, smallest_normal);
    let outside = g.e.b.ins().bor(rounded.outside, false_tie);
    let outside = g.e.b.ins().bor(outside, below);
    FastLane {
        value: rounded.value,
        outside,
    }
}

/// `nearest` rounding of `s = RN₂₄(acc + a·b)` (one fma, the product not exact in binary32)
/// to `f` (subnormals, smallest normal exponent at least −126, every midpoint a binary32
/// value: `contract::nearest_of_fma`): `RN_f(s)` is the rounding of the exact sum unless `s`
/// is a midpoint of `f`'s values (the exact sum may lie to one side: a possible false tie)
/// or lies beyond `f`'s largest value (overflow, ±∞, NaN) or 2^(105+m) (where `C` would
/// overflow: bf16's largest binades); those lanes are `outside`. The midpoint test:
/// `d = s − RN_f(s)` is exact (Sterbenz), and `s` is a midpoint exactly when `|d|` is half
/// the format's spacing at `s`, `2^(E−m−1)` with `C = 1.5·2^(E+23−m)` the magic constant (a
/// power of two ≥ 2^-149, so scaling it by 2^-24 is exact). The low bits of `s` would not
/// do in `f`'s subnormal range, where `f`'s spacing is not binary32's at `s`.
pub(super) fn fma_sum_nearest(g: &mut Gen, s: Value, f: &FloatFormat) -> FastLane {
    let bits = as_int(g, s);
    let sign_mask = ivec(g, i32::MIN);
    let sign = g.e.b.ins().band(bits, sign_mask);
    let exponent_mask = ivec(g, 0x7f80_0000);
    let exponent = g.e.b.ins().band(bits, exponent_mask);
    let smallest = ivec(g, (f.emin() + 127) << 23);
    let exponent = g.e.b.ins().smax(exponent, smallest);
    // 2^(E+23−m): the spacing at s scaled by 2^23; `C` is 1.5 times it.
    let scaled_spacing = ivec(g, (23 - f.man_bits as i32) << 23);
    let scaled_spacing = g.e.b.ins().iadd(exponent, scaled_spacing);
    let half_c = ivec(g, 1 << 22);
    let cbits = g.e.b.ins().bor(scaled_spacing, half_c);
    let c = as_float(g, cbits);
    let sum = g.e.b.ins().fadd(s, c);
    let r = g.e.b.ins().fsub(sum, c);
    let value = if f.has_negative_zero() {
        let rbits = as_int(g, r);
        let signed = g.e.b.ins().bor(rbits, sign);
        as_float(g, signed)
    } else {
        r
    };
    let d = g.e.b.ins().fsub(s, r);
    let scaled_spacing = as_float(g, scaled_spacing);
    let down = fvec(g, 2f32.powi(-24));
    let half_spacing = g.e.b.ins().fmul(scaled_spacing, down);
    let abs_mask = ivec(g, i32::MAX);
    let dbits = as_int(g, d);
    let distance = g.e.b.ins().band(dbits, abs_mask);
    let half_bits = as_int(g, half_spacing);
    let midpoint = g.e.b.ins().icmp(IntCC::Equal, distance, half_bits);
    let magnitude = g.e.b.ins().band(bits, abs_mask);
    // Up to the format's largest value, and below 2^(105+m), where `C` is finite.
    let finite_c = 2f64.powi(105 + f.man_bits as i32) * (1.0 - 2f64.powi(-24));
    let limit = ivec(g, (f.max().min(finite_c) as f32).to_bits() as i32);
    let beyond = g.e.b.ins().icmp(IntCC::SignedGreaterThan, magnitude, limit);
    let outside = g.e.b.ins().bor(midpoint, beyond);
    FastLane { value, outside }
}

/// `round_nearest_f(acc + a·b)` per lane by the scalar code's exact sequence (`codegen`'s
/// `round_inexact` of a sum): the f64 product (exact: two binary32 values), the f64 sum
/// rounded to odd, then rounded to `f` (bit-exact to `FloatFormat::round`). The general path
/// of [`fma_sum_nearest`]'s lanes: a loop over the four lanes through a stack slot, so that
/// the rare path costs one copy of the scalar sequence.
pub(super) fn product_sum_nearest_per_lane(
    g: &mut Gen,
    acc: Value,
    a: Value,
    b: Value,
    f: &FloatFormat,
) -> Value {
    // acc (overwritten by the results), a, b: 16 bytes each.
    let slot =
        g.e.b
            .create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 48, 4));
    for (i, v) in [acc, a, b].into_iter().enumerate() {
        g.e.b.ins().stack_store(types::I64, v, slot, 16 * i as i32);
    }
    let base = g.e.b.ins().stack_addr(types::I64, slot, 0);
    let lane = g.e.b.create_block();
    let done = g.e.b.create_block();
    g.e.b.append_block_param(lane, types::I64);
    let first = g.e.i64c(0);
    g.e.b.ins().jump(lane, &[first.into()]);
    g.e.b.switch_to_block(lane);
    let offset = g.e.b.block_params(lane)[0];
    let addr = g.e.b.ins().iadd(base, offset);
    let flags = MemFlagsData::trusted();
    let [acc, a, b] = [0, 16, 32].map(|at| {
        let x = g.e.b.ins().load(types::F32, flags, addr, at);
        g.e.b.ins().fpromote(types::F64, x)
    });
    let product = g.e.b.ins().fmul(a, b);
    let sum = g.e.sum_to_odd(acc, product);
    let r =
        g.e.round(sum, &Target::Float(*f), Rounding::Nearest, 0, None);
    g.e.b.ins().store(flags, r, addr, 0);
    let next = g.e.b.ins().iadd_imm_s(offset, 4);
    let more = g.e.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, next, 16);
    g.e.b.ins().brif(more, lane, &[next.into()], done, &[]);
    g.e.b.switch_to_block(done);
    g.e.b.ins().stack_load(types::I64, types::F32X4, slot, 0)
}
