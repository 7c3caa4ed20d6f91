//! Differential tests: the reference interpreter (the oracle) and the Cranelift JIT on one and
//! on two threads compute the same bits (NaN = NaN) on
//! - every example in `examples/*.qnn`, on seeded random inputs;
//! - small networks generated at random from a seed: random shapes, layers, formats per tensor
//!   and arithmetic (`mul`, `acc`, `chunk`, `chunk_acc`, `fma`, rounding), written as `.qnn`
//!   source and checked by `qc_lang::check_source` (sources the checker rejects are skipped
//!   and counted). `QC_DIFF_CASES=N` runs N networks instead of the default, `QC_DIFF_SEED=S`
//!   runs only the network of seed S (to reproduce a failure: its seed and source are printed).

mod common;

use qc_compiler::backend::interp::Interpreter;
use qc_compiler::backend::jit::Jit;
use qc_compiler::backend::program::{compile_to_kernel, input_shapes};
use qc_compiler::backend::{Backend, Program};
use qc_runtime::numerics::{RandomStream, Rounding};
use qc_runtime::tensor::Tensor;
use std::fmt::Write as _;

// ---------------------------------------------------------------- running and comparing

/// Seeded inputs for every function argument (`batch` for dynamic axes): values uniform in
/// `[-scale, scale)`, rounded to the argument's element format.
fn random_inputs(program: &Program, batch: usize, seed: u64, scale: f64) -> Vec<Tensor> {
    input_shapes(&program.module, batch)
        .into_iter()
        .enumerate()
        .map(|(i, (shape, format))| {
            let rng = RandomStream::new(seed, 1000 + i as u64);
            let n: usize = shape.iter().product();
            let raw: Vec<f32> = (0..n)
                .map(|j| {
                    ((rng.word(j as u64, 0) as f64 / 2f64.powi(32) * 2.0 - 1.0) * scale) as f32
                })
                .collect();
            let mut data = vec![0f32; n];
            format
                .quantize(&raw, &shape, Rounding::Nearest, &rng, &mut data)
                .unwrap();
            Tensor::new(shape, data).unwrap()
        })
        .collect()
}

/// Where two result lists differ (bits, with every NaN equal to every NaN), or `None`.
fn first_difference(expected: &[Tensor], found: &[Tensor]) -> Option<String> {
    if expected.len() != found.len() {
        return Some(format!(
            "{} results, expected {}",
            found.len(),
            expected.len()
        ));
    }
    for (r, (e, f)) in expected.iter().zip(found).enumerate() {
        if e.shape() != f.shape() {
            return Some(format!(
                "result {r}: shape {:?}, expected {:?}",
                f.shape(),
                e.shape()
            ));
        }
        let differ = |a: f32, b: f32| !(a.is_nan() && b.is_nan()) && a.to_bits() != b.to_bits();
        let mismatches: Vec<usize> = (0..e.data().len())
            .filter(|&i| differ(e.data()[i], f.data()[i]))
            .collect();
        if let Some(&i) = mismatches.first() {
            return Some(format!(
                "result {r}: {} of {} elements differ; first at flat index {i}: {:e} ({:#010x}), expected {:e} ({:#010x})",
                mismatches.len(),
                e.data().len(),
                f.data()[i],
                f.data()[i].to_bits(),
                e.data()[i],
                e.data()[i].to_bits()
            ));
        }
    }
    None
}

/// Runs `program` on the interpreter and on the JIT with one and two threads; `Err` says which
/// backend failed or disagreed with the interpreter, and how. `Ok` tells whether some result
/// element is finite and not zero (a comparison of only NaNs and zeros says little).
fn compare_backends(program: &Program, inputs: &[Tensor]) -> Result<bool, String> {
    let expected = Interpreter
        .run(program, inputs)
        .map_err(|e| format!("interpreter: {e}"))?;
    for threads in [1, 2] {
        let found = Jit::with_threads(threads)
            .run(program, inputs)
            .map_err(|e| format!("JIT ({threads} threads): {e}"))?;
        if let Some(d) = first_difference(&expected, &found) {
            return Err(format!("JIT ({threads} threads) vs interpreter: {d}"));
        }
    }
    Ok(expected
        .iter()
        .any(|t| t.data().iter().any(|x| x.is_finite() && *x != 0.0)))
}

