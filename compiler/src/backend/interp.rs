//! The reference interpreter of the `kernel` dialect: the oracle the other backends are
//! checked against (spec/ir.md, "kernel"). Clarity over speed.
//!
//! The function body runs op by op on whole tensors: parameters and constants come from
//! [`Program::constants`], `q.quantize` to a scaled format calls `Format::quantize`, and
//! `kernel.generate` evaluates its region once per output element. Regions are first
//! translated into a list of [`Instr`]s with their attributes decoded (formats, roundings,
//! random streams), evaluated over one slot per SSA value: numbers (`f64`: values of
//! element-wise formats, or exact products) and indices (`u64`) in separate arrays. Every
//! arithmetic op calls `qc_runtime::kernels`, the exact scalar arithmetic.

use super::{Backend, ExecError, Program};
use crate::ir::{Attr, Dim, Module, OpId, RegionId, Type, ValueId};
use qc_runtime::kernels::{maximum, no_draw, Exact, Rounder, Target};
use qc_runtime::numerics::rng::Draw;
use qc_runtime::numerics::{RandomStream, Rounding};
use qc_runtime::tensor::{shape_string, Tensor};

/// The reference interpreter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Interpreter;

impl Backend for Interpreter {
    fn run(&self, program: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        let module = &program.module;
        let func = &module.funcs[0];
        let body = module
            .entry_block(func.body)
            .ok_or_else(|| ExecError::new("the function has no body"))?;
        let args = &module.blocks[body].args;
        if inputs.len() != args.len() {
            return Err(ExecError::new(format!(
                "`{}` takes {} input(s), {} given",
                func.name,
                args.len(),
                inputs.len()
            )));
        }
        let mut state = State::new(module);
        for (i, (&arg, input)) in args.iter().zip(inputs).enumerate() {
            check_input(module, arg, input, i)?;
            state.tensors[arg.index()] = Some(input.clone());
        }
        for &op in &module.blocks[body].ops {
            let o = &module.ops[op];
            match o.name() {
                "func.return" => {
                    return o
                        .operands
                        .iter()
                        .map(|v| state.tensor(*v).cloned())
                        .collect();
                }
                "nn.param" | "nn.constant" => {
                    let t = program
                        .constants
                        .get(&o.results[0])
                        .ok_or_else(|| ExecError::new("a parameter was not materialised"))?;
                    state.tensors[o.results[0].index()] = Some(t.clone());
                }
                "q.quantize" => {
                    let t = quantize_tensor(module, op, &state, program.seed)?;
                    state.tensors[o.results[0].index()] = Some(t);
                }
                "kernel.generate" => {
                    let t = generate(module, op, &mut state, program.seed)?;
                    state.tensors[o.results[0].index()] = Some(t);
                }
                _ => {
                    // Index computations at the top level (kernel.dim, kernel.index, ...).
                    let code = Code::translate_ops(module, &[op], program.seed)?;
                    code.run(&mut state.scalars, &state.tensors)?;
                }
            }
        }
        Err(ExecError::new("the function body has no `func.return`"))
    }
}

/// The values of a run: tensors of the top level, and the scalar slots regions use.
struct State {
    tensors: Vec<Option<Tensor>>,
    scalars: Slots,
}

impl State {
    fn new(module: &Module) -> State {
        State {
            tensors: vec![None; module.values.len()],
            scalars: Slots::new(module.values.len()),
        }
    }

    fn tensor(&self, v: ValueId) -> Result<&Tensor, ExecError> {
        self.tensors[v.index()]
            .as_ref()
            .ok_or_else(|| ExecError::new("a tensor is used before it is computed"))
    }
}

/// One slot per SSA value: numbers and indices apart.
struct Slots {
    numbers: Vec<f64>,
    indices: Vec<u64>,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            numbers: vec![0.0; n],
            indices: vec![0; n],
        }
    }
}

