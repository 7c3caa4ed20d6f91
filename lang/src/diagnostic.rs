//! Diagnostics as plain data (code, severity, message, labelled spans, hint), the table of
//! stable codes, and the two renderings: for people (ariadne) and for tools (JSON).

use crate::ast::Span;
use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
use serde::Serialize;

/// Every kind of diagnostic, with its stable code (documented in `spec/lang.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Code {
    /// Text that is not a token: a stray character, an unterminated string or comment.
    InvalidToken,
    /// A token where the grammar does not allow it.
    UnexpectedToken,
    /// The file ends in the middle of a construct.
    UnexpectedEnd,
    /// A file without a model, or with more than one.
    ModelCount,
    /// A name that nothing defines.
    UndefinedName,
    /// A name defined twice.
    DuplicateName,
    /// An operation that does not exist.
    UnknownOp,
    /// A format alias named like a built-in format or rounding.
    ShadowedFormat,
    /// A format's text that the numeric core rejects (unknown name, bad option).
    InvalidFormat,
    /// An unknown or malformed rounding mode.
    InvalidRounding,
    /// A block format whose block size does not divide the last axis.
    BlockSizeMismatch,
    /// A per-channel axis beyond the tensor's rank.
    ChannelAxisOutOfRange,
    /// A format that cannot be used in this place (e.g. a block format as an accumulator).
    FormatNotAllowed,
    /// Operand shapes that do not fit the operation.
    ShapeMismatch,
    /// Wrong number of tensor arguments.
    ArgumentCount,
    /// A shape that is invalid in itself: zero size, symbolic parameter dimension, bad axis or permutation.
    InvalidShape,
    /// An attribute or keyword argument that does not exist.
    UnknownAttribute,
    /// An attribute that exists but does not apply to this operation or section.
    AttributeNotApplicable,
    /// An attribute value of the wrong kind or out of range.
    InvalidAttributeValue,
    /// The same attribute given twice.
    DuplicateAttribute,
    /// Attributes that contradict each other.
    ConflictingAttributes,
    /// A required argument or attribute is missing.
    MissingAttribute,
    /// A positional argument after a keyword argument.
    PositionalAfterKeyword,
    /// An unknown parameter initialiser.
    UnknownInitializer,
    /// A model without outputs.
    NoOutput,
    /// A training section that does not fit the model (loss vs outputs, nothing to train, batch).
    TrainingMismatch,
    /// A binding, input or parameter that nothing uses.
    UnusedBinding,
    /// A format alias that nothing uses.
    UnusedFormat,
    /// A chunk size at least as long as the accumulation: chunking has no effect.
    IneffectiveChunk,
    /// A training attribute in a model without a training section.
    TrainingAttributeWithoutTraining,
    /// The master copy of the weights is narrower than a weight's format.
    NarrowMasterCopy,
}

/// How serious a diagnostic is: errors fail `qc check`, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Code {
    /// Every code, in the order of the table in `spec/lang.md`.
    pub const ALL: [Code; 31] = [
        Code::InvalidToken,
        Code::UnexpectedToken,
        Code::UnexpectedEnd,
        Code::ModelCount,
        Code::UndefinedName,
        Code::DuplicateName,
        Code::UnknownOp,
        Code::ShadowedFormat,
        Code::InvalidFormat,
        Code::InvalidRounding,
        Code::BlockSizeMismatch,
        Code::ChannelAxisOutOfRange,
        Code::FormatNotAllowed,
        Code::ShapeMismatch,
        Code::ArgumentCount,
        Code::InvalidShape,
        Code::UnknownAttribute,
        Code::AttributeNotApplicable,
        Code::InvalidAttributeValue,
        Code::DuplicateAttribute,
        Code::ConflictingAttributes,
        Code::MissingAttribute,
        Code::PositionalAfterKeyword,
        Code::UnknownInitializer,
        Code::NoOutput,
        Code::TrainingMismatch,
        Code::UnusedBinding,
        Code::UnusedFormat,
        Code::IneffectiveChunk,
        Code::TrainingAttributeWithoutTraining,
        Code::NarrowMasterCopy,
    ];

    /// The stable code: `E0001`... for errors, `W0001`... for warnings.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidToken => "E0001",
            Code::UnexpectedToken => "E0002",
            Code::UnexpectedEnd => "E0003",
            Code::ModelCount => "E0004",
            Code::UndefinedName => "E0010",
            Code::DuplicateName => "E0011",
            Code::UnknownOp => "E0012",
            Code::ShadowedFormat => "E0013",
            Code::InvalidFormat => "E0020",
            Code::InvalidRounding => "E0021",
            Code::BlockSizeMismatch => "E0022",
            Code::ChannelAxisOutOfRange => "E0023",
            Code::FormatNotAllowed => "E0024",
            Code::ShapeMismatch => "E0030",
            Code::ArgumentCount => "E0031",
            Code::InvalidShape => "E0032",
            Code::UnknownAttribute => "E0040",
            Code::AttributeNotApplicable => "E0041",
            Code::InvalidAttributeValue => "E0042",
            Code::DuplicateAttribute => "E0043",
            Code::ConflictingAttributes => "E0044",
            Code::MissingAttribute => "E0045",
            Code::PositionalAfterKeyword => "E0046",
            Code::UnknownInitializer => "E0047",
            Code::NoOutput => "E0050",
            Code::TrainingMismatch => "E0060",
            Code::UnusedBinding => "W0001",
            Code::UnusedFormat => "W0002",
            Code::IneffectiveChunk => "W0003",
            Code::TrainingAttributeWithoutTraining => "W0004",
            Code::NarrowMasterCopy => "W0005",
        }
    }

    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        }
    }
}

