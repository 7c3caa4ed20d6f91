//! Bit-exact checks of every kernel op the JIT compiles, against an independent exact
//! reference: operands and results as exact rationals (big integers; square roots by integer
//! square root), rounded with the runtime's own rounding decision (`Rounding::away_from_zero`)
//! over a spread of formats × rounding modes, and whole accumulations with chunks.

use num_bigint::{BigInt, BigUint, Sign};
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::{Backend, Program};
use qc_compiler::pass::{parse_pipeline, PassManager, PassOptions};
use qc_runtime::numerics::float::pow2;
use qc_runtime::numerics::rounding::Fraction;
use qc_runtime::numerics::scaled::int_range;
use qc_runtime::numerics::{fixed::fixed_range, Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;
use std::cmp::Ordering;

const SEED: u64 = 11;
const STREAM: u64 = 5;
const DRAW_BASE: u64 = 4096;

// ---------------------------------------------------------------- exact reals

/// A finite real: a rational `num/den`, or `sqrt(num)/2^half` (square roots).
#[derive(Clone, Debug)]
enum Real {
    Ratio(BigInt, BigUint),
    Root(BigUint, u64),
}

/// A value an op produces: a finite real with the sign of a zero, or a special.
#[derive(Clone, Debug)]
enum Value {
    Finite { v: Real, negative_zero: bool },
    Inf(bool),
    Nan,
}

fn from_f64(x: f64) -> Value {
    if x.is_nan() {
        return Value::Nan;
    }
    if x.is_infinite() {
        return Value::Inf(x < 0.0);
    }
    let bits = x.abs().to_bits();
    let (exp, man) = ((bits >> 52) as i64, bits & ((1 << 52) - 1));
    let (sig, q) = if exp == 0 { (man, -1074) } else { (man | 1 << 52, exp - 1075) };
    let mut num = BigInt::from(sig);
    let mut den = BigUint::from(1u32);
    if q >= 0 {
        num <<= q as usize;
    } else {
        den <<= (-q) as usize;
    }
    if x < 0.0 {
        num = -num;
    }
    Value::Finite { v: Real::Ratio(num, den), negative_zero: x == 0.0 && x.is_sign_negative() }
}

fn ratio(v: &Value) -> Option<(BigInt, BigUint)> {
    match v {
        Value::Finite { v: Real::Ratio(n, d), .. } => Some((n.clone(), d.clone())),
        _ => None,
    }
}

fn is_neg_zero(v: &Value) -> bool {
    matches!(v, Value::Finite { negative_zero: true, .. })
}

/// a + b exactly; an exact zero sum is −0 only when both operands are −0 (IEEE, nearest).
fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Nan, _) | (_, Value::Nan) => Value::Nan,
        (Value::Inf(x), Value::Inf(y)) => if x == y { Value::Inf(*x) } else { Value::Nan },
        (Value::Inf(x), _) | (_, Value::Inf(x)) => Value::Inf(*x),
        _ => {
            let (an, ad) = ratio(a).unwrap();
            let (bn, bd) = ratio(b).unwrap();
            let num = an * BigInt::from(bd.clone()) + bn * BigInt::from(ad.clone());
            Value::Finite { v: Real::Ratio(num, ad * bd), negative_zero: is_neg_zero(a) && is_neg_zero(b) }
        }
    }
}

fn neg(a: &Value) -> Value {
    match a {
        Value::Nan => Value::Nan,
        Value::Inf(s) => Value::Inf(!s),
        Value::Finite { v: Real::Ratio(n, d), negative_zero } => {
            let zero = n.sign() == Sign::NoSign;
            Value::Finite { v: Real::Ratio(-n.clone(), d.clone()), negative_zero: zero && !negative_zero }
        }
        Value::Finite { .. } => unreachable!(),
    }
}

fn sign_of(v: &Value) -> bool {
    match v {
        Value::Inf(s) => *s,
        Value::Finite { v: Real::Ratio(n, _), negative_zero } => n.sign() == Sign::Minus || *negative_zero,
        _ => false,
    }
}

fn is_zero(v: &Value) -> bool {
    matches!(v, Value::Finite { v: Real::Ratio(n, _), .. } if n.sign() == Sign::NoSign)
}

fn mul(a: &Value, b: &Value) -> Value {
    let s = sign_of(a) != sign_of(b);
    match (a, b) {
        (Value::Nan, _) | (_, Value::Nan) => Value::Nan,
        (Value::Inf(_), x) | (x, Value::Inf(_)) => if is_zero(x) { Value::Nan } else { Value::Inf(s) },
        _ => {
            let (an, ad) = ratio(a).unwrap();
            let (bn, bd) = ratio(b).unwrap();
            let num = an * bn;
            let zero = num.sign() == Sign::NoSign;
            Value::Finite { v: Real::Ratio(num, ad * bd), negative_zero: zero && s }
        }
    }
}