fn check_input(module: &Module, arg: ValueId, input: &Tensor, i: usize) -> Result<(), ExecError> {
    let ty = module
        .ty(arg)
        .as_tensor()
        .ok_or_else(|| ExecError::new("a function argument is not a tensor"))?;
    let fits = ty.dims.len() == input.rank()
        && ty
            .dims
            .iter()
            .zip(input.shape())
            .all(|(d, &n)| matches!(d, Dim::Dynamic) || *d == Dim::Fixed(n as u64));
    if !fits {
        return Err(ExecError::new(format!(
            "input {i} has shape {} but the function takes {}",
            shape_string(input.shape()),
            ty
        )));
    }
    if let Some(target) = Target::new(&ty.format) {
        let rounder = Rounder::new(target, Rounding::Nearest);
        if let Some((j, x)) = input
            .data()
            .iter()
            .enumerate()
            .find(|(_, x)| !same_value(rounder.round(**x as f64, no_draw()), **x))
        {
            return Err(ExecError::new(format!(
                "input {i}: element {j} ({x}) is not a value of `{}`",
                ty.format
            )));
        }
    }
    Ok(())
}

fn same_value(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The shape of a result type, with its dynamic axes taken in order from `sizes`.
fn result_shape(ty: &Type, sizes: &[u64]) -> Result<Vec<usize>, ExecError> {
    let t = ty
        .as_tensor()
        .ok_or_else(|| ExecError::new("the result is not a tensor"))?;
    let mut dynamic = sizes.iter();
    t.dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Ok(*n as usize),
            Dim::Dynamic => dynamic
                .next()
                .map(|&n| n as usize)
                .ok_or_else(|| ExecError::new("a dynamic size is missing")),
        })
        .collect()
}

fn rounding_attr(module: &Module, op: OpId) -> Rounding {
    match module.ops[op].attr("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    }
}

fn stream_attr(module: &Module, op: OpId, seed: u64) -> RandomStream {
    let stream = module.ops[op]
        .attr("stream")
        .and_then(Attr::as_int)
        .unwrap_or(0);
    RandomStream::new(seed, stream as u64)
}

/// `q.quantize` of a whole tensor with `Format::quantize` (element `i` draws at index `i`).
fn quantize_tensor(
    module: &Module,
    op: OpId,
    state: &State,
    seed: u64,
) -> Result<Tensor, ExecError> {
    let o = &module.ops[op];
    if o.operands.len() > 1 {
        return Err(ExecError::new(
            "`q.quantize` with given scales is not supported by the interpreter",
        ));
    }
    let x = state.tensor(o.operands[0])?;
    let format = module
        .ty(o.results[0])
        .as_tensor()
        .map(|t| t.format)
        .ok_or_else(|| ExecError::new("`q.quantize` makes a tensor"))?;
    let mut out = vec![0f32; x.len()];
    let stream = stream_attr(module, op, seed);
    format
        .quantize(
            x.data(),
            x.shape(),
            rounding_attr(module, op),
            &stream,
            &mut out,
        )
        .map_err(|e| ExecError::new(format!("quantizing to `{format}`: {e}")))?;
    Tensor::new(x.shape().to_vec(), out).map_err(|e| ExecError::new(e.to_string()))
}

/// `kernel.generate`: the region evaluated at every index of the result, row-major.
fn generate(module: &Module, op: OpId, state: &mut State, seed: u64) -> Result<Tensor, ExecError> {
    let o = &module.ops[op];
    let sizes: Vec<u64> = o
        .operands
        .iter()
        .map(|v| state.scalars.indices[v.index()])
        .collect();
    let shape = result_shape(module.ty(o.results[0]), &sizes)?;
    let region = Code::translate_region(module, o.regions[0], seed)?;
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n);
    let mut index = vec![0u64; shape.len()];
    for _ in 0..n {
        for (arg, &i) in region.args.iter().zip(&index) {
            state.scalars.indices[arg.index()] = i;
        }
        region.code.run(&mut state.scalars, &state.tensors)?;
        data.push(state.scalars.numbers[region.yields[0].index()] as f32);
        // The next row-major index.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] as u64 {
                break;
            }
            index[axis] = 0;
        }
    }
    Tensor::new(shape, data).map_err(|e| ExecError::new(e.to_string()))
}

/// A translated region: its block arguments, its ops and the values it yields.
struct Region {
    args: Vec<ValueId>,
    code: Code,
    yields: Vec<ValueId>,
}

/// A stochastic rounding's random source: the stream and the draw counter's slot.
#[derive(Clone, Copy)]
struct Random {
    stream: RandomStream,
    counter: ValueId,
}

/// The rounding of one op and, when stochastic, where its draws come from.
#[derive(Clone, Copy)]
struct Rounded {
    rounder: Rounder,
    random: Option<Random>,
}

