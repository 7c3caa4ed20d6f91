//! The kernel arithmetic (`qc_runtime::kernels`) against an independent big-integer reference:
//! exact values as `M·2^E` with arbitrary-precision `M`, rounded to a float format by the
//! definition (the gap containing the value, the exact position inside it, overflow by the
//! mode), and against `Format::quantize` on values that are `f32`s.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, ToPrimitive, Zero};
use proptest::prelude::*;
use qc_runtime::kernels::{maximum, minimum, Rounder, Target};
use qc_runtime::numerics::rounding::Fraction;
use qc_runtime::numerics::{FloatFormat, Format, RandomStream, Rounding};
use std::cmp::Ordering;

const MODES: [Rounding; 9] = [
    Rounding::Nearest,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Up,
    Rounding::Down,
    Rounding::Stochastic,
    Rounding::StochasticBits(3),
    Rounding::StochasticBits(13),
    Rounding::StochasticUnbiased(2),
];

/// An exact value `±m·2^e`; `sticky` marks a value strictly between `m·2^e` and
/// `(m+1)·2^e` (a quotient or root known to `e`'s precision).
#[derive(Clone, Debug)]
struct Big {
    negative: bool,
    m: BigUint,
    e: i64,
    sticky: bool,
}

fn big_of(x: f64) -> Big {
    assert!(x.is_finite());
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7FF) as i64;
    let man = bits & ((1 << 52) - 1);
    let (m, e) = if field == 0 {
        (man, -1074)
    } else {
        (man | (1 << 52), field - 1075)
    };
    Big {
        negative: x.is_sign_negative(),
        m: BigUint::from(m),
        e,
        sticky: false,
    }
}

fn signed(b: &Big) -> BigInt {
    BigInt::from_biguint(
        if b.negative { Sign::Minus } else { Sign::Plus },
        b.m.clone(),
    )
}

fn big_sum(terms: &[f64]) -> Big {
    let bigs: Vec<Big> = terms.iter().map(|&t| big_of(t)).collect();
    let e = bigs.iter().map(|b| b.e).min().unwrap();
    let total: BigInt = bigs.iter().map(|b| signed(b) << (b.e - e) as usize).sum();
    let negative = total.sign() == Sign::Minus
        || (total.is_zero() && terms.iter().all(|t| t.is_sign_negative()));
    Big {
        negative,
        m: total.magnitude().clone(),
        e,
        sticky: false,
    }
}

fn big_product(a: f64, b: f64) -> Big {
    let (x, y) = (big_of(a), big_of(b));
    Big {
        negative: x.negative != y.negative,
        m: &x.m * &y.m,
        e: x.e + y.e,
        sticky: false,
    }
}

/// `a / b` to 300 bits below its leading bit, with a sticky bit.
fn big_quotient(a: f64, b: f64) -> Big {
    let (x, y) = (big_of(a), big_of(b));
    let num = &x.m << 400usize;
    let (q, r) = (&num / &y.m, &num % &y.m);
    Big {
        negative: x.negative != y.negative,
        m: q,
        e: x.e - y.e - 400,
        sticky: !r.is_zero(),
    }
}

fn big_sqrt(a: f64) -> Big {
    let x = big_of(a);
    // Make the exponent even, then widen by 2·300 bits.
    let (m, e) = if x.e % 2 == 0 {
        (x.m.clone(), x.e)
    } else {
        (&x.m << 1usize, x.e - 1)
    };
    let wide = &m << 600usize;
    let root = wide.sqrt();
    let exact = &root * &root == wide;
    Big {
        negative: false,
        m: root,
        e: (e - 600) / 2,
        sticky: !exact,
    }
}

/// The exact fraction `rem / 2^shift`.
struct BigFraction {
    rem: BigUint,
    shift: u64,
}

impl BigFraction {
    fn low(&self, bits: u64) -> BigUint {
        &self.rem & ((BigUint::one() << bits as usize) - 1u32)
    }
}

