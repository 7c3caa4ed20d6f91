//! The REPL's command language: splitting a line into words (keeping `fp<6, 5>`,
//! `[1, 2]` and `range(0, 1, 5)` whole) and parsing it into a [`Command`].
//!
//! After its first word a command takes a leading part and keyword clauses (`in FMT`,
//! `with MODE`, `chunk C`, ...) in any order, each at most once.

use super::experiments::Distribution;
use crate::cmd::CliError;
use qc_runtime::numerics::{Format, Rounding};

/// One line of input.
#[derive(Debug)]
pub enum Command {
    Help,
    Quit,
    Formats,
    Show,
    SetFormat(Format),
    SetRounding(Rounding),
    SetSeed(u64),
    Let { name: String, value: Expr },
    Quantize { value: Expr, format: Option<Format>, rounding: Option<Rounding> },
    Bits { value: Expr, format: Option<Format> },
    Compare { value: Expr, formats: Vec<Format>, rounding: Option<Rounding> },
    Sweep { formats: Vec<Format>, from: Expr, to: Expr, steps: usize, log: bool, rounding: Option<Rounding> },
    Sum { count: usize, distribution: Distribution, format: Format, rounding: Option<Rounding>, chunk: Option<usize> },
}

/// A value written in a command: a number, a name, a list or a range.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    Name(String),
    /// `[a, b, ...]`: each element a number or the name of a number.
    List(Vec<Expr>),
    /// `range(a, b, n)`: n evenly spaced values from a to b inclusive.
    Range(Box<Expr>, Box<Expr>, usize),
}

/// The default number of points of `sweep`.
pub const DEFAULT_SWEEP_STEPS: usize = 1000;
/// Upper limits that keep a command interactive.
pub const MAX_POINTS: usize = 10_000_000;
pub const MAX_SUM_COUNT: usize = 1 << 26;

/// Words that start clauses; they cannot name values.
const KEYWORDS: [&str; 9] = ["in", "with", "from", "to", "steps", "log", "of", "chunk", "let"];

fn err<T>(message: impl std::fmt::Display) -> Result<T, CliError> {
    Err(CliError::new(message))
}

/// Splits a line into words at whitespace outside brackets; `,` and `=` outside brackets are
/// words of their own.
pub fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in line.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && (c.is_whitespace() || c == ',' || c == '=') {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            if c == ',' || c == '=' {
                words.push(c.to_string());
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// The leading words of a command and its keyword clauses.
struct Clauses {
    command: &'static str,
    head: Vec<String>,
    clauses: Vec<(&'static str, Vec<String>)>,
}

impl Clauses {
    fn split(command: &'static str, words: &[String], keywords: &[&'static str]) -> Result<Clauses, CliError> {
        let mut head = Vec::new();
        let mut clauses: Vec<(&'static str, Vec<String>)> = Vec::new();
        for w in words {
            if let Some(k) = keywords.iter().find(|k| **k == w.as_str()) {
                if clauses.iter().any(|(c, _)| c == k) {
                    return err(format!("`{k}` appears twice in `{command}`"));
                }
                clauses.push((k, Vec::new()));
            } else if let Some((_, words)) = clauses.last_mut() {
                words.push(w.clone());
            } else {
                head.push(w.clone());
            }
        }
        Ok(Clauses { command, head, clauses })
    }

    /// The words of clause `keyword`, if present (an empty clause is an error).
    fn take(&mut self, keyword: &str) -> Result<Option<Vec<String>>, CliError> {
        match self.clauses.iter().position(|(k, _)| *k == keyword) {
            None => Ok(None),
            Some(i) => {
                let (_, words) = self.clauses.remove(i);
                if words.is_empty() {
                    return err(format!("`{keyword}` needs a value in `{}`", self.command));
                }
                Ok(Some(words))
            }
        }
    }

    /// Whether the flag clause `keyword` (one without words) is present.
    fn flag(&mut self, keyword: &str) -> Result<bool, CliError> {
        match self.clauses.iter().position(|(k, _)| *k == keyword) {
            None => Ok(false),
            Some(i) => {
                let (_, words) = self.clauses.remove(i);
                if !words.is_empty() {
                    return err(format!("unexpected `{}` after `{keyword}`", words.join(" ")));
                }
                Ok(true)
            }
        }
    }

    fn head(&self) -> Result<&[String], CliError> {
        if self.head.is_empty() {
            return err(format!("`{}` needs a value; see `:help`", self.command));
        }
        Ok(&self.head)
    }
}

fn format_of(words: &[String]) -> Result<Format, CliError> {
    Ok(Format::parse(&words.join(" "))?)
}

fn formats_of(words: &[String]) -> Result<Vec<Format>, CliError> {
    words
        .split(|w| w == ",")
        .map(|f| if f.is_empty() { err("a format is missing in the comma-separated list") } else { format_of(f) })
        .collect()
}

fn rounding_of(words: &[String]) -> Result<Rounding, CliError> {
    Rounding::parse(&words.join(" ")).map_err(CliError::new)
}

/// A count: a positive integer, also written as `2^k` or `1e4`.
fn count_of(text: &str, what: &str, max: usize) -> Result<usize, CliError> {
    let n = if let Some(k) = text.strip_prefix("2^") {
        k.parse::<u32>().ok().filter(|&k| k < usize::BITS).map(|k| 1usize << k)
    } else if let Ok(n) = text.parse::<usize>() {
        Some(n)
    } else {
        text.parse::<f64>().ok().filter(|x| x.fract() == 0.0 && *x >= 0.0 && *x <= max as f64).map(|x| x as usize)
    };
    match n {
        Some(n) if (1..=max).contains(&n) => Ok(n),
        _ => err(format!("{what} must be a whole number from 1 to {max}, not `{text}`")),
    }
}

fn single<'a>(words: &'a [String], what: &str) -> Result<&'a str, CliError> {
    match words {
        [w] => Ok(w),
        _ => err(format!("expected one {what}, found `{}`", words.join(" "))),
    }
}

/// Whether `text` can name a value.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.parse::<f64>().is_err()
        && !KEYWORDS.contains(&text)
        && text != "range"
}

