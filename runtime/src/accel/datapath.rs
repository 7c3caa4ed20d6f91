//! The MAC datapath that `cfg.arith` configures: read from the textual `#arith<...>` of
//! spec/ir.md (multiplier, accumulator, chunk, output rounding, stream) and priced with the
//! energy table — what one multiply-accumulate and one chunk hand-off cost for given operand
//! formats.

use super::energy::{EnergyTable, Operand};
use super::model::Mac;
use crate::numerics::{Format, Rounding};

/// A format with the rounding that produces its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Rounded {
    pub format: Format,
    pub rounding: Rounding,
}

/// The arithmetic of a contraction (spec/ir.md, "The arith attribute").
#[derive(Clone, Debug, PartialEq)]
pub struct Datapath {
    /// `None`: exact products.
    pub mul: Option<Rounded>,
    pub acc: Rounded,
    /// Chunk size, format and rounding of the chunk sums.
    pub chunk: Option<(u64, Rounded)>,
    pub out: Rounding,
    /// The random stream of the op's stochastic roundings.
    pub stream: u32,
}

impl Default for Datapath {
    /// fp32 accumulation of exact products, round to nearest (the arithmetic of a plain
    /// SCALE-Sim layer has no formats; this is what qc prices it with unless told).
    fn default() -> Self {
        let fp32 = Format::parse("fp32").expect("fp32 is a format");
        Datapath { mul: None, acc: Rounded { format: fp32, rounding: Rounding::Nearest }, chunk: None, out: Rounding::Nearest, stream: 0 }
    }
}

/// Splits at commas outside `<...>` (formats carry commas: `fp<6,5,nosub>`).
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

fn rounded(text: &str) -> Result<Rounded, String> {
    let (f, r) = text.split_once('@').ok_or_else(|| format!("expected `FORMAT @ ROUNDING`, found `{text}`"))?;
    let format = Format::parse(f.trim()).map_err(|e| e.to_string())?;
    let rounding = Rounding::parse(r.trim())?;
    Ok(Rounded { format, rounding })
}

impl Datapath {
    /// Parses `#arith<mul=..., acc=..., chunk=..., out=..., fma, stream=...>`.
    pub fn parse(text: &str) -> Result<Datapath, String> {
        let inner = text
            .trim()
            .strip_prefix("#arith<")
            .and_then(|s| s.strip_suffix('>'))
            .ok_or_else(|| format!("expected `#arith<...>`, found `{text}`"))?;
        let mut mul = None;
        let mut acc = None;
        let mut chunk = None;
        let mut out = Rounding::Nearest;
        let mut stream = 0;
        for field in split_top_level(inner) {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            match (key.trim(), value.trim()) {
                ("mul", "exact") => mul = None,
                ("mul", v) => mul = Some(rounded(v)?),
                ("acc", v) => acc = Some(rounded(v)?),
                ("chunk", v) => {
                    let mut parts = v.splitn(3, '@').map(str::trim);
                    let size: u64 = parts.next().and_then(|s| s.parse().ok()).filter(|&n| n > 0).ok_or_else(|| format!("bad chunk size in `{v}`"))?;
                    let format = Format::parse(parts.next().unwrap_or("")).map_err(|e| e.to_string())?;
                    let rounding = parts.next().map(Rounding::parse).transpose()?;
                    chunk = Some((size, format, rounding));
                }
                ("out", v) => out = Rounding::parse(v)?,
                ("stream", v) => stream = v.parse().map_err(|_| format!("bad stream `{v}`"))?,
                ("fma", "") => {}
                (k, _) => return Err(format!("unknown #arith field `{k}`")),
            }
        }
        let acc = acc.ok_or("#arith without `acc`")?;
        let chunk = chunk.map(|(size, format, rounding)| (size, Rounded { format, rounding: rounding.unwrap_or(acc.rounding) }));
        Ok(Datapath { mul, acc, chunk, out, stream })
    }

