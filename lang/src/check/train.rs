//! The training section: loss, optimizer, schedule, epochs, batch, seed, loss scaling, the
//! formats of the training tensors and the backward arithmetic, and its consistency with the model.

use super::arith::AttrScope;
use super::checked::*;
use super::Checker;
use crate::ast::{AttrBlock, Section, SectionEntry, Span, Value, ValueArg, ValueKind};
use crate::diagnostic::{Code, Diagnostic};
use qc_runtime::numerics::{suggest, Format};

const ENTRIES: [&str; 9] = ["loss", "optimizer", "schedule", "epochs", "batch", "seed", "loss_scale", "formats", "backward"];
const FORMAT_KEYS: [&str; 4] = ["weight_grad", "act_grad", "update", "master"];

/// A call's name and arguments, or a bare word as a call without arguments.
fn call_parts(v: &Value) -> Option<(&str, &[ValueArg])> {
    match &v.kind {
        ValueKind::Word { name, args: None, bits: None } => Some((name.name.as_str(), &[])),
        ValueKind::Call { name, args } => Some((name.name.as_str(), args.as_slice())),
        _ => None,
    }
}

impl Checker {
    fn one_of(&mut self, v: &Value, what: &str, names: &[&'static str]) -> Option<(&'static str, Vec<ValueArg>)> {
        let found = call_parts(v).and_then(|(n, a)| names.iter().find(|k| **k == n).map(|k| (*k, a.to_vec())));
        if found.is_none() {
            let word = call_parts(v).map(|(n, _)| n.to_string()).unwrap_or_default();
            self.error(
                Diagnostic::new(
                    Code::InvalidAttributeValue,
                    v.span,
                    format!("unknown {what} {}", v.describe()),
                    format!("expected one of {}", names.join(", ")),
                )
                .with_suggestion(suggest::closest(&word, names.iter().copied())),
            );
        }
        found
    }

    fn training_formats(&mut self, section: &Section) -> TrainFormats {
        let default = |c: &Self| Rounded { format: super::fp32(), rounding: c.default_rounding() };
        let mut formats =
            TrainFormats { weight_grad: default(self), act_grad: default(self), update: default(self), master: default(self) };
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for entry in &section.entries {
            let attr = match entry {
                SectionEntry::Attr(a) => a,
                SectionEntry::Section(s) => {
                    self.error(Diagnostic::new(Code::UnknownAttribute, s.name.span, format!("`formats` has no section `{}`", s.name.name), "unexpected section"));
                    continue;
                }
            };
            let key = attr.key.name.as_str();
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                self.duplicate(key, attr.key.span, *first);
                continue;
            }
            seen.push((key, attr.key.span));
            let Some(spec) = (if FORMAT_KEYS.contains(&key) { self.format_spec(&attr.value) } else { None }) else {
                if !FORMAT_KEYS.contains(&key) {
                    self.error(
                        Diagnostic::new(
                            Code::UnknownAttribute,
                            attr.key.span,
                            format!("unknown training format `{key}`"),
                            format!("one of {}", FORMAT_KEYS.join(", ")),
                        )
                        .with_suggestion(suggest::closest(key, FORMAT_KEYS)),
                    );
                }
                continue;
            };
            if matches!(key, "update" | "master") && !spec.format.is_elementwise() {
                self.error(Diagnostic::new(
                    Code::FormatNotAllowed,
                    attr.value.span,
                    format!("the weight {key} cannot be in `{}`", spec.format),
                    "its values share a scale",
                ).with_hint("the update and the master copy are element-wise formats (floats, fixed point)"));
                continue;
            }
            let r = Rounded { format: spec.format, rounding: spec.rounding.unwrap_or(self.default_rounding()) };
            match key {
                "weight_grad" => formats.weight_grad = r,
                "act_grad" => formats.act_grad = r,
                "update" => formats.update = r,
                _ => {
                    formats.master = r;
                    self.check_master(r.format, attr.value.span);
                }
            }
        }
        formats
    }