impl Rounded {
    fn draw<'a>(&'a self, slots: &Slots, offset: u64) -> Draw<'a> {
        match &self.random {
            Some(r) => r
                .stream
                .at(slots.indices[r.counter.index()].wrapping_add(offset)),
            None => no_draw(),
        }
    }
}

#[derive(Clone, Copy)]
enum IndexOp {
    Add,
    Mul,
    Min,
    Max,
    Sub,
    Div,
    Rem,
    Lt,
}

#[derive(Clone, Copy)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

#[derive(Clone, Copy)]
enum Unary {
    Round,
    Sqrt,
    Exp,
    Tanh,
    Sigmoid,
    Gelu,
}

/// One op of a region, its attributes decoded.
enum Instr {
    Index {
        out: ValueId,
        value: u64,
    },
    IndexBinary {
        op: IndexOp,
        out: ValueId,
        a: ValueId,
        b: ValueId,
    },
    Dim {
        out: ValueId,
        tensor: ValueId,
        axis: usize,
    },
    Load {
        out: ValueId,
        tensor: ValueId,
        indices: Vec<ValueId>,
    },
    Constant {
        out: ValueId,
        value: f64,
    },
    /// `kernel.mul` without a rounding: the exact product of two values of formats.
    ExactProduct {
        out: ValueId,
        a: ValueId,
        b: ValueId,
    },
    Binary {
        op: Binary,
        out: ValueId,
        a: ValueId,
        b: ValueId,
        rounded: Rounded,
    },
    Unary {
        op: Unary,
        out: ValueId,
        x: ValueId,
        rounded: Rounded,
    },
    Fma {
        out: ValueId,
        acc: ValueId,
        a: ValueId,
        b: ValueId,
        rounded: Rounded,
    },
    FromIndex {
        out: ValueId,
        i: ValueId,
        rounded: Rounded,
    },
    Select {
        out: ValueId,
        condition: ValueId,
        a: ValueId,
        b: ValueId,
        index: bool,
    },
    Accumulate(Box<Accumulate>),
    ReduceMax(Box<ReduceMax>),
}

struct Bounds {
    lo: ValueId,
    hi: ValueId,
    init: ValueId,
}

struct Accumulate {
    out: ValueId,
    bounds: Bounds,
    step: u64,
    rounded: Rounded,
    /// `#chunk<C @ G @ R>`: the chunk size and the chunk sums' rounding.
    chunk: Option<(u64, Rounder)>,
    body: Region,
}

struct ReduceMax {
    out: ValueId,
    bounds: Bounds,
    body: Region,
}

/// The translated ops of one block.
struct Code(Vec<Instr>);

fn unsupported(what: impl std::fmt::Display) -> ExecError {
    ExecError::new(format!("the interpreter does not support {what}"))
}

impl Code {
    fn translate_region(module: &Module, region: RegionId, seed: u64) -> Result<Region, ExecError> {
        let block = module
            .entry_block(region)
            .ok_or_else(|| ExecError::new("a region has no block"))?;
        let b = &module.blocks[block];
        let (last, ops) = b
            .ops
            .split_last()
            .ok_or_else(|| ExecError::new("a region has no terminator"))?;
        if module.ops[*last].name() != "kernel.yield" {
            return Err(ExecError::new("a kernel region must end in `kernel.yield`"));
        }
        Ok(Region {
            args: b.args.clone(),
            code: Code::translate_ops(module, ops, seed)?,
            yields: module.ops[*last].operands.clone(),
        })
    }

    fn translate_ops(module: &Module, ops: &[OpId], seed: u64) -> Result<Code, ExecError> {
        ops.iter()
            .map(|&op| translate(module, op, seed))
            .collect::<Result<Vec<_>, _>>()
            .map(Code)
    }

    fn run(&self, slots: &mut Slots, tensors: &[Option<Tensor>]) -> Result<(), ExecError> {
        for instr in &self.0 {
            execute(instr, slots, tensors)?;
        }
        Ok(())
    }
}

