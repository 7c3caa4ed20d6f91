//! Soundness evidence for the fusion rules (spec/ir.md, "Fusion"), until execution exists:
//! each rule's identity is checked numerically with the runtime's own rounding
//! (`Format::quantize`, `FloatFormat::round`) on small formats, over a dense sweep of f32
//! inputs (every exponent, specials included), bit for bit, in every rounding mode the rule
//! claims; and for each excluded case a counterexample shows the identity really fails.
//! A snapshot lists which rules fire on every `tests/passes/fusion/*.qir` case.

mod common;

use qc_compiler::egraph::rules::directed_collapse_is_exact;
use qc_compiler::egraph::{cost, fuse_module};
use qc_compiler::parse_module;
use qc_compiler::ir::{Dim, Type};
use qc_runtime::numerics::{represents_all_of, FloatFormat, Format, RandomStream, Rounding};

const MODES: [Rounding; 8] = [
    Rounding::Nearest,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Up,
    Rounding::Down,
    Rounding::Stochastic,
    Rounding::StochasticBits(4),
    Rounding::StochasticUnbiased(6),
];

fn fmt(text: &str) -> Format {
    Format::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Small floats with every specials layout, with and without subnormals and saturation,
/// plus the 16-bit formats.
fn floats() -> Vec<Format> {
    let mut out: Vec<Format> = [
        "fp16", "bf16", "fp16<sat>", "e5m2", "e5m2<sat>", "e4m3", "e4m3_ieee", "e3m4", "e4m3fnuz", "e5m2fnuz", "hfp8_fwd",
        "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "fp<3,1>", "fp<3,1,sat>", "fp<2,1,fn>", "fp<3,2,nosub>", "fp<4,2,nospecials>",
        "fp<4,3,nosub,sat>", "fp<5,1,fn>", "fp<2,0,nospecials>", "fp<3,0>",
    ]
    .iter()
    .map(|t| fmt(t))
    .collect();
    out.dedup();
    out
}

/// Every f32 whose low 14 bits are a hash of the top 18 (262 144 inputs: every exponent,
/// both signs, zeros, infinities, NaNs, and mantissas far below every small format's).
fn sweep() -> Vec<f32> {
    (0..1u32 << 18)
        .map(|k| {
            let low = k.wrapping_mul(0x9E37_79B9).rotate_left(7) & 0x3FFF;
            f32::from_bits(k << 14 | low)
        })
        .chain([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN])
        .collect()
}

fn quantize(f: &Format, x: &[f32], r: Rounding) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    f.quantize(x, &[x.len()], r, &RandomStream::new(11, 5), &mut out).unwrap();
    out
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()
}

/// The first input where two results differ.
fn first_difference(x: &[f32], a: &[f32], b: &[f32]) -> Option<(f32, f32, f32)> {
    x.iter().zip(a).zip(b).find(|((_, p), q)| !same(**p, **q)).map(|((x, p), q)| (*x, *p, *q))
}

/// requantize-to-finer: q_F,r(q_G,s(x)) = q_G,s(x) whenever F holds every value of G, for
/// every r (and s); and the converse direction double-rounds.
#[test]
fn quantizing_to_a_finer_format_is_exact_in_every_mode() {
    let x = sweep();
    let formats = floats();
    let mut fired = 0;
    for coarse in &formats {
        let y = quantize(coarse, &x, Rounding::Nearest);
        let y_up = quantize(coarse, &x, Rounding::Up);
        for fine in &formats {
            if represents_all_of(fine, coarse) != Some(true) {
                continue;
            }
            fired += 1;
            for r in MODES {
                for inner in [&y, &y_up] {
                    let z = quantize(fine, inner, r);
                    assert!(first_difference(&x, inner, &z).is_none(), "q_{fine},{r}(q_{coarse}(x)) changed a value: {:?}", first_difference(&x, inner, &z));
                }
            }
        }
    }
    assert!(fired >= 60, "only {fired} pairs checked");
    // The other way round is double rounding: e4m3 after fp16 differs from e4m3 directly.
    let (fp16, e4m3) = (fmt("fp16"), fmt("e4m3"));
    let twice = quantize(&e4m3, &quantize(&fp16, &x, Rounding::Nearest), Rounding::Nearest);
    let once = quantize(&e4m3, &x, Rounding::Nearest);
    let (input, a, b) = first_difference(&x, &twice, &once).expect("double rounding shows on the sweep");
    assert_ne!(a, b, "{input:e}");
}

