//! Energy per action: the table ([`EnergyTable`], Horowitz ISSCC 2014 45 nm figures by default,
//! overridable from a `key = value` file) and its scaling to the formats in use — multipliers
//! with the product of the operand significand widths, adders with the accumulator width,
//! stochastic roundings with their random bits, memories with the storage bits moved.
//! spec/isa.md, "Energy", gives the table and the fits.

use crate::numerics::{BlockElement, Codebook, Format, Rounding};
use std::fmt;

/// Energies in pJ (45 nm, Horowitz, "Computing's energy problem", ISSCC 2014).
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyTable {
    pub int_add_8: f64,
    pub int_add_32: f64,
    pub int_mul_8: f64,
    pub int_mul_32: f64,
    pub fp_add_16: f64,
    pub fp_add_32: f64,
    pub fp_mul_16: f64,
    pub fp_mul_32: f64,
    /// One 64-bit read of an 8 KiB, 32 KiB and 1 MiB SRAM.
    pub sram_8kb_64b: f64,
    pub sram_32kb_64b: f64,
    pub sram_1mb_64b: f64,
    /// One 32-bit DRAM access.
    pub dram_32b: f64,
    /// One random bit of a stochastic rounding (generator and rounding adder bit); an
    /// estimate, not from Horowitz's table.
    pub random_bit: f64,
}

impl Default for EnergyTable {
    fn default() -> Self {
        EnergyTable {
            int_add_8: 0.03,
            int_add_32: 0.1,
            int_mul_8: 0.2,
            int_mul_32: 3.1,
            fp_add_16: 0.4,
            fp_add_32: 0.9,
            fp_mul_16: 1.1,
            fp_mul_32: 3.7,
            sram_8kb_64b: 10.0,
            sram_32kb_64b: 20.0,
            sram_1mb_64b: 100.0,
            dram_32b: 640.0,
            random_bit: 0.01,
        }
    }
}

/// The entry of an energy table a key names.
type Field = fn(&mut EnergyTable) -> &mut f64;

/// The keys of an energy-table file, with their setters.
const KEYS: &[(&str, Field)] = &[
    ("int_add_8", |t| &mut t.int_add_8),
    ("int_add_32", |t| &mut t.int_add_32),
    ("int_mul_8", |t| &mut t.int_mul_8),
    ("int_mul_32", |t| &mut t.int_mul_32),
    ("fp_add_16", |t| &mut t.fp_add_16),
    ("fp_add_32", |t| &mut t.fp_add_32),
    ("fp_mul_16", |t| &mut t.fp_mul_16),
    ("fp_mul_32", |t| &mut t.fp_mul_32),
    ("sram_8kb_64b", |t| &mut t.sram_8kb_64b),
    ("sram_32kb_64b", |t| &mut t.sram_32kb_64b),
    ("sram_1mb_64b", |t| &mut t.sram_1mb_64b),
    ("dram_32b", |t| &mut t.dram_32b),
    ("random_bit", |t| &mut t.random_bit),
];

/// A bad energy-table file: one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnergyError(pub String);

