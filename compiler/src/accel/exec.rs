//! Bit-exact execution on the simulated accelerator: [`ArraySimulator`] runs a [`Program`]
//! prepared from the `nn`-level module (after `optimize`; not the kernel dialect) op by op.
//! Contractions are GEMMs on the array: dense as one, a matrix product (both operands
//! activations) as one per batch element, a grouped convolution as one per group (im2col
//! ifmap); each is tiled with [`emit_layer`] and its `array.step`s executed by
//! `ArrayNumerics`. Everything else runs on the vector unit (`VECTOR_OPS`) with the kernel
//! dialect's scalar arithmetic (spec/ir.md, "Lowering to kernel"): element-wise ops with one
//! rounding per element drawing at counter `e`, pooling, softmax, layer norm, scaled
//! quantization, and the moves (reshape, transpose, concat). The results equal the reference
//! interpreter's bit for bit; ops the accelerator does not execute are errors.

use super::{emit_layer, LayerSpec};
use crate::backend::{Backend, ExecError, Program};
use crate::ir::{Attr, Module, OpId, ValueId};
use qc_runtime::accel::array::{ArrayNumerics, Operands};
use qc_runtime::accel::datapath::Datapath;
use qc_runtime::accel::isa::Program as IsaProgram;
use qc_runtime::accel::model::Arch;
use qc_runtime::accel::scalesim::Gemm;
use qc_runtime::kernels::{maximum, no_draw, Exact, Rounder, Target};
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;
use std::collections::HashMap;

/// The accelerator as a backend of nn-level programs, tiled for `arch`.
#[derive(Clone, Debug, Default)]
pub struct ArraySimulator {
    pub arch: Arch,
}

fn err(message: impl Into<String>) -> ExecError {
    ExecError::new(message)
}

fn ints(module: &Module, op: OpId, name: &str, default: [i64; 2]) -> [u64; 2] {
    let v = module.ops[op].attr(name).and_then(Attr::as_int_array).unwrap_or(default.to_vec());
    [v.first().copied().unwrap_or(default[0]) as u64, v.get(1).copied().unwrap_or(default[1]) as u64]
}