fn translate(module: &Module, op: OpId, seed: u64) -> Result<Instr, ExecError> {
    let o = &module.ops[op];
    let operand = |i: usize| o.operands[i];
    let out = o
        .results
        .first()
        .copied()
        .ok_or_else(|| unsupported(format!("`{}` here", o.name())))?;
    let is_real = |v: ValueId| matches!(module.ty(v), Type::Real);
    let rounded = |inputs: usize| -> Result<Rounded, ExecError> {
        let format = module
            .ty(out)
            .scalar_format()
            .ok_or_else(|| ExecError::new(format!("`{}` must give a scalar", o.name())))?;
        let target = Target::new(&format).ok_or_else(|| {
            ExecError::new(format!(
                "`{}` rounds to `{format}`, which is not element-wise",
                o.name()
            ))
        })?;
        let rounding = rounding_attr(module, op);
        let random = (o.operands.len() > inputs).then(|| Random {
            stream: stream_attr(module, op, seed),
            counter: o.operands[inputs],
        });
        Ok(Rounded {
            rounder: Rounder::new(target, rounding),
            random,
        })
    };
    let index_op = |kind: IndexOp| Instr::IndexBinary {
        op: kind,
        out,
        a: operand(0),
        b: operand(1),
    };
    let binary = |kind: Binary| -> Result<Instr, ExecError> {
        Ok(Instr::Binary {
            op: kind,
            out,
            a: operand(0),
            b: operand(1),
            rounded: rounded(2)?,
        })
    };
    let unary = |kind: Unary| -> Result<Instr, ExecError> {
        Ok(Instr::Unary {
            op: kind,
            out,
            x: operand(0),
            rounded: rounded(1)?,
        })
    };
    let bounds = || Bounds {
        lo: operand(0),
        hi: operand(1),
        init: operand(2),
    };
    Ok(match o.name() {
        "kernel.index" => Instr::Index {
            out,
            value: o.attr("value").and_then(Attr::as_int).unwrap_or(0) as u64,
        },
        "kernel.index_add" => index_op(IndexOp::Add),
        "kernel.index_mul" => index_op(IndexOp::Mul),
        "kernel.index_min" => index_op(IndexOp::Min),
        "kernel.index_max" => index_op(IndexOp::Max),
        "kernel.index_sub" => index_op(IndexOp::Sub),
        "kernel.index_div" => index_op(IndexOp::Div),
        "kernel.index_rem" => index_op(IndexOp::Rem),
        "kernel.index_lt" => index_op(IndexOp::Lt),
        "kernel.dim" => Instr::Dim {
            out,
            tensor: operand(0),
            axis: o.attr("axis").and_then(Attr::as_int).unwrap_or(0) as usize,
        },
        "kernel.load" => Instr::Load {
            out,
            tensor: operand(0),
            indices: o.operands[1..].to_vec(),
        },
        "kernel.constant" => Instr::Constant {
            out,
            value: o.attr("value").and_then(Attr::as_f64).unwrap_or(0.0),
        },
        "kernel.mul" if o.attr("round").is_none() => {
            if is_real(operand(0)) || is_real(operand(1)) {
                return Err(unsupported(
                    "an exact product of a `real` (it may not fit an f64)",
                ));
            }
            Instr::ExactProduct {
                out,
                a: operand(0),
                b: operand(1),
            }
        }
        "kernel.mul" => binary(Binary::Mul)?,
        "kernel.add" => binary(Binary::Add)?,
        "kernel.sub" => binary(Binary::Sub)?,
        "kernel.div" => binary(Binary::Div)?,
        "kernel.max" => binary(Binary::Max)?,
        "kernel.min" => binary(Binary::Min)?,
        "kernel.round" => unary(Unary::Round)?,
        "kernel.sqrt" => unary(Unary::Sqrt)?,
        "kernel.exp" => unary(Unary::Exp)?,
        "kernel.tanh" => unary(Unary::Tanh)?,
        "kernel.sigmoid" => unary(Unary::Sigmoid)?,
        "kernel.gelu" => unary(Unary::Gelu)?,
        "kernel.fma" => {
            if is_real(operand(1)) || is_real(operand(2)) {
                return Err(unsupported("`kernel.fma` of a `real` factor"));
            }
            Instr::Fma {
                out,
                acc: operand(0),
                a: operand(1),
                b: operand(2),
                rounded: rounded(3)?,
            }
        }
        "kernel.from_index" => Instr::FromIndex {
            out,
            i: operand(0),
            rounded: rounded(1)?,
        },
        "kernel.select" => Instr::Select {
            out,
            condition: operand(0),
            a: operand(1),
            b: operand(2),
            index: *module.ty(out) == Type::Index,
        },
        "kernel.accumulate" => {
            let chunk = match o.attr("chunk") {
                Some(Attr::Chunk(c)) => {
                    let target = Target::new(&c.format).ok_or_else(|| {
                        ExecError::new(format!(
                            "the chunk format `{}` is not element-wise",
                            c.format
                        ))
                    })?;
                    Some((c.size, Rounder::new(target, c.rounding)))
                }
                _ => None,
            };
            let step = o.attr("step").and_then(Attr::as_int).unwrap_or(1).max(1) as u64;
            let body = Code::translate_region(module, o.regions[0], seed)?;
            Instr::Accumulate(Box::new(Accumulate {
                out,
                bounds: bounds(),
                step,
                rounded: rounded(3)?,
                chunk,
                body,
            }))
        }
        "kernel.reduce_max" => Instr::ReduceMax(Box::new(ReduceMax {
            out,
            bounds: bounds(),
            body: Code::translate_region(module, o.regions[0], seed)?,
        })),
        other => return Err(unsupported(format!("`{other}` inside a kernel region"))),
    })
}