impl Fraction for BigFraction {
    fn is_zero(&self) -> bool {
        self.rem.is_zero()
    }
    fn cmp_half(&self) -> Ordering {
        (&self.rem << 1usize).cmp(&(BigUint::one() << self.shift as usize))
    }
    fn top(&self, r: u32) -> u64 {
        ((&self.rem << r as usize) >> self.shift as usize)
            .to_u64()
            .unwrap()
    }
    fn cmp_half_below(&self, r: u32) -> Ordering {
        let shifted = BigFraction {
            rem: &self.rem << r as usize,
            shift: self.shift,
        };
        BigFraction {
            rem: shifted.low(self.shift),
            shift: self.shift,
        }
        .cmp_half()
    }
    fn word(&self, j: u32) -> u32 {
        let p = 32 * (j as usize + 1);
        (((&self.rem << p) >> self.shift as usize) & BigUint::from(u32::MAX))
            .to_u32()
            .unwrap()
    }
    fn nonzero_below(&self, p: u32) -> bool {
        let shifted = BigFraction {
            rem: &self.rem << p as usize,
            shift: self.shift,
        };
        !shifted.low(self.shift).is_zero()
    }
}

fn overflow(f: &FloatFormat, negative: bool, rounding: Rounding) -> f64 {
    let to_inf = match rounding {
        Rounding::TowardZero => false,
        Rounding::Up => !negative,
        Rounding::Down => negative,
        _ => true,
    };
    let m = if to_inf && f.has_inf() && !f.saturate {
        f64::INFINITY
    } else {
        f.max()
    };
    if negative {
        -m
    } else {
        m
    }
}

/// The definition: the value of `f` that `rounding` selects for `x`.
fn reference(
    f: &FloatFormat,
    x: &Big,
    rounding: Rounding,
    stream: &RandomStream,
    index: u64,
) -> f64 {
    let draw = stream.at(index);
    let zero = || {
        if x.negative && f.has_negative_zero() {
            -0.0
        } else {
            0.0
        }
    };
    // A sticky value is the odd point between m and m + 1 one bit further down.
    let (m, e) = if x.sticky {
        ((&x.m << 1usize) + 1u32, x.e - 1)
    } else {
        (x.m.clone(), x.e)
    };
    if m.is_zero() {
        return zero();
    }
    let exponent = m.bits() as i64 - 1 + e;
    if exponent > f.emax() as i64 {
        return overflow(f, x.negative, rounding);
    }
    let man = f.man_bits as i64;
    let s = if exponent >= f.emin() as i64 {
        exponent - man
    } else if f.subnormals {
        f.emin() as i64 - man
    } else {
        f.emin() as i64
    };
    let shift = s - e;
    let (k, frac) = if shift <= 0 {
        (
            m << (-shift) as usize,
            BigFraction {
                rem: BigUint::zero(),
                shift: 0,
            },
        )
    } else {
        let k = &m >> shift as usize;
        let rem = &m - (&k << shift as usize);
        (
            k,
            BigFraction {
                rem,
                shift: shift as u64,
            },
        )
    };
    let odd = k.bit(0);
    let away = rounding.away_from_zero(&frac, x.negative, odd, draw);
    let k = k + away as u32;
    let magnitude = k.to_f64().unwrap() * 2f64.powi(s as i32);
    if magnitude > f.max() {
        return overflow(f, x.negative, rounding);
    }
    if magnitude == 0.0 {
        return zero();
    }
    if x.negative {
        -magnitude
    } else {
        magnitude
    }
}

fn float(name: &str) -> FloatFormat {
    *Format::parse(name).unwrap().as_float().unwrap()
}

