//! The `Format` type: every number format qc knows, its textual syntax (shared by the CLI,
//! the `.qnn` language and the IR), its properties, and quantization of a tensor to it.
//!
//! Syntax: `NAME` or `NAME<ARG, ...>` where an argument is an integer, a flag (`nosub`) or
//! `key=value` (`bias=11`, `axis=0`, `block=16`, `scale=ceil`). See `spec/numerics.md`.

use super::float::{FloatFormat, Specials};
use super::rng::RandomStream;
use super::rounding::Rounding;
use super::suggest;
use std::fmt;

/// How per-block shared scales are chosen (OCP MX and variants in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleRule {
    /// OCP MX v1.0: `2^(⌊log2 amax⌋ − emax_elem)`.
    Floor,
    /// amax rounded up to a power of two first: `2^(⌈log2 amax⌉ − emax_elem)`.
    Ceil,
    /// amax rounded to the element's mantissa width (half up) first, then `Floor`.
    Even,
    /// NVIDIA's recipe: `2^⌈log2(amax / max_elem)⌉`, so no element saturates.
    RoundUp,
}

impl ScaleRule {
    pub const NAMES: [&'static str; 4] = ["floor", "ceil", "even", "rceil"];
    fn name(self) -> &'static str {
        match self {
            ScaleRule::Floor => "floor",
            ScaleRule::Ceil => "ceil",
            ScaleRule::Even => "even",
            ScaleRule::RoundUp => "rceil",
        }
    }
}

/// The element type of a block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockElement {
    /// A float element (OCP MX FP8/FP6/FP4), saturating.
    Float(FloatFormat),
    /// MXINT8: two's complement 8-bit with an implicit scale of 2^-6, symmetric (±127).
    Int8,
    /// `bfp<M,..>`: sign and M magnitude bits relative to the block's shared exponent.
    SignMagnitude(u32),
}

/// How a block's scale is represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockScale {
    /// A power of two stored as E8M0, chosen by a rule (OCP MX).
    E8m0(ScaleRule),
    /// A shared exponent `⌊log2 amax⌋` (generic block floating point).
    SharedExponent,
    /// An E4M3 scale `RNE(amax / max_elem)` (NVFP4, single level).
    E4m3,
}

/// A block-scaled format: blocks of `block` consecutive elements along the last axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockFormat {
    pub name: &'static str,
    pub element: BlockElement,
    pub scale: BlockScale,
    pub block: usize,
}

/// Which elements share one scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    PerTensor,
    /// One scale per index of this axis (per output channel: axis 0 of a weight).
    PerChannel(usize),
}

/// An integer format with a scale: `int<b>` / `uint<b>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntFormat {
    pub bits: u32,
    pub signed: bool,
    /// With a zero point: the range is fitted to [min, max] instead of [−amax, amax].
    pub asymmetric: bool,
    pub granularity: Granularity,
    /// No scale at all: the values are the integers themselves.
    pub unscaled: bool,
}

/// Two's complement (or unsigned) fixed point `fixed<I,F>`: I integer bits (with the sign),
/// F fraction bits, saturating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedFormat {
    pub int_bits: u32,
    pub frac_bits: u32,
    pub signed: bool,
}

/// Binary and ternary weight formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codebook {
    /// `sign(w)·mean|w|` (XNOR-Net / BinaryConnect).
    Binary(Granularity),
    /// TWN: threshold 0.7·mean|w|, scale the mean |w| above it.
    Ternary(Granularity),
    /// BitNet b1.58: `clip(round(w/γ), −1, 1)·γ` with γ = mean|w|.
    TernaryAbsmean(Granularity),
}

/// Power-of-two format `log2<b>`: a sign bit and b−1 bits of exponent code (code 0 is zero),
/// exponents anchored at the tensor's largest magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogFormat {
    pub bits: u32,
}

/// Every number format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Float { name: Option<&'static str>, format: FloatFormat },
    /// E8M0: unsigned powers of two 2^-127..2^127, NaN at 0xFF, no zero.
    E8m0,
    Fixed(FixedFormat),
    Int(IntFormat),
    Block(BlockFormat),
    Codebook(Codebook),
    Log(LogFormat),
}

