//! The gradient rule of each `nn` op: given the gradient `dy` of its result, the ops that
//! compute the gradients of its operands (only of those computed from parameters). Gradients
//! of a value used several times are added (`nn.add`, rounded to the activation-gradient
//! format). New ops go just before the function's `func.return`, so the backward pass follows
//! the forward pass in reverse.
//!
//! | forward | gradients |
//! |---|---|
//! | `nn.dense x, w, b` | `dx = nn.matmul dy, w`; `dw = nn.dense_grad_weight dy, x`; `db = nn.bias_grad dy` |
//! | `nn.conv2d x, w, b` | `dx = nn.conv2d_grad_input dy, w`; `dw = nn.conv2d_grad_weight dy, x`; `db = nn.bias_grad dy` |
//! | `nn.maxpool2d x` | `dx = nn.maxpool2d_grad dy, x` |
//! | `nn.relu x` / `nn.clip x` | `dx = nn.clip_grad dy, x` (`[0, inf]` / `[min, max]`) |
//! | `nn.leaky_relu x` | `dx = nn.leaky_relu_grad dy, x` (`dy` where x > 0, else `α·dy`) |
//! | `nn.pact x, α` | `dx = nn.clip_grad dy, x, α` (`0 < x < α`); `dα = nn.pact_grad_alpha dy, x, α` (Σ dy where x ≥ α) |
//! | `nn.cast`, `q.quantize`, `q.dequantize` | `dx = dy` (straight through) |
//! | `nn.add a, b` / `nn.mul a, b` | `da = dy` / `dy·b` (likewise b); an operand broadcast along leading axes gets that summed by `nn.bias_grad` (`keep` = its rank), in the weight-gradient format when it is a parameter |
//! | `nn.flatten x` / `nn.reshape x` | `dx = nn.reshape dy` to x's shape |
//! | `nn.transpose x` | `dx = nn.transpose dy` (the inverse permutation) |
//! | `nn.concat xs` | `dx_i = nn.slice dy` (x_i's positions along the axis) |
//! | `nn.matmul a, b` | `da = nn.matmul dy, bᵀ`; `db = nn.matmul aᵀ, dy` (`ᵀ`: `nn.transpose` of the last two axes), or `(nn.dense_grad_weight dy, a)ᵀ` for a `[K, N]` b shared by the batch |
//! | `nn.softmax x` | `dx = nn.softmax_grad dy, y` (y the result) |
//! | `nn.sigmoid x` / `nn.tanh x` / `nn.gelu x` | `dx = nn.sigmoid_grad dy, x` (likewise) |
//! | `nn.avgpool2d x` | `dx = nn.avgpool2d_grad dy` |
//! | `nn.layernorm x, γ, β` | `dx = nn.layernorm_grad dy, x, γ`; `dγ = Σ dy·n`, `dβ = Σ dy` (`nn.bias_grad`) |
//! | `nn.batchnorm x, γ, β, μ, σ²` | `dx = nn.batchnorm_grad dy, x, γ, μ, σ², Σdy, Σdy·n` with batch statistics ([`use_batch_statistics`]), else `nn.batchnorm dy, γ, 0, 0, σ²`; dγ, dβ as layernorm |

use super::GradSpec;
use crate::ir::{Arith, Attr, Dim, Module, OpId, RoundTo, TensorType, Type, ValueId};
use crate::lower::build::{attrs, At, Attrs, Builder};
use qc_runtime::numerics::{Format, Rounding};
use std::collections::{HashMap, HashSet};

pub(super) struct Backward<'m, 's> {
    pub module: &'m mut Module,
    /// New ops are inserted before this op (the `func.return`).
    pub anchor: OpId,
    pub spec: &'s GradSpec,
    pub next_stream: u32,
    /// The gradient of each value reached so far.
    pub cotangents: HashMap<ValueId, ValueId>,
    /// The values computed from parameters (the only ones whose gradient is needed).
    pub needs: HashSet<ValueId>,
}

fn fp32() -> Format {
    Format::parse("fp32").expect("fp32 is a named format")
}