fn rounding(module: &Module, op: OpId) -> Rounding {
    match module.ops[op].attr("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    }
}

impl Backend for ArraySimulator {
    fn run(&self, program: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        let module = &program.module;
        let func = &module.funcs[0];
        let body = module.entry_block(func.body).ok_or_else(|| err("the function has no body"))?;
        let args = &module.blocks[body].args;
        if inputs.len() != args.len() {
            return Err(err(format!("`{}` takes {} input(s), {} given", func.name, args.len(), inputs.len())));
        }
        let mut values: HashMap<ValueId, Tensor> = args.iter().copied().zip(inputs.iter().cloned()).collect();
        for &op in &module.blocks[body].ops {
            let o = &module.ops[op];
            let get = |i: usize, values: &HashMap<ValueId, Tensor>| -> Result<Tensor, ExecError> {
                values.get(&o.operands[i]).cloned().ok_or_else(|| err("an operand is used before it is computed"))
            };
            let result = match o.name() {
                "func.return" => return o.operands.iter().map(|v| values.get(v).cloned().ok_or_else(|| err("a result was not computed"))).collect(),
                "nn.param" | "nn.constant" => program.constants.get(&o.results[0]).cloned().ok_or_else(|| err("a parameter was not materialised"))?,
                "nn.dense" | "nn.fused_dense" | "nn.conv2d" | "nn.fused_conv2d" | "nn.matmul" => self.contraction(module, op, &values, program.seed)?,
                "nn.reshape" | "nn.flatten" => {
                    let x = get(0, &values)?;
                    let shape = result_shape(module, o.results[0], &x)?;
                    x.reshape(shape).map_err(|e| err(e.to_string()))?
                }
                "nn.maxpool2d" | "nn.avgpool2d" => pool(module, op, &get(0, &values)?)?,
                "q.quantize" if o.operands.len() == 1 => {
                    let x = get(0, &values)?;
                    let format = module.ty(o.results[0]).as_tensor().map(|t| t.format).ok_or_else(|| err("q.quantize makes a tensor"))?;
                    let stream = RandomStream::new(program.seed, o.attr("stream").and_then(Attr::as_int).unwrap_or(0) as u64);
                    let mut out = vec![0f32; x.len()];
                    format.quantize(x.data(), x.shape(), rounding(module, op), &stream, &mut out).map_err(|e| err(e.to_string()))?;
                    Tensor::new(x.shape().to_vec(), out).map_err(|e| err(e.to_string()))?
                }
                "nn.transpose" => transpose(module, op, &get(0, &values)?)?,
                "nn.concat" => {
                    let operands: Vec<Tensor> = (0..o.operands.len()).map(|i| get(i, &values)).collect::<Result<_, _>>()?;
                    concat(module, op, &operands)?
                }
                "nn.softmax" => softmax(module, op, &get(0, &values)?)?,
                "nn.batchnorm" => {
                    let x = get(0, &values)?;
                    let params: Vec<Tensor> = (1..5).map(|i| get(i, &values)).collect::<Result<_, _>>()?;
                    let format = module.ty(o.results[0]).as_tensor().map(|t| t.format).ok_or_else(|| err("nn.batchnorm makes a tensor"))?;
                    if matches!(o.attr("arith"), Some(Attr::Arith(a)) if a.is_stochastic()) {
                        return Err(err("`nn.batchnorm` with stochastic rounding is not supported yet"));
                    }
                    let values: Vec<f64> = x.data().iter().map(|&v| v as f64).collect();
                    let channels = *x.shape().last().ok_or_else(|| err("a batch norm of a rank-0 tensor"))?;
                    let data = batchnorm_epilogue(&o.attrs, &params.iter().collect::<Vec<_>>(), &values, &format, channels)?;
                    Tensor::new(x.shape().to_vec(), data).map_err(|e| err(e.to_string()))?
                }
                "nn.layernorm" => layernorm(module, op, &get(0, &values)?, &get(1, &values)?, &get(2, &values)?)?,
                "nn.relu" | "nn.leaky_relu" | "nn.sigmoid" | "nn.tanh" | "nn.gelu" | "nn.clip" | "nn.pact" | "nn.add" | "nn.mul" | "nn.cast" | "q.quantize" | "q.dequantize" => {
                    let operands: Vec<Tensor> = (0..o.operands.len()).map(|i| get(i, &values)).collect::<Result<_, _>>()?;
                    pointwise(module, op, &operands, program.seed)?
                }
                other => return Err(err(format!("the accelerator does not execute `{other}` yet"))),
            };
            values.insert(o.results[0], result);
        }
        Err(err("the function body has no `func.return`"))
    }
}

/// One GEMM of a contraction on the array: its operands, dense and row-major (the ifmap
/// `m × k` with the terms that exist, the filter `n × k`), its bias, and where its outputs
/// are in the result (`first + i·row_stride + j`).
struct GemmPart {
    ifmap: Vec<f32>,
    present: Option<Vec<bool>>,
    filter: Vec<f32>,
    bias: Option<Vec<f32>>,
    first: u64,
}

/// The static shape of `v` with dynamic axes taken from `x`'s leading axis.
fn result_shape(module: &Module, v: ValueId, x: &Tensor) -> Result<Vec<usize>, ExecError> {
    let t = module.ty(v).as_tensor().ok_or_else(|| err("a tensor result"))?;
    Ok(t.dims.iter().map(|d| match d {
        crate::ir::Dim::Fixed(n) => *n as usize,
        _ => x.shape()[0],
    })
    .collect())
}

/// A contraction as GEMMs: `(m, n, k, result shape, row stride, parts)`.
type Gemms = (usize, usize, usize, Vec<usize>, usize, Vec<GemmPart>);

/// The GEMMs of a convolution `x [nb, h, w, c] ⊛ w [o, kh, kw, c/g]`, one per group `g`: rows
/// the output positions, columns the group's `o/g` filters, terms `(kh, kw, c)` row-major
/// (im2col; padded positions are absent terms).
fn conv_gemms(module: &Module, op: OpId, x: &Tensor, w: &Tensor, bias: Option<&[f32]>) -> Result<Gemms, ExecError> {
    let groups = module.ops[op].attr("groups").and_then(Attr::as_int).unwrap_or(1).max(1) as usize;
    let [sh, sw] = ints(module, op, "stride", [1, 1]);
    let [ph, pw] = ints(module, op, "padding", [0, 0]);
    let [dh, dw] = ints(module, op, "dilation", [1, 1]);
    let (xs, ws) = (x.shape(), w.shape());
    let (nb, h, wd, c) = (xs[0], xs[1], xs[2], xs[3]);
    let (o_ch, kh, kw, cg) = (ws[0], ws[1], ws[2], ws[3]);
    if cg * groups != c || o_ch % groups != 0 {
        return Err(err(format!("a convolution of {c} channels in {groups} groups with {o_ch} filters of {cg} channels")));
    }
    let span = |size: usize, pad: u64, dil: u64, k: usize, stride: u64| (size as u64 + 2 * pad).checked_sub(dil * (k as u64 - 1) + 1).map(|v| (v / stride + 1) as usize);
    let (Some(oh), Some(ow)) = (span(h, ph, dh, kh, sh), span(wd, pw, dw, kw, sw)) else {
        return Err(err("a convolution window larger than its padded input"));
    };
    let (m, og, k) = (nb * oh * ow, o_ch / groups, kh * kw * cg);
    let data = x.data();
    let mut parts = Vec::with_capacity(groups);
    for g in 0..groups {
        let mut ifmap = vec![0f32; m * k];
        let mut present = vec![true; m * k];
        let mut padded = false;
        for row in 0..m {
            let (b, rest) = (row / (oh * ow), row % (oh * ow));
            let (y, xo) = (rest / ow, rest % ow);
            for i in 0..kh {
                let iy = (y as u64 * sh + i as u64 * dh) as i64 - ph as i64;
                for j in 0..kw {
                    let ix = (xo as u64 * sw + j as u64 * dw) as i64 - pw as i64;
                    let at = row * k + (i * kw + j) * cg;
                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                        present[at..at + cg].fill(false);
                        padded = true;
                        continue;
                    }
                    let from = ((b * h + iy as usize) * wd + ix as usize) * c + g * cg;
                    ifmap[at..at + cg].copy_from_slice(&data[from..from + cg]);
                }
            }
        }
        parts.push(GemmPart {
            ifmap,
            present: padded.then_some(present),
            filter: w.data()[g * og * k..(g + 1) * og * k].to_vec(),
            bias: bias.map(|b| b[g * og..(g + 1) * og].to_vec()),
            first: (g * og) as u64,
        });
    }
    Ok((m, og, k, vec![nb, oh, ow, o_ch], o_ch, parts))
}