/// collapse-directed: for directed modes the composition equals the single rounding exactly
/// when `directed_collapse_is_exact` says so — checked against every pair of nested formats,
/// so the overflow conditions are neither too weak (a failure) nor needlessly strong.
#[test]
fn directed_double_rounding_collapses_exactly_when_the_condition_holds() {
    let x = sweep();
    let formats = floats();
    let (mut exact_pairs, mut refused) = (0, 0);
    for r in [Rounding::TowardZero, Rounding::Up, Rounding::Down] {
        for fine in &formats {
            let via_fine = quantize(fine, &x, r);
            for coarse in &formats {
                if represents_all_of(fine, coarse) != Some(true) {
                    continue;
                }
                let twice = quantize(coarse, &via_fine, r);
                let once = quantize(coarse, &x, r);
                let diff = first_difference(&x, &twice, &once);
                if directed_collapse_is_exact(fine, coarse, r) {
                    assert!(diff.is_none(), "collapse {coarse}∘{fine} @ {r} claimed exact but differs at {diff:?}");
                    exact_pairs += 1;
                } else {
                    assert!(diff.is_some(), "collapse {coarse}∘{fine} @ {r} refused but is exact on the sweep");
                    refused += 1;
                }
            }
        }
    }
    assert!(exact_pairs >= 100 && refused >= 3, "{exact_pairs} exact, {refused} refused");
    // Nearest never qualifies; nor does a mix of modes.
    assert!(!directed_collapse_is_exact(&fmt("fp16"), &fmt("e4m3"), Rounding::Nearest));
    assert!(!directed_collapse_is_exact(&fmt("fp16"), &fmt("e4m3"), Rounding::Stochastic));
}