// ---------------------------------------------------------------- the examples

#[test]
fn every_example_gives_the_same_bits_on_the_interpreter_and_the_jit() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in common::examples() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let (model, diagnostics) = qc_lang::check_source(&source);
        let model = model.unwrap_or_else(|| panic!("{name}: {diagnostics:?}"));
        let module =
            compile_to_kernel(&model, "optimize").unwrap_or_else(|e| panic!("{name}: {e}"));
        let program = Program::prepare(module, 7).unwrap_or_else(|e| panic!("{name}: {e}"));
        // ResNet-20 costs ~41 M multiply-accumulates per image on the (slow) interpreter.
        let batch = if name.starts_with("resnet") { 1 } else { 3 };
        let inputs = random_inputs(&program, batch, 1, 2.0);
        match compare_backends(&program, &inputs) {
            Ok(informative) => assert!(informative, "{name}: only NaNs and zeros"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        ran += 1;
    }
    assert!(ran >= 7, "only {ran} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------- random networks

/// SplitMix64: the generator's own source of choices (the test must not depend on how the
/// runtime's generator evolves).
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len() - 1)]
    }
    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

/// Formats a tensor may be stored in.
const TENSOR_FORMATS: [&str; 11] = [
    "fp32",
    "fp16",
    "bf16",
    "e4m3",
    "e5m2",
    "fp<6,5>",
    "fp<6,5,nosub>",
    "int8",
    "fixed<8,8>",
    "mxfp8_e4m3",
    "ternary",
];
/// Formats arithmetic may round to (element-wise ones).
const ARITH_FORMATS: [&str; 8] = [
    "fp32",
    "fp16",
    "bf16",
    "e4m3",
    "e5m2",
    "fp<6,5>",
    "fp<6,5,nosub>",
    "fixed<8,8>",
];
/// MX blocks are 32 elements along the last axis.
const MX_BLOCK: usize = 32;

/// A tensor of the network being generated: its name and its shape after the batch axis
/// (`[H, W, C]` images or `[N]` vectors).
#[derive(Clone)]
struct Activation {
    name: String,
    shape: Vec<usize>,
}

/// The state of one generated source.
struct Generator {
    choices: Choices,
    params: Vec<String>,
    lets: Vec<String>,
    history: Vec<Activation>,
}

impl Generator {
    fn rounding(&mut self) -> String {
        match self.choices.range(0, 3) {
            0 => "nearest".into(),
            1 => "toward-zero".into(),
            2 => format!("stochastic:{}", self.choices.range(4, 13)),
            _ => "stochastic".into(),
        }
    }