    /// Warns when the master copy cannot hold a float weight format exactly.
    fn check_master(&mut self, master: Format, at: Span) {
        let Some(m) = master.as_float() else { return };
        let narrower: Vec<(String, Format, Span)> = self
            .params
            .iter()
            .filter(|p| p.tensor.format.as_float().is_some_and(|w| w.man_bits > m.man_bits || w.exp_bits > m.exp_bits))
            .map(|p| (p.tensor.name.clone(), p.tensor.format, p.tensor.span))
            .collect();
        if let Some((name, format, span)) = narrower.first() {
            self.error(
                Diagnostic::new(
                    Code::NarrowMasterCopy,
                    at,
                    format!("the master copy `{master}` is narrower than the format `{format}` of `{name}`"),
                    "master copy",
                )
                .with_secondary(*span, format!("`{name}` is `{format}`"))
                .with_hint("keep the master copy at least as wide as the weights (e.g. fp32)"),
            );
        }
    }

    pub(super) fn train(&mut self, section: &Section, outputs: &[(String, ValueRef, Shape, Span)]) -> Option<Training> {
        let mut seen: Vec<(&str, Span)> = Vec::new();
        let mut ok = true;
        let mut loss = None;
        let mut optimizer = None;
        let mut schedule = Schedule::Constant;
        let (mut epochs, mut batch, mut batch_span, mut seed) = (10usize, 32usize, None, 0u64);
        let mut loss_scale = LossScale::None;
        let mut formats = None;
        let mut backward = None;
        for entry in &section.entries {
            let (key, key_span) = match entry {
                SectionEntry::Attr(a) => (a.key.name.as_str(), a.key.span),
                SectionEntry::Section(s) => (s.name.name.as_str(), s.name.span),
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                self.duplicate(key, key_span, *first);
                ok = false;
                continue;
            }
            seen.push((key, key_span));
            if !ENTRIES.contains(&key) {
                self.error(
                    Diagnostic::new(Code::UnknownAttribute, key_span, format!("unknown training setting `{key}`"), "not a setting")
                        .with_suggestion(suggest::closest(key, ENTRIES)),
                );
                ok = false;
                continue;
            }
            let is_section = matches!(key, "formats" | "backward");
            match entry {
                SectionEntry::Section(s) if is_section => {
                    if key == "formats" {
                        formats = Some(self.training_formats(s));
                    } else {
                        let block = AttrBlock {
                            attrs: s
                                .entries
                                .iter()
                                .filter_map(|e| match e {
                                    SectionEntry::Attr(a) => Some(a.clone()),
                                    SectionEntry::Section(inner) => {
                                        self.error(Diagnostic::new(Code::UnknownAttribute, inner.name.span, "`backward` holds attributes, not sections", "unexpected section"));
                                        None
                                    }
                                })
                                .collect(),
                            span: s.span,
                        };
                        let attrs = self.arith_attrs(&block, AttrScope::Defaults);
                        self.validate_arith(&attrs, None);
                        backward = Some(self.resolve_arith_over(&self.defaults.clone(), &attrs));
                    }
                }
                SectionEntry::Attr(a) if !is_section => {
                    let v = &a.value;
                    match key {
                        "loss" => {
                            loss = self.one_of(v, "loss", &["softmax_cross_entropy", "mse"]).map(|(n, _)| match n {
                                "mse" => Loss::Mse,
                                _ => Loss::SoftmaxCrossEntropy,
                            })
                        }
                        "optimizer" => optimizer = self.optimizer(v),
                        "schedule" => match self.schedule(v) {
                            Some(s) => schedule = s,
                            None => ok = false,
                        },
                        "epochs" => match self.int_at_least(v, 1) {
                            Some(n) => epochs = n as usize,
                            None => ok = false,
                        },
                        "batch" => match self.int_at_least(v, 1) {
                            Some(n) => {
                                batch = n as usize;
                                batch_span = Some(v.span);
                            }
                            None => ok = false,
                        },
                        "seed" => match self.int_at_least(v, 0) {
                            Some(n) => seed = n as u64,
                            None => ok = false,
                        },
                        _ => match self.loss_scale(v) {
                            Some(s) => loss_scale = s,
                            None => ok = false,
                        },
                    }
                }
                _ => {
                    let shape = if is_section { format!("`{key} {{ ... }}`") } else { format!("`{key} = ...;`") };
                    self.error(Diagnostic::new(Code::InvalidAttributeValue, key_span, format!("write `{key}` as {shape}"), "wrong form"));
                    ok = false;
                }
            }
        }
        let train_kw = section.name.span;
        for (name, missing) in [("loss", loss.is_none() && !seen.iter().any(|(k, _)| *k == "loss")), ("optimizer", optimizer.is_none() && !seen.iter().any(|(k, _)| *k == "optimizer"))] {
            if missing {
                self.error(
                    Diagnostic::new(Code::MissingAttribute, train_kw, format!("the training section needs `{name}`"), format!("`{name}` is missing"))
                        .with_hint(if name == "loss" { "add `loss = softmax_cross_entropy;`" } else { "add `optimizer = sgd(lr = 0.1);`" }),
                );
            }
        }
        // Consistency with the model.
        if self.params.is_empty() {
            self.error(Diagnostic::new(Code::TrainingMismatch, train_kw, "nothing to train: the model has no parameters", "training section"));
            ok = false;
        }
        if outputs.len() > 1 {
            let mut d = Diagnostic::new(
                Code::TrainingMismatch,
                train_kw,
                format!("the loss needs exactly one output, the model has {}", outputs.len()),
                "training section",
            );
            for (name, _, _, span) in outputs {
                d = d.with_secondary(*span, format!("output `{name}`"));
            }
            self.error(d);
            ok = false;
        }
        if let (Some(Loss::SoftmaxCrossEntropy), [(name, _, shape, span)]) = (loss, outputs) {
            if shape.rank() != 2 {
                self.error(
                    Diagnostic::new(
                        Code::TrainingMismatch,
                        *span,
                        format!("softmax cross-entropy needs an output [batch, classes], but `{name}` is {shape}"),
                        format!("{shape}"),
                    )
                    .with_hint("flatten or reshape the logits to two axes"),
                );
                ok = false;
            }
        }
        if let Some(bspan) = batch_span {
            let clash: Vec<(String, usize, Span)> = self
                .inputs
                .iter()
                .filter_map(|i| match i.shape.0.first() {
                    Some(Dim::Known(n)) if *n != batch => Some((i.name.clone(), *n, i.span)),
                    _ => None,
                })
                .collect();
            for (name, n, span) in clash {
                self.error(
                    Diagnostic::new(Code::TrainingMismatch, bspan, format!("batch {batch} does not match input `{name}`, whose first axis is {n}"), "batch size")
                        .with_secondary(span, format!("`{name}` has {n} rows"))
                        .with_hint("write the batch axis of inputs as a symbol: `input x: [B, ...]`"),
                );
                ok = false;
            }
        }
        let formats = formats.unwrap_or_else(|| {
            let r = Rounded { format: super::fp32(), rounding: self.default_rounding() };
            TrainFormats { weight_grad: r, act_grad: r, update: r, master: r }
        });
        let backward = backward.unwrap_or_else(|| self.resolve_arith(&Default::default()));
        if backward.chunk.is_none() {
            for span in std::mem::take(&mut self.bwd_chunk_acc_unchunked) {
                self.error(
                    Diagnostic::new(Code::MissingAttribute, span, "`bwd_chunk_acc` without a backward chunk size", "there are no chunks to add")
                        .with_secondary(section.name.span, "and `backward { }` does not chunk")
                        .with_hint("set the layer's chunk size too: `bwd_chunk = 64`"),
                );
                ok = false;
            }
        }
        match (loss, optimizer, ok) {
            (Some(loss), Some(optimizer), true) => {
                Some(Training { loss, optimizer, schedule, epochs, batch, seed, formats, backward, loss_scale, span: section.span })
            }
            _ => None,
        }
    }