fn execute(instr: &Instr, slots: &mut Slots, tensors: &[Option<Tensor>]) -> Result<(), ExecError> {
    match instr {
        Instr::Index { out, value } => slots.indices[out.index()] = *value,
        Instr::IndexBinary { op, out, a, b } => {
            let (a, b) = (slots.indices[a.index()], slots.indices[b.index()]);
            slots.indices[out.index()] = match op {
                IndexOp::Add => a
                    .checked_add(b)
                    .ok_or_else(|| ExecError::new("index overflow"))?,
                IndexOp::Mul => a
                    .checked_mul(b)
                    .ok_or_else(|| ExecError::new("index overflow"))?,
                IndexOp::Min => a.min(b),
                IndexOp::Max => a.max(b),
                IndexOp::Sub => a.saturating_sub(b),
                IndexOp::Div => a
                    .checked_div(b)
                    .ok_or_else(|| ExecError::new("index division by zero"))?,
                IndexOp::Rem => a
                    .checked_rem(b)
                    .ok_or_else(|| ExecError::new("index division by zero"))?,
                IndexOp::Lt => (a < b) as u64,
            };
        }
        Instr::Dim { out, tensor, axis } => {
            let t = tensor_at(tensors, *tensor)?;
            slots.indices[out.index()] = *t
                .shape()
                .get(*axis)
                .ok_or_else(|| ExecError::new("`kernel.dim` of a missing axis"))?
                as u64;
        }
        Instr::Load {
            out,
            tensor,
            indices,
        } => {
            let t = tensor_at(tensors, *tensor)?;
            let mut flat = 0usize;
            for (v, &n) in indices.iter().zip(t.shape()) {
                let i = slots.indices[v.index()];
                if i >= n as u64 {
                    return Err(ExecError::new(format!(
                        "a load at index {i} of an axis of size {n} (tensor {})",
                        shape_string(t.shape())
                    )));
                }
                flat = flat * n + i as usize;
            }
            slots.numbers[out.index()] = t.data()[flat] as f64;
        }
        Instr::Constant { out, value } => slots.numbers[out.index()] = *value,
        Instr::ExactProduct { out, a, b } => {
            slots.numbers[out.index()] = slots.numbers[a.index()] * slots.numbers[b.index()]
        }
        Instr::Binary {
            op,
            out,
            a,
            b,
            rounded,
        } => {
            let (a, b) = (slots.numbers[a.index()], slots.numbers[b.index()]);
            let (r, d) = (&rounded.rounder, rounded.draw(slots, 0));
            slots.numbers[out.index()] = match op {
                Binary::Add => r.add(a, b, d),
                Binary::Sub => r.sub(a, b, d),
                Binary::Mul => r.mul(a, b, d),
                Binary::Div => r.div(a, b, d),
                Binary::Max => r.max(a, b, d),
                Binary::Min => r.min(a, b, d),
            } as f64;
        }
        Instr::Unary {
            op,
            out,
            x,
            rounded,
        } => {
            let x = slots.numbers[x.index()];
            let (r, d) = (&rounded.rounder, rounded.draw(slots, 0));
            slots.numbers[out.index()] = match op {
                Unary::Round => r.round(x, d),
                Unary::Sqrt => r.sqrt(x, d),
                Unary::Exp => r.exp(x, d),
                Unary::Tanh => r.tanh(x, d),
                Unary::Sigmoid => r.sigmoid(x, d),
                Unary::Gelu => r.gelu(x, d),
            } as f64;
        }
        Instr::Fma {
            out,
            acc,
            a,
            b,
            rounded,
        } => {
            let (acc, a, b) = (
                slots.numbers[acc.index()],
                slots.numbers[a.index()],
                slots.numbers[b.index()],
            );
            let value = rounded
                .rounder
                .fma(acc, a, b, rounded.draw(slots, 0))
                .ok_or_else(|| unsupported("an inexact product in `kernel.fma`"))?;
            slots.numbers[out.index()] = value as f64;
        }
        Instr::FromIndex { out, i, rounded } => {
            slots.numbers[out.index()] = rounded
                .rounder
                .from_index(slots.indices[i.index()], rounded.draw(slots, 0))
                as f64;
        }
        Instr::Select {
            out,
            condition,
            a,
            b,
            index,
        } => {
            let first = slots.indices[condition.index()] != 0;
            let pick = if first { a } else { b };
            if *index {
                slots.indices[out.index()] = slots.indices[pick.index()];
            } else {
                slots.numbers[out.index()] = slots.numbers[pick.index()];
            }
        }
        Instr::Accumulate(acc) => accumulate(acc, slots, tensors)?,
        Instr::ReduceMax(reduce) => {
            let (lo, hi) = (
                slots.indices[reduce.bounds.lo.index()],
                slots.indices[reduce.bounds.hi.index()],
            );
            let mut best = slots.numbers[reduce.bounds.init.index()];
            for k in lo..hi {
                if let Some(term) = term(&reduce.body, k, slots, tensors)? {
                    best = maximum(best, term);
                }
            }
            slots.numbers[reduce.out.index()] = best;
        }
    }
    Ok(())
}