impl fmt::Display for EnergyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl EnergyTable {
    /// Reads `key = value` lines (pJ, `#` comments) over the defaults; unknown keys and
    /// non-positive or non-finite values are errors.
    pub fn parse(text: &str) -> Result<EnergyTable, EnergyError> {
        let mut table = EnergyTable::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| EnergyError(format!("line {}: expected `key = value`", n + 1)))?;
            let (key, value) = (key.trim(), value.trim());
            let (_, field) = KEYS.iter().find(|(k, _)| *k == key).ok_or_else(|| {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                EnergyError(format!("line {}: unknown key `{key}` (known: {})", n + 1, known.join(", ")))
            })?;
            let v: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .ok_or_else(|| EnergyError(format!("line {}: `{key}` must be a positive number of pJ, found `{value}`", n + 1)))?;
            *field(&mut table) = v;
        }
        Ok(table)
    }

    /// The table as a file [`EnergyTable::parse`] reads back.
    pub fn to_text(&self) -> String {
        let mut t = self.clone();
        KEYS.iter().map(|(k, f)| format!("{k} = {}\n", *f(&mut t))).collect()
    }

    /// A multiplier of `a` × `b` significand bits: integers scale with the product of the
    /// widths through `int_mul_8` (8×8); when either operand is a float, `α·a·b + β` through
    /// the fp16 (11×11) and fp32 (24×24) figures, β being the exponent and normalisation logic.
    pub fn multiply(&self, a: Operand, b: Operand) -> f64 {
        let product = (a.significand_bits * b.significand_bits) as f64;
        if a.float || b.float {
            let alpha = (self.fp_mul_32 - self.fp_mul_16) / (24.0 * 24.0 - 11.0 * 11.0);
            let beta = self.fp_mul_16 - alpha * 121.0;
            (alpha * product + beta).max(alpha)
        } else {
            self.int_mul_8 * product / 64.0
        }
    }

    /// An adder of `bits` (the accumulator's storage width), linear through the 8- and
    /// 32-bit integer or the 16- and 32-bit float figures.
    pub fn add(&self, bits: u32, float: bool) -> f64 {
        let (lo_bits, lo, hi) = if float { (16.0, self.fp_add_16, self.fp_add_32) } else { (8.0, self.int_add_8, self.int_add_32) };
        let slope = (hi - lo) / (32.0 - lo_bits);
        (lo + slope * (bits as f64 - lo_bits)).max(slope)
    }

    /// The random bits a rounding draws: `stochastic:R` and `stochastic-unbiased:R` draw R,
    /// exact `stochastic` a 32-bit word; deterministic modes none.
    pub fn random_bits(rounding: Rounding) -> u32 {
        match rounding {
            Rounding::StochasticBits(r) | Rounding::StochasticUnbiased(r) => r,
            Rounding::Stochastic => 32,
            _ => 0,
        }
    }

    /// A stochastic rounding with `bits` random bits: the bits and an adder of that width.
    pub fn stochastic_rounding(&self, bits: u32) -> f64 {
        if bits == 0 { 0.0 } else { bits as f64 * self.random_bit + self.add(bits, false) }
    }

    /// One bit read from or written to an SRAM of `kib` KiB: log-linear in the size through the
    /// 8 KiB, 32 KiB and 1 MiB figures (per 64-bit access / 64).
    pub fn sram_bit(&self, kib: u64) -> f64 {
        let x = (kib.max(1) as f64).log2();
        let per_access = if x <= 5.0 {
            self.sram_8kb_64b + (self.sram_32kb_64b - self.sram_8kb_64b) * (x - 3.0) / 2.0
        } else {
            self.sram_32kb_64b + (self.sram_1mb_64b - self.sram_32kb_64b) * (x - 5.0) / 5.0
        };
        per_access.max(1.0) / 64.0
    }

    /// One bit moved to or from DRAM.
    pub fn dram_bit(&self) -> f64 {
        self.dram_32b / 32.0
    }
}

/// What the multiplier sees of an operand format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    /// Bits of the significand the multiplier multiplies (hidden bit included; integers:
    /// their width).
    pub significand_bits: u32,
    pub float: bool,
}

impl Operand {
    pub fn of(format: &Format) -> Operand {
        match format {
            Format::Float { format, .. } => Operand { significand_bits: format.man_bits + 1, float: true },
            Format::Block(b) => match b.element {
                BlockElement::Float(f) => Operand { significand_bits: f.man_bits + 1, float: true },
                BlockElement::Int8 => Operand { significand_bits: 8, float: false },
                BlockElement::SignMagnitude(m) => Operand { significand_bits: m + 1, float: false },
            },
            // A power of two or a sign: the multiplier is an exponent add or a negation.
            Format::E8m0 | Format::Log(_) | Format::Codebook(Codebook::Binary(_)) => Operand { significand_bits: 1, float: false },
            Format::Codebook(_) => Operand { significand_bits: 2, float: false },
            Format::Fixed(_) | Format::Int(_) => Operand { significand_bits: format.element_bits(), float: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fits_pass_through_the_table_points() {
        let t = EnergyTable::default();
        let f = |bits| Operand { significand_bits: bits, float: true };
        let i = |bits| Operand { significand_bits: bits, float: false };
        assert!((t.multiply(f(11), f(11)) - 1.1).abs() < 1e-12);
        assert!((t.multiply(f(24), f(24)) - 3.7).abs() < 1e-12);
        assert!((t.multiply(i(8), i(8)) - 0.2).abs() < 1e-12);
        assert!((t.add(32, true) - 0.9).abs() < 1e-12 && (t.add(8, false) - 0.03).abs() < 1e-12);
        assert!((t.sram_bit(32) * 64.0 - 20.0).abs() < 1e-12 && (t.sram_bit(1024) * 64.0 - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_table_file_overrides_and_round_trips() {
        let t = EnergyTable::parse("dram_32b = 100 # cheaper DRAM\n").unwrap();
        assert_eq!(t.dram_32b, 100.0);
        assert_eq!(EnergyTable::parse(&t.to_text()).unwrap(), t);
        assert!(EnergyTable::parse("dram = 1").unwrap_err().0.contains("unknown key"));
        assert!(EnergyTable::parse("dram_32b = -1").is_err());
    }
}