    /// A storage format for a tensor whose last axis is `last`.
    fn tensor_format(&mut self, last: usize) -> &'static str {
        loop {
            let f = self.choices.pick(&TENSOR_FORMATS);
            if f != "mxfp8_e4m3" || last.is_multiple_of(MX_BLOCK) {
                return f;
            }
        }
    }

    /// An arithmetic format, sometimes with its own rounding (`F @ R`).
    fn arith_format(&mut self) -> String {
        let f = self.choices.pick(&ARITH_FORMATS);
        if self.choices.percent(25) {
            format!("{f} @ {}", self.rounding())
        } else {
            f.to_string()
        }
    }

    /// The `with { ... }` of a dot product over `k` terms (possibly empty).
    fn dot_attrs(&mut self, k: usize) -> String {
        let mut attrs = Vec::new();
        if self.choices.percent(15) {
            attrs.push("fma = true".to_string());
        } else if self.choices.percent(40) {
            let mul = if self.choices.percent(30) {
                "exact".to_string()
            } else {
                self.arith_format()
            };
            attrs.push(format!("mul = {mul}"));
        }
        if self.choices.percent(75) {
            attrs.push(format!("acc = {}", self.arith_format()));
        }
        if k > 1 && self.choices.percent(40) {
            attrs.push(format!("chunk = {}", self.choices.range(1, k - 1)));
            if self.choices.percent(60) {
                attrs.push(format!("chunk_acc = {}", self.arith_format()));
            }
        }
        if self.choices.percent(40) {
            attrs.push(format!("rounding = {}", self.rounding()));
        }
        with_block(&attrs)
    }

    /// The `with { ... }` of a reduction (possibly empty).
    fn reduce_attrs(&mut self) -> String {
        let mut attrs = Vec::new();
        if self.choices.percent(70) {
            attrs.push(format!("acc = {}", self.arith_format()));
        }
        if self.choices.percent(40) {
            attrs.push(format!("rounding = {}", self.rounding()));
        }
        with_block(&attrs)
    }

    /// The `with { rounding = R }` of an element-wise op (possibly empty).
    fn elementwise_attrs(&mut self) -> String {
        if self.choices.percent(30) {
            with_block(&[format!("rounding = {}", self.rounding())])
        } else {
            String::new()
        }
    }

    /// A `: F` cast of a result whose last axis is `last` (possibly none).
    fn cast(&mut self, last: usize) -> String {
        if self.choices.percent(65) {
            let f = self.tensor_format(last);
            if self.choices.percent(20) {
                format!(" : {f} @ {}", self.rounding())
            } else {
                format!(" : {f}")
            }
        } else {
            String::new()
        }
    }

    fn param(&mut self, shape: &[usize]) -> String {
        let name = format!("p{}", self.params.len());
        let format = self.tensor_format(*shape.last().unwrap());
        let init = self.choices.pick(&[
            "he_normal",
            "glorot_uniform",
            "uniform(-1, 1)",
            "normal(std = 2)",
            "ones",
        ]);
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        self.params.push(format!(
            "  param {name}: [{}] {format} = {init};",
            dims.join(", ")
        ));
        name
    }

    /// Appends `let aN = EXPR;` for a call `call` (without attributes) of result `shape`.
    fn bind(&mut self, call: String, attrs: String, shape: Vec<usize>) -> Activation {
        let name = format!("a{}", self.lets.len());
        let cast = self.cast(*shape.last().unwrap());
        self.lets
            .push(format!("  let {name} = {call}{attrs}{cast};"));
        let a = Activation { name, shape };
        self.history.push(a.clone());
        a
    }

    fn elementwise(&mut self, x: &Activation) -> Activation {
        let call = match self.choices.range(0, 5) {
            0 => format!("relu({})", x.name),
            1 => {
                let lo = self.choices.pick(&["-1", "-0.5", "0", "-3"]);
                let hi = self.choices.pick(&["0.75", "1", "2", "6"]);
                format!("clip({}, min = {lo}, max = {hi})", x.name)
            }
            2 => format!("sigmoid({})", x.name),
            3 => format!("tanh({})", x.name),
            _ => format!("gelu({})", x.name),
        };
        let attrs = self.elementwise_attrs();
        self.bind(call, attrs, x.shape.clone())
    }

    /// `add(x, y)` with `y` an earlier tensor of the same shape, a per-channel parameter or a
    /// scalar constant.
    fn add(&mut self, x: &Activation) -> Activation {
        let same: Vec<String> = self
            .history
            .iter()
            .filter(|a| a.shape == x.shape && a.name != x.name)
            .map(|a| a.name.clone())
            .collect();
        let call = if !same.is_empty() && self.choices.percent(60) {
            let other = self
                .choices
                .pick(&same.iter().map(String::as_str).collect::<Vec<_>>())
                .to_string();
            if self.choices.percent(50) {
                format!("add({}, {other})", x.name)
            } else {
                format!("add({other}, {})", x.name)
            }
        } else {
            let other = if self.choices.percent(50) {
                self.param(&[*x.shape.last().unwrap()])
            } else {
                self.choices.pick(&["0.5", "-1.25", "3"]).to_string()
            };
            // Either order: the broadcast operand first or second.
            if self.choices.percent(50) {
                format!("add({}, {other})", x.name)
            } else {
                format!("add({other}, {})", x.name)
            }
        };
        let attrs = self.elementwise_attrs();
        self.bind(call, attrs, x.shape.clone())
    }

    /// Binds a reduction `call` with its attributes and cast.
    fn bind_reduction(&mut self, call: String, shape: Vec<usize>) -> Activation {
        let attrs = self.reduce_attrs();
        self.bind(call, attrs, shape)
    }

    fn norm(&mut self, x: &Activation) -> Activation {
        let c = *x.shape.last().unwrap();
        let (g, b) = (self.param(&[c]), self.param(&[c]));
        let op = self.choices.pick(&["batchnorm", "layernorm"]);
        self.bind_reduction(format!("{op}({}, {g}, {b})", x.name), x.shape.clone())
    }

    fn softmax(&mut self, x: &Activation) -> Activation {
        self.bind_reduction(format!("softmax({})", x.name), x.shape.clone())
    }

    fn dense(&mut self, x: &Activation) -> Activation {
        let k = x.shape[0];
        let n = if self.choices.percent(15) {
            MX_BLOCK
        } else {
            self.choices.range(1, 24)
        };
        let w = self.param(&[n, k]);
        let bias = if self.choices.percent(50) {
            format!(", {}", self.param(&[n]))
        } else {
            String::new()
        };
        let attrs = self.dot_attrs(k);
        self.bind(format!("dense({}, {w}{bias})", x.name), attrs, vec![n])
    }

    fn conv2d(&mut self, x: &Activation) -> Activation {
        let [h, w, c] = [x.shape[0], x.shape[1], x.shape[2]];
        let o = self.choices.range(1, 8);
        let groups = if c.is_multiple_of(2) && o.is_multiple_of(2) && self.choices.percent(25) {
            2
        } else {
            1
        };
        let kernel = self.choices.range(1, 3.min(h).min(w));
        let stride = if self.choices.percent(25) { 2 } else { 1 };
        let dilation = if kernel > 1 && 2 * (kernel - 1) < h.min(w) && self.choices.percent(15) {
            2
        } else {
            1
        };
        let padding = match self.choices.range(0, 2) {
            0 => 0,
            1 if kernel % 2 == 1 => dilation * (kernel - 1) / 2,
            _ => 1,
        };
        let out = |n: usize| (n + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
        let weights = self.param(&[o, kernel, kernel, c / groups]);
        let bias = if self.choices.percent(50) {
            format!(", {}", self.param(&[o]))
        } else {
            String::new()
        };
        let attrs = self.dot_attrs(kernel * kernel * c / groups);
        let call = format!(
            "conv2d({}, {weights}{bias}, stride = {stride}, padding = {padding}, dilation = {dilation}, groups = {groups})",
            x.name
        );
        self.bind(call, attrs, vec![out(h), out(w), o])
    }

    fn pool(&mut self, x: &Activation) -> Activation {
        let [h, w, c] = [x.shape[0], x.shape[1], x.shape[2]];
        let size = self.choices.range(1, 3.min(h).min(w));
        let stride = self.choices.range(1, size);
        let padding = if size > 1 && self.choices.percent(30) {
            1
        } else {
            0
        };
        let out = |n: usize| (n + 2 * padding - size) / stride + 1;
        let op = self.choices.pick(&["max_pool", "avg_pool"]);
        let call = format!(
            "{op}({}, size = {size}, stride = {stride}, padding = {padding})",
            x.name
        );
        if op == "avg_pool" {
            self.bind_reduction(call, vec![out(h), out(w), c])
        } else {
            let attrs = self.elementwise_attrs();
            self.bind(call, attrs, vec![out(h), out(w), c])
        }
    }

    fn flatten(&mut self, x: &Activation) -> Activation {
        let attrs = self.elementwise_attrs();
        self.bind(
            format!("flatten({})", x.name),
            attrs,
            vec![x.shape.iter().product()],
        )
    }
}