/// The GEMMs of a matrix product `a [..., m, k] · b [..., k, n]` (batch axes broadcast as
/// numpy), one per batch element of the result.
fn matmul_gemms(module: &Module, op: OpId, a: &Tensor, b: &Tensor) -> Result<Gemms, ExecError> {
    let (ash, bsh) = (a.shape(), b.shape());
    let (ra, rb) = (ash.len(), bsh.len());
    if ra < 2 || rb < 2 || ash[ra - 1] != bsh[rb - 2] {
        return Err(err("a matrix product of mismatched operands"));
    }
    let (m, k, n) = (ash[ra - 2], ash[ra - 1], bsh[rb - 1]);
    let out_shape = result_shape(module, module.ops[op].results[0], a)?;
    let batch_shape = &out_shape[..out_shape.len() - 2];
    let batches: usize = batch_shape.iter().product();
    let mut parts = Vec::with_capacity(batches);
    for t in 0..batches {
        let ia = broadcast_index(t, batch_shape, &ash[..ra - 2]);
        let ib = broadcast_index(t, batch_shape, &bsh[..rb - 2]);
        let ifmap = a.data()[ia * m * k..(ia + 1) * m * k].to_vec();
        let bm = &b.data()[ib * k * n..(ib + 1) * k * n];
        let filter = (0..n * k).map(|at| bm[(at % k) * n + at / k]).collect();
        parts.push(GemmPart { ifmap, present: None, filter, bias: None, first: (t * m * n) as u64 });
    }
    Ok((m, n, k, out_shape, n, parts))
}

