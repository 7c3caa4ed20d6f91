//! The checks that give a parsed file its meaning: name resolution, shape and format
//! inference, format validity against shapes, attributes, the training section, and warnings
//! for unused names. Produces a [`CheckedModule`] when there is no error.
//!
//! `values` interprets attribute values, `arith` the arithmetic attributes, `ops` the operations
//! and their shape rules, `train` the training section.

mod arith;
pub mod checked;
mod ops;
mod train;
mod values;

use crate::ast::{self, Expr, ExprKind, Item, ModelItem, Span, Value};
use crate::diagnostic::{has_errors, Code, Diagnostic};
pub use checked::*;
use qc_runtime::numerics::{suggest, Format, Rounding};
use std::collections::HashMap;
use values::FormatSpec;

/// A format alias and whether anything uses it.
struct Alias {
    spec: FormatSpec,
    span: Span,
    used: bool,
}

/// What a name in the model refers to.
#[derive(Clone, Copy)]
enum Binding {
    Input(usize),
    Param(usize),
    Let(ValueRef),
}

struct NameInfo {
    /// `None` when its definition has an error: uses are then not reported again.
    binding: Option<Binding>,
    /// The span of the name where it is defined.
    span: Span,
    kind: &'static str,
    used: bool,
    /// `let` bindings become visible only after their definition.
    defined: bool,
}

/// An evaluated expression.
#[derive(Clone)]
struct Val {
    r: ValueRef,
    shape: Shape,
    format: Format,
    span: Span,
}

/// State of one check run.
pub(crate) struct Checker {
    diagnostics: Vec<Diagnostic>,
    source_text: String,
    aliases: HashMap<String, Alias>,
    names: HashMap<String, NameInfo>,
    inputs: Vec<TensorDecl>,
    params: Vec<ParamDecl>,
    nodes: Vec<Node>,
    defaults: arith::ArithAttrs,
    has_training: bool,
    /// Spans of layers' `bwd_chunk_acc` without their own `bwd_chunk`: an error unless the
    /// train section's `backward` chunks (checked with it).
    bwd_chunk_acc_unchunked: Vec<Span>,
}

/// Checks a parsed module. Returns the checked model when there is no error, and every
/// diagnostic (errors and warnings) in source order.
pub fn check(module: &ast::Module) -> (Option<CheckedModule>, Vec<Diagnostic>) {
    check_with_source(module, "")
}

/// Parses and checks source text: the whole front end in one call.
pub fn check_source(source: &str) -> (Option<CheckedModule>, Vec<Diagnostic>) {
    let (module, mut diagnostics) = crate::parse(source);
    match module {
        Some(m) if !has_errors(&diagnostics) => {
            let (checked, more) = check_with_source(&m, source);
            diagnostics.extend(more);
            (checked, diagnostics)
        }
        _ => (None, diagnostics),
    }
}

