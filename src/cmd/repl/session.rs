//! A REPL session: its defaults (format, rounding, seed), the values the user named, and the
//! execution of each command into the text it prints.

use super::command::{self, Command, Expr};
use super::experiments::{linspace, SumExperiment, Sweep};
use crate::cmd::formats;
use crate::cmd::CliError;
use crate::report::numbers::{self, NONE};
use crate::report::table::{Align, Table};
use crate::report::values::{self, encoding, quantize_values, ulp};
use qc_runtime::numerics::float::exponent_of;
use qc_runtime::numerics::{Format, Rounding};
use std::collections::BTreeMap;

/// A named value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<f64>),
}

impl Value {
    fn elements(&self) -> &[f64] {
        match self {
            Value::Scalar(x) => std::slice::from_ref(x),
            Value::Vector(v) => v,
        }
    }
}

/// Whether the session goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Session {
    format: Format,
    rounding: Rounding,
    seed: u64,
    names: BTreeMap<String, Value>,
}

/// How many elements of a vector are shown when it is defined.
const SHOWN_ELEMENTS: usize = 8;

pub const HELP: &str = "\
Commands (FMT is any format `qc formats` lists, e.g. e4m3, fp<6,5,nosub>, mxfp4<block=16>;
MODE a rounding mode: nearest, nearest-away, toward-zero, up, down, stochastic, stochastic:R,
stochastic-unbiased:R; VALUE a number such as 0.1, -3e-5, inf, nan, a name, a list [1, 2.5, x]
or range(a, b, n), n evenly spaced values from a to b inclusive)

  :help, :h                  this text
  :format FMT                the session's default format (initially fp16)
  :rounding MODE             the session's default rounding (initially nearest)
  :seed N                    the seed of stochastic rounding and of `sum`'s data (initially 0)
  :show                      the session defaults and the named values
  :formats                   the table of formats
  :quit, :q                  leave (end of input does too)
  let NAME = VALUE           name a value, e.g. `let x = 0.1`, `let v = [1, 2.5, 3e-3]`
  q VALUE [in FMT] [with MODE]
                             quantize: result, encoding, absolute, relative and ulp error per
                             value (formats with shared scales take a list as one tensor)
  bits VALUE [in FMT]        the encoding of the nearest value: hex, sign|exponent|mantissa,
                             kind, unbiased exponent and significand
  compare VALUE in FMT, FMT, ... [with MODE]
                             one row per format: result and errors (for a list: the largest
                             and mean errors)
  sweep FMT, ... from A to B [steps N] [log] [with MODE]
                             the relative error over N points (default 1000) from A to B,
                             evenly spaced or, with `log`, geometrically
  sum N [of DIST] in FMT [with MODE] [chunk C]
                             accumulate N values (DIST: uniform(a, b) (default uniform(0, 1)),
                             normal(mean, std), constant(v); seeded) rounding the running sum
                             to FMT after every addition; with `chunk`, also sums of C values
                             each, then the sum of those sums, all in FMT. N and C may be
                             written 2^k.
Element i of a command draws its random bits at index i of stream 0 of the seed, so repeating
a command repeats its result.
";

impl Session {
    pub fn new() -> Self {
        Session {
            format: Format::parse("fp16").expect("fp16 is a named format"),
            rounding: Rounding::Nearest,
            seed: 0,
            names: BTreeMap::new(),
        }
    }

    /// Runs one line (not empty, not a comment): the text to print and whether to go on.
    pub fn execute(&mut self, line: &str) -> (String, Flow) {
        match command::parse(line) {
            Ok(Command::Quit) => (String::new(), Flow::Quit),
            Ok(c) => match self.run(c) {
                Ok(text) => (text, Flow::Continue),
                Err(e) => (format!("error: {e}\n"), Flow::Continue),
            },
            Err(e) => (format!("error: {e}\n"), Flow::Continue),
        }
    }

