//! The Cranelift JIT backend: compiles a [`Program`]'s kernel-dialect function to native code
//! and runs it, computing the same bits as the reference interpreter (spec/ir.md, "kernel").
//!
//! Design:
//! - **Compilation** ([`Jit::compile`]): each `kernel.generate` of the function body becomes
//!   one native function over a range of output rows (`codegen`); the other top-level ops
//!   (`nn.param`/`nn.constant` from `Program::constants`, `kernel.dim` and index arithmetic,
//!   `q.quantize` to scaled formats through `Format::quantize`, `func.return`) become
//!   [`Step`]s the driver executes. Stochastic roundings draw from `RandomStream(seed,
//!   stream)` with the word hash emitted inline; the streams' keys for the run's seed are
//!   inputs of each kernel (in its `env`), so one compiled program serves every seed.
//! - **Cache**: [`Backend::run`] keeps the most recently compiled programs, keyed by the
//!   program's fingerprint (a hash of its printed module, taken once when it is prepared),
//!   so running a program again (a training step, the next batch) neither compiles nor
//!   prints it again.
//! - **Rounding** (`round`): every rounding is inline integer code specialised to its
//!   format and mode; exact sums, quotients and roots are carried as odd-rounded f64 values,
//!   which round like the exact value (the proof is in `round`'s doc). Binary32 with
//!   `nearest` uses the hardware's own correctly rounded operations (add, mul, fma, div,
//!   sqrt), which is the same rounding by IEEE 754.
//! - **Lanes** (`codegen`): the innermost loop computes four output elements per pass, with
//!   one accumulator each in a single loop over `k`, so the processor overlaps their
//!   dependency chains; each element's additions keep their order.
//! - **Contractions** (`contract`): a generate that accumulates products (dense layers,
//!   convolutions, chunked or not) whose accumulator the vector code can round runs as
//!   `f32x4` code over four adjacent outputs of the last axis, with one operand packed into
//!   `[k][j]` order once per call and a block of rows × vectors per inner loop; each output's
//!   additions keep their order, so the bits are the scalar code's.
//! - **Element-wise kernels** (`pointwise`): a generate without loops whose ops the vector
//!   code rounds exactly (binary32 `nearest` arithmetic; `nearest` min, max, round and
//!   products exact in binary32 into narrower float formats) runs as `f32x4` code along the
//!   last axis, a vector with a lane outside those conditions through the scalar code; the
//!   same code computes a contraction's epilogue (its element's ops after the accumulation).
//! - **Threads** ([`Jit::threads`], `QC_THREADS`): a kernel's leading rows are split into
//!   contiguous ranges, a few per thread, which the calling thread and the process's worker
//!   threads (`qc_runtime::parallel`) take one at a time. Elements of a `kernel.generate` are
//!   independent
//!   and draws are addressed by counter, so every thread count gives identical bits.
//! - **Transcendentals** (`exp`, `tanh`, `sigmoid`, `gelu`) call the libm crate's f64
//!   functions, the reference values spec/ir.md defines, and round the result inline.

mod codegen;
mod contract;
mod exact_call;
mod pointwise;
mod round;
mod vector_round;
mod window;

use super::{Backend, ExecError, Program};
use crate::ir::{Attr, Dim, OpId, Type, ValueId};
use codegen::{Capture, Helpers, KernelFn};
use cranelift_codegen::ir::{types, AbiParam};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module as _};
use qc_runtime::numerics::{Format, RandomStream, Rounding};
use qc_runtime::tensor::Tensor;
use std::collections::HashMap;

/// The JIT backend.
pub struct Jit {
    /// Worker threads per kernel (results do not depend on it).
    pub threads: usize,
    /// Compiled programs by the hash of their printed module, most recent last.
    cache: std::cell::RefCell<Vec<(u64, std::rc::Rc<Compiled>)>>,
}

/// How many compiled programs [`Jit`] keeps.
const CACHED_PROGRAMS: usize = 8;

impl Default for Jit {
    /// `QC_THREADS` if set to a positive number, else every available core.
    fn default() -> Self {
        Jit::with_threads(qc_runtime::parallel::threads())
    }
}