fn div(a: &Value, b: &Value) -> Value {
    let s = sign_of(a) != sign_of(b);
    match (a, b) {
        (Value::Nan, _) | (_, Value::Nan) | (Value::Inf(_), Value::Inf(_)) => Value::Nan,
        (Value::Inf(_), _) => Value::Inf(s),
        (_, Value::Inf(_)) => Value::Finite { v: Real::Ratio(BigInt::from(0), BigUint::from(1u32)), negative_zero: s },
        _ if is_zero(b) => if is_zero(a) { Value::Nan } else { Value::Inf(s) },
        _ => {
            let (an, ad) = ratio(a).unwrap();
            let (bn, bd) = ratio(b).unwrap();
            let mut num = an * BigInt::from(bd);
            let den = ad * bn.magnitude();
            if bn.sign() == Sign::Minus {
                num = -num;
            }
            let zero = num.sign() == Sign::NoSign;
            Value::Finite { v: Real::Ratio(num, den), negative_zero: zero && s }
        }
    }
}

fn sqrt(a: &Value) -> Value {
    match a {
        Value::Nan => Value::Nan,
        Value::Inf(false) => Value::Inf(false),
        Value::Inf(true) => Value::Nan,
        _ if is_zero(a) => a.clone(),
        _ if sign_of(a) => Value::Nan,
        _ => {
            // n/d with d = 2^j: sqrt = sqrt(n·2^(j mod 2)) / 2^ceil(j/2).
            let (n, d) = ratio(a).unwrap();
            let j = d.bits() - 1;
            let n = n.magnitude().clone() << (j % 2) as usize;
            Value::Finite { v: Real::Root(n, j.div_ceil(2)), negative_zero: false }
        }
    }
}

/// `⌊|v|·2^p⌋` and whether it is exact.
fn floor_scaled(v: &Real, p: i64) -> (BigUint, bool) {
    match v {
        Real::Ratio(n, d) => {
            let (mut n, mut d) = (n.magnitude().clone(), d.clone());
            if p >= 0 {
                n <<= p as usize;
            } else {
                d <<= (-p) as usize;
            }
            let q = &n / &d;
            let exact = &q * &d == n;
            (q, exact)
        }
        Real::Root(n, half) => {
            let q = p - *half as i64;
            if q >= 0 {
                let x = n << (2 * q) as usize;
                let r = x.sqrt();
                let exact = &r * &r == x;
                (r, exact)
            } else {
                let r = n.sqrt();
                let exact = &r * &r == *n && r.trailing_zeros().unwrap_or(u64::MAX) >= (-q) as u64;
                (r >> (-q) as usize, exact)
            }
        }
    }
}

/// The exact position of |v| inside the gap `[k·2^s, (k+1)·2^s]`.
struct Gap<'a> {
    v: &'a Real,
    s: i64,
    k: BigUint,
}

impl Fraction for Gap<'_> {
    fn is_zero(&self) -> bool {
        floor_scaled(self.v, -self.s).1
    }
    fn cmp_half(&self) -> Ordering {
        let (t, exact) = floor_scaled(self.v, -self.s + 1);
        if t == &self.k << 1usize {
            Ordering::Less
        } else if exact {
            Ordering::Equal
        } else {
            Ordering::Greater
        }
    }
    fn top(&self, r: u32) -> u64 {
        let t = floor_scaled(self.v, -self.s + r as i64).0 - (&self.k << r as usize);
        t.iter_u64_digits().next().unwrap_or(0)
    }
    fn cmp_half_below(&self, r: u32) -> Ordering {
        let t1 = floor_scaled(self.v, -self.s + r as i64).0;
        let (t2, exact) = floor_scaled(self.v, -self.s + r as i64 + 1);
        if t2 == t1 << 1usize {
            Ordering::Less
        } else if exact {
            Ordering::Equal
        } else {
            Ordering::Greater
        }
    }
    fn word(&self, j: u32) -> u32 {
        let t = floor_scaled(self.v, -self.s + 32 * (j as i64 + 1)).0;
        t.iter_u32_digits().next().unwrap_or(0)
    }
    fn nonzero_below(&self, p: u32) -> bool {
        !floor_scaled(self.v, -self.s + p as i64).1
    }
}