fn rounder(f: FloatFormat, rounding: Rounding) -> Rounder {
    Rounder::new(Target::Float(f), rounding)
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn values_of(name: &str) -> Vec<f64> {
    let f = float(name);
    f.all_encodings()
        .unwrap()
        .map(|(_, v)| v)
        .filter(|v| v.is_finite())
        .collect()
}

/// Every sum and product of two e4m3 values rounded to three small formats in every mode.
#[test]
fn all_e4m3_pairs_round_like_the_definition() {
    let values = values_of("e4m3");
    let stream = RandomStream::new(11, 2);
    for target in ["fp4_e2m1", "fp6_e3m2", "fp<4,2,nosub>"] {
        let f = float(target);
        for mode in MODES {
            let r = rounder(f, mode);
            let mut index = 0u64;
            for &a in &values {
                for &b in &values {
                    let sum = r.add(a, b, stream.at(index)) as f64;
                    let want = reference(&f, &big_sum(&[a, b]), mode, &stream, index);
                    assert!(
                        same(sum, want),
                        "{target} {mode}: {a} + {b} = {sum}, want {want}"
                    );
                    let product = r.mul(a, b, stream.at(index)) as f64;
                    let want = reference(&f, &big_product(a, b), mode, &stream, index);
                    assert!(
                        same(product, want),
                        "{target} {mode}: {a} · {b} = {product}, want {want}"
                    );
                    index += 1;
                }
            }
        }
    }
}

/// Sums whose exact value needs two f64s: an e4m3 value plus a far smaller one, and the
/// difference of a product and a value (the hard cases: just below a power of two, ties
/// moved by a tiny remainder).
#[test]
fn sums_beyond_53_bits_round_like_the_definition() {
    let values = values_of("e4m3");
    let stream = RandomStream::new(5, 9);
    let tiny: Vec<f64> = [1.0, -1.0, 1.5, -1.75, 0.001953125]
        .iter()
        .flat_map(|&t| [t * 2f64.powi(-60), t * 2f64.powi(-90), t * 2f64.powi(-140)])
        .collect();
    for target in [
        "fp4_e2m1",
        "fp6_e3m2",
        "fp<4,2,nosub>",
        "e5m2",
        "fp16",
        "bf16",
        "fp32",
    ] {
        let f = float(target);
        for mode in MODES {
            let r = rounder(f, mode);
            let mut index = 0u64;
            for &a in &values {
                for &t in &tiny {
                    let got = r.add(a, t, stream.at(index)) as f64;
                    let want = reference(&f, &big_sum(&[a, t]), mode, &stream, index);
                    assert!(
                        same(got, want),
                        "{target} {mode}: {a} + {t:e} = {got}, want {want}"
                    );
                    index += 1;
                }
            }
        }
    }
}

fn finite_f32() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("finite", |x| x.is_finite())
}

