//! The meaning of a checked model, ready for lowering to the IR: tensors with their shapes,
//! formats and roundings, and the computation as a list of operation nodes in evaluation order
//! (nested calls are flattened), each with its resolved arithmetic.

use crate::ast::Span;
use qc_runtime::numerics::{Format, Rounding};
use std::fmt;

/// One dimension of a shape: a size, or a symbol such as the batch size `B`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    Symbol(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

/// A tensor shape, outermost axis first (activations are NHWC).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// The number of elements, when every dimension is known.
    pub fn known_elements(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, d| match d {
            Dim::Known(n) => acc.checked_mul(*n),
            Dim::Symbol(_) => None,
        })
    }
    pub fn last(&self) -> Option<&Dim> {
        self.0.last()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// A format together with the rounding used to round into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rounded {
    pub format: Format,
    pub rounding: Rounding,
}

impl fmt::Display for Rounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} @ {}", self.format, self.rounding)
    }
}

/// An input or parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDecl {
    pub name: String,
    pub shape: Shape,
    pub format: Format,
    /// How values are rounded into `format` (data as it is fed in, parameters after init/update).
    pub rounding: Rounding,
    pub span: Span,
}

/// How a parameter starts. Fans: `fan_in` = product of all axes but the first,
/// `fan_out` = the first axis times the product of the axes between the first and the last.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Fill(f64),
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std: f64 },
    HeNormal,
    HeUniform,
    GlorotNormal,
    GlorotUniform,
    /// A tensor from a `.safetensors`, `.npz` (by name) or `.npy` file (path relative to the model file).
    Load { path: String, tensor: Option<String> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub tensor: TensorDecl,
    pub init: Init,
}

/// Where an operand comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef {
    Input(usize),
    Param(usize),
    Node(usize),
    /// A scalar literal (shape `[]`, format fp32).
    Constant(f64),
}

/// How a dot product or reduction computes: where it rounds and in what order it adds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arith {
    /// Products are rounded to this format, or kept exact (`None`).
    pub mul: Option<Rounded>,
    /// The accumulator (within a chunk when chunked).
    pub acc: Rounded,
    /// Accumulate in chunks of this many terms, then add the chunk sums.
    pub chunk: Option<usize>,
    /// The format the chunk sums are added in (defaults to `acc`).
    pub chunk_acc: Option<Rounded>,
    /// Fused multiply-add: each step rounds `acc + a·b` once (products exact).
    pub fma: bool,
}

/// Per-layer overrides of the training formats and of the backward arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct GradFormats {
    pub weight_grad: Option<Rounded>,
    pub act_grad: Option<Rounded>,
    /// `bwd_acc`, `bwd_chunk`, `bwd_chunk_acc`: over the `train` section's `backward { }` for
    /// this layer's backward contractions (input and weight gradients) and its bias gradient.
    pub backward: BackwardOverride,
}

/// A layer's own `acc`, `chunk` and `chunk_acc` for its backward pass (`None`: the model's).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct BackwardOverride {
    pub acc: Option<Rounded>,
    pub chunk: Option<usize>,
    pub chunk_acc: Option<Rounded>,
}

impl BackwardOverride {
    pub fn is_empty(&self) -> bool {
        *self == BackwardOverride::default()
    }

    /// This layer's backward arithmetic: its own attributes over the model's `backward`.
    pub fn over(&self, model: &Arith) -> Arith {
        Arith {
            acc: self.acc.unwrap_or(model.acc),
            chunk: self.chunk.or(model.chunk),
            chunk_acc: self.chunk_acc.or(model.chunk_acc),
            ..*model
        }
    }
}

/// Padding of the two spatial axes (top/bottom = `[0]`, left/right = `[1]`, same on both sides).
pub type Pair = [usize; 2];