fn tensor_at(tensors: &[Option<Tensor>], v: ValueId) -> Result<&Tensor, ExecError> {
    tensors[v.index()]
        .as_ref()
        .ok_or_else(|| ExecError::new("a region reads a tensor that is not computed"))
}

/// The term of a reduction region at position `k`, or `None` when it yields `keep = 0`.
fn term(
    body: &Region,
    k: u64,
    slots: &mut Slots,
    tensors: &[Option<Tensor>],
) -> Result<Option<f64>, ExecError> {
    slots.indices[body.args[0].index()] = k;
    body.code.run(slots, tensors)?;
    if let Some(keep) = body.yields.get(1) {
        if slots.indices[keep.index()] == 0 {
            return Ok(None);
        }
    }
    Ok(Some(slots.numbers[body.yields[0].index()]))
}

/// `kernel.accumulate` (spec/ir.md): additions in increasing `k`, each rounded once; with a
/// chunk, chunk sums from +0 in the chunk format, each added to the accumulator.
fn accumulate(
    acc: &Accumulate,
    slots: &mut Slots,
    tensors: &[Option<Tensor>],
) -> Result<(), ExecError> {
    let (lo, hi) = (
        slots.indices[acc.bounds.lo.index()],
        slots.indices[acc.bounds.hi.index()],
    );
    let mut a = slots.numbers[acc.bounds.init.index()];
    let add = |rounder: &Rounder, sum: f64, term: f64, offset: u64, slots: &Slots| -> f64 {
        let draw = Rounded {
            rounder: *rounder,
            random: acc.rounded.random,
        };
        rounder.exact(Exact::sum(sum, term), draw.draw(slots, offset)) as f64
    };
    match acc.chunk {
        None => {
            let mut k = lo;
            while k < hi {
                if let Some(t) = term(&acc.body, k, slots, tensors)? {
                    a = add(&acc.rounded.rounder, a, t, k, slots);
                }
                k += acc.step;
            }
        }
        Some((size, chunk_rounder)) => {
            let width = size.saturating_mul(acc.step);
            let mut j = lo;
            while j < hi {
                let mut s = 0.0;
                let end = j.saturating_add(width).min(hi);
                let mut k = j;
                while k < end {
                    if let Some(t) = term(&acc.body, k, slots, tensors)? {
                        s = add(&chunk_rounder, s, t, k, slots);
                    }
                    k += acc.step;
                }
                a = add(&acc.rounded.rounder, a, s, hi + j, slots);
                j = j.saturating_add(width);
            }
        }
    }
    slots.numbers[acc.out.index()] = a;
    Ok(())
}