/// Splits `a, b, c` at top-level commas.
fn comma_separated(text: &str) -> Vec<String> {
    words(text).split(|w| w == ",").map(|ws| ws.join(" ")).collect()
}

fn scalar_expr(text: &str) -> Result<Expr, CliError> {
    let text = text.trim();
    if let Ok(x) = text.parse::<f64>() {
        return Ok(Expr::Number(x));
    }
    if is_name(text) {
        return Ok(Expr::Name(text.to_string()));
    }
    err(format!("`{text}` is neither a number nor a name"))
}

/// Parses a value: `0.1`, `x`, `[1, 2.5, x]`, `range(0.1, 1.0, 10)`.
pub fn expr(text: &str) -> Result<Expr, CliError> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return err(format!("`{text}` is missing its closing `]`"));
        };
        if inner.trim().is_empty() {
            return err("a list needs at least one value");
        }
        return comma_separated(inner).iter().map(|e| scalar_expr(e)).collect::<Result<_, _>>().map(Expr::List);
    }
    if let Some(inner) = text.strip_prefix("range(") {
        let Some(inner) = inner.strip_suffix(')') else {
            return err(format!("`{text}` is missing its closing `)`"));
        };
        let args = comma_separated(inner);
        let [from, to, n] = args.as_slice() else {
            return err("`range` takes three arguments: range(from, to, count)");
        };
        let n = count_of(n.trim(), "the count of `range`", MAX_POINTS)?;
        return Ok(Expr::Range(Box::new(scalar_expr(from)?), Box::new(scalar_expr(to)?), n));
    }
    scalar_expr(text)
}