impl Jit {
    pub fn with_threads(threads: usize) -> Jit {
        Jit { threads: threads.max(1), cache: Default::default() }
    }

    /// The compiled form of `program`, from the cache or compiled now. The key is the
    /// program's fingerprint, the hash of its printed module (which shows everything the code
    /// depends on; constants and the seed are read at run time).
    fn compiled(&self, program: &Program) -> Result<std::rc::Rc<Compiled>, ExecError> {
        let key = program.fingerprint();
        let mut cache = self.cache.borrow_mut();
        if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
            let entry = cache.remove(i);
            let compiled = entry.1.clone();
            cache.push(entry);
            return Ok(compiled);
        }
        let compiled = std::rc::Rc::new(self.compile(program)?);
        if cache.len() == CACHED_PROGRAMS {
            cache.remove(0);
        }
        cache.push((key, compiled.clone()));
        Ok(compiled)
    }

    /// Compiles `program` to native code.
    pub fn compile(&self, program: &Program) -> Result<Compiled, ExecError> {
        compile(program, self.threads)
    }
}

impl Backend for Jit {
    fn run(&self, program: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        self.compiled(program)?.run(program, inputs)
    }
}

/// A value of the top level while running: an input or constant in place (not copied), a
/// kernel's result, or an index.
enum Slot<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
    Index(u64),
}

impl Slot<'_> {
    fn tensor(&self) -> Option<&Tensor> {
        match self {
            Slot::Borrowed(t) => Some(t),
            Slot::Owned(t) => Some(t),
            Slot::Index(_) => None,
        }
    }
}

/// One top-level op, as the driver runs it.
enum Step {
    /// A function argument or materialised constant, already in place.
    Constant(ValueId),
    Dim { result: ValueId, tensor: ValueId, axis: usize },
    Index { result: ValueId, value: u64 },
    IndexOp { result: ValueId, name: &'static str, a: ValueId, b: ValueId },
    Generate { result: ValueId, kernel: usize, sizes: Vec<ValueId> },
    Quantize { result: ValueId, input: ValueId, format: Format, rounding: Rounding, stream: u64 },
    Return(Vec<ValueId>),
}

struct Kernel {
    f: KernelFn,
    /// The native entry point `fn(env, lo, hi)`.
    code: unsafe extern "C" fn(*const u64, u64, u64),
    /// The vector contraction's packing function `fn(env, lo, hi)` over the columns
    /// `[lo, hi)` (`contract::Pack`), run for every column before `code`.
    pack: Option<unsafe extern "C" fn(*const u64, u64, u64)>,
    /// Scratch buffers for the packing function, kept between runs: it writes every float
    /// but the padding, which stays zero from the buffer's allocation (a run that finds the
    /// pool in use by another allocates its own).
    scratch_pool: std::sync::Mutex<Vec<Vec<f32>>>,
}

/// A program compiled to native code, ready to run on inputs.
pub struct Compiled {
    // Owns the code the kernels point into.
    _module: JITModule,
    kernels: Vec<Kernel>,
    steps: Vec<Step>,
    args: Vec<ValueId>,
    threads: usize,
    /// How many kernels are element-wise vector code.
    pointwise_kernels: usize,
    /// How many contractions compute their epilogue as element-wise vector code.
    vector_epilogues: usize,
    /// How many contractions read their row operand through an affine window (`window`).
    window_kernels: usize,
}

extern "C" fn libm_exp(x: f64) -> f64 {
    libm::exp(x)
}
extern "C" fn libm_tanh(x: f64) -> f64 {
    libm::tanh(x)
}
/// `1 / (1 + exp(−x))` in f64 (spec/ir.md, `kernel.sigmoid`).
extern "C" fn libm_sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + libm::exp(-x))
}
/// `0.5·x·(1 + erf(x/√2))` in f64, left to right (spec/ir.md, `kernel.gelu`).
extern "C" fn libm_gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