    /// The energy of one multiply-accumulate with operands `a` and `b` on a `mac` unit: the
    /// multiplier (on the rounded product's significand too when `mul` rounds), the adder of
    /// the running sum (the chunk format's when chunked, else the accumulator's), their random
    /// bits. A precision-scalable unit multiplies at the widths rounded up to its 2-bit
    /// bricks; a bit-serial one does the same partial-product work but one shift-add of the
    /// running sum per weight bit.
    pub fn mac_energy(&self, table: &EnergyTable, a: &Format, b: &Format, mac: Mac) -> f64 {
        let (oa, ob) = (Operand::of(a), Operand::of(b));
        let brick = |o: Operand| Operand { significand_bits: o.significand_bits.clamp(2, 32).next_power_of_two(), ..o };
        let mut e = match mac {
            Mac::PrecisionScalable => table.multiply(brick(oa), brick(ob)),
            Mac::Fixed | Mac::BitSerial => table.multiply(oa, ob),
        };
        if let Some(m) = &self.mul {
            e += table.stochastic_rounding(EnergyTable::random_bits(m.rounding));
        }
        let running = self.chunk.as_ref().map_or(&self.acc, |(_, c)| c);
        let additions = if mac == Mac::BitSerial { ob.significand_bits.max(1) } else { 1 };
        e + f64::from(additions) * adder(table, running)
    }

    /// The energy spent once per chunk (adding a chunk sum into the accumulator), and the
    /// chunk size; `None` without chunks.
    pub fn chunk_energy(&self, table: &EnergyTable) -> Option<(u64, f64)> {
        self.chunk.as_ref().map(|(size, _)| (*size, adder(table, &self.acc)))
    }
}

/// An adder producing values of `r`, with its rounding's random bits.
fn adder(table: &EnergyTable, r: &Rounded) -> f64 {
    let float = r.format.as_float().is_some();
    table.add(r.format.element_bits(), float) + table.stochastic_rounding(EnergyTable::random_bits(r.rounding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textual_arith_parses_with_commas_inside_formats() {
        let d = Datapath::parse("#arith<mul=exact, acc=fp<6,5,nosub> @ stochastic:9, chunk=32 @ fp16, stream=3>").unwrap();
        assert!(d.mul.is_none());
        assert_eq!(d.acc.rounding, Rounding::StochasticBits(9));
        let (size, c) = d.chunk.unwrap();
        assert_eq!((size, c.rounding, c.format.element_bits()), (32, Rounding::StochasticBits(9), 16));
        assert!(Datapath::parse("#arith<mul=exact>").is_err());
    }

    #[test]
    fn stochastic_accumulation_costs_more_than_nearest() {
        let t = EnergyTable::default();
        let e4m3 = Format::parse("e4m3").unwrap();
        let sr = Datapath::parse("#arith<mul=exact, acc=fp16 @ stochastic:9, stream=0>").unwrap();
        let rn = Datapath::parse("#arith<mul=exact, acc=fp16 @ nearest>").unwrap();
        assert!(sr.mac_energy(&t, &e4m3, &e4m3, Mac::Fixed) > rn.mac_energy(&t, &e4m3, &e4m3, Mac::Fixed));
    }

    #[test]
    fn bit_serial_pays_an_addition_per_weight_bit_and_bit_fusion_its_bricks() {
        let t = EnergyTable::default();
        let (i8f, i4f, i3f) = (Format::parse("int<8,noscale>").unwrap(), Format::parse("int<4,noscale>").unwrap(), Format::parse("int<3,noscale>").unwrap());
        let d = Datapath::parse("#arith<mul=exact, acc=fixed<32,0> @ nearest>").unwrap();
        let add = t.add(32, false);
        let serial = |w: &Format| d.mac_energy(&t, &i8f, w, Mac::BitSerial);
        assert!((serial(&i8f) - serial(&i4f) - (t.multiply(Operand::of(&i8f), Operand::of(&i8f)) - t.multiply(Operand::of(&i8f), Operand::of(&i4f))) - 4.0 * add).abs() < 1e-12);
        assert_eq!(d.mac_energy(&t, &i8f, &i3f, Mac::PrecisionScalable), d.mac_energy(&t, &i8f, &i4f, Mac::Fixed));
    }
}
