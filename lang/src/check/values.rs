//! Interpreting the generic values of the syntax tree by the place they appear in: formats
//! (built-in syntax or an alias), roundings, numbers, flags, pairs, keyword-argument binding.

use super::Checker;
use crate::ast::{Attr, Span, Value, ValueArg, ValueKind};
use crate::diagnostic::{Code, Diagnostic};
use qc_runtime::numerics::{suggest, Format, Rounding};
use std::collections::HashMap;

/// A format as written, with the rounding written on it (`fp16 @ stochastic:9`), if any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FormatSpec {
    pub format: Format,
    pub rounding: Option<Rounding>,
}

/// Splits `Rounding::parse`'s message into the reason and the "did you mean" hint.
fn split_hint(message: &str) -> (String, Option<String>) {
    match message.split_once("; did you mean ") {
        Some((m, h)) => (m.to_string(), Some(format!("did you mean {h}"))),
        None => (message.to_string(), None),
    }
}

impl Checker {
    /// A format, optionally with a rounding: `e4m3`, `fp<6,5,nosub>`, an alias, `fp16 @ stochastic:9`.
    pub(crate) fn format_spec(&mut self, v: &Value) -> Option<FormatSpec> {
        match &v.kind {
            ValueKind::Rounded { format, rounding } => {
                let f = self.format_spec(format);
                let r = self.rounding(rounding);
                let f = f?;
                if f.rounding.is_some() {
                    self.error(
                        Diagnostic::new(Code::FormatNotAllowed, rounding.span, "a rounding is given twice", "second rounding")
                            .with_secondary(format.span, "this alias already has a rounding"),
                    );
                    return None;
                }
                Some(FormatSpec { format: f.format, rounding: Some(r?) })
            }
            ValueKind::Word { name, args, bits } => {
                if let Some((_, bits_span)) = bits {
                    self.error(
                        Diagnostic::new(Code::InvalidFormat, *bits_span, "random bits after a format", "`:R` belongs to a rounding")
                            .with_hint(format!("write the rounding after `@`: `{} @ stochastic{}`", name.name, &self.text(*bits_span))),
                    );
                    return None;
                }
                if args.is_none() {
                    if let Some(alias) = self.aliases.get_mut(&name.name) {
                        alias.used = true;
                        return Some(alias.spec);
                    }
                }
                let text = v.word_text().unwrap_or_default();
                match Format::parse(&text) {
                    Ok(format) => Some(FormatSpec { format, rounding: None }),
                    Err(e) => {
                        let d = Diagnostic::new(Code::InvalidFormat, v.span, format!("invalid format `{text}`"), e.message.clone());
                        let alias = if args.is_none() {
                            suggest::closest(&name.name, self.aliases.keys().map(String::as_str)).map(str::to_string)
                        } else {
                            None
                        };
                        let d = match (e.suggestion, alias) {
                            (Some(s), _) => d.with_suggestion(Some(s)),
                            (None, Some(a)) => d.with_hint(format!("did you mean the format alias `{a}`?")),
                            (None, None) => d,
                        };
                        self.error(d);
                        None
                    }
                }
            }
            _ => {
                self.error(Diagnostic::new(
                    Code::InvalidAttributeValue,
                    v.span,
                    format!("expected a format, found {}", v.describe()),
                    "not a format",
                ));
                None
            }
        }
    }

    /// A rounding mode: `nearest`, `stochastic:9`, ...
    pub(crate) fn rounding(&mut self, v: &Value) -> Option<Rounding> {
        let Some(text) = v.word_text().filter(|_| matches!(&v.kind, ValueKind::Word { args: None, .. })) else {
            self.error(Diagnostic::new(
                Code::InvalidRounding,
                v.span,
                format!("expected a rounding mode, found {}", v.describe()),
                "not a rounding mode",
            ));
            return None;
        };
        match Rounding::parse(&text) {
            Ok(r) => Some(r),
            Err(message) => {
                let (message, hint) = split_hint(&message);
                let d = Diagnostic::new(Code::InvalidRounding, v.span, format!("invalid rounding `{text}`"), message);
                self.error(match hint {
                    Some(h) => d.with_hint(h),
                    None => d,
                });
                None
            }
        }
    }

    fn value_error(&mut self, v: &Value, what: &str) {
        self.error(Diagnostic::new(
            Code::InvalidAttributeValue,
            v.span,
            format!("expected {what}, found {}", v.describe()),
            format!("expected {what}"),
        ));
    }

    /// An integer at least `min`.
    pub(crate) fn int_at_least(&mut self, v: &Value, min: i64) -> Option<i64> {
        match v.kind {
            ValueKind::Int(n) if n >= min => Some(n),
            _ => {
                self.value_error(v, &format!("an integer ≥ {min}"));
                None
            }
        }
    }

