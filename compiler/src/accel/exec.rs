//! Bit-exact execution on the simulated accelerator: [`ArraySimulator`] runs a [`Program`]
//! prepared from the `nn`-level module (after `optimize`; not the kernel dialect) op by op.
//! Contractions are tiled with [`emit_layer`] and their `array.step`s executed by
//! `ArrayNumerics` (the array); element-wise ops, max pooling and scaled quantization run on the
//! vector unit with the kernel dialect's scalar arithmetic, one rounding per element drawing
//! at counter `e` (spec/ir.md, "Lowering to kernel"). The results equal the reference
//! interpreter's bit for bit; ops the accelerator does not execute yet are errors.

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
                "nn.dense" | "nn.fused_dense" | "nn.conv2d" | "nn.fused_conv2d" => self.contraction(module, op, &values, program.seed)?,
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
                "nn.relu" | "nn.clip" | "nn.pact" | "nn.add" | "nn.mul" | "nn.cast" | "q.quantize" | "q.dequantize" => {
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

/// Reads the GEMM's input at (row, reduction index); `None` for a padded position.
type IfmapReader<'a> = dyn Fn(u64, u64) -> Option<f32> + 'a;

/// The static shape of `v` with dynamic axes taken from `x`'s leading axis.
fn result_shape(module: &Module, v: ValueId, x: &Tensor) -> Result<Vec<usize>, ExecError> {
    let t = module.ty(v).as_tensor().ok_or_else(|| err("a tensor result"))?;
    Ok(t.dims.iter().map(|d| match d {
        crate::ir::Dim::Fixed(n) => *n as usize,
        _ => x.shape()[0],
    })
    .collect())
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
        let conv = o.name().ends_with("conv2d");
        let (xs, ws) = (x.shape(), w.shape());
        // The GEMM and where its operands live.
        let (m, n, k, out_shape, ifmap): (usize, usize, usize, Vec<usize>, Box<IfmapReader<'_>>) = if conv {
            if o.attr("groups").and_then(Attr::as_int).unwrap_or(1) != 1 {
                return Err(err("the accelerator does not execute grouped convolutions yet"));
            }
            let [sh, sw] = ints(module, op, "stride", [1, 1]);
            let [ph, pw] = ints(module, op, "padding", [0, 0]);
            let [dh, dw] = ints(module, op, "dilation", [1, 1]);
            let (nb, h, wd, c) = (xs[0], xs[1], xs[2], xs[3]);
            let (o_ch, kh, kw) = (ws[0], ws[1], ws[2]);
            let oh = ((h as u64 + 2 * ph - dh * (kh as u64 - 1) - 1) / sh + 1) as usize;
            let ow = ((wd as u64 + 2 * pw - dw * (kw as u64 - 1) - 1) / sw + 1) as usize;
            let data = x.data();
            let ifmap = move |row: u64, kk: u64| {
                let (b, rest) = (row as usize / (oh * ow), row as usize % (oh * ow));
                let (y, xo) = (rest / ow, rest % ow);
                let (i, rest) = (kk as usize / (kw * c), kk as usize % (kw * c));
                let (j, ch) = (rest / c, rest % c);
                let iy = (y as u64 * sh + i as u64 * dh) as i64 - ph as i64;
                let ix = (xo as u64 * sw + j as u64 * dw) as i64 - pw as i64;
                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                    return None;
                }
                Some(data[((b * h + iy as usize) * wd + ix as usize) * c + ch])
            };
            (nb * oh * ow, o_ch, kh * kw * c, vec![nb, oh, ow, o_ch], Box::new(ifmap))
        } else {
            let k = *xs.last().ok_or_else(|| err("dense input of rank 0"))?;
            let mut shape = xs.to_vec();
            *shape.last_mut().expect("rank ≥ 1") = ws[0];
            let data = x.data();
            (x.len() / k.max(1), ws[0], k, shape, Box::new(move |row: u64, kk: u64| Some(data[row as usize * k + kk as usize])))
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
        let wdata = w.data();
        let filter = |kk: u64, col: u64| wdata[col as usize * k + kk as usize];
        let operands = Operands { m: m as u64, n: n as u64, ifmap: &*ifmap, filter: &filter, bias: bias.as_deref() };
        let accumulators = numerics.execute(&isa.instrs, &operands).map_err(err)?;
        let mut out: Vec<f32> = match norm {
            None => accumulators.iter().enumerate().map(|(e, a)| numerics.round_out(e as u64, *a)).collect(),
            Some(d) => batchnorm_epilogue(d, &norm_operands, &accumulators, &out_format, n)?,
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

/// A fused batch norm applied to the accumulator values (spec/ir.md, "Lowering to kernel",
/// batchnorm): `t = var + ε`, `r = √t`, `d = a − mean`, `q = d / r` in its accumulator `A`,
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