fn with_block(attrs: &[String]) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        format!(" with {{ {} }}", attrs.join(", "))
    }
}

/// The `.qnn` source of the random network of `seed`.
fn random_network(seed: u64) -> String {
    let mut g = Generator {
        choices: Choices(seed),
        params: Vec::new(),
        lets: Vec::new(),
        history: Vec::new(),
    };
    let mut defaults = Vec::new();
    if g.choices.percent(30) {
        defaults.push(format!("mul = {}", g.arith_format()));
    }
    if g.choices.percent(40) {
        defaults.push(format!("acc = {}", g.arith_format()));
    }
    if g.choices.percent(40) {
        defaults.push(format!("rounding = {}", g.rounding()));
    }
    let image = g.choices.percent(50);
    let input_shape = if image {
        let c = if g.choices.percent(10) {
            MX_BLOCK
        } else {
            g.choices.range(1, 6)
        };
        vec![g.choices.range(2, 7), g.choices.range(2, 7), c]
    } else if g.choices.percent(15) {
        vec![MX_BLOCK]
    } else {
        vec![g.choices.range(1, 40)]
    };
    let input_format = g.tensor_format(*input_shape.last().unwrap());
    let dims: Vec<String> = input_shape.iter().map(|d| d.to_string()).collect();
    let input_decl = format!("  input x: [B, {}] {input_format};", dims.join(", "));
    let mut x = Activation {
        name: "x".into(),
        shape: input_shape,
    };
    g.history.push(x.clone());
    let layers = g.choices.range(2, 7);
    for _ in 0..layers {
        x = match (x.shape.len(), g.choices.range(0, 9)) {
            (3, 0..=2) => g.conv2d(&x),
            (3, 3) => g.pool(&x),
            (3, 4) => g.flatten(&x),
            (1, 0..=3) => g.dense(&x),
            (_, 5) => g.add(&x),
            (_, 6) => g.norm(&x),
            (_, 7) if g.choices.percent(50) => g.softmax(&x),
            _ => g.elementwise(&x),
        };
    }
    let mut source = String::new();
    writeln!(source, "// Random network of seed {seed}.").unwrap();
    writeln!(source, "model random_{seed} {{").unwrap();
    if !defaults.is_empty() {
        writeln!(source, "  defaults {{ {}; }}", defaults.join("; ")).unwrap();
    }
    writeln!(source, "{input_decl}").unwrap();
    for p in &g.params {
        writeln!(source, "{p}").unwrap();
    }
    for l in &g.lets {
        writeln!(source, "{l}").unwrap();
    }
    writeln!(source, "  output {};\n}}", x.name).unwrap();
    source
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not `{v}`"))
    })
}