/// Ordinary magnitudes, where sums of products do not fall below 2^-298.
fn moderate_f32() -> impl Strategy<Value = f32> {
    (any::<bool>(), -40i32..40, 0u32..1 << 23).prop_map(|(neg, e, m)| {
        let v = f32::from_bits(((e + 127) as u32) << 23 | m);
        if neg {
            -v
        } else {
            v
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// `acc + a·b` (fma, and add of an exact product) to fp16, bf16, fp32 and e5m2.
    #[test]
    fn fused_and_exact_product_sums_round_like_the_definition(acc in moderate_f32(), a in moderate_f32(), b in moderate_f32(), index in any::<u64>()) {
        let stream = RandomStream::new(3, 4);
        let (acc, a, b) = (acc as f64, a as f64, b as f64);
        for target in ["fp16", "bf16", "fp32", "e5m2"] {
            let f = float(target);
            let mut exact = big_product(a, b);
            let acc_big = big_of(acc);
            let e = exact.e.min(acc_big.e);
            let total = (signed(&exact) << (exact.e - e) as usize) + (signed(&acc_big) << (acc_big.e - e) as usize);
            exact = Big { negative: total.sign() == Sign::Minus, m: total.magnitude().clone(), e, sticky: false };
            for mode in MODES {
                let r = rounder(f, mode);
                let want = reference(&f, &exact, mode, &stream, index);
                let fused = r.fma(acc, a, b, stream.at(index)).unwrap() as f64;
                prop_assert!(same(fused, want), "{} {}: {} + {}·{} = {}, want {}", target, mode, acc, a, b, fused, want);
                let added = r.add(a * b, acc, stream.at(index)) as f64;
                prop_assert!(same(added, want));
            }
        }
    }

    /// Quotients and square roots in the deterministic modes and `stochastic:R` with few bits.
    #[test]
    fn quotients_and_roots_round_like_the_definition(a in moderate_f32(), b in moderate_f32(), index in any::<u64>()) {
        let stream = RandomStream::new(8, 1);
        let (a, b) = (a as f64, b as f64);
        for target in ["fp16", "bf16", "fp32", "e4m3", "fp<6,5,nosub>"] {
            let f = float(target);
            for mode in MODES.into_iter().filter(|m| !matches!(m, Rounding::Stochastic)) {
                let r = rounder(f, mode);
                let got = r.div(a, b, stream.at(index)) as f64;
                let want = reference(&f, &big_quotient(a, b), mode, &stream, index);
                prop_assert!(same(got, want), "{} {}: {} / {} = {}, want {}", target, mode, a, b, got, want);
                let root = r.sqrt(a.abs(), stream.at(index)) as f64;
                let want = reference(&f, &big_sqrt(a.abs()), mode, &stream, index);
                prop_assert!(same(root, want), "{} {}: sqrt {} = {}, want {}", target, mode, a.abs(), root, want);
            }
        }
    }

    /// On a single f32 value the kernel rounding is `Format::quantize` (element 0 draws at 0).
    #[test]
    fn rounding_an_f32_is_format_quantize(x in finite_f32()) {
        let stream = RandomStream::new(21, 6);
        for name in ["fp32", "fp16", "bf16", "e4m3", "e5m2", "fp<6,5,nosub>", "fp<4,3,fn,sat,bias=9>", "e4m3fnuz", "fixed<8,8>", "ufixed<4,4>", "fixed<4,12>", "int<8,noscale>", "uint<4,noscale>", "e8m0"] {
            let format = Format::parse(name).unwrap();
            let target = Target::new(&format).unwrap();
            for mode in MODES {
                let mut out = [0f32];
                format.quantize(&[x], &[1], mode, &stream, &mut out).unwrap();
                let got = Rounder::new(target, mode).round(x as f64, stream.at(0));
                prop_assert!(same(got as f64, out[0] as f64), "{} {}: {} -> {}, quantize {}", name, mode, x, got, out[0]);
            }
        }
    }
}

/// Fixed point and integers on sums beyond 53 bits: the grid rounding of the exact value.
#[test]
fn grid_formats_round_exact_sums() {
    let r = Rounder::new(
        Target::new(&Format::parse("fixed<8,4>").unwrap()).unwrap(),
        Rounding::Nearest,
    );
    let d = qc_runtime::kernels::no_draw();
    // 0.03125 is the midpoint of the 1/16 grid: a tiny excess decides the tie.
    assert_eq!(r.add(0.03125, 2f64.powi(-90), d), 0.0625);
    assert_eq!(r.add(0.03125, -2f64.powi(-90), d), 0.0);
    assert_eq!(r.add(0.03125, 0.0, d), 0.0);
    assert_eq!(r.add(1e30, 1.0, d), 127.9375); // saturates
    let down = Rounder::new(
        Target::new(&Format::parse("int<8,noscale>").unwrap()).unwrap(),
        Rounding::Down,
    );
    assert_eq!(down.add(-3.0, 2f64.powi(-80), d), -3.0);
    assert_eq!(down.add(-3.0, -2f64.powi(-80), d), -4.0);
    assert_eq!(down.add(-1000.0, 0.5, d), -128.0);
}

#[test]
fn max_and_min_follow_the_nan_and_signed_zero_rules() {
    assert_eq!(maximum(-0.0, 0.0).to_bits(), 0f64.to_bits());
    assert_eq!(maximum(0.0, -0.0).to_bits(), 0f64.to_bits());
    assert_eq!(minimum(0.0, -0.0).to_bits(), (-0f64).to_bits());
    assert_eq!(minimum(-0.0, 0.0).to_bits(), (-0f64).to_bits());
    assert!(maximum(f64::NAN, 1.0).is_nan() && maximum(1.0, f64::NAN).is_nan());
    assert!(minimum(f64::NAN, 1.0).is_nan() && minimum(1.0, f64::NAN).is_nan());
    let r = rounder(float("e4m3"), Rounding::Nearest);
    let d = qc_runtime::kernels::no_draw();
    assert_eq!(r.max(3.3, 1.0, d), 3.25);
    assert_eq!(r.min(-500.0, 1.0, d), -448.0);
}

#[test]
fn transcendental_ops_round_the_libm_value_and_indices_convert_exactly() {
    let d = qc_runtime::kernels::no_draw();
    let fp32 = rounder(float("fp32"), Rounding::Nearest);
    assert_eq!(fp32.exp(1.0, d), libm::exp(1.0) as f32);
    assert_eq!(fp32.tanh(0.5, d), libm::tanh(0.5) as f32);
    assert_eq!(fp32.sigmoid(0.0, d), 0.5);
    assert_eq!(fp32.gelu(0.0, d), 0.0);
    let toward = rounder(float("fp32"), Rounding::TowardZero);
    assert!(toward.exp(1.0, d) as f64 <= libm::exp(1.0));
    assert_eq!(fp32.from_index(16_777_217, d), 16_777_216.0); // a tie, to even
    let up = rounder(float("fp32"), Rounding::Up);
    assert_eq!(up.from_index(16_777_217, d), 16_777_218.0);
    assert_eq!(up.from_index(u64::MAX, d), 2f32.powi(64));
}
