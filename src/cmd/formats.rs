//! `qc formats`: the named formats with their ranges and special values, the block formats,
//! and the parametric families with their syntax.

use super::CliError;
use crate::report::numbers::{power_of_two, value, NONE};
use crate::report::table::{Align, Table};
use qc_runtime::numerics::float::pow2;
use qc_runtime::numerics::format::{NAMED_BLOCKS, NAMED_FLOATS};
use qc_runtime::numerics::{BlockElement, BlockFormat, BlockScale, FloatFormat, Format, ScaleRule};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<(), CliError> {
    super::print(&listing())
}

/// The three tables of `qc formats` (also the REPL's `:formats`).
pub fn listing() -> String {
    format!(
        "Float formats (element-wise)\n{}\nBlock formats (a shared scale per block along the last axis)\n{}\nParametric families\n{}",
        float_table(),
        block_table(),
        family_table()
    )
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn float_table() -> String {
    let mut t = Table::new(&[
        ("name", Align::Left),
        ("syntax", Align::Left),
        ("bits", Align::Right),
        ("min subnormal", Align::Right),
        ("min normal", Align::Right),
        ("max", Align::Right),
        ("epsilon", Align::Right),
        ("inf", Align::Left),
        ("NaN", Align::Left),
        ("-0", Align::Left),
    ]);
    for (name, f) in NAMED_FLOATS {
        let min_subnormal = if f.subnormals && f.man_bits > 0 { power_of_two(f.min_positive()) } else { NONE.into() };
        t.row(vec![
            name.to_string(),
            f.to_string(),
            f.bits().to_string(),
            min_subnormal,
            power_of_two(f.min_normal()),
            max_text(f.max()),
            power_of_two(f.epsilon()),
            yes_no(f.has_inf()),
            yes_no(f.has_nan()),
            yes_no(f.has_negative_zero()),
        ]);
    }
    // E8M0: unsigned powers of two, NaN at 0xFF, no zero.
    t.row(vec![
        "e8m0".into(),
        "unsigned 2^-127..2^127".into(),
        "8".into(),
        NONE.into(),
        power_of_two(pow2(-127)),
        power_of_two(pow2(127)),
        "1".into(),
        yes_no(false),
        yes_no(true),
        yes_no(false),
    ]);
    t.render()
}

/// The largest value: exact when it is a modest integer, else four significant digits.
fn max_text(x: f64) -> String {
    if x < 1e9 { value(x) } else { format!("{x:.4e}") }
}

fn float_name(f: &FloatFormat) -> String {
    NAMED_FLOATS.iter().find(|(_, g)| g == f).map(|(n, _)| n.to_string()).unwrap_or_else(|| f.to_string())
}

fn block_table() -> String {
    let mut t = Table::new(&[
        ("name", Align::Left),
        ("element", Align::Left),
        ("element max", Align::Right),
        ("scale", Align::Left),
        ("block", Align::Right),
        ("bits/element", Align::Right),
    ]);
    for (name, b) in NAMED_BLOCKS {
        let (element, element_max) = match b.element {
            BlockElement::Float(f) => (format!("{} (saturating)", float_name(&f)), value(f.max())),
            BlockElement::Int8 => ("int8 × 2^-6 (±127)".into(), value(127.0 / 64.0)),
            BlockElement::SignMagnitude(m) => (format!("sign + {m} magnitude bits"), NONE.into()),
        };
        t.row(vec![
            name.to_string(),
            element,
            element_max,
            scale_text(b),
            b.block.to_string(),
            value(Format::Block(*b).bits_per_element()),
        ]);
    }
    t.render()
}

fn scale_text(b: &BlockFormat) -> String {
    match b.scale {
        BlockScale::E8m0(rule) => {
            let rule = match rule {
                ScaleRule::Floor => "floor",
                ScaleRule::Ceil => "ceil",
                ScaleRule::Even => "even",
                ScaleRule::RoundUp => "rceil",
            };
            format!("e8m0, {rule} rule")
        }
        BlockScale::SharedExponent => "shared exponent".into(),
        BlockScale::E4m3 => "e4m3 = amax / element max".into(),
    }
}

/// The syntax of each parametric family and what it is.
const FAMILIES: &[(&str, &str)] = &[
    ("fp<E,M,opts>", "custom float, E 1..8, M 0..23; IEEE-like unless opts: nosub, sat, fn, fnuz, nospecials, bias=B"),
    ("fixed<I,F>, ufixed<I,F>", "two's complement (unsigned) fixed point: I integer bits (with the sign), F fraction bits; saturating"),
    ("int<b,opts>, uint<b,opts>", "b-bit integers (1..16) with a scale per tensor or per channel; opts: axis=A, asym, noscale"),
    ("int8, int4, int2, uint8, uint4", "shorthands for int<8>, int<4>, int<2>, uint<8>, uint<4> (same options)"),
    ("NAME<block=N,scale=R>", "a block format above with block size N (1..4096) or E8M0 scale rule R: floor, ceil, even, rceil"),
    ("bfp<M,N>", "block floating point: sign and M magnitude bits per element, a shared exponent per block of N"),
    ("binary<axis=A>", "sign(w)·mean|w| per tensor (or per channel along axis A)"),
    ("ternary<axis=A>", "TWN: threshold 0.7·mean|w|, scale the mean |w| above it"),
    ("ternary_absmean<axis=A>", "BitNet b1.58: clip(round(w/γ), −1, 1)·γ with γ = mean|w|"),
    ("log2<b>", "powers of two: a sign and b−1 bits of exponent code (0 is zero), anchored at the largest |w|; b 2..8"),
];

fn family_table() -> String {
    let mut t = Table::new(&[("syntax", Align::Left), ("description", Align::Left)]);
    for (syntax, description) in FAMILIES {
        t.row(vec![syntax.to_string(), description.to_string()]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_syntax_example_parses() {
        for text in ["fp<5,2,nosub,sat,bias=16>", "fixed<4,4>", "ufixed<4,4>", "int<8,axis=0,asym>", "uint<4>", "int4",
            "mxfp4<block=16,scale=ceil>", "bfp<7,16>", "binary<axis=0>", "ternary<axis=1>", "ternary_absmean", "log2<4>"]
        {
            assert!(Format::parse(text).is_ok(), "{text}");
        }
    }
}