impl Backward<'_, '_> {
    fn tensor(&self, v: ValueId) -> TensorType {
        self.module
            .ty(v)
            .as_tensor()
            .expect("nn values are tensors")
            .clone()
    }

    fn emit(
        &mut self,
        name: &str,
        operands: Vec<ValueId>,
        ty: TensorType,
        a: Attrs,
        span: &Option<crate::ir::Span>,
    ) -> ValueId {
        let mut b = Builder::new(self.module, At::Before(self.anchor), span.clone());
        b.op(name, operands, Type::Tensor(ty), a)
    }

    fn stream(&mut self) -> u32 {
        self.next_stream += 1;
        self.next_stream - 1
    }

    /// `round = R` (omitted when nearest) and a fresh `stream` when R is stochastic.
    fn round_attrs(&mut self, r: Rounding) -> Attrs {
        let mut a = Attrs::new();
        if r != Rounding::Nearest {
            a.insert("round".into(), Attr::Rounding(r));
        }
        if r.is_stochastic() {
            a.insert("stream".into(), Attr::Int(self.stream() as i64));
        }
        a
    }

    /// The backward contraction arithmetic of the layer at `span`, rounding its result as `to`
    /// says.
    fn contraction_arith(&mut self, to: RoundTo, span: &Option<crate::ir::Span>) -> Attrs {
        let mut arith = Arith {
            out: to.rounding,
            stream: None,
            ..self.spec.backward_at(span)
        };
        if arith.is_stochastic() {
            arith.stream = Some(self.stream());
        }
        attrs([("arith", Attr::Arith(arith))])
    }

    /// A reduction's arithmetic: sums in `acc`, the result rounded as `to` says.
    fn reduction_arith(&mut self, acc: RoundTo, to: RoundTo) -> Attrs {
        let mut arith = Arith {
            mul: None,
            acc,
            chunk: None,
            out: to.rounding,
            fma: false,
            stream: None,
        };
        if arith.is_stochastic() {
            arith.stream = Some(self.stream());
        }
        attrs([("arith", Attr::Arith(arith))])
    }

    /// `g` rounded to `post` with `q.quantize` (a gradient format with shared scales, computed
    /// in the fp32 staging format first), or `g` itself.
    fn quantized(
        &mut self,
        g: ValueId,
        post: Option<RoundTo>,
        span: &Option<crate::ir::Span>,
    ) -> ValueId {
        let Some(to) = post else { return g };
        let ty = self.tensor(g).with_format(to.format);
        let a = self.round_attrs(to.rounding);
        self.emit("q.quantize", vec![g], ty, a, span)
    }

    /// Adds `g` to the gradient of `v` (when `v` needs one), quantizing it first to `post`.
    fn add_to(
        &mut self,
        v: ValueId,
        g: ValueId,
        post: Option<RoundTo>,
        span: &Option<crate::ir::Span>,
    ) {
        if !self.needs.contains(&v) {
            return;
        }
        let g = self.quantized(g, post, span);
        let sum = match self.cotangents.get(&v) {
            None => g,
            Some(&earlier) => {
                let (to, post) = staged(self.spec.act_grad);
                let ty = self.tensor(g).with_format(to.format);
                let a = self.round_attrs(to.rounding);
                let sum = self.emit("nn.add", vec![earlier, g], ty, a, span);
                self.quantized(sum, post, span)
            }
        };
        self.cotangents.insert(v, sum);
    }

    /// The gradient of the scaled loss with respect to `output`.
    pub fn seed(&mut self, output: ValueId, target: ValueId, scale: ValueId) -> Result<(), String> {
        let (to, post) = staged(self.spec.act_grad);
        let name = match self.spec.loss {
            super::Loss::SoftmaxCrossEntropy => "nn.softmax_xent_grad",
            super::Loss::MeanSquaredError => "nn.mse_grad",
        };
        let t = self.tensor(output);
        if name == "nn.softmax_xent_grad" && t.rank() != 2 {
            return Err(format!(
                "softmax cross-entropy needs an output [batch, classes], not rank {}",
                t.rank()
            ));
        }
        let a = self.reduction_arith(
            RoundTo {
                format: fp32(),
                rounding: Rounding::Nearest,
            },
            to,
        );
        let g = self.emit(
            name,
            vec![output, target, scale],
            t.with_format(to.format),
            a,
            &None,
        );
        self.module.values[g].name = Some("grad_output".into());
        self.needs.insert(output);
        self.add_to(output, g, post, &None);
        Ok(())
    }