    fn optimizer(&mut self, v: &Value) -> Option<Optimizer> {
        let (name, args) = self.one_of(v, "optimizer", &["sgd", "adam"])?;
        let positive = |c: &mut Self, v: &Value| c.number_in(v, 0.0, f64::INFINITY, true, "a positive number");
        let fraction = |c: &mut Self, v: &Value| c.number_in(v, 0.0, 1.0, false, "a number from 0 to 1");
        let non_negative = |c: &mut Self, v: &Value| c.number_in(v, 0.0, f64::INFINITY, false, "a number ≥ 0");
        if name == "sgd" {
            let a = self.bind_args("sgd", v.span, &args, &["lr", "momentum", "weight_decay", "nesterov"], &["lr"])?;
            let lr = positive(self, a["lr"])?;
            let momentum = a.get("momentum").map_or(Some(0.0), |m| fraction(self, m))?;
            let weight_decay = a.get("weight_decay").map_or(Some(0.0), |w| non_negative(self, w))?;
            let nesterov = a.get("nesterov").map_or(Some(false), |n| self.boolean(n))?;
            Some(Optimizer::Sgd { lr, momentum, weight_decay, nesterov })
        } else {
            let a = self.bind_args("adam", v.span, &args, &["lr", "beta1", "beta2", "eps", "weight_decay"], &["lr"])?;
            let lr = positive(self, a["lr"])?;
            let beta1 = a.get("beta1").map_or(Some(0.9), |b| fraction(self, b))?;
            let beta2 = a.get("beta2").map_or(Some(0.999), |b| fraction(self, b))?;
            let eps = a.get("eps").map_or(Some(1e-8), |e| positive(self, e))?;
            let weight_decay = a.get("weight_decay").map_or(Some(0.0), |w| non_negative(self, w))?;
            Some(Optimizer::Adam { lr, beta1, beta2, eps, weight_decay })
        }
    }