fn check_with_source(module: &ast::Module, source: &str) -> (Option<CheckedModule>, Vec<Diagnostic>) {
    let mut c = Checker {
        diagnostics: Vec::new(),
        source_text: source.to_string(),
        aliases: HashMap::new(),
        names: HashMap::new(),
        inputs: Vec::new(),
        params: Vec::new(),
        nodes: Vec::new(),
        defaults: arith::ArithAttrs::default(),
        has_training: false,
        bwd_chunk_acc_unchunked: Vec::new(),
    };
    let checked = c.module(module);
    let mut diagnostics = c.diagnostics;
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    let ok = !has_errors(&diagnostics);
    (checked.filter(|_| ok), diagnostics)
}

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Reports `key`, given again at `again` after its first place `first`.
    fn duplicate(&mut self, key: &str, again: Span, first: Span) {
        self.error(
            Diagnostic::new(Code::DuplicateAttribute, again, format!("`{key}` is given twice"), "given again here")
                .with_secondary(first, "first given here"),
        );
    }

    /// The source text of a span, when the source is known (used in hints only).
    fn text(&self, span: Span) -> String {
        self.source_text.get(span.start..span.end).unwrap_or("").to_string()
    }

    fn module(&mut self, module: &ast::Module) -> Option<CheckedModule> {
        let mut models = Vec::new();
        for item in &module.items {
            match item {
                Item::Format(alias) => self.alias(alias),
                Item::Model(m) => models.push(m),
            }
        }
        let result = match models.as_slice() {
            [] => {
                self.error(
                    Diagnostic::new(Code::ModelCount, Span::new(module.span.end, module.span.end), "no model in this file", "expected `model NAME { ... }`")
                        .with_hint("a .qnn file describes one model: `model NAME { input ...; param ...; let ...; output ...; }`"),
                );
                None
            }
            [model, rest @ ..] => {
                for extra in rest {
                    self.error(
                        Diagnostic::new(Code::ModelCount, extra.name.span, "a file holds one model", "second model")
                            .with_secondary(model.name.span, "the first model is here")
                            .with_hint("put each model in its own file"),
                    );
                }
                self.model(model)
            }
        };
        let mut unused: Vec<(String, Span)> =
            self.aliases.iter().filter(|(_, a)| !a.used).map(|(n, a)| (n.clone(), a.span)).collect();
        unused.sort_by_key(|(_, s)| s.start);
        for (name, span) in unused {
            self.error(
                Diagnostic::new(Code::UnusedFormat, span, format!("format alias `{name}` is never used"), "defined here")
                    .with_hint(format!("remove it, or use it as a format: `... {name}`")),
            );
        }
        result
    }

    fn alias(&mut self, alias: &ast::FormatAlias) {
        let name = &alias.name.name;
        if Format::parse(name).is_ok() || Rounding::parse(name).is_ok() || name == "exact" {
            self.error(
                Diagnostic::new(Code::ShadowedFormat, alias.name.span, format!("`{name}` is already a built-in name"), "this alias would hide it")
                    .with_hint("choose another name for the alias"),
            );
            return;
        }
        if let Some(first) = self.aliases.get(name) {
            let first = first.span;
            self.error(
                Diagnostic::new(Code::DuplicateName, alias.name.span, format!("format alias `{name}` is defined twice"), "defined again here")
                    .with_secondary(first, "first defined here"),
            );
            return;
        }
        if let Some(spec) = self.format_spec(&alias.value) {
            self.aliases.insert(name.clone(), Alias { spec, span: alias.name.span, used: false });
        }
    }

    /// Marks a name whose definition failed: it stays defined, and its uses report nothing more.
    fn poison(&mut self, name: &str) {
        if let Some(info) = self.names.get_mut(name) {
            info.binding = None;
        }
    }

    fn declare(&mut self, name: &ast::Ident, binding: Binding, kind: &'static str, defined: bool) -> bool {
        if let Some(first) = self.names.get(&name.name) {
            let (first_span, first_kind) = (first.span, first.kind);
            self.error(
                Diagnostic::new(Code::DuplicateName, name.span, format!("`{}` is defined twice", name.name), "defined again here")
                    .with_secondary(first_span, format!("first defined here as {first_kind}")),
            );
            return false;
        }
        self.names.insert(name.name.clone(), NameInfo { binding: Some(binding), span: name.span, kind, used: false, defined });
        true
    }

    /// A tensor type: shape (sizes must be known for parameters) and a format that fits it.
    fn tensor_type(&mut self, ty: &ast::TensorType, is_param: bool) -> Option<(Shape, FormatSpec)> {
        let mut dims = Vec::new();
        let mut ok = true;
        for d in &ty.shape.dims {
            match &d.kind {
                ast::DimKind::Size(0) => {
                    self.error(Diagnostic::new(Code::InvalidShape, d.span, "a dimension of size 0", "sizes start at 1"));
                    ok = false;
                }
                ast::DimKind::Size(n) => dims.push(Dim::Known(*n as usize)),
                ast::DimKind::Symbol(s) if is_param => {
                    self.error(
                        Diagnostic::new(Code::InvalidShape, d.span, format!("a parameter's size must be known, not `{s}`"), "symbolic size")
                            .with_hint("symbols such as the batch size `B` belong in input shapes"),
                    );
                    ok = false;
                }
                ast::DimKind::Symbol(s) => dims.push(Dim::Symbol(s.clone())),
            }
        }
        let spec = self.format_spec(&ty.format);
        let (spec, shape) = (spec?, Shape(dims));
        if !ok {
            return None;
        }
        self.check_fits(&spec.format, &shape, ty.format.span, None).then_some((shape, spec))
    }

    /// Whether a format can hold a tensor of this shape: block sizes divide the last axis,
    /// channel axes exist. `origin` is where the format came from when it was inherited.
    fn check_fits(&mut self, format: &Format, shape: &Shape, at: Span, origin: Option<Span>) -> bool {
        let secondary = |d: Diagnostic| match origin {
            Some(o) => d
                .with_secondary(o, format!("the result takes the format `{format}` of this operand"))
                .with_hint("cast the result to another format: `... : bf16`"),
            None => d,
        };
        if let Some(block) = format.block_size() {
            match shape.last() {
                None => {
                    self.error(secondary(Diagnostic::new(
                        Code::BlockSizeMismatch,
                        at,
                        format!("block format `{format}` on a scalar"),
                        "a block format needs at least one axis",
                    )));
                    return false;
                }
                Some(Dim::Known(n)) if n % block != 0 => {
                    self.error(secondary(Diagnostic::new(
                        Code::BlockSizeMismatch,
                        at,
                        format!("block size {block} of `{format}` does not divide the last axis of {shape}"),
                        format!("blocks of {block} along an axis of length {n}"),
                    )));
                    return false;
                }
                _ => {}
            }
        }
        if let Some(axis) = format.channel_axis() {
            if axis >= shape.rank() {
                self.error(secondary(Diagnostic::new(
                    Code::ChannelAxisOutOfRange,
                    at,
                    format!("per-channel axis {axis} of `{format}` is out of range for {shape}"),
                    format!("a tensor of rank {} has axes 0 to {}", shape.rank(), shape.rank().saturating_sub(1)),
                )));
                return false;
            }
        }
        true
    }

    fn default_rounding(&self) -> Rounding {
        self.defaults.rounding.map_or(Rounding::Nearest, |(r, _)| r)
    }

    fn model(&mut self, model: &ast::Model) -> Option<CheckedModule> {
        // Defaults and the training section first: they apply to items written before them.
        let mut defaults_span: Option<Span> = None;
        let mut train: Option<&ast::Section> = None;
        for item in &model.items {
            match item {
                ModelItem::Defaults(block) => {
                    if let Some(first) = defaults_span {
                        self.error(
                            Diagnostic::new(Code::DuplicateName, block.span, "a second `defaults` block", "second block")
                                .with_secondary(first, "the first `defaults` block"),
                        );
                        continue;
                    }
                    defaults_span = Some(block.span);
                    self.defaults = self.arith_attrs(block, arith::AttrScope::Defaults);
                    self.validate_arith(&self.defaults.clone(), None);
                }
                ModelItem::Train(section) => {
                    if let Some(first) = train {
                        self.error(
                            Diagnostic::new(Code::DuplicateName, section.name.span, "a second `train` section", "second section")
                                .with_secondary(first.name.span, "the first `train` section"),
                        );
                        continue;
                    }
                    train = Some(section);
                }
                _ => {}
            }
        }
        self.has_training = train.is_some();

        // Declarations: inputs and parameters are visible everywhere.
        for item in &model.items {
            match item {
                ModelItem::Input(input) => {
                    let declared = self.declare(&input.name, Binding::Input(self.inputs.len()), "an input", true);
                    if let Some((shape, spec)) = self.tensor_type(&input.ty, false) {
                        if declared {
                            let rounding = spec.rounding.unwrap_or(self.default_rounding());
                            self.inputs.push(TensorDecl { name: input.name.name.clone(), shape, format: spec.format, rounding, span: input.span });
                        }
                    } else if declared {
                        self.poison(&input.name.name);
                    }
                }
                ModelItem::Param(param) => {
                    let declared = self.declare(&param.name, Binding::Param(self.params.len()), "a parameter", true);
                    let ty = self.tensor_type(&param.ty, true);
                    let init = match &param.init {
                        Some(v) => self.init(v),
                        None => Some(Init::Zeros),
                    };
                    match (ty, init, declared) {
                        (Some((shape, spec)), Some(init), true) => {
                            let rounding = spec.rounding.unwrap_or(self.default_rounding());
                            let tensor = TensorDecl { name: param.name.name.clone(), shape, format: spec.format, rounding, span: param.span };
                            self.params.push(ParamDecl { tensor, init });
                        }
                        (_, _, true) => self.poison(&param.name.name),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // Bindings: all are declared first (so that a use before the definition is reported as
        // such), then evaluated in order.
        let lets: Vec<&ast::Let> = model.items.iter().filter_map(|i| if let ModelItem::Let(l) = i { Some(l) } else { None }).collect();
        let declared: Vec<bool> =
            lets.iter().map(|l| self.declare(&l.name, Binding::Let(ValueRef::Constant(0.0)), "a binding", false)).collect();
        for (l, declared) in lets.into_iter().zip(declared) {
            let value = self.expr(&l.value, declared.then_some(l.name.name.as_str()));
            if !declared {
                continue;
            }
            if let Some(info) = self.names.get_mut(&l.name.name) {
                info.binding = value.map(|v| Binding::Let(v.r));
                info.defined = true;
            }
        }

        let mut outputs = Vec::new();
        let mut output_spans = Vec::new();
        for item in &model.items {
            if let ModelItem::Output(out) = item {
                for name in &out.names {
                    output_spans.push(name.span);
                    if let Some(v) = self.lookup(name) {
                        outputs.push((name.name.clone(), v.r, v.shape, name.span));
                    }
                }
            }
        }
        if output_spans.is_empty() {
            self.error(
                Diagnostic::new(Code::NoOutput, model.name.span, format!("model `{}` has no output", model.name.name), "nothing is computed")
                    .with_hint("name the result: `output y;`"),
            );
        }
        let training = train.and_then(|t| self.train(t, &outputs));

        let mut unused: Vec<(String, Span, &'static str)> =
            self.names.iter().filter(|(_, n)| !n.used).map(|(k, n)| (k.clone(), n.span, n.kind)).collect();
        unused.sort_by_key(|(_, s, _)| s.start);
        for (name, span, kind) in unused {
            if name.starts_with('_') {
                continue;
            }
            self.error(
                Diagnostic::new(Code::UnusedBinding, span, format!("{kind} `{name}` is never used"), "defined here")
                    .with_hint(format!("use it, make it an output, or remove it (an underscore prefix `_{name}` also silences this)")),
            );
        }

        Some(CheckedModule {
            name: model.name.name.clone(),
            inputs: std::mem::take(&mut self.inputs),
            params: std::mem::take(&mut self.params),
            nodes: std::mem::take(&mut self.nodes),
            outputs: outputs.into_iter().map(|(n, r, _, _)| (n, r)).collect(),
            defaults: self.resolve_arith(&arith::ArithAttrs::default()),
            training,
        })
    }

    fn lookup(&mut self, name: &ast::Ident) -> Option<Val> {
        let Some(info) = self.names.get_mut(&name.name) else {
            let candidates: Vec<&str> = self.names.keys().map(String::as_str).collect();
            let hint = suggest::closest(&name.name, candidates).map(str::to_string);
            self.error(
                Diagnostic::new(Code::UndefinedName, name.span, format!("`{}` is not defined", name.name), "unknown name")
                    .with_suggestion(hint.as_deref()),
            );
            return None;
        };
        if !info.defined {
            let def = info.span;
            self.error(
                Diagnostic::new(Code::UndefinedName, name.span, format!("`{}` is used before its definition", name.name), "used here")
                    .with_secondary(def, "defined later here")
                    .with_hint("bindings are evaluated in order: move the definition up"),
            );
            return None;
        }
        info.used = true;
        let binding = info.binding?;
        let (shape, format) = match binding {
            Binding::Input(i) => (self.inputs[i].shape.clone(), self.inputs[i].format),
            Binding::Param(i) => (self.params[i].tensor.shape.clone(), self.params[i].tensor.format),
            Binding::Let(r) => self.value_info(r),
        };
        let r = match binding {
            Binding::Input(i) => ValueRef::Input(i),
            Binding::Param(i) => ValueRef::Param(i),
            Binding::Let(r) => r,
        };
        Some(Val { r, shape, format, span: name.span })
    }

    fn value_info(&self, r: ValueRef) -> (Shape, Format) {
        match r {
            ValueRef::Input(i) => (self.inputs[i].shape.clone(), self.inputs[i].format),
            ValueRef::Param(i) => (self.params[i].tensor.shape.clone(), self.params[i].tensor.format),
            ValueRef::Node(i) => (self.nodes[i].shape.clone(), self.nodes[i].format),
            ValueRef::Constant(_) => (Shape::default(), fp32()),
        }
    }

    fn expr(&mut self, e: &Expr, binding: Option<&str>) -> Option<Val> {
        match &e.kind {
            ExprKind::Name(name) => self.lookup(name),
            ExprKind::Number(x) => Some(Val { r: ValueRef::Constant(*x), shape: Shape::default(), format: fp32(), span: e.span }),
            ExprKind::Call { op, args } => self.call(e, op, args, None, None, binding),
            ExprKind::With { expr, attrs } => match &expr.kind {
                ExprKind::Call { op, args } => self.call(expr, op, args, Some(attrs), None, binding),
                ExprKind::Cast { expr: inner, format } => match &inner.kind {
                    ExprKind::Call { op, args } => self.call(inner, op, args, Some(attrs), Some(format), binding),
                    _ => self.with_without_op(expr, attrs),
                },
                _ => self.with_without_op(expr, attrs),
            },
            ExprKind::Cast { expr, format } => match &expr.kind {
                ExprKind::Call { op, args } => self.call(expr, op, args, None, Some(format), binding),
                ExprKind::With { expr: inner, attrs } if matches!(inner.kind, ExprKind::Call { .. }) => {
                    let ExprKind::Call { op, args } = &inner.kind else { return None };
                    self.call(inner, op, args, Some(attrs), Some(format), binding)
                }
                _ => {
                    let v = self.expr(expr, None);
                    let spec = self.format_spec(format);
                    let (v, spec) = (v?, spec?);
                    if !self.check_fits(&spec.format, &v.shape, format.span, None) {
                        return None;
                    }
                    let rounding = spec.rounding.unwrap_or(self.default_rounding());
                    Some(self.push_node(Node {
                        op: Op::Cast,
                        inputs: vec![v.r],
                        shape: v.shape,
                        format: spec.format,
                        rounding,
                        arith: None,
                        grads: GradFormats::default(),
                        binding: binding.map(str::to_string),
                        span: e.span,
                    }))
                }
            },
        }
    }

    fn with_without_op(&mut self, inner: &Expr, attrs: &ast::AttrBlock) -> Option<Val> {
        self.error(
            Diagnostic::new(Code::AttributeNotApplicable, attrs.span, "`with` attributes need an operation", "nothing computes here")
                .with_secondary(inner.span, "this is not an operation call"),
        );
        self.expr(inner, None)
    }

    fn push_node(&mut self, node: Node) -> Val {
        let val = Val { r: ValueRef::Node(self.nodes.len()), shape: node.shape.clone(), format: node.format, span: node.span };
        self.nodes.push(node);
        val
    }

    /// Resolves an output format written as a cast or a `to =` argument.
    fn output_spec(&mut self, v: Option<&Value>) -> Option<Option<FormatSpec>> {
        match v {
            None => Some(None),
            Some(v) => self.format_spec(v).map(Some),
        }
    }
}

fn fp32() -> Format {
    Format::Float { name: Some("fp32"), format: qc_runtime::numerics::FloatFormat::ieee(8, 23) }
}
