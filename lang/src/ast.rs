//! The syntax tree of a `.qnn` file, exactly as written. Every node carries the byte span of
//! its text. Values (formats, roundings, initialisers, optimizer settings) stay generic here:
//! the checker interprets each by the attribute or position it appears in.

use serde::Serialize;
use std::fmt;

/// A half-open byte range `start..end` in the source text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end: end.max(start) }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A name as written, with its span.
#[derive(Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} @ {:?}", self.name, self.span)
    }
}

/// A whole file: format aliases and models, in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Format(FormatAlias),
    Model(Model),
}

/// `format NAME = VALUE;` — a name for a format, optionally with a rounding (`fp16 @ stochastic:9`).
#[derive(Clone, Debug, PartialEq)]
pub struct FormatAlias {
    pub name: Ident,
    pub value: Value,
    pub span: Span,
}

/// `model NAME { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: Ident,
    pub items: Vec<ModelItem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModelItem {
    /// `defaults { key = value; ... }`: arithmetic attributes for every op of the model.
    Defaults(AttrBlock),
    Input(Input),
    Param(Param),
    Let(Let),
    Output(Output),
    Train(Section),
}

/// `[dims] FORMAT`, e.g. `[B, 64] e4m3` or `[128, 64] int<8,axis=0> @ stochastic:9`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub shape: ShapeExpr,
    pub format: Value,
    pub span: Span,
}

/// `[d0, d1, ...]`: sizes and symbols (`B`).
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeExpr {
    pub dims: Vec<DimExpr>,
    pub span: Span,
}

#[derive(Clone, PartialEq)]
pub struct DimExpr {
    pub kind: DimKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimKind {
    Size(u64),
    Symbol(String),
}

/// `input NAME: TYPE;`
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub name: Ident,
    pub ty: TensorType,
    pub span: Span,
}

/// `param NAME: TYPE = INIT;` (the initialiser may be omitted: zeros).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: TensorType,
    pub init: Option<Value>,
    pub span: Span,
}

/// `let NAME = EXPR;`
#[derive(Clone, Debug, PartialEq)]
pub struct Let {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `output NAME, ...;`
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub names: Vec<Ident>,
    pub span: Span,
}

/// `NAME { key = value; sub { ... } }` — the training section and its subsections.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub name: Ident,
    pub entries: Vec<SectionEntry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SectionEntry {
    Attr(Attr),
    Section(Section),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A binding, input or parameter.
    Name(Ident),
    /// A scalar constant.
    Number(f64),
    /// `op(arg, ..., key = value, ...)`.
    Call { op: Ident, args: Vec<Arg> },
    /// `EXPR with { key = value, ... }`: arithmetic attributes of the op that computes EXPR.
    With { expr: Box<Expr>, attrs: AttrBlock },
    /// `EXPR : FORMAT`: the result rounded to a format.
    Cast { expr: Box<Expr>, format: Value },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Positional(Expr),
    Keyword(Attr),
}

/// `key = value`.
#[derive(Clone, PartialEq)]
pub struct Attr {
    pub key: Ident,
    pub value: Value,
    pub span: Span,
}

/// `{ key = value, ... }` (entries separated by `,` or `;`).
#[derive(Clone, Debug, PartialEq)]
pub struct AttrBlock {
    pub attrs: Vec<Attr>,
    pub span: Span,
}

/// A value written in an attribute, argument, type or initialiser.
#[derive(Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Int(i64),
    Float(f64),
    Str(String),
    /// A name with optional format arguments and random-bit count: `e4m3`, `nearest-away`,
    /// `fp<6,5,nosub>`, `stochastic:9`.
    Word { name: Ident, args: Option<Vec<FormatArg>>, bits: Option<(i64, Span)> },
    /// `name(arg, ..., key = value)`: `sgd(lr = 0.1)`, `uniform(-0.1, 0.1)`, `load("w.npz", "fc1")`.
    Call { name: Ident, args: Vec<ValueArg> },
    /// `[v, ...]`.
    List(Vec<Value>),
    /// `FORMAT @ ROUNDING`.
    Rounded { format: Box<Value>, rounding: Box<Value> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueArg {
    Positional(Value),
    Keyword(Attr),
}

/// One argument inside a format's `<...>`: `6`, `nosub`, `axis=0`, `bias=-3`.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatArg {
    pub kind: FormatArgKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FormatArgKind {
    Int(i64),
    Flag(String),
    Key(String, String),
}

impl fmt::Display for FormatArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FormatArgKind::Int(n) => write!(f, "{n}"),
            FormatArgKind::Flag(s) => f.write_str(s),
            FormatArgKind::Key(k, v) => write!(f, "{k}={v}"),
        }
    }
}

impl Value {
    /// The text of a `Word` value in the numeric core's syntax (`fp<6,5,nosub>`, `stochastic:9`),
    /// or `None` for other kinds of value.
    pub fn word_text(&self) -> Option<String> {
        let ValueKind::Word { name, args, bits } = &self.kind else {
            return None;
        };
        let mut text = name.name.clone();
        if let Some(args) = args {
            let parts: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            text.push('<');
            text.push_str(&parts.join(","));
            text.push('>');
        }
        if let Some((n, _)) = bits {
            text.push_str(&format!(":{n}"));
        }
        Some(text)
    }

    /// A short description of what kind of value this is, for messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            ValueKind::Int(n) => format!("the integer `{n}`"),
            ValueKind::Float(x) => format!("the number `{x}`"),
            ValueKind::Str(s) => format!("the string {s:?}"),
            ValueKind::Word { .. } => format!("`{}`", self.word_text().unwrap_or_default()),
            ValueKind::Call { name, .. } => format!("`{}(...)`", name.name),
            ValueKind::List(_) => "a list".to_string(),
            ValueKind::Rounded { .. } => "a format with a rounding".to_string(),
        }
    }
}

// Compact Debug forms for the leaves, so that snapshots of whole files stay readable.

impl fmt::Debug for DimExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DimKind::Size(n) => write!(f, "{n} @ {:?}", self.span),
            DimKind::Symbol(s) => write!(f, "{s} @ {:?}", self.span),
        }
    }
}

impl fmt::Debug for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Attr").field(&self.key).field(&self.value).field(&self.span).finish()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ValueKind::Int(n) => write!(f, "Int({n}) @ {:?}", self.span),
            ValueKind::Float(x) => write!(f, "Float({x:?}) @ {:?}", self.span),
            ValueKind::Str(s) => write!(f, "Str({s:?}) @ {:?}", self.span),
            ValueKind::Word { name, args, bits } => {
                write!(f, "Word({:?}", name)?;
                if let Some(args) = args {
                    let shown: Vec<String> = args.iter().map(|a| format!("{a} @ {:?}", a.span)).collect();
                    write!(f, " <{}>", shown.join(", "))?;
                }
                if let Some((n, span)) = bits {
                    write!(f, " :{n} @ {span:?}")?;
                }
                write!(f, ") @ {:?}", self.span)
            }
            ValueKind::Call { name, args } => {
                f.debug_struct("Call").field("name", name).field("args", args).field("span", &self.span).finish()
            }
            ValueKind::List(items) => f.debug_struct("List").field("items", items).field("span", &self.span).finish(),
            ValueKind::Rounded { format, rounding } => f
                .debug_struct("Rounded")
                .field("format", format)
                .field("rounding", rounding)
                .field("span", &self.span)
                .finish(),
        }
    }
}