fn to_f64(k: &BigUint) -> f64 {
    k.iter_u64_digits().rev().fold(0.0, |acc, d| acc * 2f64.powi(64) + d as f64)
}

/// ⌊log2 |v|⌋ for a non-zero v.
fn exponent(v: &Real) -> i64 {
    floor_scaled(v, 1200).0.bits() as i64 - 1 - 1200
}

/// The reference: the exact `v` rounded to the element-wise format `f` by `mode`.
fn round_ref(v: &Value, f: &Format, mode: Rounding, draw_index: u64) -> f32 {
    let stream = RandomStream::new(SEED, STREAM);
    let draw = stream.at(draw_index);
    let negative = sign_of(v);
    match f {
        Format::Float { format, .. } => {
            let signed = |m: f64| if negative && (m != 0.0 || format.has_negative_zero()) { -m } else { m };
            let overflow = || {
                let to_inf = match mode {
                    Rounding::TowardZero => false,
                    Rounding::Up => !negative,
                    Rounding::Down => negative,
                    _ => true,
                };
                signed(if to_inf && format.has_inf() && !format.saturate { f64::INFINITY } else { format.max() })
            };
            let r = match v {
                Value::Nan => f64::NAN,
                Value::Inf(_) => signed(if format.has_inf() { f64::INFINITY } else { format.max() }),
                _ if is_zero(v) => signed(0.0),
                Value::Finite { v: real, .. } => {
                    let e = exponent(real);
                    if e > format.emax() as i64 {
                        overflow()
                    } else {
                        let (emin, m) = (format.emin() as i64, format.man_bits as i64);
                        let s = if e >= emin { e - m } else if format.subnormals { emin - m } else { emin };
                        let k = floor_scaled(real, -s).0;
                        let away = mode.away_from_zero(&Gap { v: real, s, k: k.clone() }, negative, k.bit(0), draw);
                        let mag = to_f64(&(k + away as u32)) * pow2(s as i32);
                        if mag > format.max() { overflow() } else { signed(mag) }
                    }
                }
            };
            r as f32
        }
        Format::Fixed(_) | Format::Int(_) => {
            let (s, lo, hi) = match f {
                Format::Fixed(x) => {
                    let (lo, max) = fixed_range(x);
                    let mut hi = max as f32;
                    if hi as f64 > max {
                        hi = f32::from_bits(hi.to_bits() - 1);
                    }
                    (-(x.frac_bits as i64), lo, hi as f64)
                }
                Format::Int(i) => {
                    let (lo, hi) = int_range(i);
                    (0, lo as f64, hi as f64)
                }
                _ => unreachable!(),
            };
            let r = match v {
                Value::Nan => f64::NAN,
                Value::Inf(n) => if *n { f64::NEG_INFINITY } else { f64::INFINITY },
                Value::Finite { v: real, .. } => {
                    let k = floor_scaled(real, -s).0;
                    let away = mode.away_from_zero(&Gap { v: real, s, k: k.clone() }, negative, k.bit(0), draw);
                    let mag = to_f64(&(k + away as u32)) * pow2(s as i32);
                    if negative { -mag } else { mag }
                }
            };
            (r.clamp(lo, hi) + 0.0) as f32
        }
        Format::E8m0 => {
            let r = match v {
                Value::Inf(false) => pow2(127),
                Value::Finite { v: real, .. } if !negative && !is_zero(v) => {
                    let e = exponent(real);
                    if e < -127 {
                        pow2(-127)
                    } else if e > 127 {
                        pow2(127)
                    } else {
                        // The gap [2^e, 2^(e+1)], k = 1 (odd: ties go up).
                        let k = floor_scaled(real, -e).0;
                        let away = mode.away_from_zero(&Gap { v: real, s: e, k: k.clone() }, false, k.bit(0), draw);
                        pow2((e as i32 + away as i32).min(127))
                    }
                }
                _ => f64::NAN,
            };
            r as f32
        }
        other => panic!("no reference for {other}"),
    }
}

// ---------------------------------------------------------------- running the JIT

fn run(text: &str, inputs: Vec<Tensor>, threads: usize) -> Result<Vec<f32>, String> {
    let mut module = qc_compiler::parse_module(text).map_err(|d| format!("{d:?}\n{text}"))?;
    if let Err(errors) = qc_compiler::verify(&module) {
        panic!("{errors:?}\n{text}");
    }
    let passes = parse_pipeline("chunking").unwrap();
    PassManager::new(passes, PassOptions { verify_each: true, ..PassOptions::default() }).run(&mut module).map_err(|e| e.to_string())?;
    let program = Program::prepare(module, SEED).map_err(|e| e.to_string())?;
    let out = Jit::with_threads(threads).run(&program, &inputs).map_err(|e| e.to_string())?;
    Ok(out[0].data().to_vec())
}