/// An operation with its structural attributes (axes are normalised to be non-negative).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Dense,
    Matmul,
    Conv2d { stride: Pair, padding: Pair, dilation: Pair, groups: usize },
    MaxPool { size: Pair, stride: Pair, padding: Pair },
    AvgPool { size: Pair, stride: Pair, padding: Pair },
    GlobalAvgPool,
    Relu,
    Relu6,
    /// `x ≥ 0 ? x : alpha·x`.
    LeakyRelu { alpha: f64 },
    Clip { min: f64, max: f64 },
    Pact,
    Sigmoid,
    Tanh,
    Gelu,
    Softmax { axis: usize },
    BatchNorm { eps: f64, momentum: f64 },
    LayerNorm { eps: f64 },
    Add,
    Mul,
    Flatten,
    Reshape,
    Transpose { perm: Vec<usize> },
    Concat { axis: usize },
    Quantize,
    Dequantize,
    /// `expr : FORMAT` applied to a name or constant.
    Cast,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Dense => "dense",
            Op::Matmul => "matmul",
            Op::Conv2d { .. } => "conv2d",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Clip { .. } => "clip",
            Op::Pact => "pact",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Gelu => "gelu",
            Op::Softmax { .. } => "softmax",
            Op::BatchNorm { .. } => "batchnorm",
            Op::LayerNorm { .. } => "layernorm",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Flatten => "flatten",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Quantize => "quantize",
            Op::Dequantize => "dequantize",
            Op::Cast => "cast",
        }
    }
}

/// One operation of the computation.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueRef>,
    /// The result's shape (`reshape`'s target shape is this).
    pub shape: Shape,
    /// The result's format and the rounding into it.
    pub format: Format,
    pub rounding: Rounding,
    /// Arithmetic of dot products (dense, matmul, conv2d) and reductions; `None` for the rest.
    pub arith: Option<Arith>,
    pub grads: GradFormats,
    /// The `let` name when this node is the whole right-hand side of a binding.
    pub binding: Option<String>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    SoftmaxCrossEntropy,
    Mse,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd { lr: f64, momentum: f64, weight_decay: f64, nesterov: bool },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply the rate by `gamma` every `every` epochs.
    Step { every: usize, gamma: f64 },
    /// Cosine decay to zero over the epochs.
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossScale {
    None,
    Static(f64),
    /// Start at `init`; multiply by `growth` after `interval` steps without overflow; multiply
    /// by `backoff` and skip the step on overflow.
    Dynamic { init: f64, growth: f64, backoff: f64, interval: usize },
}

/// Formats of the training tensors (defaults: fp32, nearest).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainFormats {
    pub weight_grad: Rounded,
    pub act_grad: Rounded,
    pub update: Rounded,
    pub master: Rounded,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    pub loss: Loss,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub formats: TrainFormats,
    /// Arithmetic of the backward dot products.
    pub backward: Arith,
    pub loss_scale: LossScale,
    pub span: Span,
}

/// A checked model.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedModule {
    pub name: String,
    pub inputs: Vec<TensorDecl>,
    pub params: Vec<ParamDecl>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, ValueRef)>,
    /// The model's default arithmetic (already applied to every node).
    pub defaults: Arith,
    pub training: Option<Training>,
}

/// `n` with thousands separators (`26,122`), as summaries and reports print counts.
pub fn with_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(bits: f64) -> String {
    format!("{:.1} KiB", bits / 8.0 / 1024.0)
}