/// An error in a format's text: a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub message: String,
    /// A known name close to a misspelt one.
    pub suggestion: Option<&'static str>,
}

impl FormatError {
    fn new(message: impl Into<String>) -> Self {
        FormatError { message: message.into(), suggestion: None }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

impl std::error::Error for FormatError {}

const fn fnf(e: u32, m: u32) -> FloatFormat {
    FloatFormat::ieee(e, m).with_specials(Specials::Fn)
}
const fn finite(e: u32, m: u32) -> FloatFormat {
    FloatFormat::ieee(e, m).with_specials(Specials::None)
}

/// Named float formats, in the order `qc formats` lists them.
pub const NAMED_FLOATS: &[(&str, FloatFormat)] = &[
    ("fp32", FloatFormat::ieee(8, 23)),
    ("tf32", FloatFormat::ieee(8, 10)),
    ("fp16", FloatFormat::ieee(5, 10)),
    ("bf16", FloatFormat::ieee(8, 7)),
    ("dlfloat16", FloatFormat::ieee(6, 9)),
    ("e4m3", fnf(4, 3)),
    ("e5m2", FloatFormat::ieee(5, 2)),
    ("hfp8_fwd", finite(4, 3).with_bias(11).without_subnormals()),
    ("fp6_e2m3", finite(2, 3)),
    ("fp6_e3m2", finite(3, 2)),
    ("fp4_e2m1", finite(2, 1)),
    // The other 8-bit floats of ml_dtypes.
    ("e4m3_ieee", FloatFormat::ieee(4, 3)),
    ("e3m4", FloatFormat::ieee(3, 4)),
    ("e4m3fnuz", FloatFormat::ieee(4, 3).with_specials(Specials::Fnuz).with_bias(8)),
    ("e5m2fnuz", FloatFormat::ieee(5, 2).with_specials(Specials::Fnuz).with_bias(16)),
    ("e4m3b11fnuz", FloatFormat::ieee(4, 3).with_specials(Specials::Fnuz).with_bias(11)),
];

const fn mx(name: &'static str, element: BlockElement) -> (&'static str, BlockFormat) {
    (name, BlockFormat { name, element, scale: BlockScale::E8m0(ScaleRule::Floor), block: 32 })
}

/// Named block formats.
pub const NAMED_BLOCKS: &[(&str, BlockFormat)] = &[
    mx("mxfp8_e4m3", BlockElement::Float(fnf(4, 3))),
    mx("mxfp8_e5m2", BlockElement::Float(FloatFormat::ieee(5, 2))),
    mx("mxfp6_e2m3", BlockElement::Float(finite(2, 3))),
    mx("mxfp6_e3m2", BlockElement::Float(finite(3, 2))),
    mx("mxfp4", BlockElement::Float(finite(2, 1))),
    mx("mxint8", BlockElement::Int8),
    ("nvfp4", BlockFormat { name: "nvfp4", element: BlockElement::Float(finite(2, 1)), scale: BlockScale::E4m3, block: 16 }),
];

/// Every name the parser accepts as a head, for suggestions and listings.
pub fn known_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = NAMED_FLOATS.iter().map(|(n, _)| *n).collect();
    names.extend(NAMED_BLOCKS.iter().map(|(n, _)| *n));
    names.extend([
        "fp", "e8m0", "fixed", "ufixed", "int", "uint", "int8", "int4", "int2", "uint8", "uint4", "bfp", "binary",
        "ternary", "ternary_absmean", "log2",
    ]);
    names
}

/// One argument inside `<...>`.
#[derive(Clone, Debug, PartialEq)]
enum Arg<'a> {
    Int(i64),
    Flag(&'a str),
    Key(&'a str, &'a str),
}

fn split_args(text: &str) -> Result<(&str, Vec<Arg<'_>>), FormatError> {
    let text = text.trim();
    let Some(open) = text.find('<') else {
        return Ok((text, Vec::new()));
    };
    let head = text[..open].trim();
    let rest = &text[open + 1..];
    let Some(inner) = rest.strip_suffix('>') else {
        return Err(FormatError::new(format!("`{text}` is missing its closing `>`")));
    };
    let mut args = Vec::new();
    for part in inner.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(FormatError::new(format!("empty argument in `{text}`")));
        }
        args.push(if let Some((k, v)) = part.split_once('=') {
            Arg::Key(k.trim(), v.trim())
        } else if let Ok(n) = part.parse::<i64>() {
            Arg::Int(n)
        } else {
            Arg::Flag(part)
        });
    }
    Ok((head, args))
}