/// Values of `format`: magnitudes spread over 2^-26..2^26 around `scale`, both signs, and
/// the specials (zeros, ±∞, NaN, the extremes) — all rounded to the format.
fn values(format: &Format, n: usize, seed: u64, scale: i32) -> Vec<f32> {
    let rng = RandomStream::new(seed, 1);
    let mut raw: Vec<f32> = (0..n)
        .map(|i| {
            let w = rng.word(i as u64, 0);
            let m = 1.0 + (rng.word(i as u64, 1) as f64) / 2f64.powi(32);
            let e = (w % 53) as i32 - 26 + scale;
            let x = m * 2f64.powi(e);
            (if w & 1 << 31 != 0 { -x } else { x }) as f32
        })
        .collect();
    let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0, -1.5, 3.0, 65504.0, 448.0, 1e-7, -2.5e-8];
    for (i, s) in specials.iter().enumerate() {
        raw[i * 7 % n] = *s;
    }
    let mut out = vec![0f32; n];
    format.quantize(&raw, &[n], Rounding::Nearest, &rng, &mut out).unwrap();
    out
}

fn bits_equal(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn fmt(f: &str) -> Format {
    Format::parse(f).unwrap()
}

const RESULT_FORMATS: [&str; 10] = ["fp32", "fp16", "bf16", "e4m3", "e5m2", "fp<6,5>", "fp<6,5,nosub>", "int<8,noscale>", "fixed<8,8>", "e8m0"];
/// Exact `stochastic`, and `stochastic:32` to formats of more than 20 bits, round sums,
/// quotients and roots through the runtime (the JIT's `exact_call`); the rest inline.
const MODES: [&str; 10] = ["nearest", "toward-zero", "up", "down", "nearest-away", "stochastic:9", "stochastic:4", "stochastic-unbiased:5", "stochastic", "stochastic:32"];

/// An element-wise kernel over N elements: operands loaded from the arguments, `body` the op
/// line(s) (`%z` is yielded), with `%d` the draw counter `DRAW_BASE + i`.
fn elementwise(n: usize, args: &[&str], result: &str, body: &str) -> String {
    let params: Vec<String> = args.iter().enumerate().map(|(j, f)| format!("%a{j}: tensor<{n}x{f}>")).collect();
    let loads: String = args.iter().enumerate().map(|(j, f)| format!("    %x{j} = kernel.load %a{j}, %i : (tensor<{n}x{f}>, index) -> {f}\n")).collect();
    format!(
        "func @t({}) -> (tensor<{n}x{result}>) {{\n  %r = kernel.generate : () -> tensor<{n}x{result}> {{\n  ^bb0(%i: index):\n{loads}    %base = kernel.index {{value = {DRAW_BASE}}} : () -> index\n    %d = kernel.index_add %base, %i : (index, index) -> index\n{body}    kernel.yield %z : ({result}) -> ()\n  }}\n  func.return %r : (tensor<{n}x{result}>) -> ()\n}}\n",
        params.join(", ")
    )
}

/// `{round = mode, stream = S}` and the draw operand text for a mode.
fn rounding_attrs(mode: &str) -> (String, &'static str, &'static str) {
    if Rounding::parse(mode).unwrap().is_stochastic() {
        (format!("{{round = {mode}, stream = {STREAM}}}"), ", %d", ", index")
    } else {
        (format!("{{round = {mode}}}"), "", "")
    }
}

type RefFn = dyn Fn(&[Value], usize) -> Value;

/// Runs `op` over inputs of `arg_formats` for every result format × mode and checks each
/// element against `reference`.
fn check_op(op: &str, arg_formats: &[&str], scales: &[i32], reference: &RefFn) {
    let n = 512;
    let mut failures = Vec::new();
    for result in RESULT_FORMATS {
        for mode in MODES {
            let (attrs, draw, draw_ty) = rounding_attrs(mode);
            let operands: Vec<String> = (0..arg_formats.len()).map(|j| format!("%x{j}")).collect();
            let body = format!("    %z = kernel.{op} {}{draw} {attrs} : ({}{draw_ty}) -> {result}\n", operands.join(", "), arg_formats.join(", "));
            let text = elementwise(n, arg_formats, result, &body);
            let inputs: Vec<Vec<f32>> = arg_formats.iter().enumerate().map(|(j, f)| values(&fmt(f), n, 100 + j as u64, scales[j])).collect();
            let tensors = inputs.iter().map(|v| Tensor::new(vec![n], v.clone()).unwrap()).collect();
            let got = run(&text, tensors, 1).unwrap_or_else(|e| panic!("{op} → {result} @ {mode}: {e}"));
            let rf = fmt(result);
            let m = Rounding::parse(mode).unwrap();
            for i in 0..n {
                let args: Vec<Value> = inputs.iter().map(|v| from_f64(v[i] as f64)).collect();
                let want = round_ref(&reference(&args, i), &rf, m, DRAW_BASE + i as u64);
                if !bits_equal(got[i], want) {
                    let xs: Vec<f32> = inputs.iter().map(|v| v[i]).collect();
                    failures.push(format!("{op}{xs:?} → {result} @ {mode}: got {:e} ({:#x}), want {:e} ({:#x})", got[i], got[i].to_bits(), want, want.to_bits()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches, first: {:#?}", failures.len(), &failures[..failures.len().min(8)]);
}

#[test]
fn add_and_sub_round_the_exact_sum_once() {
    check_op("add", &["fp32", "fp32"], &[0, -8], &|a, _| add(&a[0], &a[1]));
    check_op("add", &["fp16", "e4m3"], &[0, 0], &|a, _| add(&a[0], &a[1]));
    check_op("sub", &["bf16", "fp32"], &[0, -3], &|a, _| add(&a[0], &neg(&a[1])));
}

#[test]
fn mul_fma_and_exact_products() {
    check_op("mul", &["fp32", "fp32"], &[0, 0], &|a, _| mul(&a[0], &a[1]));
    check_op("mul", &["e4m3", "e5m2"], &[0, 0], &|a, _| mul(&a[0], &a[1]));
    check_op("fma", &["fp32", "fp16", "bf16"], &[0, 0, 0], &|a, _| add(&a[0], &mul(&a[1], &a[2])));
}

#[test]
fn div_and_sqrt_round_the_exact_quotient_and_root() {
    check_op("div", &["fp32", "fp32"], &[0, 0], &|a, _| div(&a[0], &a[1]));
    check_op("div", &["e4m3", "fp16"], &[0, 0], &|a, _| div(&a[0], &a[1]));
    check_op("sqrt", &["fp32"], &[0], &|a, _| sqrt(&a[0]));
}

#[test]
fn max_min_and_round() {
    let pick = |greater: bool| {
        move |a: &[Value], i: usize| -> Value {
            let _ = i;
            match (&a[0], &a[1]) {
                (Value::Nan, _) | (_, Value::Nan) => Value::Nan,
                _ => {
                    let x = to_value_f64(&a[0]);
                    let y = to_value_f64(&a[1]);
                    let m = if greater { maximum(x, y) } else { minimum(x, y) };
                    from_f64(m)
                }
            }
        }
    };
    check_op("max", &["fp32", "bf16"], &[0, 0], &pick(true));
    check_op("min", &["fp16", "fp32"], &[0, 0], &pick(false));
    check_op("round", &["fp32"], &[0], &|a, _| a[0].clone());
}

/// IEEE 754-2019 maximum: NaN if either is NaN, +0 above −0.
fn maximum(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == y {
        if x.is_sign_positive() { x } else { y }
    } else if x > y {
        x
    } else {
        y
    }
}

/// IEEE 754-2019 minimum: NaN if either is NaN, −0 below +0.
fn minimum(x: f64, y: f64) -> f64 {
    -maximum(-x, -y)
}

/// The f64 of an operand value (operands are f32 values, so this is exact).
fn to_value_f64(v: &Value) -> f64 {
    match v {
        Value::Nan => f64::NAN,
        Value::Inf(s) => if *s { f64::NEG_INFINITY } else { f64::INFINITY },
        Value::Finite { v: Real::Ratio(n, d), negative_zero } => {
            if *negative_zero {
                return -0.0;
            }
            let r = n.magnitude();
            let x = to_f64(r) / to_f64(d);
            if n.sign() == Sign::Minus { -x } else { x }
        }
        Value::Finite { .. } => unreachable!(),
    }
}

#[test]
fn transcendentals_round_the_libm_value() {
    let libm_ref = |f: fn(f64) -> f64| move |a: &[Value], _: usize| from_f64(f(to_value_f64(&a[0])));
    check_op("exp", &["fp32"], &[-24], &libm_ref(libm::exp));
    check_op("tanh", &["bf16"], &[-22], &libm_ref(libm::tanh));
    check_op("sigmoid", &["fp32"], &[-22], &libm_ref(|x| 1.0 / (1.0 + libm::exp(-x))));
    check_op("gelu", &["fp16"], &[-22], &libm_ref(|x| 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))));
}

#[test]
fn exact_products_add_into_an_accumulator_with_one_rounding() {
    let n = 512;
    for result in RESULT_FORMATS {
        for mode in MODES {
            let (attrs, draw, draw_ty) = rounding_attrs(mode);
            let body = format!(
                "    %p = kernel.mul %x1, %x2 : (e4m3, fp32) -> real\n    %z = kernel.add %x0, %p{draw} {attrs} : ({result}, real{draw_ty}) -> {result}\n"
            );
            let text = elementwise(n, &[result, "e4m3", "fp32"], result, &body);
            let inputs = [values(&fmt(result), n, 7, 0), values(&fmt("e4m3"), n, 8, 0), values(&fmt("fp32"), n, 9, -2)];
            let got = run(&text, inputs.iter().map(|v| Tensor::new(vec![n], v.clone()).unwrap()).collect(), 1).unwrap();
            for i in 0..n {
                let v = add(&from_f64(inputs[0][i] as f64), &mul(&from_f64(inputs[1][i] as f64), &from_f64(inputs[2][i] as f64)));
                let want = round_ref(&v, &fmt(result), Rounding::parse(mode).unwrap(), DRAW_BASE + i as u64);
                assert!(bits_equal(got[i], want), "{result} @ {mode} [{i}]: got {:e}, want {want:e}", got[i]);
            }
        }
    }
}

#[test]
fn from_index_rounds_the_integer() {
    let n = 300;
    for result in RESULT_FORMATS {
        for mode in MODES {
            let (attrs, draw, draw_ty) = rounding_attrs(mode);
            let body = format!(
                "    %m = kernel.index {{value = 977}} : () -> index\n    %j = kernel.index_mul %i, %m : (index, index) -> index\n    %z = kernel.from_index %j{draw} {attrs} : (index{draw_ty}) -> {result}\n"
            );
            let got = run(&elementwise(n, &[], result, &body), vec![], 1).unwrap();
            for (i, g) in got.iter().enumerate() {
                let want = round_ref(&from_f64((i * 977) as f64), &fmt(result), Rounding::parse(mode).unwrap(), DRAW_BASE + i as u64);
                assert!(bits_equal(*g, want), "{result} @ {mode} [{i}]: got {g:e}, want {want:e}");
            }
        }
    }
}

/// A dot product per row: `acc` rounding after every addition of an exact product, in chunks
/// of `chunk` summed in `chunk_format` (expanded by the `chunking` pass), with draws at
/// `draw + k` (terms) and `draw + K + j` (chunk sums).
fn dot_text(rows: usize, k: usize, input: &str, acc: &str, mode: &str, chunk: Option<(usize, &str)>) -> String {
    let stochastic = Rounding::parse(mode).unwrap().is_stochastic();
    let (stream, draw, draw_ty) = if stochastic { (format!(", stream = {STREAM}"), ", %d", ", index") } else { (String::new(), "", "") };
    let chunk_attr = chunk.map(|(c, f)| format!(", chunk = #chunk<{c} @ {f} @ {mode}>")).unwrap_or_default();
    format!(
        "func @t(%a: tensor<{rows}x{k}x{input}>, %b: tensor<{rows}x{k}x{input}>) -> (tensor<{rows}x{acc}>) {{
  %r = kernel.generate : () -> tensor<{rows}x{acc}> {{
  ^bb0(%i: index):
    %lo = kernel.index {{value = 0}} : () -> index
    %hi = kernel.index {{value = {k}}} : () -> index
    %span = kernel.index {{value = {span}}} : () -> index
    %d = kernel.index_mul %i, %span : (index, index) -> index
    %zero = kernel.constant {{value = 0.0}} : () -> {acc}
    %z = kernel.accumulate %lo, %hi, %zero{draw} {{round = {mode}{chunk_attr}{stream}}} : (index, index, {acc}{draw_ty}) -> {acc} {{
    ^bb1(%k: index):
      %x = kernel.load %a, %i, %k : (tensor<{rows}x{k}x{input}>, index, index) -> {input}
      %y = kernel.load %b, %i, %k : (tensor<{rows}x{k}x{input}>, index, index) -> {input}
      %p = kernel.mul %x, %y : ({input}, {input}) -> real
      kernel.yield %p : (real) -> ()
    }}
    kernel.yield %z : ({acc}) -> ()
  }}
  func.return %r : (tensor<{rows}x{acc}>) -> ()
}}
",
        span = 3 * k
    )
}

#[test]
fn accumulations_with_and_without_chunks_round_after_every_addition() {
    let (rows, k) = (24, 70);
    // (input format, accumulator, mode, chunk size and chunk format)
    type Case = (&'static str, &'static str, &'static str, Option<(usize, &'static str)>);
    let cases: [Case; 9] = [
        ("fp32", "fp32", "nearest", None),
        ("e4m3", "fp32", "nearest", None),
        ("e4m3", "fp16", "nearest", None),
        ("fp16", "fp16", "toward-zero", Some((16, "fp16"))),
        ("e4m3", "fp<6,5>", "stochastic:9", None),
        ("e4m3", "fp<6,5,nosub>", "stochastic:9", Some((32, "fp<6,5,nosub>"))),
        ("bf16", "bf16", "up", Some((8, "fp32"))),
        ("e5m2", "fixed<8,8>", "nearest", Some((32, "fixed<8,8>"))),
        ("e4m3", "fp16", "stochastic-unbiased:5", Some((32, "fp16"))),
    ];
    for (input, acc, mode, chunk) in cases {
        let text = dot_text(rows, k, input, acc, mode, chunk);
        let a = values(&fmt(input), rows * k, 21, -2);
        let b = values(&fmt(input), rows * k, 22, -2);
        // Finite operands only: an accumulation of products of specials is not the point here.
        let clean = |v: Vec<f32>| v.into_iter().map(|x| if x.is_finite() { x } else { 1.0 }).collect::<Vec<_>>();
        let (a, b) = (clean(a), clean(b));
        let tensors = || vec![Tensor::new(vec![rows, k], a.clone()).unwrap(), Tensor::new(vec![rows, k], b.clone()).unwrap()];
        let got = run(&text, tensors(), 1).unwrap();
        let got2 = run(&text, tensors(), 2).unwrap();
        assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), got2.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        let m = Rounding::parse(mode).unwrap();
        let accf = fmt(acc);
        for r in 0..rows {
            let base = (r * 3 * k) as u64;
            let term = |j: usize| mul(&from_f64(a[r * k + j] as f64), &from_f64(b[r * k + j] as f64));
            let mut total = from_f64(0.0);
            match chunk {
                None => {
                    for j in 0..k {
                        total = from_f64(round_ref(&add(&total, &term(j)), &accf, m, base + j as u64) as f64);
                    }
                }
                Some((c, cf)) => {
                    let cf = fmt(cf);
                    for start in (0..k).step_by(c) {
                        let mut s = from_f64(0.0);
                        for j in start..(start + c).min(k) {
                            s = from_f64(round_ref(&add(&s, &term(j)), &cf, m, base + j as u64) as f64);
                        }
                        total = from_f64(round_ref(&add(&total, &s), &accf, m, base + (k + start) as u64) as f64);
                    }
                }
            }
            let want = to_value_f64(&total) as f32;
            assert!(bits_equal(got[r], want), "{input}·{input} → {acc} @ {mode} chunk {chunk:?}, row {r}: got {:e}, want {want:e}", got[r]);
        }
    }
}

#[test]
fn reduce_max_select_and_keep() {
    let (rows, k) = (16, 9);
    let text = format!(
        "func @t(%a: tensor<{rows}x{k}xfp16>) -> (tensor<{rows}xfp16>) {{
  %r = kernel.generate : () -> tensor<{rows}xfp16> {{
  ^bb0(%i: index):
    %lo = kernel.index {{value = 1}} : () -> index
    %hi = kernel.index {{value = {k}}} : () -> index
    %first = kernel.index {{value = 0}} : () -> index
    %init = kernel.load %a, %i, %first : (tensor<{rows}x{k}xfp16>, index, index) -> fp16
    %three = kernel.index {{value = 3}} : () -> index
    %m = kernel.reduce_max %lo, %hi, %init : (index, index, fp16) -> fp16 {{
    ^bb1(%k: index):
      %x = kernel.load %a, %i, %k : (tensor<{rows}x{k}xfp16>, index, index) -> fp16
      %r3 = kernel.index_rem %k, %three : (index, index) -> index
      kernel.yield %x, %r3 : (fp16, index) -> ()
    }}
    %odd = kernel.index_rem %i, %three : (index, index) -> index
    %z = kernel.select %odd, %m, %init : (index, fp16, fp16) -> fp16
    kernel.yield %z : (fp16) -> ()
  }}
  func.return %r : (tensor<{rows}xfp16>) -> ()
}}
"
    );
    let a: Vec<f32> = values(&fmt("fp16"), rows * k, 5, 0).into_iter().map(|x| if x.is_nan() { 2.0 } else { x }).collect();
    let got = run(&text, vec![Tensor::new(vec![rows, k], a.clone()).unwrap()], 1).unwrap();
    for r in 0..rows {
        let init = a[r * k];
        let m = (1..k).filter(|j| j % 3 != 0).fold(init as f64, |m, j| maximum(m, a[r * k + j] as f64)) as f32;
        let want = if r % 3 != 0 { m } else { init };
        assert!(bits_equal(got[r], want), "row {r}: got {}, want {want}", got[r]);
    }
}