fn new_module() -> Result<JITModule, ExecError> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(|e| ExecError::new(format!("cranelift setting {k}: {e}")));
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    // Cranelift checks every generated function in debug builds (the tests); release builds
    // skip it to compile faster.
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa = cranelift_native::builder()
        .map_err(|e| ExecError::new(format!("the JIT does not support this machine: {e}")))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| ExecError::new(format!("the JIT does not support this machine: {e}")))?;
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    builder.symbol("qc_libm_exp", libm_exp as *const u8);
    builder.symbol("qc_libm_tanh", libm_tanh as *const u8);
    builder.symbol("qc_libm_sigmoid", libm_sigmoid as *const u8);
    builder.symbol("qc_libm_gelu", libm_gelu as *const u8);
    builder.symbol("qc_round_exact", exact_call::qc_round_exact as *const u8);
    Ok(JITModule::new(builder))
}

fn compile(program: &Program, threads: usize) -> Result<Compiled, ExecError> {
    let ir = &program.module;
    let func = &ir.funcs[0];
    let body = ir.entry_block(func.body).ok_or_else(|| ExecError::new("the function has no body"))?;
    let mut module = new_module()?;
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::F64));
    sig.returns.push(AbiParam::new(types::F64));
    let mut declare = |name: &str| module.declare_function(name, Linkage::Import, &sig).map_err(|e| ExecError::new(e.to_string()));
    let (exp, tanh, sigmoid, gelu) = (declare("qc_libm_exp")?, declare("qc_libm_tanh")?, declare("qc_libm_sigmoid")?, declare("qc_libm_gelu")?);
    let mut exact_sig = module.make_signature();
    for ty in [types::I64, types::F64, types::F64, types::I64, types::I64, types::F64, types::F64, types::I64, types::I64, types::I64] {
        exact_sig.params.push(AbiParam::new(ty));
    }
    exact_sig.returns.push(AbiParam::new(types::F32));
    let exact = module.declare_function("qc_round_exact", Linkage::Import, &exact_sig).map_err(|e| ExecError::new(e.to_string()))?;
    let helpers = Helpers { exp, tanh, sigmoid, gelu, exact };

    let mut fctx = FunctionBuilderContext::new();
    let mut kernel_fns = Vec::new();
    let mut pointwise_kernels = 0;
    let mut vector_epilogues = 0;
    let mut window_kernels = 0;
    let fma = pointwise::has_fma(&module);
    let mut steps = Vec::new();
    for &op in &ir.blocks[body].ops {
        let o = &ir.ops[op];
        let result = o.results.first().copied();
        let step = match o.name() {
            "nn.param" | "nn.constant" => Step::Constant(result.unwrap()),
            "kernel.dim" => Step::Dim { result: result.unwrap(), tensor: o.operands[0], axis: int_attr(ir, op, "axis")? as usize },
            "kernel.index" => Step::Index { result: result.unwrap(), value: int_attr(ir, op, "value")? as u64 },
            n @ ("kernel.index_add" | "kernel.index_mul" | "kernel.index_min" | "kernel.index_max" | "kernel.index_sub" | "kernel.index_div" | "kernel.index_rem" | "kernel.index_lt") => {
                Step::IndexOp { result: result.unwrap(), name: n, a: o.operands[0], b: o.operands[1] }
            }
            "kernel.generate" => {
                let name = format!("qc_kernel_{}", kernel_fns.len());
                let f = codegen::compile_generate(&mut module, &mut fctx, ir, op, helpers, &name)
                    .map_err(|e| ExecError::new(format!("JIT: {e}")))?;
                kernel_fns.push(f);
                pointwise_kernels += usize::from(pointwise::plan(ir, op, fma).is_some());
                let contraction = contract::plan(ir, op, fma);
                vector_epilogues += usize::from(contraction.as_ref().is_some_and(|p| p.has_vector_epilogue()));
                window_kernels += usize::from(contraction.as_ref().is_some_and(|p| p.has_window()));
                Step::Generate { result: result.unwrap(), kernel: kernel_fns.len() - 1, sizes: o.operands.clone() }
            }
            "q.quantize" if o.operands.len() == 1 => {
                let format = tensor_format(ir, result.unwrap())?;
                let rounding = match o.attr("round") {
                    Some(Attr::Rounding(r)) => *r,
                    _ => Rounding::Nearest,
                };
                let stream = o.attr("stream").and_then(Attr::as_int).unwrap_or(0) as u64;
                Step::Quantize { result: result.unwrap(), input: o.operands[0], format, rounding, stream }
            }
            "func.return" => Step::Return(o.operands.clone()),
            other => return Err(ExecError::new(format!("the JIT does not run `{other}` at the top level yet"))),
        };
        steps.push(step);
    }
    module.finalize_definitions().map_err(|e| ExecError::new(format!("JIT: {e}")))?;
    let kernels = kernel_fns
        .into_iter()
        .map(|f| {
            let ptr = module.get_finalized_function(f.id);
            // SAFETY: the function was defined with the signature (i64, i64, i64) -> ().
            let code = unsafe { std::mem::transmute::<*const u8, unsafe extern "C" fn(*const u64, u64, u64)>(ptr) };
            let pack = f.pack.as_ref().map(|p| {
                let ptr = module.get_finalized_function(p.id);
                // SAFETY: as above.
                unsafe { std::mem::transmute::<*const u8, unsafe extern "C" fn(*const u64, u64, u64)>(ptr) }
            });
            Kernel { f, code, pack, scratch_pool: std::sync::Mutex::new(Vec::new()) }
        })
        .collect();
    let args = ir.blocks[body].args.clone();
    Ok(Compiled { _module: module, kernels, steps, args, threads: threads.max(1), pointwise_kernels, vector_epilogues, window_kernels })
}