fn int_arg(head: &str, what: &str, arg: Option<&Arg<'_>>) -> Result<i64, FormatError> {
    match arg {
        Some(Arg::Int(n)) => Ok(*n),
        Some(other) => Err(FormatError::new(format!("`{head}` expects {what} as an integer, found `{}`", show_arg(other)))),
        None => Err(FormatError::new(format!("`{head}` needs {what}"))),
    }
}

fn show_arg(a: &Arg<'_>) -> String {
    match a {
        Arg::Int(n) => n.to_string(),
        Arg::Flag(f) => f.to_string(),
        Arg::Key(k, v) => format!("{k}={v}"),
    }
}

fn parse_axis(v: &str) -> Result<usize, FormatError> {
    v.parse().map_err(|_| FormatError::new(format!("`axis` must be a non-negative integer, not `{v}`")))
}

fn unknown_option(head: &str, a: &Arg<'_>, allowed: &[&'static str]) -> FormatError {
    let text = show_arg(a);
    let key = match a {
        Arg::Key(k, _) => k,
        _ => text.as_str(),
    };
    FormatError {
        message: format!("`{text}` is not an option of `{head}` (options: {})", allowed.join(", ")),
        suggestion: suggest::closest(key, allowed.iter().copied()),
    }
}

/// Options of float formats: nosub, sat, fn, fnuz, nospecials, bias=N.
fn apply_float_options(head: &str, mut f: FloatFormat, args: &[Arg<'_>]) -> Result<FloatFormat, FormatError> {
    const OPTS: [&str; 6] = ["nosub", "sat", "fn", "fnuz", "nospecials", "bias"];
    for a in args {
        match a {
            Arg::Flag("nosub") => f.subnormals = false,
            Arg::Flag("sat") => f.saturate = true,
            Arg::Flag("fn") => f.specials = Specials::Fn,
            Arg::Flag("fnuz") => f.specials = Specials::Fnuz,
            Arg::Flag("nospecials") => f.specials = Specials::None,
            Arg::Key("bias", v) => {
                f.bias = v
                    .parse()
                    .map_err(|_| FormatError::new(format!("`bias` must be an integer, not `{v}`")))?;
            }
            other => return Err(unknown_option(head, other, &OPTS)),
        }
    }
    Ok(f)
}

fn parse_granularity(head: &str, args: &[Arg<'_>]) -> Result<Granularity, FormatError> {
    let mut g = Granularity::PerTensor;
    for a in args {
        match a {
            Arg::Key("axis", v) => g = Granularity::PerChannel(parse_axis(v)?),
            other => return Err(unknown_option(head, other, &["axis"])),
        }
    }
    Ok(g)
}

fn parse_int(head: &str, bits: i64, signed: bool, args: &[Arg<'_>]) -> Result<Format, FormatError> {
    if !(1..=16).contains(&bits) {
        return Err(FormatError::new(format!("`{head}` takes 1 to 16 bits, not {bits}")));
    }
    if signed && bits < 2 {
        return Err(FormatError::new("a signed integer format needs at least 2 bits (int<1> has no positive value); use `binary`"));
    }
    let mut f = IntFormat { bits: bits as u32, signed, asymmetric: false, granularity: Granularity::PerTensor, unscaled: false };
    for a in args {
        match a {
            Arg::Flag("asym") => f.asymmetric = true,
            Arg::Flag("sym") => f.asymmetric = false,
            Arg::Flag("noscale") => f.unscaled = true,
            Arg::Key("axis", v) => f.granularity = Granularity::PerChannel(parse_axis(v)?),
            other => return Err(unknown_option(head, other, &["axis", "asym", "sym", "noscale"])),
        }
    }
    if f.unscaled && (f.asymmetric || f.granularity != Granularity::PerTensor) {
        return Err(FormatError::new("`noscale` cannot be combined with `asym` or `axis`"));
    }
    Ok(Format::Int(f))
}

fn parse_block(head: &str, mut b: BlockFormat, args: &[Arg<'_>]) -> Result<Format, FormatError> {
    for a in args {
        match a {
            Arg::Key("block", v) => {
                b.block = match v.parse::<usize>() {
                    Ok(n) if (1..=4096).contains(&n) => n,
                    _ => return Err(FormatError::new(format!("`block` must be an integer from 1 to 4096, not `{v}`"))),
                }
            }
            Arg::Key("scale", v) if matches!(b.scale, BlockScale::E8m0(_)) => {
                let rule = match *v {
                    "floor" => ScaleRule::Floor,
                    "ceil" => ScaleRule::Ceil,
                    "even" => ScaleRule::Even,
                    "rceil" => ScaleRule::RoundUp,
                    _ => {
                        return Err(FormatError {
                            message: format!("unknown scale rule `{v}` (one of {})", ScaleRule::NAMES.join(", ")),
                            suggestion: suggest::closest(v, ScaleRule::NAMES),
                        })
                    }
                };
                b.scale = BlockScale::E8m0(rule);
            }
            other => return Err(unknown_option(head, other, &["block", "scale"])),
        }
    }
    Ok(Format::Block(b))
}

impl Format {
    /// Parses a format's text, e.g. `e4m3`, `fp<6,5,nosub>`, `int<8,axis=0>`, `mxfp4<scale=ceil>`.
    pub fn parse(text: &str) -> Result<Format, FormatError> {
        let (head, args) = split_args(text)?;
        let head_lc = head.to_ascii_lowercase();
        let h = head_lc.as_str();
        if let Some((name, f)) = NAMED_FLOATS.iter().find(|(n, _)| *n == h) {
            let f = apply_float_options(h, *f, &args)?;
            f.validate().map_err(FormatError::new)?;
            let name = if args.is_empty() { Some(*name) } else { None };
            return Ok(Format::Float { name, format: f });
        }
        if let Some((_, b)) = NAMED_BLOCKS.iter().find(|(n, _)| *n == h) {
            return parse_block(h, *b, &args);
        }
        let no_args = |f: Format| {
            if args.is_empty() { Ok(f) } else { Err(FormatError::new(format!("`{h}` takes no arguments"))) }
        };
        match h {
            "fp" => {
                let e = int_arg(h, "the exponent bits E (fp<E,M>)", args.first())?;
                let m = int_arg(h, "the mantissa bits M (fp<E,M>)", args.get(1))?;
                if !(1..=8).contains(&e) {
                    return Err(FormatError::new(format!("exponent bits must be 1 to 8, not {e}")));
                }
                if !(0..=23).contains(&m) {
                    return Err(FormatError::new(format!("mantissa bits must be 0 to 23, not {m}")));
                }
                let f = apply_float_options(h, FloatFormat::ieee(e as u32, m as u32), &args[2..])?;
                f.validate().map_err(FormatError::new)?;
                Ok(Format::Float { name: None, format: f })
            }
            "e8m0" => no_args(Format::E8m0),
            "fixed" | "ufixed" => {
                let i = int_arg(h, "the integer bits I (fixed<I,F>)", args.first())?;
                let f = int_arg(h, "the fraction bits F (fixed<I,F>)", args.get(1))?;
                if args.len() > 2 {
                    return Err(FormatError::new(format!("`{h}` takes two arguments, I and F")));
                }
                let signed = h == "fixed";
                if i < 0 || f < 0 || i + f < 1 + signed as i64 || i + f > 32 {
                    return Err(FormatError::new(format!(
                        "`{h}<{i},{f}>`: I and F must be non-negative with {} ≤ I+F ≤ 32",
                        1 + signed as i64
                    )));
                }
                if signed && i < 1 {
                    return Err(FormatError::new("`fixed<I,F>` counts the sign in I, so I must be at least 1"));
                }
                Ok(Format::Fixed(FixedFormat { int_bits: i as u32, frac_bits: f as u32, signed }))
            }
            "int" | "uint" => {
                let b = int_arg(h, "the number of bits (int<b>)", args.first())?;
                parse_int(h, b, h == "int", &args[1..])
            }
            "int8" | "int4" | "int2" | "uint8" | "uint4" => {
                let signed = h.starts_with("int");
                let b: i64 = h.trim_start_matches('u').trim_start_matches("int").parse().unwrap_or(8);
                parse_int(h, b, signed, &args)
            }
            "bfp" => {
                let m = int_arg(h, "the mantissa bits M (bfp<M,block>)", args.first())?;
                let block = int_arg(h, "the block size (bfp<M,block>)", args.get(1))?;
                if !(1..=23).contains(&m) {
                    return Err(FormatError::new(format!("`bfp` mantissa bits must be 1 to 23, not {m}")));
                }
                if !(1..=4096).contains(&block) {
                    return Err(FormatError::new(format!("`bfp` block size must be 1 to 4096, not {block}")));
                }
                if args.len() > 2 {
                    return Err(FormatError::new("`bfp` takes two arguments, M and the block size"));
                }
                Ok(Format::Block(BlockFormat {
                    name: "bfp",
                    element: BlockElement::SignMagnitude(m as u32),
                    scale: BlockScale::SharedExponent,
                    block: block as usize,
                }))
            }
            "binary" => Ok(Format::Codebook(Codebook::Binary(parse_granularity(h, &args)?))),
            "ternary" => Ok(Format::Codebook(Codebook::Ternary(parse_granularity(h, &args)?))),
            "ternary_absmean" => Ok(Format::Codebook(Codebook::TernaryAbsmean(parse_granularity(h, &args)?))),
            "log2" => {
                let b = int_arg(h, "the number of bits (log2<b>)", args.first())?;
                if !(2..=8).contains(&b) || args.len() > 1 {
                    return Err(FormatError::new(format!("`log2<b>` takes one argument, 2 to 8 bits, not `{text}`")));
                }
                Ok(Format::Log(LogFormat { bits: b as u32 }))
            }
            _ => {
                let names = known_names();
                Err(FormatError {
                    message: format!("unknown format `{head}`"),
                    suggestion: suggest::closest(h, names.iter().copied()),
                })
            }
        }
    }

    /// Bits per element (for block formats, the element bits without the shared scale).
    pub fn element_bits(&self) -> u32 {
        match self {
            Format::Float { format, .. } => format.bits(),
            Format::E8m0 => 8,
            Format::Fixed(f) => f.int_bits + f.frac_bits,
            Format::Int(f) => f.bits,
            Format::Block(b) => match b.element {
                BlockElement::Float(f) => f.bits(),
                BlockElement::Int8 => 8,
                BlockElement::SignMagnitude(m) => m + 1,
            },
            Format::Codebook(Codebook::Binary(_)) => 1,
            Format::Codebook(_) => 2,
            Format::Log(l) => l.bits,
        }
    }

    /// Storage bits per element including shared scales (`mxfp4`: 4 + 8/32 = 4.25).
    pub fn bits_per_element(&self) -> f64 {
        match self {
            Format::Block(b) => {
                let scale_bits = match b.scale {
                    BlockScale::E8m0(_) | BlockScale::SharedExponent | BlockScale::E4m3 => 8.0,
                };
                self.element_bits() as f64 + scale_bits / b.block as f64
            }
            _ => self.element_bits() as f64,
        }
    }

    /// The float format when this is an element-wise float.
    pub fn as_float(&self) -> Option<&FloatFormat> {
        match self {
            Format::Float { format, .. } => Some(format),
            _ => None,
        }
    }

    /// The block size when values share a scale per block along the last axis.
    pub fn block_size(&self) -> Option<usize> {
        match self {
            Format::Block(b) => Some(b.block),
            _ => None,
        }
    }

    /// The axis along which per-channel scales are taken, if any.
    pub fn channel_axis(&self) -> Option<usize> {
        let g = match self {
            Format::Int(f) => f.granularity,
            Format::Codebook(Codebook::Binary(g) | Codebook::Ternary(g) | Codebook::TernaryAbsmean(g)) => *g,
            _ => return None,
        };
        match g {
            Granularity::PerChannel(a) => Some(a),
            Granularity::PerTensor => None,
        }
    }

    /// Whether each element rounds on its own (no scale computed from other elements).
    pub fn is_elementwise(&self) -> bool {
        match self {
            Format::Float { .. } | Format::E8m0 | Format::Fixed(_) => true,
            Format::Int(f) => f.unscaled,
            _ => false,
        }
    }

    /// Quantizes `data` (a tensor of `shape`, row-major) into `out`: each element becomes the
    /// value of the format that `rounding` selects (after the format's scaling, if any).
    ///
    /// Element `i` draws its random bits from `rng` at index `i`.
    pub fn quantize(
        &self,
        data: &[f32],
        shape: &[usize],
        rounding: Rounding,
        rng: &RandomStream,
        out: &mut [f32],
    ) -> Result<(), QuantizeError> {
        let n: usize = shape.iter().product();
        if data.len() != n || out.len() != n {
            return Err(QuantizeError::ShapeMismatch { expected: n, found: data.len().max(out.len()) });
        }
        match self {
            Format::Float { format, .. } => {
                super::float_fast::quantize_slice(format, rounding, rng, 0, data, out);
                Ok(())
            }
            Format::E8m0 => {
                for (i, (x, y)) in data.iter().zip(out.iter_mut()).enumerate() {
                    *y = super::float_extra::round_e8m0(*x as f64, rounding, rng.at(i as u64)) as f32;
                }
                Ok(())
            }
            Format::Fixed(f) => {
                super::fixed::quantize_fixed(f, data, rounding, rng, out);
                Ok(())
            }
            Format::Int(f) => super::scaled::quantize_int(f, data, shape, rounding, rng, out),
            Format::Block(b) => super::block::quantize_blocks(b, data, shape, rounding, rng, out),
            Format::Codebook(c) => super::codebook::quantize_codebook(c, data, shape, rounding, rng, out),
            Format::Log(l) => super::codebook::quantize_log(l, data, rounding, rng, out),
        }
    }
}

/// Why a tensor cannot be quantized to a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantizeError {
    ShapeMismatch { expected: usize, found: usize },
    /// A per-channel axis beyond the tensor's rank.
    AxisOutOfRange { axis: usize, rank: usize },
    /// A block format on a tensor with no axis.
    Scalar,
}

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizeError::ShapeMismatch { expected, found } => {
                write!(f, "the shape holds {expected} elements but the data has {found}")
            }
            QuantizeError::AxisOutOfRange { axis, rank } => {
                write!(f, "axis {axis} is out of range for a tensor of rank {rank}")
            }
            QuantizeError::Scalar => f.write_str("a block format needs a tensor with at least one axis"),
        }
    }
}

