//! Property tests of float rounding over random formats `fp<E,M,options>` (E 2..8, M 1..23)
//! and random f32 inputs: monotonicity, idempotence, nearest is nearest, directed modes
//! bracket the input, fast path ≡ exact path, and the statistics of stochastic rounding.
//!
//! proptest runs with a fixed seed and no failure files, so CI is deterministic and bounded.

mod common;

use common::{exact, pow2, same};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use qc_runtime::numerics::float_fast::quantize_slice;
use qc_runtime::numerics::{FloatFormat, RandomStream, Rounding, Specials};

const DETERMINISTIC: [Rounding; 5] =
    [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down];

const STOCHASTIC: [Rounding; 5] = [
    Rounding::Stochastic,
    Rounding::StochasticBits(3),
    Rounding::StochasticBits(32),
    Rounding::StochasticUnbiased(7),
    Rounding::StochasticUnbiased(32),
];

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x0051_C0DE),
        failure_persistence: None,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    }
}

/// Valid formats `fp<E,M,options>` with E in 2..=8 and M in 1..=23, biases near the default.
fn float_format() -> impl Strategy<Value = FloatFormat> {
    (2u32..=8, 1u32..=23, any::<bool>(), 0usize..4, any::<bool>(), -4i32..=4).prop_filter_map(
        "invalid format",
        |(e, m, subnormals, specials, saturate, bias_shift)| {
            let f = FloatFormat {
                subnormals,
                saturate,
                specials: [Specials::Ieee, Specials::Fn, Specials::Fnuz, Specials::None][specials],
                ..FloatFormat::ieee(e, m).with_bias(FloatFormat::ieee(e, m).bias + bias_shift)
            };
            f.validate().is_ok().then_some(f)
        },
    )
}

/// f32 inputs for a format: arbitrary bit patterns, magnitudes in and around its range, and
/// values next to its representable values.
fn input_for(f: FloatFormat) -> impl Strategy<Value = f32> {
    let lo = f.min_positive().log2() as i32 - 3;
    let hi = f.emax() + 2;
    let arbitrary = any::<u32>().prop_map(f32::from_bits);
    let in_range = (any::<bool>(), lo..=hi, 0u32..1 << 23).prop_map(|(negative, e, m)| {
        let x = (1.0 + m as f64 * pow2(-23)) * pow2(e.clamp(-149, 127));
        let x = if negative { -x } else { x };
        x as f32
    });
    let near_value = (any::<u32>(), -3i32..=3).prop_map(move |(pattern, step)| {
        let v = f.decode(pattern & ((1u32 << f.bits().min(31)) - 1)) as f32;
        if v.is_finite() { f32::from_bits(v.to_bits().wrapping_add_signed(step)) } else { v }
    });
    prop_oneof![1 => arbitrary, 2 => in_range, 2 => near_value]
}

fn format_and_inputs() -> impl Strategy<Value = (FloatFormat, Vec<f32>)> {
    float_format().prop_flat_map(|f| (Just(f), prop::collection::vec(input_for(f), 48)))
}

fn round(f: &FloatFormat, x: f32, mode: Rounding) -> f64 {
    f.round(x as f64, mode, RandomStream::new(1, 2).at(0))
}

/// Whether `f` overflows to ±∞ (IEEE specials without `sat`); else it saturates to ±max.
fn overflows_to_infinity(f: &FloatFormat) -> bool {
    f.has_inf() && !f.saturate
}