/// A secondary place involved in a diagnostic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecondaryLabel {
    pub span: Span,
    pub message: String,
}

/// One problem in a `.qnn` file. Plain data: rendering is separate.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// The exact place of the problem.
    pub span: Span,
    /// What the primary span is, in a few words.
    pub label: String,
    pub secondary: Vec<SecondaryLabel>,
    /// A suggestion ("did you mean `e4m3`?").
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>, label: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), span, label: label.into(), secondary: Vec::new(), hint: None }
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(SecondaryLabel { span, message: message.into() });
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds "did you mean `x`?" when there is a suggestion.
    pub fn with_suggestion(self, suggestion: Option<&str>) -> Diagnostic {
        match suggestion {
            Some(s) => self.with_hint(format!("did you mean `{s}`?")),
            None => self,
        }
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }
}

/// Whether any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Clamps a span to the source and to character boundaries, so that rendering never panics.
fn clamp(span: Span, source: &str) -> std::ops::Range<usize> {
    let fix = |mut i: usize| {
        i = i.min(source.len());
        while !source.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = fix(span.start);
    let end = fix(span.end).max(start);
    start..end
}

/// Renders diagnostics for people, with the source lines and labels (ariadne).
/// `color` adds ANSI colours; pass `false` when the output is not a terminal.
pub fn render(diagnostics: &[Diagnostic], source: &str, path: &str, color: bool) -> String {
    let mut out = Vec::new();
    let config = Config::default().with_color(color).with_index_type(IndexType::Byte);
    for d in diagnostics {
        let kind = match d.severity() {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let primary = clamp(d.span, source);
        let mut report = Report::build(kind, (path, primary.clone()))
            .with_config(config)
            .with_code(d.code.as_str())
            .with_message(&d.message)
            .with_label(Label::new((path, primary)).with_message(&d.label).with_order(0));
        for (i, s) in d.secondary.iter().enumerate() {
            report = report.with_label(Label::new((path, clamp(s.span, source))).with_message(&s.message).with_order(i as i32 + 1));
        }
        if let Some(hint) = &d.hint {
            report = report.with_help(hint);
        }
        // Writing into a Vec cannot fail; a failure would only lose this one report.
        let _ = report.finish().write((path, Source::from(source)), &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A position as line and column, both from 1 (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

fn line_col(source: &str, offset: usize) -> LineCol {
    let offset = clamp(Span::new(offset, offset), source).start;
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    LineCol { line, column: before[line_start..].chars().count() + 1 }
}

#[derive(Serialize)]
struct JsonSpan {
    start: usize,
    end: usize,
    begin: LineCol,
    finish: LineCol,
    message: String,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    code: &'static str,
    severity: Severity,
    message: &'a str,
    primary: JsonSpan,
    secondary: Vec<JsonSpan>,
    hint: Option<&'a str>,
}

/// Renders diagnostics for tools: one JSON object per line (byte offsets and 1-based line/column).
pub fn render_json(diagnostics: &[Diagnostic], source: &str, path: &str) -> String {
    let span = |s: Span, message: &str| {
        let r = clamp(s, source);
        JsonSpan {
            start: r.start,
            end: r.end,
            begin: line_col(source, r.start),
            finish: line_col(source, r.end),
            message: message.to_string(),
        }
    };
    let mut out = String::new();
    for d in diagnostics {
        let json = JsonDiagnostic {
            file: path,
            code: d.code.as_str(),
            severity: d.severity(),
            message: &d.message,
            primary: span(d.span, &d.label),
            secondary: d.secondary.iter().map(|s| span(s.span, &s.message)).collect(),
            hint: d.hint.as_deref(),
        };
        // Serialising plain strings and numbers cannot fail.
        out.push_str(&serde_json::to_string(&json).unwrap_or_default());
        out.push('\n');
    }
    out
}