impl ArraySimulator {
    fn contraction(&self, module: &Module, op: OpId, values: &HashMap<ValueId, Tensor>, seed: u64) -> Result<Tensor, ExecError> {
        let o = &module.ops[op];
        let tensor = |i: usize| values.get(&o.operands[i]).ok_or_else(|| err("an operand is used before it is computed"));
        let (x, w) = (tensor(0)?, tensor(1)?);
        let norm = match o.attr("batchnorm") {
            Some(Attr::Dict(d)) => Some(d),
            _ => None,
        };
        let extra = if norm.is_some() { 4 } else { 0 };
        let bias = if o.operands.len() == 3 + extra { Some(tensor(2)?.data().to_vec()) } else { None };
        let norm_operands: Vec<&Tensor> = (o.operands.len() - extra..o.operands.len()).map(tensor).collect::<Result<_, _>>()?;
        let out_type = module.ty(o.results[0]).as_tensor().ok_or_else(|| err("a contraction makes a tensor"))?;
        let Some(Attr::Arith(arith)) = o.attr("arith") else { return Err(err("a contraction without #arith")) };
        let datapath = Datapath::parse(&arith.to_string()).map_err(err)?;
        let (m, n, k, out_shape, row_stride, parts) = match o.name() {
            "nn.matmul" => matmul_gemms(module, op, x, w)?,
            "nn.conv2d" | "nn.fused_conv2d" => conv_gemms(module, op, x, w, bias.as_deref())?,
            _ => {
                let (xs, ws) = (x.shape(), w.shape());
                let k = *xs.last().ok_or_else(|| err("dense input of rank 0"))?;
                let mut shape = xs.to_vec();
                *shape.last_mut().expect("rank ≥ 1") = ws[0];
                let part = GemmPart { ifmap: x.data().to_vec(), present: None, filter: w.data().to_vec(), bias: bias.clone(), first: 0 };
                (x.len() / k.max(1), ws[0], k, shape, ws[0], vec![part])
            }
        };
        let out_format = out_type.format;
        let numerics = ArrayNumerics::new(&datapath, &out_format, k as u64, seed).map_err(err)?;
        let layer = LayerSpec {
            gemm: Gemm::matmul("", m as u64, n as u64, k as u64),
            repeat: 1,
            formats: [String::new(), String::new(), String::new()],
            arith: String::new(),
            vector: Vec::new(),
        };
        let mut isa = IsaProgram::default();
        emit_layer(&mut isa, &layer, &self.arch, self.arch.dataflow);
        let total: usize = out_shape.iter().product();
        let mut accumulators = vec![0f64; total];
        for part in &parts {
            let operands = Operands {
                m: m as u64,
                n: n as u64,
                ifmap: &part.ifmap,
                present: part.present.as_deref(),
                filter: &part.filter,
                bias: part.bias.as_deref(),
                first: part.first,
                row_stride: row_stride as u64,
            };
            let values = numerics.execute(&isa.instrs, &operands).map_err(err)?;
            for (i, row) in values.chunks(n.max(1)).enumerate() {
                let at = part.first as usize + i * row_stride;
                accumulators[at..at + n].copy_from_slice(row);
            }
        }
        let channels = *out_shape.last().ok_or_else(|| err("a contraction result has an axis"))?;
        let mut out: Vec<f32> = match norm {
            None => accumulators.iter().enumerate().map(|(e, a)| numerics.round_out(e as u64, *a)).collect(),
            Some(d) => batchnorm_epilogue(d, &norm_operands, &accumulators, &out_format, channels)?,
        };
        let nearest = Rounder::new(Target::new(&out_format).ok_or_else(|| err("a contraction's result is element-wise"))?, Rounding::Nearest);
        if let Some(clip) = o.attr("clip") {
            let bounds: Vec<f64> = match clip {
                Attr::Array(items) => items.iter().filter_map(Attr::as_f64).collect(),
                _ => Vec::new(),
            };
            let [lo, hi] = bounds[..] else { return Err(err("a fused clip has two bounds")) };
            for y in &mut out {
                if lo.is_finite() {
                    *y = nearest.max(*y as f64, lo, no_draw());
                }
                if hi.is_finite() {
                    *y = nearest.min(*y as f64, hi, no_draw());
                }
            }
        }
        Tensor::new(out_shape, out).map_err(|e| err(e.to_string()))
    }
}

