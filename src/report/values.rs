//! Quantizing a list of values to a format and the table that shows the outcome: input,
//! result, encoding, absolute, relative and ulp error.
//!
//! Float formats and E8M0 round each value exactly from its `f64` (the reference rounding, so
//! `0.1` in `fp32` shows the real error of 0.1); formats whose values depend on the whole
//! tensor (scaled, block, codebook) or have no encoding API (fixed point) get the values as
//! one 1-D float32 tensor through `Format::quantize`. Element `i` draws its random bits at
//! index `i` of `RandomStream::new(seed, 0)`.

use super::numbers::{self, NONE};
use super::table::{Align, Table};
use crate::cmd::CliError;
use qc_runtime::numerics::float::{exponent_of, pow2};
use qc_runtime::numerics::float_extra::{encode_e8m0, round_e8m0};
use qc_runtime::numerics::{FloatFormat, Format, RandomStream, Rounding};

/// Rounds each of `values` to `format`.
pub fn quantize_values(format: &Format, values: &[f64], rounding: Rounding, seed: u64) -> Result<Vec<f64>, CliError> {
    let rng = RandomStream::new(seed, 0);
    let each = |round: &dyn Fn(f64, u64) -> f64| values.iter().zip(0u64..).map(|(&x, i)| round(x, i)).collect();
    Ok(match format {
        Format::Float { format: f, .. } => each(&|x, i| f.round(x, rounding, rng.at(i))),
        Format::E8m0 => each(&|x, i| round_e8m0(x, rounding, rng.at(i))),
        _ => {
            let data: Vec<f32> = values.iter().map(|&x| x as f32).collect();
            let mut out = vec![0f32; data.len()];
            format.quantize(&data, &[data.len()], rounding, &rng, &mut out)?;
            out.into_iter().map(f64::from).collect()
        }
    })
}

/// Whether `format` has a bit encoding per element that these tables can show.
pub fn has_element_encoding(format: &Format) -> bool {
    matches!(format, Format::Float { .. } | Format::E8m0)
}

/// The encoding of a value of `format` as hex and as `sign|exponent|mantissa` bit groups;
/// `None` for formats without a per-element encoding.
pub fn encoding(format: &Format, v: f64) -> Option<(String, String)> {
    match format {
        Format::Float { format: f, .. } => Some(match f.encode(v) {
            Ok(bits) => (hex(bits, f.bits()), bit_groups(f, bits)),
            Err(e) => (NONE.into(), format!("({e})")),
        }),
        Format::E8m0 => {
            let bits = encode_e8m0(v);
            Some((hex(bits as u32, 8), format!("{bits:08b}")))
        }
        _ => None,
    }
}

fn hex(bits: u32, width_bits: u32) -> String {
    format!("0x{bits:0w$x}", w = width_bits.div_ceil(4) as usize)
}

/// `s|eeeee|mmmmmmmmmm` (the mantissa group is left out when the format has none).
pub fn bit_groups(f: &FloatFormat, bits: u32) -> String {
    let sign = bits >> (f.exp_bits + f.man_bits) & 1;
    let exp = (bits >> f.man_bits) & ((1 << f.exp_bits) - 1);
    let mut text = format!("{sign}|{exp:0e$b}", e = f.exp_bits as usize);
    if f.man_bits > 0 {
        let man = bits & ((1 << f.man_bits) - 1);
        text.push_str(&format!("|{man:0m$b}", m = f.man_bits as usize));
    }
    text
}

/// The gap between consecutive values of `format` around magnitude `|x|` (the top binade's
/// for magnitudes beyond the largest value); `None` for formats without a fixed value set.
pub fn ulp(format: &Format, x: f64) -> Option<f64> {
    let a = x.abs();
    match format {
        Format::Float { format: f, .. } => {
            if a < f.min_normal() {
                Some(if f.subnormals { f.min_positive() } else { f.min_normal() })
            } else {
                let e = if a.is_finite() { exponent_of(a).min(f.emax()) } else { f.emax() };
                Some(pow2(e - f.man_bits as i32))
            }
        }
        // Powers of two: the gap above 2^e is 2^e.
        Format::E8m0 if a > 0.0 => Some(pow2(if a.is_finite() { exponent_of(a).clamp(-127, 127) } else { 127 })),
        _ => None,
    }
}