    fn run(&mut self, command: Command) -> Result<String, CliError> {
        match command {
            Command::Help => Ok(HELP.to_string()),
            Command::Quit => Ok(String::new()),
            Command::Formats => Ok(formats::listing()),
            Command::Show => Ok(self.show()),
            Command::SetFormat(f) => {
                self.format = f;
                Ok(format!("format {}\n", describe(&f)))
            }
            Command::SetRounding(r) => {
                self.rounding = r;
                Ok(format!("rounding {r}\n"))
            }
            Command::SetSeed(s) => {
                self.seed = s;
                Ok(format!("seed {s}\n"))
            }
            Command::Let { name, value } => {
                let value = self.eval(&value)?;
                let text = format!("{name} = {}\n", show_value(&value));
                self.names.insert(name, value);
                Ok(text)
            }
            Command::Quantize { value, format, rounding } => {
                let value = self.eval(&value)?;
                let format = format.unwrap_or(self.format);
                values::value_table(&format, value.elements(), rounding.unwrap_or(self.rounding), self.seed)
            }
            Command::Bits { value, format } => self.bits(&self.eval(&value)?, &format.unwrap_or(self.format)),
            Command::Compare { value, formats, rounding } => {
                self.compare(&self.eval(&value)?, &formats, rounding.unwrap_or(self.rounding))
            }
            Command::Sweep { formats, from, to, steps, log, rounding } => Sweep {
                formats,
                from: self.eval_scalar(&from)?,
                to: self.eval_scalar(&to)?,
                steps,
                log,
                rounding: rounding.unwrap_or(self.rounding),
                seed: self.seed,
            }
            .run(),
            Command::Sum { count, distribution, format, rounding, chunk } => SumExperiment {
                count,
                distribution,
                format,
                rounding: rounding.unwrap_or(self.rounding),
                chunk,
                seed: self.seed,
            }
            .run(),
        }
    }

    fn eval_scalar(&self, e: &Expr) -> Result<f64, CliError> {
        match self.eval(e)? {
            Value::Scalar(x) => Ok(x),
            Value::Vector(_) => Err(CliError::new(format!("`{}` is a list; a single number is needed here", show_expr(e)))),
        }
    }

    fn eval(&self, e: &Expr) -> Result<Value, CliError> {
        Ok(match e {
            Expr::Number(x) => Value::Scalar(*x),
            Expr::Name(n) => match self.names.get(n) {
                Some(v) => v.clone(),
                None => {
                    let hint = if Format::parse(n).is_ok() { " (it is a format: write `in` before it)" } else { "" };
                    return Err(CliError::new(format!("`{n}` is not defined; define it with `let {n} = ...`{hint}")));
                }
            },
            Expr::List(items) => Value::Vector(items.iter().map(|i| self.eval_scalar(i)).collect::<Result<_, _>>()?),
            Expr::Range(from, to, n) => {
                let (a, b) = (self.eval_scalar(from)?, self.eval_scalar(to)?);
                if !a.is_finite() || !b.is_finite() {
                    return Err(CliError::new("`range` needs finite bounds"));
                }
                Value::Vector(linspace(a, b, *n))
            }
        })
    }

    fn show(&self) -> String {
        let mut out = format!("format {}\nrounding {}\nseed {}\n", describe(&self.format), self.rounding, self.seed);
        for (name, value) in &self.names {
            out.push_str(&format!("{name} = {}\n", show_value(value)));
        }
        out
    }

    fn bits(&self, value: &Value, format: &Format) -> Result<String, CliError> {
        if !values::has_element_encoding(format) {
            return Err(CliError::new(format!(
                "`{format}` has no per-element encoding; `bits` works for float formats and e8m0"
            )));
        }
        let nearest = quantize_values(format, value.elements(), Rounding::Nearest, self.seed)?;
        let mut table = Table::new(&[
            ("input", Align::Right),
            ("nearest", Align::Right),
            ("hex", Align::Left),
            ("sign|exponent|mantissa", Align::Left),
            ("kind", Align::Left),
            ("exponent", Align::Right),
            ("significand", Align::Right),
        ]);
        for (&x, &v) in value.elements().iter().zip(&nearest) {
            let (hex, bits) = encoding(format, v).unwrap_or((NONE.into(), NONE.into()));
            let (kind, exponent, significand) = anatomy(format, v);
            table.row(vec![numbers::value(x), numbers::value(v), hex, bits, kind.into(), exponent, significand]);
        }
        Ok(format!("encodings in {} (values rounded to nearest-even)\n{}", describe(format), table.render()))
    }