/// A batch norm applied to the accumulator values of a contraction it is fused into, or to the
/// input values of a standalone `nn.batchnorm` (spec/ir.md, "Lowering to kernel", batchnorm): `t = var + ε`, `r = √t`, `d = a − mean`, `q = d / r` in its accumulator `A`,
/// then `shift + q·scale` rounded once to the result with its `out`; ε is the value of `A`
/// nearest to the f32 nearest to `epsilon`. Channels index the last axis (`n` of them).
fn batchnorm_epilogue(d: &std::collections::BTreeMap<String, Attr>, operands: &[&Tensor], acc: &[f64], out_format: &Format, n: usize) -> Result<Vec<f32>, ExecError> {
    let Some(Attr::Arith(arith)) = d.get("arith") else { return Err(err("`batchnorm` needs `arith`")) };
    let [scale, shift, mean, var] = operands else { return Err(err("a fused batch norm has four operands")) };
    let epsilon = d.get("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let a_target = Target::new(&arith.acc.format).ok_or_else(|| err("a batch norm's accumulator is element-wise"))?;
    let a = Rounder::new(a_target, arith.acc.rounding);
    let mut eps = [0f32];
    arith.acc.format.quantize(&[epsilon as f32], &[1], Rounding::Nearest, &RandomStream::new(0, 0), &mut eps).map_err(|e| err(e.to_string()))?;
    let y = Rounder::new(Target::new(out_format).ok_or_else(|| err("a batch norm's result is element-wise"))?, arith.out);
    acc.iter()
        .enumerate()
        .map(|(e, &x)| {
            let c = e % n;
            let t = a.add(var.data()[c] as f64, eps[0] as f64, no_draw()) as f64;
            let r = a.sqrt(t, no_draw()) as f64;
            let dv = a.sub(x, mean.data()[c] as f64, no_draw()) as f64;
            let q = a.div(dv, r, no_draw()) as f64;
            y.fma(shift.data()[c] as f64, q, scale.data()[c] as f64, no_draw()).ok_or_else(|| err("a batch norm product is not exact"))
        })
        .collect()
}

/// Pooling over the window's positions inside the input, in row-major order: the maximum
/// (exact), or the average (the sum from +0 in the accumulator, divided by the count of
/// positions converted to it, rounded to the result with `out`; deterministic roundings).
fn pool(module: &Module, op: OpId, x: &Tensor) -> Result<Tensor, ExecError> {
    let average = match module.ops[op].attr("arith") {
        Some(Attr::Arith(a)) => {
            let rt = module.ty(module.ops[op].results[0]).as_tensor().ok_or_else(|| err("pooling makes a tensor"))?;
            let acc = Rounder::new(Target::new(&a.acc.format).ok_or_else(|| err("an element-wise accumulator"))?, a.acc.rounding);
            let out = Rounder::new(Target::new(&rt.format).ok_or_else(|| err("an element-wise result"))?, a.out);
            Some((acc, out))
        }
        _ => None,
    };
    let [wh, ww] = ints(module, op, "window", [1, 1]);
    let [sh, sw] = match module.ops[op].attr("stride") {
        Some(_) => ints(module, op, "stride", [1, 1]),
        None => [wh, ww],
    };
    let [ph, pw] = ints(module, op, "padding", [0, 0]);
    let s = x.shape();
    let (nb, h, w, c) = (s[0], s[1] as u64, s[2] as u64, s[3]);
    let oh = (h + 2 * ph - wh) / sh + 1;
    let ow = (w + 2 * pw - ww) / sw + 1;
    let mut out = Vec::with_capacity(nb * (oh * ow) as usize * c);
    for b in 0..nb {
        for y in 0..oh {
            for xo in 0..ow {
                for ch in 0..c {
                    let mut best: Option<f64> = None;
                    let (mut sum, mut count) = (0.0f64, 0u64);
                    for i in 0..wh {
                        for j in 0..ww {
                            let (iy, ix) = ((y * sh + i) as i64 - ph as i64, (xo * sw + j) as i64 - pw as i64);
                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                continue;
                            }
                            let v = x.data()[((b * h as usize + iy as usize) * w as usize + ix as usize) * c + ch] as f64;
                            best = Some(best.map_or(v, |m| maximum(m, v)));
                            if let Some((acc, _)) = &average {
                                sum = acc.add(sum, v, no_draw()) as f64;
                                count += 1;
                            }
                        }
                    }
                    let best = best.ok_or_else(|| err("a pooling window outside the input"))?;
                    out.push(match &average {
                        None => best as f32,
                        Some((acc, y)) => y.round(acc.div(sum, acc.from_index(count, no_draw()) as f64, no_draw()) as f64, no_draw()),
                    });
                }
            }
        }
    }
    Tensor::new(vec![nb, oh as usize, ow as usize, c], out).map_err(|e| err(e.to_string()))
}