fn int_attr(ir: &crate::ir::Module, op: OpId, name: &str) -> Result<i64, ExecError> {
    ir.ops[op].attr(name).and_then(Attr::as_int).ok_or_else(|| ExecError::new(format!("`{}` needs `{name}`", ir.ops[op].name())))
}

fn tensor_format(ir: &crate::ir::Module, v: ValueId) -> Result<Format, ExecError> {
    ir.ty(v).as_tensor().map(|t| t.format).ok_or_else(|| ExecError::new("a tensor value"))
}

/// How many ranges of rows a parallel kernel (or of columns a packing function) is cut into
/// per thread.
const RANGES_PER_THREAD: usize = 4;

/// From this many floats of scratch a packing function runs on every thread (measured on
/// the digits MLP's training step: 4096 slowed its 128 × 32 packs by a fifth, 16384 ones
/// ran 12–15% faster).
const PARALLEL_PACK: usize = 8192;

/// Below this many estimated operations a kernel runs on the calling thread (handing out
/// ranges costs a microsecond or two; measured on the digits MLP and CNN training steps:
/// 15k beats 50k and 200k by up to 5%).
const PARALLEL_WORK: f64 = 15_000.0;

impl Compiled {
    /// How many of the program's kernels run as vector contraction code (the rest is scalar).
    pub fn vectorised_kernels(&self) -> usize {
        self.kernels.iter().filter(|k| k.pack.is_some()).count()
    }

    /// How many of the program's kernels run as element-wise vector code (`pointwise`).
    pub fn pointwise_kernels(&self) -> usize {
        self.pointwise_kernels
    }

    /// How many of the program's contractions compute the rest of their element after the
    /// accumulation (bias, activation, the result's rounding) as element-wise vector code.
    pub fn vector_epilogues(&self) -> usize {
        self.vector_epilogues
    }

    /// How many of the program's contractions read their row operand through an affine
    /// window (a base address per row, a range check per `k`) instead of its index arithmetic.
    pub fn window_kernels(&self) -> usize {
        self.window_kernels
    }