/// What became of one generated network.
enum Outcome {
    /// The checker rejected the source.
    Rejected,
    /// The backends agree; `informative` when some result element is finite and not zero.
    Agreed { informative: bool },
}

/// Checks, compiles and compares the network of `seed`: `Rejected` when the checker rejects
/// its source (its first error is printed), `Err` (with the seed and the source) when
/// compiling fails or the backends disagree.
fn run_random_network(seed: u64) -> Result<Outcome, String> {
    let source = random_network(seed);
    let (model, diagnostics) = qc_lang::check_source(&source);
    let Some(model) = model else {
        let first = diagnostics
            .iter()
            .find(|d| d.is_error())
            .map_or("", |d| d.message.as_str());
        println!("seed {seed}: rejected by the checker: {first}");
        return Ok(Outcome::Rejected);
    };
    let report = |e: String| format!("seed {seed} (QC_DIFF_SEED={seed}): {e}\n{source}");
    let module =
        compile_to_kernel(&model, "optimize").map_err(|e| report(format!("compile: {e}")))?;
    let program = Program::prepare(module, seed).map_err(|e| report(format!("prepare: {e}")))?;
    let scale = [1.0, 4.0, 300.0][(seed % 3) as usize];
    let inputs = random_inputs(&program, 1 + (seed % 3) as usize, seed, scale);
    let informative = compare_backends(&program, &inputs).map_err(report)?;
    Ok(Outcome::Agreed { informative })
}