/// `clip` as nn.clip defines it: below `lo` (with -0 below +0) gives `lo`, above `hi` gives
/// `hi`, NaN stays.
fn clip(v: f32, lo: f32, hi: f32) -> f32 {
    if v.is_nan() {
        v
    } else if v < lo || (v == 0.0 && lo == 0.0 && v.is_sign_negative() && lo.is_sign_positive()) {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

fn relu(v: f32) -> f32 {
    clip(v, 0.0, f32::INFINITY)
}

/// Element-wise targets of every family: floats, fixed point, unscaled integers.
fn elementwise_targets() -> Vec<Format> {
    let mut out = floats();
    out.extend(["fixed<8,8>", "fixed<4,2>", "ufixed<4,4>", "int<8,noscale>", "uint<4,noscale>", "fixed<2,6>"].map(fmt));
    out
}

/// relu-quantize-to-clip: q_F,r(clip(x)) = clip(q_F,r(x)) for element-wise F holding the
/// bounds, in every mode (stochastic included: same stream, same element indices).
#[test]
fn clamping_commutes_with_elementwise_quantization() {
    let x = sweep();
    let mut checked = 0;
    for f in elementwise_targets() {
        for (lo, hi) in [(0.0f32, f32::INFINITY), (0.0, 6.0), (-1.0, 1.0), (-0.5, 0.25)] {
            let fits = |b: f32| b.is_infinite() || f.contains(b as f64);
            if !fits(lo) || !fits(hi) {
                continue;
            }
            let clipped: Vec<f32> = x.iter().map(|v| clip(*v, lo, hi)).collect();
            for r in MODES {
                let left = quantize(&f, &clipped, r);
                let right: Vec<f32> = quantize(&f, &x, r).into_iter().map(|v| clip(v, lo, hi)).collect();
                let diff = first_difference(&x, &left, &right);
                assert!(diff.is_none(), "q_{f},{r}(clip[{lo},{hi}](x)) ≠ clip(q(x)) at {diff:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked}");
}

/// The counterexamples behind relu-quantize-to-clip's conditions.
#[test]
fn clamping_does_not_commute_when_the_rule_refuses() {
    let data: Vec<f32> = vec![-3.0, 0.7, 0.2, -0.05, 1.1, 0.4];
    // A per-tensor scale is computed from the data: relu changes amax (3.0 → 1.1).
    let int8 = fmt("int<8>");
    let relu_first = quantize(&int8, &data.iter().map(|v| relu(*v)).collect::<Vec<_>>(), Rounding::Nearest);
    let clip_after: Vec<f32> = quantize(&int8, &data, Rounding::Nearest).into_iter().map(relu).collect();
    assert!(first_difference(&data, &relu_first, &clip_after).is_some(), "int8 per tensor: {relu_first:?} vs {clip_after:?}");
    // A bound that is not a value of the target: clip at 5 then fp4 gives 4 or 6, never 5.
    let fp4 = fmt("fp4_e2m1");
    let x = [5.2f32];
    let a = quantize(&fp4, &[clip(5.2, 0.0, 5.0)], Rounding::Nearest);
    let b: Vec<f32> = quantize(&fp4, &x, Rounding::Nearest).into_iter().map(|v| clip(v, 0.0, 5.0)).collect();
    assert_ne!(a, b);
    // A relu that rounds to a coarser format first is a double rounding.
    let (fp16, e4m3) = (fmt("fp16"), fmt("e4m3"));
    let xs = sweep();
    let relu16 = quantize(&fp16, &xs.iter().map(|v| relu(*v)).collect::<Vec<_>>(), Rounding::Nearest);
    let left = quantize(&e4m3, &relu16, Rounding::Nearest);
    let right: Vec<f32> = quantize(&e4m3, &xs, Rounding::Nearest).into_iter().map(relu).collect();
    assert!(first_difference(&xs, &left, &right).is_some());
}

/// dequantize-quantize: every value of an element-wise F, dequantized exactly to G ⊇ F and
/// quantized back to F in any mode, is itself.
#[test]
fn dequantize_then_quantize_returns_every_value() {
    for f in elementwise_targets() {
        let Some(ff) = f.as_float() else { continue };
        let Some(encodings) = ff.all_encodings() else { continue };
        let values: Vec<f32> = encodings.filter(|(b, _)| ff.is_canonical(*b)).map(|(_, v)| v as f32).collect();
        for g in [fmt("fp32"), fmt("fp16"), fmt("bf16")] {
            if represents_all_of(&g, &f) != Some(true) {
                continue;
            }
            let dq = quantize(&g, &values, Rounding::Nearest);
            assert!(first_difference(&values, &values, &dq).is_none(), "dequantize {f} → {g} is exact");
            for r in MODES {
                let back = quantize(&f, &dq, r);
                assert!(first_difference(&values, &values, &back).is_none(), "{f} via {g} @ {r}");
            }
        }
    }
    // A scaled format recomputes its scale: with `up`, x/scale lands just above an integer
    // for some element and moves up a step.
    let int8 = fmt("int<8>");
    let found = (0..200u32).any(|seed| {
        let data: Vec<f32> = (0..16u32).map(|i| ((seed * 31 + i * 17) % 97) as f32 / 13.0 - 3.1).collect();
        let once = quantize(&int8, &data, Rounding::Up);
        let twice = quantize(&int8, &once, Rounding::Up);
        first_difference(&data, &once, &twice).is_some()
    });
    assert!(found, "requantizing int8 with `up` changed nothing on 200 tensors");
}

fn round(f: &FloatFormat, x: f64, r: Rounding) -> f64 {
    f.round(x, r, RandomStream::new(0, 0).at(0))
}

/// fuse-bias: round_B,r(round_T,o(a) + b) = round_B,o(round_acc,r(a + b)) when T holds the
/// accumulator's values and B rounds like the accumulator (here: every fp16 accumulator value
/// a against a spread of fp16 biases, every deterministic mode, the reference rounding).
#[test]
fn bias_addition_moves_into_the_accumulator() {
    let acc = *fmt("fp16").as_float().unwrap();
    let t = *fmt("fp32").as_float().unwrap();
    let biases: Vec<f64> = acc.all_encodings().unwrap().step_by(1031).map(|(_, v)| v).collect();
    for r in [Rounding::Nearest, Rounding::NearestAway, Rounding::TowardZero, Rounding::Up, Rounding::Down] {
        for (_, a) in acc.all_encodings().unwrap() {
            for &b in &biases {
                let unfused = round(&acc, round(&t, a, Rounding::Nearest) + b, r);
                let fused = round(&acc, round(&acc, a + b, r), Rounding::Nearest);
                assert!(unfused.to_bits() == fused.to_bits() || unfused.is_nan() && fused.is_nan(), "{a} + {b} @ {r}");
            }
        }
    }
    // Where the rule refuses: a saturating add after an IEEE accumulator overflows differently,
    // and a dense rounded to fp16 before an fp32 add double-rounds.
    let sat = *fmt("fp16<sat>").as_float().unwrap();
    assert_ne!(round(&sat, 65504.0 + 32.0, Rounding::Nearest), round(&acc, 65504.0 + 32.0, Rounding::Nearest));
    let fp32 = *fmt("fp32").as_float().unwrap();
    let a = 1.0 + 2f64.powi(-11) + 2f64.powi(-30); // just above an fp16 midpoint
    let b = 2f64.powi(-11);
    assert_ne!(round(&fp32, round(&acc, a, Rounding::Nearest) + b, Rounding::Nearest), round(&fp32, a + b, Rounding::Nearest));
}

/// The cost model prefers the fused dense: fewer bytes (no fp32 intermediates), fewer ops,
/// the same BitOps.
#[test]
fn a_fused_dense_costs_less_than_the_unfused_chain() {
    let t = |dims: &[u64], f: &str| Type::tensor(dims.iter().map(|d| Dim::Fixed(*d)).collect(), fmt(f));
    let (x, w, b) = (t(&[32, 256], "e4m3"), t(&[256, 128], "e4m3"), t(&[128], "fp32"));
    let (y32, y8) = (t(&[32, 128], "fp32"), t(&[32, 128], "e4m3"));
    let chain = cost::op_cost("nn.dense", &[&x, &w], &y32)
        + cost::op_cost("nn.add", &[&y32, &b], &y32)
        + cost::op_cost("nn.relu", &[&y32], &y32)
        + cost::op_cost("q.quantize", &[&y32], &y8);
    let fused = cost::op_cost("nn.fused_dense", &[&x, &w, &b], &y8);
    assert!(fused.score() < chain.score(), "{fused:?} vs {chain:?}");
    assert!(fused.bytes < chain.bytes && fused.ops < chain.ops);
    assert_eq!(fused.bitops, chain.bitops);
    assert_eq!(fused.bitops, (32 * 128 * 256 * 8 * 8) as f64, "BitOps = MACs × 8 × 8");
    // Block scales count: an mxfp4 weight moves 4.25 bits per element.
    let mx = cost::op_cost("nn.dense", &[&x, &t(&[256, 128], "mxfp4")], &y32);
    let plain = cost::op_cost("nn.dense", &[&x, &t(&[256, 128], "fp4_e2m1")], &y32);
    assert_eq!(mx.bytes - plain.bytes, 256.0 * 128.0 * 0.25 / 8.0);
}

/// Which rules fire on each test case, and the cost before and after.
#[test]
fn fired_rules_listing() {
    for path in common::qir_files("passes/fusion") {
        let source = std::fs::read_to_string(&path).unwrap();
        let mut module = parse_module(&source).unwrap_or_else(|d| panic!("{}", d.render(&path.display().to_string(), &source)));
        let report = fuse_module(&mut module);
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        insta::assert_snapshot!(format!("fired_rules__{name}"), report.to_string());
    }
}