/// The values of `f` next to a finite value `q` of it (from the encodings on either side).
fn neighbours(f: &FloatFormat, q: f64) -> Vec<f64> {
    if q == 0.0 {
        return vec![f.min_positive(), -f.min_positive()];
    }
    let bits = f.encode(q).unwrap();
    let sign = bits & (1 << (f.bits() - 1));
    let magnitude = bits & !sign;
    let mut out = vec![];
    if magnitude + 1 < 1 << (f.bits() - 1) {
        out.push(f.decode(sign | (magnitude + 1)));
    }
    out.push(f.decode(sign | (magnitude - 1)));
    out.retain(|v| v.is_finite());
    out
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn deterministic_modes_are_monotonic((f, mut xs) in format_and_inputs()) {
        xs.retain(|x| !x.is_nan());
        xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for mode in DETERMINISTIC {
            let qs: Vec<f64> = xs.iter().map(|&x| round(&f, x, mode)).collect();
            for i in 1..xs.len() {
                prop_assert!(qs[i - 1] <= qs[i], "{f} {mode}: {:e} -> {:e} but {:e} -> {:e}", xs[i - 1], qs[i - 1], xs[i], qs[i]);
            }
        }
    }

    #[test]
    fn rounding_is_idempotent((f, xs) in format_and_inputs()) {
        for mode in DETERMINISTIC.iter().chain(&STOCHASTIC).copied() {
            for &x in &xs {
                let q = round(&f, x, mode);
                let again = f.round(q, mode, RandomStream::new(5, 5).at(9));
                prop_assert!(same(q, again), "{f} {mode}: {x:e} -> {q:e} -> {again:e}");
            }
        }
    }

    #[test]
    fn nearest_is_nearest((f, xs) in format_and_inputs()) {
        let max = f.max();
        // With an unbounded exponent the value after max is max + 2^(emax − M).
        let overflow_threshold = max + pow2(f.emax() - f.man_bits as i32 - 1);
        for &x in xs.iter().filter(|x| x.is_finite()) {
            let q = round(&f, x, Rounding::Nearest);
            let a = (x as f64).abs();
            if q.is_infinite() {
                prop_assert!(overflows_to_infinity(&f) && a >= overflow_threshold, "{f}: {x:e} -> {q:e}");
                continue;
            }
            if overflows_to_infinity(&f) {
                prop_assert!(a < overflow_threshold, "{f}: {x:e} -> {q:e}, not ∞");
            }
            let distance = (exact(x as f64) - exact(q)).magnitude().clone();
            for n in neighbours(&f, q) {
                let other = (exact(x as f64) - exact(n)).magnitude().clone();
                prop_assert!(distance <= other, "{f}: {x:e} -> {q:e}, but {n:e} is closer");
            }
        }
    }

    #[test]
    fn directed_modes_bracket_the_input((f, xs) in format_and_inputs()) {
        for &x in xs.iter().filter(|x| !x.is_nan()) {
            let (x64, down, up) = (x as f64, round(&f, x, Rounding::Down), round(&f, x, Rounding::Up));
            let zero = round(&f, x, Rounding::TowardZero);
            prop_assert!(zero.abs() <= x64.abs(), "{f} toward-zero: {x:e} -> {zero:e}");
            prop_assert!(down <= up, "{f}: {x:e}: down {down:e} > up {up:e}");
            // Saturating formats clamp an input beyond ±max on both sides (±∞ stays ±∞ where
            // the format has it).
            if x64.abs() <= f.max() || overflows_to_infinity(&f) || (x.is_infinite() && f.has_inf()) {
                prop_assert!(down <= x64 && x64 <= up, "{f}: {x:e} not within [{down:e}, {up:e}]");
            } else {
                prop_assert_eq!(down, up);
                prop_assert_eq!(down.abs(), f.max());
            }
        }
    }

    #[test]
    fn the_fast_path_equals_the_exact_path((f, xs) in format_and_inputs(), seed in any::<u64>(), base in any::<u32>()) {
        let rng = RandomStream::new(seed, 3);
        let mut out = vec![0f32; xs.len()];
        for mode in DETERMINISTIC.iter().chain(&STOCHASTIC).copied() {
            quantize_slice(&f, mode, &rng, base as u64, &xs, &mut out);
            for (i, (&x, &got)) in xs.iter().zip(&out).enumerate() {
                let want = f.round(x as f64, mode, rng.at(base as u64 + i as u64));
                prop_assert!(same(got as f64, want), "{f} {mode}: {x:e} ({:#010x}) -> fast {got:e}, exact {want:e}", x.to_bits());
            }
        }
    }
}

/// A value strictly inside a gap of `f`: (lower, gap, x = lower + frac·gap) with a positive
/// finite lower neighbour below max.
fn value_in_gap(f: &FloatFormat, pattern: u32, frac: f64) -> Option<(f64, f64, f64)> {
    let positive_patterns = 1u32 << (f.bits() - 1);
    let p = pattern % positive_patterns;
    let lower = f.decode(p);
    let upper = f.decode(p + 1);
    if !(lower > 0.0 && upper.is_finite() && upper > lower && f.is_canonical(p)) {
        return None;
    }
    let gap = upper - lower;
    let x = lower + frac * gap;
    (x > lower && x < upper).then_some((lower, gap, x)) // exact: ≤ 21 + 20 significant bits
}

/// The fraction of `n` stochastic roundings of `x` (indices 0..n) that round up to `lower + gap`.
fn fraction_away(f: &FloatFormat, mode: Rounding, x: f64, lower: f64, gap: f64, n: u64) -> f64 {
    let rng = RandomStream::new(2024, 11);
    let mut away = 0u64;
    for i in 0..n {
        let q = f.round(x, mode, rng.at(i));
        assert!(q == lower || q == lower + gap, "{f} {mode}: {x:e} -> {q:e} is not a neighbour");
        away += (q != lower) as u64;
    }
    away as f64 / n as f64
}