impl CheckedModule {
    /// The number of parameter elements.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().filter_map(|p| p.tensor.shape.known_elements()).fold(0usize, usize::saturating_add)
    }

    /// Storage of the parameters in bits, in their formats (shared scales included).
    pub fn parameter_bits(&self) -> f64 {
        self.params
            .iter()
            .filter_map(|p| p.tensor.shape.known_elements().map(|n| n as f64 * p.tensor.format.bits_per_element()))
            .sum()
    }

    /// One line: `model mlp — 3 layers, 52,650 parameters (...), ...`.
    pub fn summary(&self) -> String {
        let layers = self.nodes.iter().filter(|n| matches!(n.op, Op::Dense | Op::Conv2d { .. })).count();
        let params = self.parameter_count();
        let mut s = format!(
            "model {} — {} layer{}, {} parameters ({}; {} in fp32), {} ops",
            self.name,
            layers,
            if layers == 1 { "" } else { "s" },
            with_thousands(params as u64),
            kib(self.parameter_bits()),
            kib(params as f64 * 32.0),
            self.nodes.len()
        );
        if let Some(t) = &self.training {
            let opt = match t.optimizer {
                Optimizer::Sgd { .. } => "sgd",
                Optimizer::Adam { .. } => "adam",
            };
            s.push_str(&format!(", training: {opt}, {} epochs, batch {}", t.epochs, t.batch));
        }
        s
    }
}

impl fmt::Display for ValueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Input(i) => write!(f, "in{i}"),
            ValueRef::Param(i) => write!(f, "p{i}"),
            ValueRef::Node(i) => write!(f, "%{i}"),
            ValueRef::Constant(x) => write!(f, "{x:?}"),
        }
    }
}

impl fmt::Display for Arith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mul {
            Some(m) => write!(f, "mul={m}")?,
            None => f.write_str("mul=exact")?,
        }
        write!(f, ", acc={}", self.acc)?;
        if let Some(c) = self.chunk {
            write!(f, ", chunk={c}")?;
        }
        if let Some(c) = &self.chunk_acc {
            write!(f, ", chunk_acc={c}")?;
        }
        if self.fma {
            f.write_str(", fma")?;
        }
        Ok(())
    }
}

/// A readable listing of the checked model: one line per tensor and per node.
impl fmt::Display for CheckedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model {}", self.name)?;
        for (i, t) in self.inputs.iter().enumerate() {
            writeln!(f, "  in{i} {}: {} {} @ {}", t.name, t.shape, t.format, t.rounding)?;
        }
        for (i, p) in self.params.iter().enumerate() {
            let t = &p.tensor;
            writeln!(f, "  p{i} {}: {} {} @ {} = {:?}", t.name, t.shape, t.format, t.rounding, p.init)?;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let args: Vec<String> = n.inputs.iter().map(|r| r.to_string()).collect();
            write!(f, "  %{i} = {:?}({}) : {} {} @ {}", n.op, args.join(", "), n.shape, n.format, n.rounding)?;
            if let Some(a) = &n.arith {
                write!(f, " {{{a}}}")?;
            }
            if let Some(g) = &n.grads.weight_grad {
                write!(f, " weight_grad={g}")?;
            }
            if let Some(g) = &n.grads.act_grad {
                write!(f, " act_grad={g}")?;
            }
            let b = &n.grads.backward;
            if let Some(a) = &b.acc {
                write!(f, " bwd_acc={a}")?;
            }
            if let Some(c) = &b.chunk {
                write!(f, " bwd_chunk={c}")?;
            }
            if let Some(a) = &b.chunk_acc {
                write!(f, " bwd_chunk_acc={a}")?;
            }
            if let Some(b) = &n.binding {
                write!(f, "  // {b}")?;
            }
            writeln!(f)?;
        }
        for (name, r) in &self.outputs {
            writeln!(f, "  output {name} = {r}")?;
        }
        if let Some(t) = &self.training {
            writeln!(f, "  train {:?} {:?} {:?} epochs={} batch={} seed={}", t.loss, t.optimizer, t.schedule, t.epochs, t.batch, t.seed)?;
            let fm = &t.formats;
            writeln!(f, "    formats weight_grad={} act_grad={} update={} master={}", fm.weight_grad, fm.act_grad, fm.update, fm.master)?;
            writeln!(f, "    backward {{{}}} loss_scale={:?}", t.backward, t.loss_scale)?;
        }
        Ok(())
    }
}