/// Element-wise ops on the vector unit (spec/ir.md, "Lowering to kernel"): one rounding to the
/// result format per element, drawing at counter `e`; operands broadcast as numpy.
fn pointwise(module: &Module, op: OpId, operands: &[Tensor], seed: u64) -> Result<Tensor, ExecError> {
    let o = &module.ops[op];
    let rt = module.ty(o.results[0]).as_tensor().ok_or_else(|| err("an element-wise op makes a tensor"))?;
    let target = Target::new(&rt.format).ok_or_else(|| err(format!("`{}` to the scaled format `{}`", o.name(), rt.format)))?;
    let out = Rounder::new(target, rounding(module, op));
    let fp32 = Rounder::new(Target::new(&Format::parse("fp32").expect("fp32")).expect("element-wise"), Rounding::Nearest);
    let stream = RandomStream::new(seed, o.attr("stream").and_then(Attr::as_int).unwrap_or(0) as u64);
    let shape = broadcast_shape(operands)?;
    let n: usize = shape.iter().product();
    let float = |k: &str| o.attr(k).and_then(Attr::as_f64).unwrap_or(0.0);
    let mut data = Vec::with_capacity(n);
    for e in 0..n {
        let at = |t: &Tensor| t.data()[broadcast_index(e, &shape, t.shape())] as f64;
        let x = at(&operands[0]);
        let draw = stream.at(e as u64);
        data.push(match o.name() {
            "nn.relu" => out.max(x, 0.0, draw),
            "nn.sigmoid" => out.sigmoid(x, draw),
            "nn.tanh" => out.tanh(x, draw),
            "nn.gelu" => out.gelu(x, draw),
            "nn.leaky_relu" => {
                let alpha = float("alpha");
                let ax = alpha as f32 as f64 * x;
                if alpha <= 1.0 { out.max(x, ax, draw) } else { out.min(x, ax, draw) }
            }
            "nn.clip" => {
                let t = fp32.max(x, float("min") as f32 as f64, no_draw()) as f64;
                out.min(t, float("max") as f32 as f64, draw)
            }
            "nn.pact" => {
                let t = fp32.max(x, 0.0, no_draw()) as f64;
                out.min(t, at(&operands[1]), draw)
            }
            "nn.add" => out.add(x, at(&operands[1]), draw),
            "nn.mul" => out.mul(x, at(&operands[1]), draw),
            _ => out.exact(Exact::from_f64(x), draw),
        });
    }
    Tensor::new(shape, data).map_err(|e| err(e.to_string()))
}