    /// A zero gradient for a parameter the output does not depend on.
    pub fn zeros(&mut self, param: ValueId) -> Result<ValueId, String> {
        let ty = self
            .tensor(param)
            .with_format(staged(self.spec.weight_grad).0.format);
        Ok(self.emit(
            "nn.constant",
            vec![],
            ty,
            attrs([("value", Attr::Array(vec![Attr::Float(0.0)]))]),
            &None,
        ))
    }

    /// Emits the gradients of `op`'s operands from the gradient `dy` of its result.
    pub fn op_gradient(&mut self, op: OpId, dy: ValueId) -> Result<(), String> {
        let o = self.module.ops[op].clone();
        let span = o.span.clone();
        let name = o.name();
        let needs = |b: &Self, i: usize| o.operands.get(i).is_some_and(|v| b.needs.contains(v));
        let (act, act_post) = staged(self.spec.act_grad_at(&span));
        let (weight, weight_post) = staged(self.spec.weight_grad_at(&span));
        match name {
            "nn.cast" | "q.quantize" | "q.dequantize" => self.add_to(o.operands[0], dy, None, &span),
            "nn.dense" => {
                let (x, w) = (o.operands[0], o.operands[1]);
                if needs(self, 0) {
                    let ty = self.tensor(x).with_format(act.format);
                    let a = self.contraction_arith(act, &span);
                    let dx = self.emit("nn.matmul", vec![dy, w], ty, a, &span);
                    self.add_to(x, dx, act_post, &span);
                }
                if needs(self, 1) {
                    let ty = self.tensor(w).with_format(weight.format);
                    let a = self.contraction_arith(weight, &span);
                    let dw = self.emit("nn.dense_grad_weight", vec![dy, x], ty, a, &span);
                    self.add_to(w, dw, weight_post, &span);
                }
                if needs(self, 2) {
                    let bias = o.operands[2];
                    let g = self.bias_grad(dy, bias, 1, weight, &span);
                    self.add_to(bias, g, weight_post, &span);
                }
            }
            "nn.conv2d" => {
                let (x, w) = (o.operands[0], o.operands[1]);
                let mut window = Attrs::new();
                for k in ["stride", "padding", "dilation", "groups"] {
                    if let Some(a) = o.attr(k) {
                        window.insert(k.into(), a.clone());
                    }
                }
                let pair = |dims: &[Dim]| Attr::Array(dims.iter().map(|d| Attr::Int(if let Dim::Fixed(n) = d { *n as i64 } else { 0 })).collect());
                if needs(self, 0) {
                    let ty = self.tensor(x).with_format(act.format);
                    let mut a = self.contraction_arith(act, &span);
                    a.extend(window.clone());
                    a.insert("input_size".into(), pair(&ty.dims[1..3]));
                    let dx = self.emit("nn.conv2d_grad_input", vec![dy, w], ty, a, &span);
                    self.add_to(x, dx, act_post, &span);
                }
                if needs(self, 1) {
                    let ty = self.tensor(w).with_format(weight.format);
                    let mut a = self.contraction_arith(weight, &span);
                    a.extend(window);
                    a.insert("kernel_size".into(), pair(&ty.dims[1..3]));
                    let dw = self.emit("nn.conv2d_grad_weight", vec![dy, x], ty, a, &span);
                    self.add_to(w, dw, weight_post, &span);
                }
                if needs(self, 2) {
                    let bias = o.operands[2];
                    let g = self.bias_grad(dy, bias, 1, weight, &span);
                    self.add_to(bias, g, weight_post, &span);
                }
            }
            "nn.maxpool2d" => {
                let x = o.operands[0];
                // Windows that do not overlap route at most one gradient to each input: nothing
                // is added, so the sum is exact in fp32, and it is exact in the gradient's format
                // when dy already has it (no rounding, no draw then).
                let ints = |k: &str| o.attr(k).and_then(Attr::as_int_array).unwrap_or_default();
                let (size, stride) = (ints("window"), ints("stride"));
                let (acc, to) = if stride.iter().zip(&size).any(|(s, k)| s < k) {
                    (self.spec.backward.acc, act)
                } else {
                    let nearest = |format| RoundTo { format, rounding: Rounding::Nearest };
                    (nearest(fp32()), if self.tensor(dy).format == act.format { nearest(act.format) } else { act })
                };
                let mut a = self.reduction_arith(acc, to);
                for k in ["window", "stride", "padding"] {
                    if let Some(v) = o.attr(k) {
                        a.insert(k.into(), v.clone());
                    }
                }
                let ty = self.tensor(x).with_format(act.format);
                let dx = self.emit("nn.maxpool2d_grad", vec![dy, x], ty, a, &span);
                self.add_to(x, dx, act_post, &span);
            }
            "nn.pact" => {
                let (x, alpha) = (o.operands[0], o.operands[1]);
                if needs(self, 0) {
                    let exact = self.tensor(dy).format == act.format;
                    let mut a = self.round_attrs(if exact { Rounding::Nearest } else { act.rounding });
                    a.insert("min".into(), Attr::Float(0.0));
                    a.insert("max".into(), Attr::Float(f64::INFINITY));
                    let ty = self.tensor(x).with_format(act.format);
                    let dx = self.emit("nn.clip_grad", vec![dy, x, alpha], ty, a, &span);
                    self.add_to(x, dx, act_post, &span);
                }
                if needs(self, 1) {
                    let acc = self.spec.backward.acc;
                    let a = self.reduction_arith(acc, weight);
                    let ty = self.tensor(alpha).with_format(weight.format);
                    let da = self.emit("nn.pact_grad_alpha", vec![dy, x, alpha], ty, a, &span);
                    self.add_to(alpha, da, weight_post, &span);
                }
            }
            "nn.relu" | "nn.clip" => {
                let x = o.operands[0];
                let bound = |k: &str, default: f64| o.attr(k).and_then(Attr::as_f64).unwrap_or(default);
                let (lo, hi) = if name == "nn.relu" { (0.0, f64::INFINITY) } else { (bound("min", f64::NEG_INFINITY), bound("max", f64::INFINITY)) };
                // dy·mask is exact when dy already has the gradient's format: no draw then.
                let exact = self.tensor(dy).format == act.format;
                let mut a = self.round_attrs(if exact { Rounding::Nearest } else { act.rounding });
                a.insert("min".into(), Attr::Float(lo));
                a.insert("max".into(), Attr::Float(hi));
                let ty = self.tensor(x).with_format(act.format);
                let dx = self.emit("nn.clip_grad", vec![dy, x], ty, a, &span);
                self.add_to(x, dx, act_post, &span);
            }
            "nn.leaky_relu" => {
                let x = o.operands[0];
                let mut a = self.round_attrs(act.rounding);
                a.insert("alpha".into(), Attr::Float(o.attr("alpha").and_then(Attr::as_f64).unwrap_or(f64::NAN)));
                let ty = self.tensor(x).with_format(act.format);
                let dx = self.emit("nn.leaky_relu_grad", vec![dy, x], ty, a, &span);
                self.add_to(x, dx, act_post, &span);
            }
            "nn.add" | "nn.mul" => {
                let out = self.tensor(o.results[0]);
                for i in 0..2 {
                    if !needs(self, i) {
                        continue;
                    }
                    let (v, other) = (o.operands[i], o.operands[1 - i]);
                    let vt = self.tensor(v);
                    let (to, post) = if self.is_param(v) && vt.dims != out.dims { (weight, weight_post) } else { (act, act_post) };
                    let full = if name == "nn.add" {
                        dy
                    } else {
                        let a = self.round_attrs(to.rounding);
                        self.emit("nn.mul", vec![dy, other], out.with_format(to.format), a, &span)
                    };
                    let g = if vt.dims == out.dims {
                        full
                    } else if vt.rank() < out.rank() && out.dims.ends_with(&vt.dims) {
                        self.bias_grad(full, v, vt.rank(), to, &span)
                    } else {
                        return Err(format!("the gradient of `{name}` broadcasting {} to {} is not supported yet (only along leading axes)", show(&vt), show(&out)));
                    };
                    self.add_to(v, g, post, &span);
                }
            }
            "nn.flatten" | "nn.reshape" => {
                let x = o.operands[0];
                let ty = self.tensor(x).with_format(self.tensor(dy).format);
                let dx = self.emit("nn.reshape", vec![dy], ty, Attrs::new(), &span);
                self.add_to(x, dx, None, &span);
            }
            "nn.matmul" => {
                let (a, b) = (o.operands[0], o.operands[1]);
                let out = self.tensor(o.results[0]);
                for (i, v) in [(0, a), (1, b)] {
                    if !needs(self, i) {
                        continue;
                    }
                    let vt = self.tensor(v);
                    let full = vt.rank() == out.rank() && vt.dims[..vt.rank() - 2] == out.dims[..out.rank() - 2];
                    // A right operand [K, N] shared by every batch (a weight) is the exception.
                    let shared = i == 1 && vt.rank() == 2 && self.tensor(a).rank() == out.rank();
                    if !full && !shared {
                        return Err(format!("the gradient of `nn.matmul` broadcasting {} to {} is not supported yet", show(&vt), show(&out)));
                    }
                    let (to, post) = if self.is_param(v) { (weight, weight_post) } else { (act, act_post) };
                    let a_ = self.contraction_arith(to, &span);
                    let ty = vt.with_format(to.format);
                    // da = dy·bᵀ, db = aᵀ·dy (the last two axes swapped); a shared b gets
                    // (Σ over the rows of dy ⊗ a)ᵀ.
                    let g = if i == 0 {
                        let bt = self.swap_last(b, &span);
                        self.emit("nn.matmul", vec![dy, bt], ty, a_, &span)
                    } else if full {
                        let at = self.swap_last(a, &span);
                        self.emit("nn.matmul", vec![at, dy], ty, a_, &span)
                    } else {
                        let (k, n) = (vt.dims[0], vt.dims[1]);
                        let gt = TensorType::new(vec![n, k], to.format);
                        let g = self.emit("nn.dense_grad_weight", vec![dy, a], gt, a_, &span);
                        self.swap_last(g, &span)
                    };
                    self.add_to(v, g, post, &span);
                }
            }
            "nn.transpose" => {
                let x = o.operands[0];
                let perm = o.attr("perm").and_then(Attr::as_int_array).unwrap_or_default();
                let mut inverse = vec![0i64; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p as usize] = i as i64;
                }
                let ty = self.tensor(x).with_format(self.tensor(dy).format);
                let a = attrs([("perm", Attr::Array(inverse.into_iter().map(Attr::Int).collect()))]);
                let dx = self.emit("nn.transpose", vec![dy], ty, a, &span);
                self.add_to(x, dx, None, &span);
            }
            "nn.concat" => {
                let raw = o.attr("axis").and_then(Attr::as_int).unwrap_or(0);
                let rank = self.tensor(dy).rank() as i64;
                let axis = if raw < 0 { raw + rank } else { raw } as usize;
                let mut start = 0i64;
                for (i, &v) in o.operands.iter().enumerate() {
                    let Dim::Fixed(size) = self.tensor(v).dims[axis] else {
                        return Err("the gradient of `nn.concat` needs a static axis".into());
                    };
                    if needs(self, i) {
                        let ty = self.tensor(v).with_format(self.tensor(dy).format);
                        let a = attrs([("axis", Attr::Int(axis as i64)), ("start", Attr::Int(start)), ("size", Attr::Int(size as i64))]);
                        let dx = self.emit("nn.slice", vec![dy], ty, a, &span);
                        self.add_to(v, dx, None, &span);
                    }
                    start += size as i64;
                }
            }
            "nn.softmax" => {
                let x = o.operands[0];
                let mut a = self.reduction_arith(self.spec.backward.acc, act);
                a.insert("axis".into(), o.attr("axis").cloned().unwrap_or(Attr::Int(-1)));
                let ty = self.tensor(x).with_format(act.format);
                let dx = self.emit("nn.softmax_grad", vec![dy, o.results[0]], ty, a, &span);
                self.add_to(x, dx, act_post, &span);
            }
            "nn.sigmoid" | "nn.tanh" | "nn.gelu" => {
                let x = o.operands[0];
                let a = self.reduction_arith(self.spec.backward.acc, act);
                let ty = self.tensor(x).with_format(act.format);
                let dx = self.emit(&format!("{name}_grad"), vec![dy, x], ty, a, &span);
                self.add_to(x, dx, act_post, &span);
            }
            "nn.avgpool2d" => {
                let x = o.operands[0];
                let mut a = self.reduction_arith(self.spec.backward.acc, act);
                for k in ["window", "stride", "padding"] {
                    if let Some(v) = o.attr(k) {
                        a.insert(k.into(), v.clone());
                    }
                }
                let ty = self.tensor(x).with_format(act.format);
                let hw = ty.dims[1..3].iter().map(|d| Attr::Int(if let Dim::Fixed(n) = d { *n as i64 } else { 0 })).collect();
                a.insert("input_size".into(), Attr::Array(hw));
                let dx = self.emit("nn.avgpool2d_grad", vec![dy], ty, a, &span);
                self.add_to(x, dx, act_post, &span);
            }
            "nn.batchnorm" | "nn.layernorm" => {
                let batch = name == "nn.batchnorm";
                let (x, gamma, beta) = (o.operands[0], o.operands[1], o.operands[2]);
                // With batch statistics (training), the mean and variance are functions of x.
                let batch_stats = batch && self.defined_by(o.operands[3], "nn.batch_mean");
                let channels = self.tensor(gamma).dims.clone();
                let epsilon = o.attr("epsilon").cloned().unwrap_or(Attr::Float(0.0));
                let exact = RoundTo { format: fp32(), rounding: Rounding::Nearest };
                // Σ_rows dy·n (n the normalised input exactly as the forward op computes it)
                // and Σ_rows dy, in fp32.
                let sum_dyn = (needs(self, 1) || batch_stats && needs(self, 0)).then(|| {
                    let mut forward = match o.attr("arith") {
                        Some(Attr::Arith(a)) => *a,
                        _ => self.spec.backward,
                    };
                    forward.out = Rounding::Nearest;
                    forward.stream = None;
                    let a = attrs([("arith", Attr::Arith(forward)), ("epsilon", epsilon.clone())]);
                    let (ones, zeros) = (self.filled(&channels, 1.0, &span), self.filled(&channels, 0.0, &span));
                    let mut operands = vec![x, ones, zeros];
                    if batch {
                        operands.extend([o.operands[3], o.operands[4]]);
                    }
                    let ty = self.tensor(x).with_format(fp32());
                    let n = self.emit(name, operands, ty.clone(), a, &span);
                    let p = self.emit("nn.mul", vec![dy, n], ty, Attrs::new(), &span);
                    self.bias_grad(p, gamma, 1, exact, &span)
                });
                let sum_dy = (needs(self, 2) || batch_stats && needs(self, 0)).then(|| self.bias_grad(dy, beta, 1, exact, &span));
                if needs(self, 0) {
                    let mut a = self.reduction_arith(self.spec.backward.acc, act);
                    a.insert("epsilon".into(), epsilon.clone());
                    let ty = self.tensor(x).with_format(act.format);
                    let dx = match (batch, sum_dy, sum_dyn) {
                        (true, Some(s), Some(t)) if batch_stats => {
                            let operands = vec![dy, x, gamma, o.operands[3], o.operands[4], s, t];
                            self.emit("nn.batchnorm_grad", operands, ty, a, &span)
                        }
                        (true, _, _) => {
                            // (dy − 0)/√(var + ε)·γ + 0: the batch norm of dy with a zero mean.
                            let zeros = self.filled(&channels, 0.0, &span);
                            let var = o.operands[4];
                            self.emit("nn.batchnorm", vec![dy, gamma, zeros, zeros, var], ty, a, &span)
                        }
                        (false, _, _) => self.emit("nn.layernorm_grad", vec![dy, x, gamma], ty, a, &span),
                    };
                    self.add_to(x, dx, act_post, &span);
                }
                for (i, sum) in [(1, sum_dyn), (2, sum_dy)] {
                    if let (true, Some(sum)) = (needs(self, i), sum) {
                        let g = self.rounded_to(sum, weight, &span);
                        self.add_to(o.operands[i], g, weight_post, &span);
                    }
                }
                // The mean and variance operands get no gradient: running statistics are
                // constants of the step, batch statistics are differentiated through above.
            }
            other => {
                return Err(format!(
                    "`{other}` has no gradient yet (training supports dense, conv2d, matmul, max and average pooling, relu, leaky_relu, clip, pact, sigmoid, tanh, gelu, softmax, batch and layer norm, add, mul, flatten, reshape, transpose, concat and roundings)"
                ))
            }
        }
        Ok(())
    }

    /// Whether `v` is a function argument (a parameter: inputs need no gradient).
    fn is_param(&self, v: ValueId) -> bool {
        matches!(self.module.values[v].def, crate::ir::ValueDef::Arg { .. })
    }

    /// `v` with its last two axes swapped (`nn.transpose`, values moved unchanged).
    fn swap_last(&mut self, v: ValueId, span: &Option<crate::ir::Span>) -> ValueId {
        let t = self.tensor(v);
        let r = t.rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        let dims = perm.iter().map(|&p| t.dims[p]).collect();
        let a = attrs([("perm", Attr::Array(perm.iter().map(|&p| Attr::Int(p as i64)).collect()))]);
        self.emit("nn.transpose", vec![v], TensorType::new(dims, t.format), a, span)
    }

    /// Whether `v` is the result of an op named `name`.
    fn defined_by(&self, v: ValueId, name: &str) -> bool {
        matches!(self.module.values[v].def, crate::ir::ValueDef::Result { op, .. } if self.module.ops[op].name() == name)
    }

    /// `v` (fp32) rounded as `to` says with `nn.cast`, or `v` when `to` is fp32 to nearest.
    fn rounded_to(&mut self, v: ValueId, to: RoundTo, span: &Option<crate::ir::Span>) -> ValueId {
        if to.format == fp32() && to.rounding == Rounding::Nearest {
            return v;
        }
        let ty = self.tensor(v).with_format(to.format);
        let a = self.round_attrs(to.rounding);
        self.emit("nn.cast", vec![v], ty, a, span)
    }

    /// An fp32 constant of shape `dims` with every element `value`.
    fn filled(&mut self, dims: &[Dim], value: f64, span: &Option<crate::ir::Span>) -> ValueId {
        let ty = TensorType::new(dims.to_vec(), fp32());
        self.emit("nn.constant", vec![], ty, attrs([("value", Attr::Array(vec![Attr::Float(value)]))]), span)
    }

    /// `nn.bias_grad dy` (the sum over every axis but the last) for `bias`, rounded as `to` says.
    /// `dy` summed over its leading axes down to `bias`'s last `keep` axes.
    fn bias_grad(
        &mut self,
        dy: ValueId,
        bias: ValueId,
        keep: usize,
        to: RoundTo,
        span: &Option<crate::ir::Span>,
    ) -> ValueId {
        let acc = self.spec.backward_at(span).acc;
        let mut a = self.reduction_arith(acc, to);
        if keep != 1 {
            a.insert("keep".into(), Attr::Int(keep as i64));
        }
        let ty = self.tensor(bias).with_format(to.format);
        self.emit("nn.bias_grad", vec![dy], ty, a, span)
    }
}