impl std::error::Error for QuantizeError {}

impl fmt::Display for FloatFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fp<{},{}", self.exp_bits, self.man_bits)?;
        match self.specials {
            Specials::Ieee => {}
            Specials::Fn => f.write_str(",fn")?,
            Specials::Fnuz => f.write_str(",fnuz")?,
            Specials::None => f.write_str(",nospecials")?,
        }
        if !self.subnormals {
            f.write_str(",nosub")?;
        }
        if self.saturate {
            f.write_str(",sat")?;
        }
        if self.bias != FloatFormat::ieee(self.exp_bits, self.man_bits).bias {
            write!(f, ",bias={}", self.bias)?;
        }
        f.write_str(">")
    }
}

fn write_granularity(f: &mut fmt::Formatter<'_>, head: &str, g: Granularity) -> fmt::Result {
    match g {
        Granularity::PerTensor => f.write_str(head),
        Granularity::PerChannel(a) => write!(f, "{head}<axis={a}>"),
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Float { name: Some(n), .. } => f.write_str(n),
            Format::Float { name: None, format } => format.fmt(f),
            Format::E8m0 => f.write_str("e8m0"),
            Format::Fixed(x) => write!(f, "{}<{},{}>", if x.signed { "fixed" } else { "ufixed" }, x.int_bits, x.frac_bits),
            Format::Int(x) => {
                write!(f, "{}<{}", if x.signed { "int" } else { "uint" }, x.bits)?;
                if x.asymmetric {
                    f.write_str(",asym")?;
                }
                if x.unscaled {
                    f.write_str(",noscale")?;
                }
                if let Granularity::PerChannel(a) = x.granularity {
                    write!(f, ",axis={a}")?;
                }
                f.write_str(">")
            }
            Format::Block(b) => {
                if let BlockElement::SignMagnitude(m) = b.element {
                    return write!(f, "bfp<{m},{}>", b.block);
                }
                let default = NAMED_BLOCKS.iter().find(|(n, _)| *n == b.name).map(|(_, d)| *d);
                let mut opts = Vec::new();
                if default.map(|d| d.block) != Some(b.block) {
                    opts.push(format!("block={}", b.block));
                }
                if let BlockScale::E8m0(rule) = b.scale {
                    if rule != ScaleRule::Floor {
                        opts.push(format!("scale={}", rule.name()));
                    }
                }
                f.write_str(b.name)?;
                if !opts.is_empty() {
                    write!(f, "<{}>", opts.join(","))?;
                }
                Ok(())
            }
            Format::Codebook(Codebook::Binary(g)) => write_granularity(f, "binary", *g),
            Format::Codebook(Codebook::Ternary(g)) => write_granularity(f, "ternary", *g),
            Format::Codebook(Codebook::TernaryAbsmean(g)) => write_granularity(f, "ternary_absmean", *g),
            Format::Log(l) => write!(f, "log2<{}>", l.bits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parses_back_to_the_same_format() {
        for text in [
            "fp32", "bf16", "e4m3", "e5m2", "hfp8_fwd", "fp<6,5>", "fp<6,5,nosub>", "fp<4,3,fn,sat,bias=9>",
            "fp<3,2,nospecials>", "e8m0", "fixed<8,8>", "ufixed<4,4>", "int<8>", "int<4,asym>", "int<8,axis=0>",
            "uint<8,asym>", "int<8,noscale>", "mxfp4", "mxfp8_e4m3<scale=ceil>", "mxint8<block=16>", "bfp<7,16>",
            "nvfp4", "binary", "binary<axis=0>", "ternary", "ternary_absmean", "log2<4>",
        ] {
            let f = Format::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let shown = f.to_string();
            assert_eq!(Format::parse(&shown).unwrap(), f, "{text} -> {shown}");
        }
        assert_eq!(Format::parse("fp<5,10>").unwrap().as_float(), Format::parse("fp16").unwrap().as_float());
    }

    #[test]
    fn bad_formats_get_a_reason_and_a_suggestion() {
        let e = Format::parse("e4m2").unwrap_err();
        assert_eq!(e.suggestion, Some("e4m3"));
        for (text, needle) in [
            ("fp<0,3>", "exponent bits must be 1 to 8"),
            ("fp<5,30>", "mantissa bits must be 0 to 23"),
            ("mxfp4<block=0>", "`block` must be an integer"),
            ("fp<5,2,nosubs>", "not an option"),
            ("fp<5,2", "missing its closing"),
            ("int<17>", "1 to 16 bits"),
            ("fp<8,23,bias=10>", "float32's range"),
            ("mxfp4<scale=flor>", "unknown scale rule"),
        ] {
            let e = Format::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert_eq!(Format::parse("fp<5,2,nosubs>").unwrap_err().suggestion, Some("nosub"));
    }
}