#[test]
fn random_networks_give_the_same_bits_on_the_interpreter_and_the_jit() {
    let seeds: Vec<u64> = match env_number("QC_DIFF_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_number("QC_DIFF_CASES").unwrap_or(40)).collect(),
    };
    let (mut accepted, mut informative) = (0, 0);
    let mut failures = Vec::new();
    for &seed in &seeds {
        match run_random_network(seed) {
            Ok(Outcome::Rejected) => {}
            Ok(Outcome::Agreed { informative: i }) => {
                accepted += 1;
                informative += usize::from(i);
            }
            Err(e) => {
                accepted += 1;
                failures.push(e);
            }
        }
    }
    println!(
        "random networks: {} generated, {accepted} accepted by the checker, {informative} with a finite nonzero result",
        seeds.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {accepted} networks disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        accepted * 4 >= seeds.len() * 3,
        "only {accepted} of {} generated networks were accepted",
        seeds.len()
    );
    assert!(
        informative * 2 >= accepted,
        "only {informative} of {accepted} networks have a finite nonzero result"
    );
}

#[test]
fn random_network_sources_are_reproducible_from_their_seed() {
    assert_eq!(random_network(5), random_network(5));
    assert_ne!(random_network(5), random_network(6));
}

#[test]
/// Sums of random f32 pairs — overflow of both signs, tiny and zero addends included — rounded
/// to float formats with `nearest` (the JIT's floating-point path): the JIT equals the
/// interpreter on every element. (A sign slip in the overflow of that path was found here.)
fn nearest_sums_round_alike_on_both_backends() {
    for fmt in ["e4m3", "fp16", "bf16", "e5m2", "fp<6,5>", "fp32", "fp<4,3,fn,bias=9>", "fp<3,2,fnuz>", "fp<5,10,sat>"] {
        let text = format!("func @f(%a: tensor<4096xfp32>, %b: tensor<4096xfp32>) -> (tensor<4096x{fmt}>) {{
  %r = kernel.generate : () -> tensor<4096x{fmt}> {{
  ^bb0(%i: index):
    %x = kernel.load %a, %i : (tensor<4096xfp32>, index) -> fp32
    %y = kernel.load %b, %i : (tensor<4096xfp32>, index) -> fp32
    %s = kernel.add %x, %y {{round = nearest}} : (fp32, fp32) -> {fmt}
    kernel.yield %s : ({fmt}) -> ()
  }}
  func.return %r : (tensor<4096x{fmt}>) -> ()
}}");
        let module = qc_compiler::parse_module(&text).unwrap();
        let program = Program::prepare(module, 0).unwrap();
        let rng = qc_runtime::numerics::RandomStream::new(5, 0);
        let a: Vec<f32> = (0..4096u64).map(|i| f32::from_bits(rng.word(i, 0) & 0xbfffffff) * if i % 3 == 0 { 1e-30 } else { 1.0 }).map(|v| if v.is_finite() { v } else { 1.0 }).collect();
        let b: Vec<f32> = (0..4096u64).map(|i| ((rng.word(i, 1) as f64 / 4e9 - 0.5) * 3000.0) as f32).collect();
        let inputs = vec![Tensor::new(vec![4096], a.clone()).unwrap(), Tensor::new(vec![4096], b.clone()).unwrap()];
        let j = Jit::with_threads(1).run(&program, &inputs).unwrap();
        let r = Interpreter.run(&program, &inputs).unwrap();
        for i in 0..4096 {
            let (x, y) = (j[0].data()[i], r[0].data()[i]);
            assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()), "{fmt}: {:e} + {:e}: JIT {x:e}, interpreter {y:e}", a[i], b[i]);
        }
    }
}
