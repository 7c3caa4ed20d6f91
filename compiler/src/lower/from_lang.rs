//! The checked `.qnn` model as one `nn`-dialect function (spec/ir.md, "Lowering from the
//! language"):
//!
//! - inputs become the function's arguments (symbolic sizes become `?`), outputs its results;
//! - a parameter becomes `nn.param` holding its master copy (fp32, or the training section's
//!   `master` format) with its `init` recipe, followed by a rounding to its declared format
//!   (`nn.cast`, or `q.quantize` for scaled formats) when the two differ;
//! - every node becomes its `nn`/`q` op with its `#arith` (products, accumulator, chunks) and
//!   result rounding; a result in a scaled format is computed in an element-wise format (the
//!   accumulator's for dot products and reductions, else fp32) and then `q.quantize`d;
//! - ops that move values (pooling by max, flatten, reshape, transpose, concat) keep their
//!   operand's format and are followed by a rounding when the node's format differs;
//! - batch norm's running statistics become fp32 parameters `<gamma>.running_mean/var`;
//! - every op with a stochastic rounding gets its own random stream, numbered in order.

use super::build::{attrs, At, Attrs, Builder};
use crate::init::{Kind, Recipe};
use crate::ir::{Arith, Attr, Chunk, Dim, Func, Module, RoundTo, Type, ValueId};
use qc_lang::check::{self as lang, CheckedModule, Node, Op, ValueRef};
use qc_runtime::numerics::{Format, Rounding};
use std::collections::HashSet;

/// Lowers a checked model. Fails only on models the IR cannot express (reported in one line).
pub fn lower_model(model: &CheckedModule) -> Result<Module, String> {
    let mut module = Module::new();
    let body = module.new_region();
    let arg_types: Vec<Type> = model.inputs.iter().map(|t| tensor(&t.shape, t.format)).collect();
    let entry = module.new_block(body, arg_types);
    let args = module.blocks[entry].args.clone();
    for (v, t) in args.iter().zip(&model.inputs) {
        module.values[*v].name = Some(t.name.clone());
    }
    let mut l = Lowering {
        b: Builder::new(&mut module, At::End(entry), None),
        model,
        inputs: args,
        params: Vec::new(),
        nodes: Vec::new(),
        next_stream: 0,
        param_names: model.params.iter().map(|p| p.tensor.name.clone()).collect(),
    };
    for (i, p) in model.params.iter().enumerate() {
        let v = l.param(i, p)?;
        l.params.push(v);
    }
    for node in &model.nodes {
        l.b.span = Some(node.span.start..node.span.end);
        let v = l.node(node)?;
        if let Some(name) = &node.binding {
            l.b.name(v, name);
        }
        l.nodes.push(v);
    }
    l.b.span = None;
    let outputs: Vec<ValueId> = model.outputs.iter().map(|(_, r)| l.value(*r)).collect();
    l.b.terminator("func.return", outputs.clone());
    let results = outputs.iter().map(|v| module.ty(*v).clone()).collect();
    module.funcs.push(Func { name: model.name.clone(), body, results, span: None });
    Ok(module)
}

fn dims(shape: &lang::Shape) -> Vec<Dim> {
    shape
        .0
        .iter()
        .map(|d| match d {
            lang::Dim::Known(n) => Dim::Fixed(*n as u64),
            lang::Dim::Symbol(_) => Dim::Dynamic,
        })
        .collect()
}

fn tensor(shape: &lang::Shape, format: Format) -> Type {
    Type::tensor(dims(shape), format)
}

fn fp32() -> Format {
    Format::parse("fp32").expect("fp32 is a named format")
}

fn round_to(r: lang::Rounded) -> RoundTo {
    RoundTo { format: r.format, rounding: r.rounding }
}

/// `[a, b]` as an integer array attribute.
fn pair(p: lang::Pair) -> Attr {
    Attr::Array(p.iter().map(|&x| Attr::Int(x as i64)).collect())
}

struct Lowering<'m, 'a> {
    b: Builder<'m>,
    model: &'a CheckedModule,
    inputs: Vec<ValueId>,
    params: Vec<ValueId>,
    nodes: Vec<ValueId>,
    next_stream: i64,
    /// Parameter names in use (batch-norm statistics get fresh ones).
    param_names: HashSet<String>,
}

