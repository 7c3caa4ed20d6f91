//! Attributes: the compile-time constants attached to ops, including the structured
//! arithmetic attribute `#arith<...>` that fixes how a dot product rounds, and `#chunk<...>`.
//! Display prints the textual form the parser reads back to an equal value.

use qc_runtime::numerics::{Format, Rounding};
use std::collections::BTreeMap;
use std::fmt;

/// A format and the rounding mode used to reach it: `fp32 @ nearest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoundTo {
    pub format: Format,
    pub rounding: Rounding,
}

impl fmt::Display for RoundTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} @ {}", self.format, self.rounding)
    }
}

/// Chunked accumulation: sums of `size` consecutive terms are formed in `format` (rounded
/// with `rounding` after each addition), then added one by one into the accumulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Chunk {
    pub size: u64,
    pub format: Format,
    pub rounding: Rounding,
}

impl fmt::Display for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#chunk<{} @ {} @ {}>", self.size, self.format, self.rounding)
    }
}

/// How a dot product (dense, matmul, conv) computes: see `spec/ir.md`, "The arith attribute".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arith {
    /// Each product rounded to this; `None` = exact products.
    pub mul: Option<RoundTo>,
    /// The accumulator: every addition into it rounds to this.
    pub acc: RoundTo,
    pub chunk: Option<Chunk>,
    /// Rounding of the final accumulator value to the op's result format.
    pub out: Rounding,
    /// Multiply and add in one fused unit (requires exact products; changes no value, only
    /// the hardware that the cost model and ISA emitter choose).
    pub fma: bool,
    /// The random stream (with the run's seed) that stochastic roundings of this op draw from.
    pub stream: Option<u32>,
}

impl Arith {
    /// Whether any rounding of this op draws random bits.
    pub fn is_stochastic(&self) -> bool {
        self.mul.is_some_and(|m| m.rounding.is_stochastic())
            || self.acc.rounding.is_stochastic()
            || self.chunk.is_some_and(|c| c.rounding.is_stochastic())
            || self.out.is_stochastic()
    }
}

impl fmt::Display for Arith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("#arith<mul=")?;
        match &self.mul {
            Some(m) => write!(f, "{m}")?,
            None => f.write_str("exact")?,
        }
        write!(f, ", acc={}", self.acc)?;
        if let Some(c) = &self.chunk {
            write!(f, ", chunk={} @ {}", c.size, c.format)?;
            if c.rounding != self.acc.rounding {
                write!(f, " @ {}", c.rounding)?;
            }
        }
        if self.out != Rounding::Nearest {
            write!(f, ", out={}", self.out)?;
        }
        if self.fma {
            f.write_str(", fma")?;
        }
        if let Some(s) = self.stream {
            write!(f, ", stream={s}")?;
        }
        f.write_str(">")
    }
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    /// Printed in the shortest form that reads back to the same `f64` (`nan` for every NaN).
    Float(f64),
    Str(String),
    Format(Format),
    Rounding(Rounding),
    Array(Vec<Attr>),
    Dict(BTreeMap<String, Attr>),
    Arith(Arith),
    Chunk(Chunk),
}

impl Attr {
    /// The kind's name, for diagnostics.
    pub fn kind(&self) -> AttrKind {
        match self {
            Attr::Int(_) => AttrKind::Int,
            Attr::Float(_) => AttrKind::Float,
            Attr::Str(_) => AttrKind::Str,
            Attr::Format(_) => AttrKind::Format,
            Attr::Rounding(_) => AttrKind::Rounding,
            Attr::Array(items) if items.iter().all(|a| matches!(a, Attr::Int(_))) => AttrKind::IntArray,
            Attr::Array(items) if items.iter().all(|a| matches!(a, Attr::Float(_) | Attr::Int(_))) => {
                AttrKind::FloatArray
            }
            Attr::Array(_) => AttrKind::Array,
            Attr::Dict(_) => AttrKind::Dict,
            Attr::Arith(_) => AttrKind::Arith,
            Attr::Chunk(_) => AttrKind::Chunk,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Attr::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Integers and floats as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Attr::Int(n) => Some(*n as f64),
            Attr::Float(x) => Some(*x),
            _ => None,
        }
    }

    pub fn as_int_array(&self) -> Option<Vec<i64>> {
        match self {
            Attr::Array(items) => items.iter().map(Attr::as_int).collect(),
            _ => None,
        }
    }

    /// Structural equality that treats two NaNs as equal (for CSE).
    pub fn same_as(&self, other: &Attr) -> bool {
        match (self, other) {
            (Attr::Float(a), Attr::Float(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (Attr::Array(a), Attr::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y)),
            (Attr::Dict(a), Attr::Dict(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.same_as(vb))
            }
            _ => self == other,
        }
    }
}

/// What an attribute definition accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    Int,
    Float,
    Str,
    Format,
    Rounding,
    IntArray,
    /// An array of numbers (integers are accepted as floats).
    FloatArray,
    Array,
    Dict,
    Arith,
    Chunk,
}

impl AttrKind {
    /// Whether a value of kind `found` is acceptable where `self` is expected.
    pub fn accepts(self, found: AttrKind) -> bool {
        self == found
            || (self == AttrKind::Float && found == AttrKind::Int)
            || (self == AttrKind::FloatArray && found == AttrKind::IntArray)
            || (self == AttrKind::Array && matches!(found, AttrKind::IntArray | AttrKind::FloatArray))
    }
}

impl fmt::Display for AttrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrKind::Int => "an integer",
            AttrKind::Float => "a number",
            AttrKind::Str => "a string",
            AttrKind::Format => "a format",
            AttrKind::Rounding => "a rounding mode",
            AttrKind::IntArray => "an array of integers",
            AttrKind::FloatArray => "an array of numbers",
            AttrKind::Array => "an array",
            AttrKind::Dict => "a dictionary",
            AttrKind::Arith => "an #arith<...> attribute",
            AttrKind::Chunk => "a #chunk<...> attribute",
        })
    }
}

/// Writes a float so that it parses back to the same `f64`.
pub fn write_float(f: &mut impl fmt::Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        // Debug is the shortest representation that round-trips, always with `.` or `e`.
        write!(f, "{x:?}")
    }
}

/// Writes a string literal with `\"`, `\\`, `\n` and `\t` escaped.
pub fn write_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Int(n) => write!(f, "{n}"),
            Attr::Float(x) => write_float(f, *x),
            Attr::Str(s) => write_string(f, s),
            Attr::Format(x) => write!(f, "{x}"),
            Attr::Rounding(r) => write!(f, "{r}"),
            Attr::Array(items) => {
                f.write_str("[")?;
                for (i, a) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str("]")
            }
            Attr::Dict(d) => write_dict(f, d),
            Attr::Arith(a) => write!(f, "{a}"),
            Attr::Chunk(c) => write!(f, "{c}"),
        }
    }
}

/// `{a = 1, b = nearest}` with keys in sorted order (the canonical order).
pub fn write_dict(f: &mut impl fmt::Write, d: &BTreeMap<String, Attr>) -> fmt::Result {
    f.write_str("{")?;
    for (i, (k, v)) in d.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{k} = {v}")?;
    }
    f.write_str("}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_in_a_form_that_reads_back_exactly() {
        for x in [0.1, 1.0, -0.0, 1e-300, 5e-324, f64::MAX, 1.0 / 3.0, 123456789.125] {
            let mut s = String::new();
            write_float(&mut s, x).unwrap();
            assert!(s.contains('.') || s.contains('e'), "{s}");
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{s}");
        }
    }
}
