//! Diagnostics of the textual IR and of the verifier: plain data (a code, an exact byte
//! span, a message, a label and a hint) and a renderer built on ariadne, so malformed IR
//! reads like malformed `.qnn` source.

use crate::ir::Span;
use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};

/// One error with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// `P...` for parse errors, `V...` for verifier errors.
    pub code: &'static str,
    pub message: String,
    /// Byte range in the source; `None` for IR built in memory (by a pass).
    pub span: Option<Span>,
    /// Text under the span.
    pub label: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>, span: Option<Span>, label: impl Into<String>) -> Self {
        Diagnostic { code, message: message.into(), span, label: label.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// The diagnostic as text (no colours), pointing into `source`, a file named `file`.
    pub fn render(&self, file: &str, source: &str) -> String {
        let clamp = |s: &Span| {
            let end = s.end.min(source.len());
            s.start.min(end)..end
        };
        let span = self.span.as_ref().map(clamp);
        let at = span.clone().unwrap_or(0..0);
        let config = Config::default().with_color(false).with_index_type(IndexType::Byte);
        let mut report = Report::build(ReportKind::Error, (file, at))
            .with_config(config)
            .with_code(self.code)
            .with_message(&self.message);
        if let Some(span) = span {
            report = report.with_label(Label::new((file, span)).with_message(&self.label));
        }
        if let Some(hint) = &self.hint {
            report = report.with_help(hint);
        }
        let mut out = Vec::new();
        match report.finish().write((file, Source::from(source)), &mut out) {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            Err(_) => self.to_string(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)?;
        if let Some(s) = &self.span {
            write!(f, " (bytes {}..{})", s.start, s.end)?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// Renders several diagnostics one after another.
pub fn render_all(diagnostics: &[Diagnostic], file: &str, source: &str) -> String {
    diagnostics.iter().map(|d| d.render(file, source)).collect()
}