fn broadcast_shape(operands: &[Tensor]) -> Result<Vec<usize>, ExecError> {
    let rank = operands.iter().map(Tensor::rank).max().unwrap_or(0);
    let mut shape = vec![1usize; rank];
    for t in operands {
        for (i, &d) in t.shape().iter().enumerate() {
            let s = &mut shape[rank - t.rank() + i];
            if *s == 1 {
                *s = d;
            } else if d != 1 && d != *s {
                return Err(err("operands do not broadcast"));
            }
        }
    }
    Ok(shape)
}

/// The position in a tensor of `shape` of element `e` of the broadcast result `full`.
fn broadcast_index(e: usize, full: &[usize], shape: &[usize]) -> usize {
    let skip = full.len() - shape.len();
    let (mut rest, mut index, mut stride) = (e, 0, 1);
    for axis in (0..full.len()).rev() {
        let i = rest % full[axis];
        rest /= full[axis];
        if axis >= skip {
            let d = shape[axis - skip];
            if d != 1 {
                index += i * stride;
            }
            stride *= d;
        }
    }
    index
}

/// The row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// `nn.transpose`: result index `j` reads the input at axis `perm[j]`.
fn transpose(module: &Module, op: OpId, x: &Tensor) -> Result<Tensor, ExecError> {
    let perm: Vec<usize> = module.ops[op].attr("perm").and_then(Attr::as_int_array).unwrap_or_default().iter().map(|&p| p as usize).collect();
    let xs = x.shape();
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..xs.len()).collect::<Vec<_>>() {
        return Err(err(format!("transpose: `perm` is not a permutation of {} axes", xs.len())));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
    let (in_strides, out_strides) = (strides(xs), strides(&shape));
    let data = (0..x.len())
        .map(|e| {
            let at: usize = (0..shape.len()).map(|j| (e / out_strides[j] % shape[j]) * in_strides[perm[j]]).sum();
            x.data()[at]
        })
        .collect();
    Tensor::new(shape, data).map_err(|e| err(e.to_string()))
}

/// `nn.concat` along `axis`: the inputs' values side by side (no rounding).
fn concat(module: &Module, op: OpId, operands: &[Tensor]) -> Result<Tensor, ExecError> {
    let first = operands.first().ok_or_else(|| err("concat has no input"))?;
    let rank = first.rank() as i64;
    let raw = module.ops[op].attr("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + rank } else { raw };
    if !(0..rank).contains(&axis) {
        return Err(err(format!("concat: axis {raw} of a rank-{rank} tensor")));
    }
    let axis = axis as usize;
    let outer: usize = first.shape()[..axis].iter().product();
    let mut shape = first.shape().to_vec();
    shape[axis] = operands.iter().map(|t| t.shape()[axis]).sum();
    let mut data = Vec::with_capacity(shape.iter().product());
    for i in 0..outer {
        for t in operands {
            let inner: usize = t.shape()[axis..].iter().product();
            data.extend_from_slice(&t.data()[i * inner..(i + 1) * inner]);
        }
    }
    Tensor::new(shape, data).map_err(|e| err(e.to_string()))
}

/// The accumulator and output rounders of a softmax or norm (`arith`'s `acc`, the result
/// with `out`); stochastic roundings are not supported there (as by `lower-kernel`).
fn norm_rounders(module: &Module, op: OpId) -> Result<(Rounder, Rounder, crate::ir::Arith), ExecError> {
    let o = &module.ops[op];
    let Some(Attr::Arith(arith)) = o.attr("arith") else { return Err(err(format!("`{}` without #arith", o.name()))) };
    if arith.is_stochastic() {
        return Err(err(format!("`{}` with stochastic rounding is not supported yet", o.name())));
    }
    let rt = module.ty(o.results[0]).as_tensor().ok_or_else(|| err("a tensor result"))?;
    let acc = Rounder::new(Target::new(&arith.acc.format).ok_or_else(|| err("an element-wise accumulator"))?, arith.acc.rounding);
    let out = Rounder::new(Target::new(&rt.format).ok_or_else(|| err(format!("`{}` to the scaled format `{}`", o.name(), rt.format)))?, arith.out);
    Ok((acc, out, *arith))
}

/// `nn.softmax` along `axis` (K terms): `m = max_k x_k`; `e_k = exp(x_k − m → A) → A`;
/// `s = Σ_k e_k` from +0 in A; `y_i = e_i / s → Y`.
fn softmax(module: &Module, op: OpId, x: &Tensor) -> Result<Tensor, ExecError> {
    let (acc, out, _) = norm_rounders(module, op)?;
    let rank = x.rank() as i64;
    let raw = module.ops[op].attr("axis").and_then(Attr::as_int).unwrap_or(0);
    let axis = if raw < 0 { raw + rank } else { raw };
    if !(0..rank).contains(&axis) {
        return Err(err(format!("softmax: axis {raw} of a rank-{rank} tensor")));
    }
    let axis = axis as usize;
    let (len, inner) = (x.shape()[axis], x.shape()[axis + 1..].iter().product::<usize>());
    let outer: usize = x.shape()[..axis].iter().product();
    let mut data = vec![0f32; x.len()];
    let mut e = vec![0f64; len];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let Some(&first) = x.data().get(at(0)) else { continue };
            let m = (0..len).fold(first as f64, |best, k| maximum(best, x.data()[at(k)] as f64));
            let mut s = 0.0;
            for (k, ek) in e.iter_mut().enumerate() {
                *ek = acc.exp(acc.sub(x.data()[at(k)] as f64, m, no_draw()) as f64, no_draw()) as f64;
                s = acc.add(s, *ek, no_draw()) as f64;
            }
            for (k, ek) in e.iter().enumerate() {
                data[at(k)] = out.div(*ek, s, no_draw());
            }
        }
    }
    Tensor::new(x.shape().to_vec(), data).map_err(|e| err(e.to_string()))
}