/// A gradient format as the ops compute it: itself when element-wise, else fp32 (nearest)
/// followed by `q.quantize` to it.
fn staged(to: RoundTo) -> (RoundTo, Option<RoundTo>) {
    if to.format.is_elementwise() {
        (to, None)
    } else {
        (
            RoundTo {
                format: fp32(),
                rounding: Rounding::Nearest,
            },
            Some(to),
        )
    }
}

fn show(t: &TensorType) -> String {
    let dims: Vec<String> = t
        .dims
        .iter()
        .map(|d| {
            if let Dim::Fixed(n) = d {
                n.to_string()
            } else {
                "?".into()
            }
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Batch norm in training: every `nn.batchnorm x, γ, β, mean, var` of the function body
/// normalises with the batch's statistics instead, `μ = nn.batch_mean x` and `σ² =
/// nn.batch_var x, μ` (in fp32, with the batch norm's arith), inserted before it. For each
/// running statistic that is a function argument (a parameter) the returned map gives its new
/// value, `(1 − m)·running + m·batch` with `m` the batch norm's `momentum` (0.1 by default):
/// `nn.mul` by the fp32 constants `1 − m` and `m` (each → fp32, nearest), then `nn.add` →
/// fp32 — inserted before `ret`. The running variance follows the biased batch variance.
pub(super) fn use_batch_statistics(
    module: &mut Module,
    block: crate::ir::BlockId,
    ret: OpId,
) -> Result<HashMap<ValueId, ValueId>, String> {
    let mut updates = HashMap::new();
    for op in module.blocks[block].ops.clone() {
        if module.ops[op].name() != "nn.batchnorm" {
            continue;
        }
        let o = module.ops[op].clone();
        let Some(Attr::Arith(forward)) = o.attr("arith").cloned() else {
            return Err("`nn.batchnorm` has no `arith`".into());
        };
        let arith = Arith { out: Rounding::Nearest, stream: None, ..forward };
        let momentum = o.attr("momentum").and_then(Attr::as_f64).unwrap_or(0.1);
        let x = o.operands[0];
        let channels = module.ty(o.operands[3]).as_tensor().ok_or("the mean is a tensor")?.dims.clone();
        let stat_ty = Type::Tensor(TensorType::new(channels, fp32()));
        let mut b = Builder::new(module, At::Before(op), o.span.clone());
        let a = attrs([("arith", Attr::Arith(arith))]);
        let mean = b.op("nn.batch_mean", vec![x], stat_ty.clone(), a.clone());
        let var = b.op("nn.batch_var", vec![x, mean], stat_ty.clone(), a);
        let (running_mean, running_var) = (o.operands[3], o.operands[4]);
        module.ops[op].operands[3] = mean;
        module.ops[op].operands[4] = var;
        let mut b = Builder::new(module, At::Before(ret), o.span.clone());
        let scalar = Type::tensor(vec![], fp32());
        let constant = |b: &mut Builder<'_>, value: f64| {
            b.op("nn.constant", vec![], scalar.clone(), attrs([("value", Attr::Array(vec![Attr::Float(value)]))]))
        };
        let keep = constant(&mut b, 1.0 - momentum);
        let take = constant(&mut b, momentum);
        for (running, batch) in [(running_mean, mean), (running_var, var)] {
            if !matches!(b.module.values[running].def, crate::ir::ValueDef::Arg { .. }) {
                continue;
            }
            let kept = b.op("nn.mul", vec![running, keep], stat_ty.clone(), Attrs::new());
            let taken = b.op("nn.mul", vec![batch, take], stat_ty.clone(), Attrs::new());
            let new = b.op("nn.add", vec![kept, taken], stat_ty.clone(), Attrs::new());
            updates.insert(running, new);
        }
    }
    Ok(updates)
}
