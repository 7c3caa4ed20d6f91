//! Exhaustive checks of `Format::contains` and `represents_all_of`:
//!
//! - for every pair of element-wise formats of at most 8 bits (floats with every specials
//!   layout, with and without subnormals, several biases; fixed point; unscaled integers;
//!   E8M0) the descriptor-based answer equals the enumerated one (every value of the coarser
//!   format, specials included, tested with `contains` in the finer);
//! - the same for pairs of the named formats up to 16 bits on the coarse side;
//! - `contains` agrees with the runtime's rounding: quantizing a value the format contains
//!   returns it bit for bit in every rounding mode, and a finite value it does not contain
//!   never comes back unchanged.

use qc_runtime::numerics::format::NAMED_FLOATS;
use qc_runtime::numerics::{represents_all_of, FixedFormat, FloatFormat, Format, IntFormat, Granularity, RandomStream, Rounding, Specials};

/// Every element-wise format of at most 8 bits the enumeration covers.
fn small_formats() -> Vec<Format> {
    let mut out = Vec::new();
    for e in 1..=7u32 {
        for m in 0..=(7 - e) {
            for specials in [Specials::Ieee, Specials::Fn, Specials::Fnuz, Specials::None] {
                for subnormals in [true, false] {
                    let base = FloatFormat::ieee(e, m).with_specials(specials);
                    for bias in [base.bias, base.bias + 3, base.bias - 1] {
                        let f = FloatFormat { bias, subnormals, ..base };
                        if f.validate().is_ok() {
                            out.push(Format::Float { name: None, format: f });
                        }
                    }
                }
            }
        }
    }
    for total in 1..=8u32 {
        for int_bits in 0..=total {
            let frac_bits = total - int_bits;
            if int_bits >= 1 && total >= 2 {
                out.push(Format::Fixed(FixedFormat { int_bits, frac_bits, signed: true }));
            }
            out.push(Format::Fixed(FixedFormat { int_bits, frac_bits, signed: false }));
        }
    }
    for bits in 1..=8u32 {
        for signed in [false, true] {
            if signed && bits < 2 {
                continue;
            }
            out.push(Format::Int(IntFormat { bits, signed, asymmetric: false, granularity: Granularity::PerTensor, unscaled: true }));
        }
    }
    out.push(Format::E8m0);
    out
}

/// Every value of an element-wise format of at most 16 bits, specials included.
fn all_values(f: &Format) -> Vec<f64> {
    match f {
        // Non-canonical patterns (mantissa bits under a `nosub` zero exponent) are never produced.
        Format::Float { format, .. } => format.all_encodings().expect("at most 16 bits").filter(|(b, _)| format.is_canonical(*b)).map(|(_, v)| v).collect(),
        Format::Fixed(x) => {
            let (lo, hi) = qc_runtime::numerics::fixed::fixed_range(x);
            grid(lo, hi, x.frac_bits as i32)
        }
        Format::Int(i) => {
            let (lo, hi) = qc_runtime::numerics::scaled::int_range(i);
            grid(lo as f64, hi as f64, 0)
        }
        Format::E8m0 => (0..=255u8).map(qc_runtime::numerics::float_extra::decode_e8m0).collect(),
        other => panic!("{other} has no fixed set of values"),
    }
}

fn grid(lo: f64, hi: f64, frac_bits: i32) -> Vec<f64> {
    let step = 2f64.powi(-frac_bits);
    let n = ((hi - lo) / step) as i64;
    (0..=n).map(|k| lo + k as f64 * step).map(|v| v + 0.0).collect()
}

fn enumerated(finer: &Format, coarse_values: &[f64]) -> bool {
    coarse_values.iter().all(|&v| finer.contains(v))
}

#[test]
fn descriptor_answer_equals_enumeration_for_every_pair_of_small_formats() {
    let formats = small_formats();
    assert!(formats.len() > 300, "{} formats", formats.len());
    let values: Vec<Vec<f64>> = formats.iter().map(all_values).collect();
    let (mut pairs, mut included) = (0usize, 0usize);
    for fine in &formats {
        for (coarse, coarse_values) in formats.iter().zip(&values) {
            let want = enumerated(fine, coarse_values);
            assert_eq!(represents_all_of(fine, coarse), Some(want), "represents_all_of({fine}, {coarse})");
            pairs += 1;
            included += want as usize;
        }
    }
    // Both answers occur often: the test is not vacuous.
    assert!(included > 5_000 && pairs - included > 50_000, "{included} of {pairs} pairs included");
}

#[test]
fn descriptor_answer_equals_enumeration_for_named_formats() {
    let mut formats: Vec<Format> = NAMED_FLOATS.iter().map(|(n, _)| Format::parse(n).unwrap()).collect();
    for extra in ["fp16<sat>", "fp<6,5,nosub>", "fp<5,10,nosub>", "fixed<8,8>", "fixed<16,0>", "ufixed<4,12>", "int<16,noscale>", "int<8,noscale>", "e8m0", "fp<8,7,nosub>"] {
        formats.push(Format::parse(extra).unwrap());
    }
    for coarse in formats.iter().filter(|f| f.element_bits() <= 16) {
        let coarse_values = all_values(coarse);
        for fine in &formats {
            let want = enumerated(fine, &coarse_values);
            assert_eq!(represents_all_of(fine, coarse), Some(want), "represents_all_of({fine}, {coarse})");
        }
    }
    let f = |t: &str| Format::parse(t).unwrap();
    // fp32 is checked by the descriptor too, not only by its shortcut: it holds fp16 and bf16.
    assert_eq!(represents_all_of(&f("fp32"), &f("fp16")), Some(true));
    assert_eq!(represents_all_of(&f("tf32"), &f("fp32")), Some(false));
    assert_eq!(represents_all_of(&f("fp16"), &f("fp16<sat>")), Some(true), "saturation changes no value");
}

const MODES: [Rounding; 8] = [
    Rounding::Nearest,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Up,
    Rounding::Down,
    Rounding::Stochastic,
    Rounding::StochasticBits(3),
    Rounding::StochasticUnbiased(5),
];

/// `contains` against the rounding the runtime implements: a contained value is a fixed
/// point of quantization in every mode; a finite value not contained never is.
#[test]
fn contained_values_are_exactly_the_fixed_points_of_quantization() {
    let formats = small_formats();
    let mut pool: Vec<f32> = formats.iter().flat_map(all_values).map(|v| v as f32).collect();
    pool.extend([1.0e-40f32, -3.5e-39, 1.0e30, -7.0e37, f32::MAX, f32::MIN_POSITIVE]);
    pool.sort_by_key(|x| x.to_bits());
    pool.dedup_by_key(|x| x.to_bits());
    let rng = RandomStream::new(7, 3);
    let mut out = vec![0f32; pool.len()];
    for f in &formats {
        for mode in MODES {
            f.quantize(&pool, &[pool.len()], mode, &rng, &mut out).unwrap();
            for (&x, &y) in pool.iter().zip(&out) {
                let same = x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan();
                if f.contains(x as f64) {
                    assert!(same, "{f} {mode}: contains {x:e} but quantizes it to {y:e}");
                } else if x.is_finite() {
                    assert!(!same, "{f} {mode}: does not contain {x:e} but keeps it");
                }
            }
        }
    }
}