    fn compare(&self, value: &Value, formats: &[Format], rounding: Rounding) -> Result<String, CliError> {
        let xs = value.elements();
        let mut out = match value {
            Value::Scalar(x) => format!("compare {}, rounding {rounding}", numbers::value(*x)),
            Value::Vector(v) => format!("compare {} values, rounding {rounding}", v.len()),
        };
        if rounding.is_stochastic() {
            out.push_str(&format!(", seed {}", self.seed));
        }
        out.push('\n');
        let table = match value {
            Value::Scalar(x) => {
                let mut t = Table::new(&[
                    ("format", Align::Left),
                    ("bits", Align::Right),
                    ("result", Align::Right),
                    ("abs error", Align::Right),
                    ("rel error", Align::Right),
                    ("ulps", Align::Right),
                ]);
                for f in formats {
                    let q = quantize_values(f, xs, rounding, self.seed)?[0];
                    let (abs, rel) = numbers::errors(*x, q);
                    let ulps = ulp(f, *x).map(|u| numbers::ulps(abs / u)).unwrap_or_else(|| NONE.into());
                    t.row(vec![
                        f.to_string(),
                        numbers::value(f.bits_per_element()),
                        numbers::value(q),
                        numbers::error(abs),
                        numbers::error(rel),
                        ulps,
                    ]);
                }
                t
            }
            Value::Vector(_) => {
                let mut t = Table::new(&[
                    ("format", Align::Left),
                    ("bits", Align::Right),
                    ("max abs error", Align::Right),
                    ("max rel error", Align::Right),
                    ("mean rel error", Align::Right),
                ]);
                for f in formats {
                    let qs = quantize_values(f, xs, rounding, self.seed)?;
                    let errors: Vec<(f64, f64)> = xs.iter().zip(&qs).map(|(&x, &q)| numbers::errors(x, q)).collect();
                    let max = |pick: fn(&(f64, f64)) -> f64| errors.iter().map(pick).fold(0.0, f64::max);
                    let rels: Vec<f64> = xs.iter().zip(&errors).filter(|(x, _)| **x != 0.0).map(|(_, e)| e.1).collect();
                    let mean = if rels.is_empty() { f64::NAN } else { rels.iter().sum::<f64>() / rels.len() as f64 };
                    t.row(vec![
                        f.to_string(),
                        numbers::value(f.bits_per_element()),
                        numbers::error(max(|e| e.0)),
                        numbers::error(max(|e| e.1)),
                        numbers::error(mean),
                    ]);
                }
                t
            }
        };
        out.push_str(&table.render());
        if formats.iter().any(|f| !values::has_element_encoding(f)) && xs.len() > 1 {
            out.push_str("Formats with shared scales quantize the list as one 1-D tensor.\n");
        }
        Ok(out)
    }
}

/// A format with its full syntax when it has a name: `fp16 = fp<5,10>`.
fn describe(format: &Format) -> String {
    match format {
        Format::Float { name: Some(name), format: f } => format!("{name} = {f}"),
        _ => format.to_string(),
    }
}

/// The kind of a value of `format`, its unbiased exponent and its significand.
fn anatomy(format: &Format, v: f64) -> (&'static str, String, String) {
    let none = || NONE.to_string();
    match format {
        Format::Float { format: f, .. } => {
            if v.is_nan() {
                ("NaN", none(), none())
            } else if v.is_infinite() {
                ("infinity", none(), none())
            } else if v == 0.0 {
                ("zero", none(), none())
            } else if v.abs() < f.min_normal() {
                let e = f.emin();
                ("subnormal", e.to_string(), numbers::value(v.abs() / qc_runtime::numerics::float::pow2(e)))
            } else {
                let e = exponent_of(v.abs());
                let kind = if v.abs() == f.max() { "normal (max)" } else { "normal" };
                (kind, e.to_string(), numbers::value(v.abs() / qc_runtime::numerics::float::pow2(e)))
            }
        }
        Format::E8m0 if v.is_nan() => ("NaN", none(), none()),
        Format::E8m0 => ("power of two", exponent_of(v).to_string(), "1".into()),
        _ => ("", none(), none()),
    }
}

fn show_expr(e: &Expr) -> String {
    match e {
        Expr::Number(x) => numbers::value(*x),
        Expr::Name(n) => n.clone(),
        Expr::List(items) => format!("[{}]", items.iter().map(show_expr).collect::<Vec<_>>().join(", ")),
        Expr::Range(a, b, n) => format!("range({}, {}, {n})", show_expr(a), show_expr(b)),
    }
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Scalar(x) => numbers::value(*x),
        Value::Vector(xs) => {
            let shown: Vec<String> = xs.iter().take(SHOWN_ELEMENTS).map(|x| numbers::value(*x)).collect();
            let more = if xs.len() > SHOWN_ELEMENTS { ", …" } else { "" };
            format!("[{}{more}] ({} values)", shown.join(", "), xs.len())
        }
    }
}