#[test]
fn scaled_quantization_calls_the_runtime() {
    let n = 64;
    for target in ["mxfp8_e4m3", "int<8>", "mxfp4"] {
        let text = format!(
            "func @t(%a: tensor<2x{n}xfp32>) -> (tensor<2x{n}x{target}>) {{\n  %q = q.quantize %a {{round = stochastic:9, stream = 3}} : (tensor<2x{n}xfp32>) -> tensor<2x{n}x{target}>\n  func.return %q : (tensor<2x{n}x{target}>) -> ()\n}}\n"
        );
        let a = values(&fmt("fp32"), 2 * n, 3, 0).into_iter().map(|x| if x.is_finite() { x } else { 0.5 }).collect::<Vec<_>>();
        let got = run(&text, vec![Tensor::new(vec![2, n], a.clone()).unwrap()], 1).unwrap();
        let mut want = vec![0f32; 2 * n];
        fmt(target).quantize(&a, &[2, n], Rounding::StochasticBits(9), &RandomStream::new(SEED, 3), &mut want).unwrap();
        assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "{target}");
    }
}

/// A rank-3 output whose innermost axis (7: one pass of four elements and three single ones)
/// sums a prefix whose length depends on that axis (loop bounds that differ per element),
/// in fp16 with `stochastic:9`.
#[test]
fn innermost_elements_with_their_own_loop_bounds() {
    let (a0, a1, a2, k) = (2, 3, 7, 9);
    let text = format!(
        "func @t(%a: tensor<{a0}x{a1}x{k}xfp32>) -> (tensor<{a0}x{a1}x{a2}xfp16>) {{
  %r = kernel.generate : () -> tensor<{a0}x{a1}x{a2}xfp16> {{
  ^bb0(%i: index, %j: index, %n: index):
    %lo = kernel.index {{value = 0}} : () -> index
    %one = kernel.index {{value = 1}} : () -> index
    %hi = kernel.index_add %n, %one : (index, index) -> index
    %stride = kernel.index {{value = 100}} : () -> index
    %row = kernel.index_mul %j, %stride : (index, index) -> index
    %d = kernel.index_add %row, %n : (index, index) -> index
    %zero = kernel.constant {{value = 0.0}} : () -> fp16
    %z = kernel.accumulate %lo, %hi, %zero, %d {{round = stochastic:9, stream = {STREAM}}} : (index, index, fp16, index) -> fp16 {{
    ^bb1(%q: index):
      %x = kernel.load %a, %i, %j, %q : (tensor<{a0}x{a1}x{k}xfp32>, index, index, index) -> fp32
      kernel.yield %x : (fp32) -> ()
    }}
    kernel.yield %z : (fp16) -> ()
  }}
  func.return %r : (tensor<{a0}x{a1}x{a2}xfp16>) -> ()
}}
"
    );
    let a: Vec<f32> = values(&fmt("fp32"), a0 * a1 * k, 9, -4).into_iter().map(|x| if x.is_finite() { x } else { 0.25 }).collect();
    let got = run(&text, vec![Tensor::new(vec![a0, a1, k], a.clone()).unwrap()], 1).unwrap();
    let f16 = fmt("fp16");
    for i in 0..a0 {
        for j in 0..a1 {
            for n in 0..a2 {
                let mut acc = from_f64(0.0);
                for q in 0..=n {
                    let x = from_f64(a[(i * a1 + j) * k + q] as f64);
                    acc = from_f64(round_ref(&add(&acc, &x), &f16, Rounding::StochasticBits(9), (j * 100 + n + q) as u64) as f64);
                }
                let want = to_value_f64(&acc) as f32;
                let g = got[(i * a1 + j) * a2 + n];
                assert!(bits_equal(g, want), "[{i},{j},{n}]: got {g:e}, want {want:e}");
            }
        }
    }
}