    /// A number (integer or decimal).
    pub(crate) fn number(&mut self, v: &Value) -> Option<f64> {
        match v.kind {
            ValueKind::Int(n) => Some(n as f64),
            ValueKind::Float(x) => Some(x),
            _ => {
                self.value_error(v, "a number");
                None
            }
        }
    }

    /// A number within `[low, high]` (`high` may be infinite); `what` names the range in messages.
    pub(crate) fn number_in(&mut self, v: &Value, low: f64, high: f64, open_low: bool, what: &str) -> Option<f64> {
        let x = self.number(v)?;
        let ok = (if open_low { x > low } else { x >= low }) && x <= high;
        if ok {
            Some(x)
        } else {
            self.error(Diagnostic::new(Code::InvalidAttributeValue, v.span, format!("{x} is out of range"), format!("expected {what}")));
            None
        }
    }

    pub(crate) fn boolean(&mut self, v: &Value) -> Option<bool> {
        match v.word_text().as_deref() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                self.value_error(v, "`true` or `false`");
                None
            }
        }
    }

    /// A word without arguments (`cosine`, `same`), or `None` for any other value.
    pub(crate) fn plain_word(v: &Value) -> Option<&str> {
        match &v.kind {
            ValueKind::Word { name, args: None, bits: None } => Some(name.name.as_str()),
            _ => None,
        }
    }

    /// `N` or `[N, M]` with every entry at least `min`.
    pub(crate) fn pair(&mut self, v: &Value, min: i64) -> Option<[usize; 2]> {
        match &v.kind {
            ValueKind::Int(n) if *n >= min => Some([*n as usize; 2]),
            ValueKind::List(items) if items.len() == 2 => {
                let a = self.int_at_least(&items[0], min)?;
                let b = self.int_at_least(&items[1], min)?;
                Some([a as usize, b as usize])
            }
            _ => {
                self.value_error(v, &format!("an integer ≥ {min} or a pair `[h, w]`"));
                None
            }
        }
    }

    /// Binds a call's arguments to parameter names: positional in order, then by keyword.
    /// Reports unknown, repeated and missing (`required`) arguments; returns `None` after an error.
    pub(crate) fn bind_args<'v>(
        &mut self,
        callee: &str,
        call_span: Span,
        args: &'v [ValueArg],
        params: &[&'static str],
        required: &[&'static str],
    ) -> Option<HashMap<&'static str, &'v Value>> {
        let mut bound: HashMap<&'static str, &'v Value> = HashMap::new();
        let mut spans: HashMap<&'static str, Span> = HashMap::new();
        let mut ok = true;
        let mut seen_keyword = false;
        let mut position = 0;
        for arg in args {
            match arg {
                ValueArg::Positional(v) => {
                    if seen_keyword {
                        self.error(Diagnostic::new(
                            Code::PositionalAfterKeyword,
                            v.span,
                            "positional argument after a keyword argument",
                            "give this one a name too",
                        ));
                        ok = false;
                        continue;
                    }
                    let Some(&name) = params.get(position) else {
                        self.error(Diagnostic::new(
                            Code::ArgumentCount,
                            v.span,
                            format!("`{callee}` takes at most {} argument{}", params.len(), if params.len() == 1 { "" } else { "s" }),
                            "one too many",
                        ));
                        ok = false;
                        continue;
                    };
                    position += 1;
                    bound.insert(name, v);
                    spans.insert(name, v.span);
                }
                ValueArg::Keyword(Attr { key, value, .. }) => {
                    seen_keyword = true;
                    let Some(&name) = params.iter().find(|p| **p == key.name) else {
                        self.error(
                            Diagnostic::new(
                                Code::UnknownAttribute,
                                key.span,
                                format!("`{callee}` has no argument `{}`", key.name),
                                format!("arguments: {}", params.join(", ")),
                            )
                            .with_suggestion(suggest::closest(&key.name, params.iter().copied())),
                        );
                        ok = false;
                        continue;
                    };
                    if let Some(first) = spans.get(name) {
                        self.duplicate(name, key.span, *first);
                        ok = false;
                        continue;
                    }
                    bound.insert(name, value);
                    spans.insert(name, key.span);
                }
            }
        }
        for r in required {
            if !bound.contains_key(r) {
                self.error(Diagnostic::new(
                    Code::MissingAttribute,
                    call_span,
                    format!("`{callee}` needs the argument `{r}`"),
                    format!("`{r}` is missing"),
                ));
                ok = false;
            }
        }
        ok.then_some(bound)
    }
}