/// A one-line title: the format (with its full syntax when it has a name), the rounding mode,
/// and the seed when the mode draws random bits.
pub fn title(format: &Format, rounding: Rounding, seed: u64) -> String {
    let mut text = match format {
        Format::Float { name: Some(name), format: f } => format!("{name} = {f}"),
        _ => format.to_string(),
    };
    text.push_str(&format!(", rounding {rounding}"));
    if rounding.is_stochastic() {
        text.push_str(&format!(", seed {seed}"));
    }
    text
}

/// The footer that says how a format without per-element encodings was applied.
pub fn tensor_footer(format: &Format, n: usize) -> String {
    let (values, were, them) = if n == 1 { ("value".to_string(), "was", "it") } else { (format!("{n} values"), "were", "all of them") };
    let how = if format.is_elementwise() { "each element on its own".to_string() } else { format!("with scales computed from {them}") };
    format!("`{format}` has no per-element encoding here: the {values} {were} converted to float32 and quantized as one 1-D tensor ({how}).")
}

/// The table of `qc quantize --format F VALUE...` and the REPL's `q`.
pub fn value_table(format: &Format, values: &[f64], rounding: Rounding, seed: u64) -> Result<String, CliError> {
    let results = quantize_values(format, values, rounding, seed)?;
    let mut table = Table::new(&[
        ("input", Align::Right),
        ("result", Align::Right),
        ("hex", Align::Left),
        ("sign|exponent|mantissa", Align::Left),
        ("abs error", Align::Right),
        ("rel error", Align::Right),
        ("ulps", Align::Right),
    ]);
    for (&x, &q) in values.iter().zip(&results) {
        let (hex, bits) = encoding(format, q).unwrap_or((NONE.into(), NONE.into()));
        let (abs, rel) = numbers::errors(x, q);
        let ulps = match ulp(format, x) {
            Some(u) => numbers::ulps(abs / u),
            None => NONE.into(),
        };
        table.row(vec![numbers::value(x), numbers::value(q), hex, bits, numbers::error(abs), numbers::error(rel), ulps]);
    }
    let mut out = title(format, rounding, seed);
    out.push('\n');
    out.push_str(&table.render());
    if !has_element_encoding(format) {
        out.push_str(&tensor_footer(format, values.len()));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulp_follows_the_binade_and_the_subnormal_range() {
        let fp16 = Format::parse("fp16").unwrap();
        assert_eq!(ulp(&fp16, 1.0), Some(2f64.powi(-10)));
        assert_eq!(ulp(&fp16, 0.1), Some(2f64.powi(-14)));
        assert_eq!(ulp(&fp16, 1e-6), Some(2f64.powi(-24)));
        assert_eq!(ulp(&fp16, 1e9), Some(32.0));
        let nosub = Format::parse("fp<5,10,nosub>").unwrap();
        assert_eq!(ulp(&nosub, 1e-6), Some(2f64.powi(-14)));
        assert_eq!(ulp(&Format::E8m0, 3.0), Some(2.0));
    }

    #[test]
    fn encodings_show_hex_and_bit_groups() {
        let fp16 = Format::parse("fp16").unwrap();
        assert_eq!(encoding(&fp16, 1.0), Some(("0x3c00".into(), "0|01111|0000000000".into())));
        let e4m3 = Format::parse("e4m3").unwrap();
        assert_eq!(encoding(&e4m3, -448.0), Some(("0xfe".into(), "1|1111|110".into())));
        let fp4 = Format::parse("fp4_e2m1").unwrap();
        assert_eq!(encoding(&fp4, f64::NAN).unwrap().0, NONE);
        assert_eq!(encoding(&Format::E8m0, 1.0), Some(("0x7f".into(), "01111111".into())));
    }
}