/// Parses one line (not empty, not a comment).
pub fn parse(line: &str) -> Result<Command, CliError> {
    let line = line.trim();
    if let Some(meta) = line.strip_prefix(':') {
        let (name, arg) = meta.split_once(char::is_whitespace).unwrap_or((meta, ""));
        let arg = arg.trim();
        let needs_arg = |what: &str| if arg.is_empty() { err(format!("`:{name}` needs {what}")) } else { Ok(arg) };
        let no_arg = |c: Command| if arg.is_empty() { Ok(c) } else { err(format!("`:{name}` takes no argument")) };
        return match name {
            "help" | "h" => no_arg(Command::Help),
            "quit" | "q" => no_arg(Command::Quit),
            "formats" => no_arg(Command::Formats),
            "show" => no_arg(Command::Show),
            "format" => Ok(Command::SetFormat(Format::parse(needs_arg("a format")?)?)),
            "rounding" => Ok(Command::SetRounding(Rounding::parse(needs_arg("a rounding mode")?).map_err(CliError::new)?)),
            "seed" => {
                let text = needs_arg("a seed")?;
                let seed = text.parse::<u64>().map_err(|_| CliError::new(format!("a seed is a whole number from 0 to {}, not `{text}`", u64::MAX)))?;
                Ok(Command::SetSeed(seed))
            }
            _ => err(format!("unknown command `:{name}`; see `:help`")),
        };
    }
    let words = words(line);
    let Some((first, rest)) = words.split_first() else {
        return err("empty command");
    };
    match first.as_str() {
        "let" => {
            let [name, eq, value @ ..] = rest else {
                return err("write `let NAME = VALUE`");
            };
            if eq != "=" || value.is_empty() {
                return err("write `let NAME = VALUE`");
            }
            if !is_name(name) {
                return err(format!("`{name}` cannot name a value (use letters, digits and `_`, not a keyword or a number)"));
            }
            Ok(Command::Let { name: name.clone(), value: expr(&value.join(" "))? })
        }
        "q" => {
            let mut c = Clauses::split("q", rest, &["in", "with"])?;
            let value = expr(&c.head()?.join(" "))?;
            let format = c.take("in")?.map(|w| format_of(&w)).transpose()?;
            let rounding = c.take("with")?.map(|w| rounding_of(&w)).transpose()?;
            Ok(Command::Quantize { value, format, rounding })
        }
        "bits" => {
            let mut c = Clauses::split("bits", rest, &["in"])?;
            let value = expr(&c.head()?.join(" "))?;
            let format = c.take("in")?.map(|w| format_of(&w)).transpose()?;
            Ok(Command::Bits { value, format })
        }
        "compare" => {
            let mut c = Clauses::split("compare", rest, &["in", "with"])?;
            let value = expr(&c.head()?.join(" "))?;
            let Some(formats) = c.take("in")? else {
                return err("write `compare VALUE in FMT1, FMT2, ...`");
            };
            let formats = formats_of(&formats)?;
            let rounding = c.take("with")?.map(|w| rounding_of(&w)).transpose()?;
            Ok(Command::Compare { value, formats, rounding })
        }
        "sweep" => {
            let mut c = Clauses::split("sweep", rest, &["from", "to", "steps", "log", "with"])?;
            let formats = formats_of(c.head()?)?;
            let (Some(from), Some(to)) = (c.take("from")?, c.take("to")?) else {
                return err("write `sweep FMT from A to B [steps N] [log]`");
            };
            let steps = match c.take("steps")? {
                Some(w) => count_of(single(&w, "number of steps")?, "the number of steps", MAX_POINTS)?,
                None => DEFAULT_SWEEP_STEPS,
            };
            Ok(Command::Sweep {
                formats,
                from: scalar_expr(single(&from, "number after `from`")?)?,
                to: scalar_expr(single(&to, "number after `to`")?)?,
                steps,
                log: c.flag("log")?,
                rounding: c.take("with")?.map(|w| rounding_of(&w)).transpose()?,
            })
        }
        "sum" => {
            let mut c = Clauses::split("sum", rest, &["of", "in", "with", "chunk"])?;
            let count = count_of(single(c.head()?, "count")?, "the number of values", MAX_SUM_COUNT)?;
            let distribution = match c.take("of")? {
                Some(w) => Distribution::parse(single(&w, "distribution")?)?,
                None => Distribution::default(),
            };
            let Some(format) = c.take("in")? else {
                return err("write `sum N [of DIST] in FMT [with MODE] [chunk C]`");
            };
            let chunk = c.take("chunk")?.map(|w| count_of(single(&w, "chunk size")?, "the chunk size", MAX_SUM_COUNT)).transpose()?;
            Ok(Command::Sum {
                count,
                distribution,
                format: format_of(&format)?,
                rounding: c.take("with")?.map(|w| rounding_of(&w)).transpose()?,
                chunk,
            })
        }
        other => err(format!("unknown command `{other}`; see `:help`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_brackets_whole() {
        assert_eq!(words("compare x in fp<6, 5>, e4m3"), ["compare", "x", "in", "fp<6, 5>", ",", "e4m3"]);
        assert_eq!(words("let v=[1, 2]"), ["let", "v", "=", "[1, 2]"]);
        assert_eq!(words("let r = range(0.1, 1.0, 10)"), ["let", "r", "=", "range(0.1, 1.0, 10)"]);
    }

    #[test]
    fn parses_every_command_shape() {
        assert!(matches!(parse("q 0.1 with up in e4m3").unwrap(), Command::Quantize { format: Some(_), rounding: Some(Rounding::Up), .. }));
        let Command::Sum { count, chunk, .. } = parse("sum 2^14 in fp16 chunk 32").unwrap() else { panic!() };
        assert_eq!((count, chunk), (16384, Some(32)));
        let Command::Compare { formats, .. } = parse("compare x in fp<6,5>, e4m3, mxfp4").unwrap() else { panic!() };
        assert_eq!(formats.len(), 3);
        let Command::Let { value, .. } = parse("let r = range(0.1, 1, 10)").unwrap() else { panic!() };
        assert_eq!(value, Expr::Range(Box::new(Expr::Number(0.1)), Box::new(Expr::Number(1.0)), 10));
        assert!(matches!(parse("sweep e4m3 from 1 to 2 log").unwrap(), Command::Sweep { log: true, steps: DEFAULT_SWEEP_STEPS, .. }));
    }

    #[test]
    fn bad_lines_get_one_line_reasons() {
        for (line, needle) in [
            ("q", "needs a value"),
            ("q 0.1 in e4m2", "did you mean `e4m3`"),
            ("q 0.1 in e4m3 in e5m2", "appears twice"),
            ("sum 0 in fp16", "from 1 to"),
            ("sum 2^99 in fp16", "whole number"),
            ("let 3 = 4", "cannot name"),
            ("let in = 4", "cannot name"),
            ("let x = [1, 2", "closing `]`"),
            ("let x = range(1, 2)", "three arguments"),
            ("compare 1", "compare VALUE in"),
            ("compare 1 in e4m3,", "a format is missing"),
            ("frobnicate", "unknown command"),
            (":seed -1", "whole number"),
            (":rounding neares", "did you mean `nearest`"),
        ] {
            let e = parse(line).unwrap_err().to_string();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }
}