impl Lowering<'_, '_> {
    fn value(&mut self, r: ValueRef) -> ValueId {
        match r {
            ValueRef::Input(i) => self.inputs[i],
            ValueRef::Param(i) => self.params[i],
            ValueRef::Node(i) => self.nodes[i],
            ValueRef::Constant(x) => {
                self.b.op("nn.constant", vec![], Type::tensor(vec![], fp32()), attrs([("value", Attr::Array(vec![Attr::Float(x)]))]))
            }
        }
    }

    fn ty(&self, v: ValueId) -> &crate::ir::TensorType {
        self.b.module.ty(v).as_tensor().expect("nn values are tensors")
    }

    /// `round = R` (omitted when nearest) and a fresh `stream` when R is stochastic.
    fn round_attrs(&mut self, r: Rounding) -> Attrs {
        let mut a = Attrs::new();
        if r != Rounding::Nearest {
            a.insert("round".into(), Attr::Rounding(r));
        }
        if r.is_stochastic() {
            a.insert("stream".into(), Attr::Int(self.stream()));
        }
        a
    }

    fn stream(&mut self) -> i64 {
        self.next_stream += 1;
        self.next_stream - 1
    }

    /// Rounds `v` to `format`: nothing when it already is, `nn.cast` to element-wise formats,
    /// `q.quantize` to scaled ones.
    fn round(&mut self, v: ValueId, format: Format, r: Rounding) -> ValueId {
        let t = self.ty(v).clone();
        if t.format == format {
            return v;
        }
        let name = if format.is_elementwise() { "nn.cast" } else { "q.quantize" };
        let a = self.round_attrs(r);
        self.b.op(name, vec![v], Type::Tensor(t.with_format(format)), a)
    }

    fn param(&mut self, index: usize, p: &lang::ParamDecl) -> Result<ValueId, String> {
        let t = &p.tensor;
        let seed = self.model.training.as_ref().map_or(0, |t| t.seed);
        let kind = p.init.clone();
        let recipe = Recipe { kind, seed, stream: index as u64 };
        let master = self.model.training.as_ref().map_or(fp32(), |t| t.formats.master.format);
        let a = attrs([("name", Attr::Str(t.name.clone())), ("init", Attr::Dict(recipe.to_dict()))]);
        self.b.span = Some(t.span.start..t.span.end);
        let v = self.b.op("nn.param", vec![], tensor(&t.shape, master), a);
        let forward = self.round(v, t.format, t.rounding);
        if forward != v {
            self.b.name(v, &format!("{}_master", t.name));
        }
        self.b.name(forward, &t.name);
        Ok(forward)
    }

    /// `#arith` of a dot product or reduction: the language's `acc` is the chunk-sum format
    /// when chunked, and `chunk_acc` (default `acc`) the accumulator the chunks are added in.
    fn arith(&mut self, a: &lang::Arith, out: Rounding) -> Arith {
        let (acc, chunk) = match a.chunk {
            Some(size) => {
                let within = a.acc;
                (a.chunk_acc.unwrap_or(within), Some(Chunk { size: size as u64, format: within.format, rounding: within.rounding }))
            }
            None => (a.acc, None),
        };
        let mut arith = Arith { mul: a.mul.map(round_to), acc: round_to(acc), chunk, out, fma: a.fma, stream: None };
        if arith.is_stochastic() {
            arith.stream = Some(self.stream() as u32);
        }
        arith
    }

    fn node_arith(node: &Node) -> Result<&lang::Arith, String> {
        node.arith.as_ref().ok_or_else(|| format!("`{}` has no arithmetic attributes", node.op.name()))
    }

    /// An op computing new values: in the node's format when it is element-wise, else in
    /// `staging` and then quantized to the node's format.
    fn computed(&mut self, node: &Node, name: &str, operands: Vec<ValueId>, mut a: Attrs, staging: Format) -> ValueId {
        let dims = dims(&node.shape);
        if node.format.is_elementwise() {
            if !a.contains_key("arith") {
                a.extend(self.round_attrs(node.rounding));
            }
            return self.b.op(name, operands, Type::tensor(dims, node.format), a);
        }
        let staged = self.b.op(name, operands, Type::tensor(dims, staging), a);
        self.round(staged, node.format, node.rounding)
    }