    fn schedule(&mut self, v: &Value) -> Option<Schedule> {
        let (name, args) = self.one_of(v, "schedule", &["constant", "step", "cosine"])?;
        match name {
            "step" => {
                let a = self.bind_args("step", v.span, &args, &["every", "gamma"], &["every"])?;
                let every = self.int_at_least(a["every"], 1)? as usize;
                let gamma = a.get("gamma").map_or(Some(0.1), |g| self.number_in(g, 0.0, 1.0, true, "a factor in (0, 1]"))?;
                Some(Schedule::Step { every, gamma })
            }
            "cosine" => self.bind_args("cosine", v.span, &args, &[], &[]).map(|_| Schedule::Cosine),
            _ => self.bind_args("constant", v.span, &args, &[], &[]).map(|_| Schedule::Constant),
        }
    }

    fn loss_scale(&mut self, v: &Value) -> Option<LossScale> {
        if matches!(v.kind, ValueKind::Int(_) | ValueKind::Float(_)) {
            return self.number_in(v, 0.0, f64::INFINITY, true, "a positive scale").map(LossScale::Static);
        }
        let (name, args) = self.one_of(v, "loss scaling", &["none", "dynamic"])?;
        if name == "none" {
            return self.bind_args("none", v.span, &args, &[], &[]).map(|_| LossScale::None);
        }
        let a = self.bind_args("dynamic", v.span, &args, &["init", "growth", "backoff", "interval"], &[])?;
        let init = a.get("init").map_or(Some(65536.0), |x| self.number_in(x, 0.0, f64::INFINITY, true, "a positive scale"))?;
        let growth = a.get("growth").map_or(Some(2.0), |x| self.number_in(x, 1.0, f64::INFINITY, true, "a factor above 1"))?;
        let backoff = a.get("backoff").map_or(Some(0.5), |x| self.number_in(x, 0.0, 1.0, true, "a factor in (0, 1)"))?;
        let interval = a.get("interval").map_or(Some(2000), |x| self.int_at_least(x, 1))? as usize;
        Some(LossScale::Dynamic { init, growth, backoff, interval })
    }
}