    /// Runs the compiled function on `inputs` (`program` must be the one compiled: its
    /// constants are read here).
    pub fn run(&self, program: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        let ir = &program.module;
        if inputs.len() != self.args.len() {
            return Err(ExecError::new(format!("`{}` takes {} input(s), {} given", program.name(), self.args.len(), inputs.len())));
        }
        let mut slots: HashMap<ValueId, Slot> = HashMap::new();
        for (i, (&arg, t)) in self.args.iter().zip(inputs).enumerate() {
            let ty = ir.ty(arg).as_tensor().ok_or_else(|| ExecError::new("a function argument is a tensor"))?;
            let fits = ty.rank() == t.rank() && ty.dims.iter().zip(t.shape()).all(|(d, &n)| matches!(d, Dim::Dynamic) || *d == Dim::Fixed(n as u64));
            if !fits {
                return Err(ExecError::new(format!("input {i} has shape {:?}, the function takes {}", t.shape(), ty)));
            }
            slots.insert(arg, Slot::Borrowed(t));
        }
        fn tensor<'s>(slots: &'s HashMap<ValueId, Slot<'_>>, v: ValueId) -> Result<&'s Tensor, ExecError> {
            slots.get(&v).and_then(Slot::tensor).ok_or_else(|| ExecError::new("a tensor operand is missing"))
        }
        let index = |slots: &HashMap<ValueId, Slot>, v: ValueId| -> Result<u64, ExecError> {
            match slots.get(&v) {
                Some(Slot::Index(i)) => Ok(*i),
                _ => Err(ExecError::new("an index operand is missing")),
            }
        };
        for step in &self.steps {
            match step {
                Step::Constant(v) => {
                    let t = program.constants.get(v).ok_or_else(|| ExecError::new("a parameter was not materialised"))?;
                    slots.insert(*v, Slot::Borrowed(t));
                }
                Step::Dim { result, tensor: t, axis } => {
                    let t = tensor(&slots, *t)?;
                    slots.insert(*result, Slot::Index(t.shape()[*axis] as u64));
                }
                Step::Index { result, value } => {
                    slots.insert(*result, Slot::Index(*value));
                }
                Step::IndexOp { result, name, a, b } => {
                    let (a, b) = (index(&slots, *a)?, index(&slots, *b)?);
                    let v = match *name {
                        "kernel.index_add" => a.wrapping_add(b),
                        "kernel.index_mul" => a.wrapping_mul(b),
                        "kernel.index_min" => a.min(b),
                        "kernel.index_max" => a.max(b),
                        "kernel.index_sub" => a.saturating_sub(b),
                        "kernel.index_div" => a / b.max(1),
                        "kernel.index_rem" => a % b.max(1),
                        _ => (a < b) as u64,
                    };
                    slots.insert(*result, Slot::Index(v));
                }
                Step::Generate { result, kernel, sizes } => {
                    let out = self.generate(ir, &self.kernels[*kernel], *result, sizes, &slots, program.seed)?;
                    slots.insert(*result, Slot::Owned(out));
                }
                Step::Quantize { result, input, format, rounding, stream } => {
                    let x = tensor(&slots, *input)?;
                    let mut out = vec![0f32; x.len()];
                    format
                        .quantize(x.data(), x.shape(), *rounding, &RandomStream::new(program.seed, *stream), &mut out)
                        .map_err(|e| ExecError::new(format!("quantizing to `{format}`: {e}")))?;
                    let t = Tensor::new(x.shape().to_vec(), out).map_err(|e| ExecError::new(e.to_string()))?;
                    slots.insert(*result, Slot::Owned(t));
                }
                Step::Return(values) => {
                    // A kernel's result returned once moves out; others are copied.
                    let once = |v: &ValueId| values.iter().filter(|&w| w == v).count() == 1;
                    return values
                        .iter()
                        .map(|v| match slots.remove_entry(v) {
                            Some((_, Slot::Owned(t))) if once(v) => Ok(t),
                            Some((k, slot)) => {
                                let t = slot.tensor().cloned().ok_or_else(|| ExecError::new("a result is a tensor"));
                                slots.insert(k, slot);
                                t
                            }
                            None => Err(ExecError::new("a result is missing")),
                        })
                        .collect();
                }
            }
        }
        Err(ExecError::new("the function does not return"))
    }