    /// A dot product or reduction with `#arith` (plus other attributes).
    fn with_arith(&mut self, node: &Node, name: &str, operands: Vec<ValueId>, mut a: Attrs) -> Result<ValueId, String> {
        let out = if node.format.is_elementwise() { node.rounding } else { Rounding::Nearest };
        let arith = self.arith(Self::node_arith(node)?, out);
        let staging = arith.acc.format;
        a.insert("arith".into(), Attr::Arith(arith));
        Ok(self.computed(node, name, operands, a, staging))
    }

    /// An op that moves values: in its operand's format, then rounded to the node's.
    fn moved(&mut self, node: &Node, name: &str, operands: Vec<ValueId>, a: Attrs, result_dims: Vec<Dim>) -> ValueId {
        let format = self.ty(operands[0]).format;
        let v = self.b.op(name, operands, Type::tensor(result_dims, format), a);
        self.round(v, node.format, node.rounding)
    }

    fn node(&mut self, node: &Node) -> Result<ValueId, String> {
        let operands: Vec<ValueId> = node.inputs.iter().map(|r| self.value(*r)).collect();
        let f32f = fp32();
        Ok(match &node.op {
            Op::Dense => self.with_arith(node, "nn.dense", operands, Attrs::new())?,
            Op::Matmul => self.with_arith(node, "nn.matmul", operands, Attrs::new())?,
            Op::Conv2d { stride, padding, dilation, groups } => {
                let mut a = Attrs::new();
                for (k, v, default) in [("stride", stride, [1, 1]), ("padding", padding, [0, 0]), ("dilation", dilation, [1, 1])] {
                    if *v != default {
                        a.insert(k.into(), pair(*v));
                    }
                }
                if *groups != 1 {
                    a.insert("groups".into(), Attr::Int(*groups as i64));
                }
                self.with_arith(node, "nn.conv2d", operands, a)?
            }
            Op::MaxPool { size, stride, padding } => {
                let a = pool_attrs(size, stride, padding);
                self.moved(node, "nn.maxpool2d", operands, a, dims(&node.shape))
            }
            Op::AvgPool { size, stride, padding } => self.with_arith(node, "nn.avgpool2d", operands, pool_attrs(size, stride, padding))?,
            Op::GlobalAvgPool => {
                let x = self.ty(operands[0]).clone();
                let (Some(Dim::Fixed(h)), Some(Dim::Fixed(w))) = (x.dims.get(1).copied(), x.dims.get(2).copied()) else {
                    return Err("global_avg_pool needs an input [N, H, W, C] with known H and W".into());
                };
                let window = Attr::Array(vec![Attr::Int(h as i64), Attr::Int(w as i64)]);
                let elementwise = node.format.is_elementwise();
                let arith = self.arith(Self::node_arith(node)?, if elementwise { node.rounding } else { Rounding::Nearest });
                let format = if elementwise { node.format } else { arith.acc.format };
                let pooled_dims = vec![x.dims[0], Dim::Fixed(1), Dim::Fixed(1), x.dims[3]];
                let a = attrs([("window", window), ("arith", Attr::Arith(arith))]);
                let pooled = self.b.op("nn.avgpool2d", operands, Type::tensor(pooled_dims, format), a);
                let flat = self.b.op("nn.reshape", vec![pooled], Type::tensor(dims(&node.shape), format), Attrs::new());
                self.round(flat, node.format, node.rounding)
            }
            Op::Relu => self.computed(node, "nn.relu", operands, Attrs::new(), f32f),
            Op::Sigmoid => self.computed(node, "nn.sigmoid", operands, Attrs::new(), f32f),
            Op::Tanh => self.computed(node, "nn.tanh", operands, Attrs::new(), f32f),
            Op::Gelu => self.computed(node, "nn.gelu", operands, Attrs::new(), f32f),
            Op::LeakyRelu { alpha } => self.computed(node, "nn.leaky_relu", operands, attrs([("alpha", Attr::Float(*alpha))]), f32f),
            Op::Relu6 => self.computed(node, "nn.clip", operands, clip_attrs(0.0, 6.0), f32f),
            Op::Clip { min, max } => self.computed(node, "nn.clip", operands, clip_attrs(*min, *max), f32f),
            Op::Pact => self.computed(node, "nn.pact", operands, Attrs::new(), f32f),
            Op::Add => self.computed(node, "nn.add", operands, Attrs::new(), f32f),
            Op::Mul => self.computed(node, "nn.mul", operands, Attrs::new(), f32f),
            Op::Softmax { axis } => self.with_arith(node, "nn.softmax", operands, attrs([("axis", Attr::Int(*axis as i64))]))?,
            Op::LayerNorm { eps } => self.with_arith(node, "nn.layernorm", operands, attrs([("epsilon", Attr::Float(*eps))]))?,
            Op::BatchNorm { eps, momentum } => {
                let mut operands = operands;
                let channels = self.ty(operands[1]).clone();
                let gamma = self.param_name_of(node.inputs[1]);
                for (suffix, kind) in [("running_mean", Kind::Zeros), ("running_var", Kind::Ones)] {
                    let name = self.fresh_param_name(&format!("{gamma}.{suffix}"));
                    let init = Recipe { kind, seed: 0, stream: 0 }.to_dict();
                    let a = attrs([("name", Attr::Str(name.clone())), ("init", Attr::Dict(init))]);
                    let v = self.b.op("nn.param", vec![], Type::Tensor(channels.with_format(f32f)), a);
                    self.b.name(v, &name.replace('.', "_"));
                    operands.push(v);
                }
                let a = attrs([("epsilon", Attr::Float(*eps)), ("momentum", Attr::Float(*momentum))]);
                self.with_arith(node, "nn.batchnorm", operands, a)?
            }
            Op::Flatten => self.moved(node, "nn.flatten", operands, Attrs::new(), dims(&node.shape)),
            Op::Reshape => {
                if node.shape.0.iter().filter(|d| matches!(d, lang::Dim::Symbol(_))).count() > 1 {
                    return Err(format!("reshape to {}: the IR allows one symbolic size in a reshape", node.shape));
                }
                self.moved(node, "nn.reshape", operands, Attrs::new(), dims(&node.shape))
            }
            Op::Transpose { perm } => {
                let a = attrs([("perm", Attr::Array(perm.iter().map(|&p| Attr::Int(p as i64)).collect()))]);
                self.moved(node, "nn.transpose", operands, a, dims(&node.shape))
            }
            Op::Concat { axis } => {
                let first = self.ty(operands[0]).format;
                let operands: Vec<ValueId> = operands.into_iter().map(|v| self.round(v, first, node.rounding)).collect();
                self.moved(node, "nn.concat", operands, attrs([("axis", Attr::Int(*axis as i64))]), dims(&node.shape))
            }
            Op::Quantize | Op::Cast => {
                let v = self.round(operands[0], node.format, node.rounding);
                if v == operands[0] {
                    // A rounding to the format the value already has changes nothing.
                    let a = self.round_attrs(node.rounding);
                    let name = if node.format.is_elementwise() { "nn.cast" } else { "q.quantize" };
                    self.b.op(name, vec![v], Type::tensor(dims(&node.shape), node.format), a)
                } else {
                    v
                }
            }
            Op::Dequantize => {
                let a = self.round_attrs(node.rounding);
                self.b.op("q.dequantize", operands, Type::tensor(dims(&node.shape), node.format), a)
            }
        })
    }

    fn param_name_of(&self, r: ValueRef) -> String {
        match r {
            ValueRef::Param(i) => self.model.params[i].tensor.name.clone(),
            _ => "batchnorm".to_string(),
        }
    }

    fn fresh_param_name(&mut self, wanted: &str) -> String {
        let name = (0..).map(|k| if k == 0 { wanted.to_string() } else { format!("{wanted}_{k}") }).find(|n| !self.param_names.contains(n)).unwrap_or_default();
        self.param_names.insert(name.clone());
        name
    }
}

fn pool_attrs(size: &lang::Pair, stride: &lang::Pair, padding: &lang::Pair) -> Attrs {
    let mut a = attrs([("window", pair(*size))]);
    if stride != size {
        a.insert("stride".into(), pair(*stride));
    }
    if *padding != [0, 0] {
        a.insert("padding".into(), pair(*padding));
    }
    a
}

fn clip_attrs(min: f64, max: f64) -> Attrs {
    attrs([("min", Attr::Float(min)), ("max", Attr::Float(max))])
}