/// `nn.layernorm` over the last axis (D terms), in A: `μ = (Σ x_k) / D`; `v = (Σ (x_k − μ)²,
/// squares exact) / D`; `r = √(v + ε)`; `n = (x − μ) / r`; `y = β + n·γ → Y` (one rounding).
/// ε is the value of A nearest to the f32 nearest to `epsilon`.
fn layernorm(module: &Module, op: OpId, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor, ExecError> {
    let (acc, out, arith) = norm_rounders(module, op)?;
    let d = *x.shape().last().ok_or_else(|| err("layernorm of a rank-0 tensor"))?;
    if gamma.len() != d || beta.len() != d {
        return Err(err("layernorm: γ and β must have the last axis's length"));
    }
    let epsilon = module.ops[op].attr("epsilon").and_then(Attr::as_f64).unwrap_or(0.0);
    let mut eps = [0f32];
    arith.acc.format.quantize(&[epsilon as f32], &[1], Rounding::Nearest, &RandomStream::new(0, 0), &mut eps).map_err(|e| err(e.to_string()))?;
    let count = acc.from_index(d as u64, no_draw()) as f64;
    let mut data = Vec::with_capacity(x.len());
    for row in x.data().chunks(d.max(1)) {
        let s1 = row.iter().fold(0.0, |s, &v| acc.add(s, v as f64, no_draw()) as f64);
        let mu = acc.div(s1, count, no_draw()) as f64;
        let s2 = row.iter().fold(0.0, |s, &v| {
            let dv = acc.sub(v as f64, mu, no_draw()) as f64;
            acc.add(s, dv * dv, no_draw()) as f64
        });
        let v = acc.div(s2, count, no_draw()) as f64;
        let r = acc.sqrt(acc.add(v, eps[0] as f64, no_draw()) as f64, no_draw()) as f64;
        for (i, &xi) in row.iter().enumerate() {
            let n = acc.div(acc.sub(xi as f64, mu, no_draw()) as f64, r, no_draw()) as f64;
            data.push(out.fma(beta.data()[i] as f64, n, gamma.data()[i] as f64, no_draw()).ok_or_else(|| err("a layer norm product is not exact"))?);
        }
    }
    Tensor::new(x.shape().to_vec(), data).map_err(|e| err(e.to_string()))
}