    fn generate(&self, ir: &crate::ir::Module, k: &Kernel, result: ValueId, sizes: &[ValueId], slots: &HashMap<ValueId, Slot>, seed: u64) -> Result<Tensor, ExecError> {
        let Type::Tensor(ty) = ir.ty(result) else { return Err(ExecError::new("a generate makes a tensor")) };
        let mut dynamic = sizes.iter();
        let mut shape = Vec::new();
        for d in &ty.dims {
            shape.push(match d {
                Dim::Fixed(n) => *n as usize,
                Dim::Dynamic => match dynamic.next().and_then(|v| slots.get(v)) {
                    Some(Slot::Index(n)) => *n as usize,
                    _ => return Err(ExecError::new("a dynamic size is missing")),
                },
            });
        }
        let count = qc_runtime::tensor::element_count(&shape).ok_or_else(|| ExecError::new("a result too large"))?;
        let mut out = vec![0f32; count];
        if count == 0 {
            return Tensor::new(shape, out).map_err(|e| ExecError::new(e.to_string()));
        }
        let mut env: Vec<u64> = vec![out.as_mut_ptr() as u64];
        env.extend(shape.iter().map(|&n| n as u64));
        // The captured tensors stay alive (and their buffers in place) in `slots`, which this
        // call borrows.
        for c in &k.f.captures {
            match c {
                Capture::Tensor(v) => {
                    let Some(t) = slots.get(v).and_then(Slot::tensor) else { return Err(ExecError::new("a captured tensor is missing")) };
                    if t.is_empty() {
                        return Err(ExecError::new("a kernel reads from an empty tensor"));
                    }
                    env.push(t.data().as_ptr() as u64);
                    env.extend(t.shape().iter().map(|&n| n as u64));
                }
                Capture::Index(v) => match slots.get(v) {
                    Some(Slot::Index(i)) => env.push(*i),
                    _ => return Err(ExecError::new("a captured index is missing")),
                },
            }
        }
        for &stream in &k.f.streams {
            let (k0, k1) = RandomStream::new(seed, stream).key();
            env.push(k0 as u64 | (k1 as u64) << 32);
        }
        // The vector contraction's packed operand, filled once before the rows run.
        let floats = k.f.pack.as_ref().map_or(0, |p| p.floats);
        let mut scratch = k.scratch_pool.try_lock().ok().and_then(|mut pool| pool.pop()).unwrap_or_else(|| vec![0f32; floats]);
        if let (Some(pack), Some(layout)) = (k.pack, k.f.pack.as_ref()) {
            if let Some(at) = layout.lane_max {
                scratch[at] = 0.0;
            }
            env.push(scratch.as_mut_ptr() as u64);
            // Ranges of columns for the threads (each writes its own columns, the k-table the
            // first, the largest magnitude by an atomic maximum).
            let columns = layout.columns;
            let ranges = if layout.floats >= PARALLEL_PACK { (self.threads * RANGES_PER_THREAD).min(columns as usize) } else { 1 };
            let env_address = env.as_ptr() as usize;
            // SAFETY: env as below; the scratch buffer holds the floats the packing writes,
            // and it and env live until every range has returned.
            qc_runtime::parallel::run_tasks(self.threads.min(ranges), ranges, &|t| {
                let (lo, hi) = (columns * t as u64 / ranges as u64, columns * (t as u64 + 1) / ranges as u64);
                unsafe { pack(env_address as *const u64, lo, hi) };
            });
        }
        let rows: u64 = shape[..k.f.split].iter().product::<usize>() as u64;
        let work = count as f64 * k.f.cost_per_element;
        let threads = if work < PARALLEL_WORK { 1 } else { self.threads.min(rows as usize).max(1) };
        let code = k.code;
        if threads == 1 {
            // SAFETY: env matches the layout the kernel was compiled for (module codegen):
            // the output buffer holds every element, captured buffers their shapes' elements.
            unsafe { code(env.as_ptr(), 0, rows) };
        } else {
            // Ranges of rows for the threads to take one at a time, several per thread so that
            // one slowed down takes fewer. Every range of rows is written by one thread only;
            // `env` and the buffers it points to live until every range has returned.
            let ranges = (threads * RANGES_PER_THREAD).min(rows as usize) as u64;
            let env = env.as_ptr() as usize;
            qc_runtime::parallel::run_tasks(threads, ranges as usize, &|t| {
                let (lo, hi) = (rows * t as u64 / ranges, rows * (t as u64 + 1) / ranges);
                // SAFETY: as above.
                unsafe { code(env as *const u64, lo, hi) };
            });
        }
        if let Ok(mut pool) = k.scratch_pool.try_lock() {
            pool.push(scratch);
        }
        Tensor::new(shape, out).map_err(|e| ExecError::new(e.to_string()))
    }
}