proptest! {
    #![proptest_config(config(256))]

    /// Exact stochastic rounding and stochastic-unbiased:16 are unbiased (the mean of many
    /// roundings is within 5 standard errors of the value); stochastic:4 rounds away with
    /// probability ⌊frac·16⌋/16, drifting toward zero by less than 2^-4 of the gap.
    #[test]
    fn stochastic_rounding_has_the_predicted_mean(
        f in float_format().prop_filter("≤ 20 mantissa bits", |f| f.man_bits <= 20),
        pattern in any::<u32>(),
        frac_bits in 1u32..(1 << 20),
    ) {
        let frac = frac_bits as f64 * pow2(-20);
        let gap_position = value_in_gap(&f, pattern, frac);
        prop_assume!(gap_position.is_some());
        let (lower, gap, x) = gap_position.unwrap();
        let n = 4096u64;
        let standard_error = |p: f64| (p * (1.0 - p) / n as f64).sqrt();

        let exact = fraction_away(&f, Rounding::Stochastic, x, lower, gap, n);
        prop_assert!((exact - frac).abs() <= 5.0 * standard_error(frac) + 1e-12, "{f} stochastic: {x:e} frac {frac}: P(away) {exact}");
        let mean = lower + exact * gap;
        prop_assert!((mean - x).abs() <= 5.0 * standard_error(frac) * gap + 1e-12 * gap);

        let p16 = (frac * 65536.0).round_ties_even() / 65536.0;
        let unbiased = fraction_away(&f, Rounding::StochasticUnbiased(16), x, lower, gap, n);
        prop_assert!((unbiased - p16).abs() <= 5.0 * standard_error(p16) + 1e-12, "{f} stochastic-unbiased:16: {x:e} frac {frac}: P(away) {unbiased}, predicted {p16}");
        prop_assert!((p16 - frac).abs() <= pow2(-17));

        let p4 = (frac * 16.0).floor() / 16.0;
        prop_assert!(p4 <= frac && frac - p4 < pow2(-4)); // the drift toward zero, in gaps
        let truncated = fraction_away(&f, Rounding::StochasticBits(4), x, lower, gap, n);
        if p4 == 0.0 {
            prop_assert_eq!(truncated, 0.0, "{} stochastic:4: frac {} < 1/16 never rounds away", f, frac);
        } else {
            prop_assert!((truncated - p4).abs() <= 5.0 * standard_error(p4), "{f} stochastic:4: {x:e} frac {frac}: P(away) {truncated}, predicted {p4}");
        }
    }
}

/// The drift of stochastic:4 is visible where it is largest: frac = 31/32 rounds away with
/// P = 15/16, well below frac, while exact stochastic rounding gets frac and
/// stochastic-unbiased:4 (RNE(15.5) = 16) always rounds away.
#[test]
fn stochastic_bits_drift_toward_zero_by_under_one_sixteenth() {
    let f = FloatFormat::ieee(5, 10);
    let (lower, gap) = (1.0, pow2(-10));
    let n = 1u64 << 16;
    let se = |p: f64| (p * (1.0f64 - p) / n as f64).sqrt();
    let frac = 31.0 / 32.0;
    let x = lower + frac * gap;
    let truncated = fraction_away(&f, Rounding::StochasticBits(4), x, lower, gap, n);
    assert!((truncated - 15.0 / 16.0).abs() < 5.0 * se(15.0 / 16.0), "{truncated}");
    assert!(frac - truncated > 5.0 * se(frac), "no visible drift: {truncated}");
    let exact = fraction_away(&f, Rounding::Stochastic, x, lower, gap, n);
    assert!((exact - frac).abs() < 5.0 * se(frac), "{exact}");
    assert_eq!(fraction_away(&f, Rounding::StochasticUnbiased(4), x, lower, gap, n), 1.0);
    // frac = 1/32: both 4-bit variants never round away (⌊0.5⌋ = 0 and RNE(0.5) = 0).
    let x = lower + gap / 32.0;
    assert_eq!(fraction_away(&f, Rounding::StochasticBits(4), x, lower, gap, n), 0.0);
    assert_eq!(fraction_away(&f, Rounding::StochasticUnbiased(4), x, lower, gap, n), 0.0);
    // frac = 3/32: RNE(1.5) = 2, so stochastic-unbiased:4 rounds away with P = 2/16.
    let x = lower + 3.0 * gap / 32.0;
    let p = fraction_away(&f, Rounding::StochasticUnbiased(4), x, lower, gap, n);
    assert!((p - 0.125).abs() < 5.0 * se(0.125), "{p}");
}
