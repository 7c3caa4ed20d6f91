//! The accelerator backend's emitter: the contractions of an `nn`-level module (after
//! `optimize`) become GEMM layers ([`layers_from_module`]), each tiled onto the PE array for a
//! dataflow ([`emit_layer`]: SCALE-Sim's fold order, DMA transfers by a reuse model), with the
//! element-wise ops that follow as vector passes. [`compile`] picks each layer's dataflow —
//! fixed, or searched (`--map search`) for the fewest cycles or the least energy by
//! simulating every candidate.

pub mod exec;

use crate::ir::{Attr, Dim, Module, OpId, RoundTo, TensorType};
use qc_runtime::accel::energy::EnergyTable;
use qc_runtime::accel::isa::{vector_op, Instr, Program};
use qc_runtime::accel::model::{Arch, Dataflow};
use qc_runtime::accel::scalesim::Gemm;
use qc_runtime::accel::sim::simulate;

/// One layer for the array: a GEMM (done `repeat` times: groups, batched matmuls), its
/// operand formats (ifmap, filter, ofmap, as text), its `#arith` and the vector passes after
/// it (index into `VECTOR_OPS`, result elements).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    pub gemm: Gemm,
    pub repeat: u64,
    pub formats: [String; 3],
    pub arith: String,
    pub vector: Vec<(u64, u64)>,
}

impl LayerSpec {
    /// A SCALE-Sim layer: one-byte integer operands and a 32-bit integer (`fixed<32,0>`) accumulator (its word
    /// is a byte).
    pub fn scalesim(gemm: Gemm) -> LayerSpec {
        LayerSpec {
            gemm,
            repeat: 1,
            formats: ["int<8,noscale>".into(), "int<8,noscale>".into(), "int<8,noscale>".into()],
            arith: "#arith<mul=exact, acc=fixed<32,0> @ nearest>".into(),
            vector: Vec::new(),
        }
    }
}

/// How each layer's dataflow is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapMode {
    /// The architecture's dataflow for every layer.
    Fixed,
    /// The dataflow with the fewest cycles.
    SearchCycles,
    /// The dataflow with the least energy.
    SearchEnergy,
}

fn fixed(d: &Dim, batch: u64) -> u64 {
    match d {
        Dim::Fixed(n) => *n,
        _ => batch,
    }
}

fn elements(t: &TensorType, batch: u64) -> u64 {
    t.dims.iter().map(|d| fixed(d, batch)).product()
}

/// The layers of the first function of `module` (nn level), dynamic sizes taken as `batch`.
/// Element-wise and pooling ops join the preceding layer as vector passes; ops before the
/// first contraction join the first one.
pub fn layers_from_module(module: &Module, batch: u64) -> Result<Vec<LayerSpec>, String> {
    let f = module.funcs.first().ok_or("the module has no function")?;
    let entry = module.entry_block(f.body).ok_or("the function has no body")?;
    let mut layers: Vec<LayerSpec> = Vec::new();
    let mut pending: Vec<(u64, u64)> = Vec::new();
    for &op in &module.blocks[entry].ops {
        let o = &module.ops[op];
        let name = o.name();
        if matches!(name, "nn.param" | "nn.constant" | "func.return" | "nn.reshape" | "nn.flatten") || o.results.is_empty() {
            continue;
        }
        let Some(out) = module.ty(o.results[0]).as_tensor() else { continue };
        match contraction(module, op, batch)? {
            Some(mut layer) => {
                layer.vector.append(&mut pending);
                layers.push(layer);
            }
            None => {
                let op = vector_op(name).ok_or_else(|| format!("the accelerator has no vector operation for `{name}`"))?;
                let entry = (op, elements(out, batch));
                match layers.last_mut() {
                    Some(l) => l.vector.push(entry),
                    None => pending.push(entry),
                }
            }
        }
    }
    if layers.is_empty() {
        return Err("the model has no dense, matmul or conv2d layer for the array".into());
    }
    Ok(layers)
}

/// The layer of a contraction op, `None` for any other op.
fn contraction(module: &Module, op: OpId, batch: u64) -> Result<Option<LayerSpec>, String> {
    let o = &module.ops[op];
    let tensor = |i: usize| module.ty(o.operands[i]).as_tensor().ok_or_else(|| format!("{}: operand {i} is not a tensor", o.name()));
    let out = module.ty(o.results[0]).as_tensor().ok_or("a contraction's result is a tensor")?;
    let layer_name = module.values[o.results[0]].name.clone().unwrap_or_else(|| format!("{}#{}", o.name().trim_start_matches("nn."), op.index()));
    let (gemm, repeat) = match o.name() {
        "nn.dense" | "nn.fused_dense" => {
            let (x, w) = (tensor(0)?, tensor(1)?);
            let k = fixed(x.dims.last().ok_or("dense input has rank 0")?, batch);
            let n = fixed(&w.dims[0], batch);
            let m = elements(x, batch) / k.max(1);
            (Gemm { name: layer_name, m, n, k, ifmap_elems: m * k, filter_elems: n * k, ofmap_elems: m * n }, 1)
        }
        "nn.matmul" => {
            let (a, b) = (tensor(0)?, tensor(1)?);
            let r = a.dims.len();
            let (m, k) = (fixed(&a.dims[r - 2], batch), fixed(&a.dims[r - 1], batch));
            let n = fixed(b.dims.last().ok_or("matmul operand has rank 0")?, batch);
            let batches = elements(out, batch) / (m * n).max(1);
            (Gemm::matmul(&layer_name, m, n, k), batches)
        }
        "nn.conv2d" | "nn.fused_conv2d" => {
            let (x, w) = (tensor(0)?, tensor(1)?);
            let groups = o.attr("groups").and_then(Attr::as_int).unwrap_or(1).max(1) as u64;
            let m = elements(out, batch) / fixed(out.dims.last().ok_or("conv result has rank 0")?, batch).max(1);
            let n = fixed(&w.dims[0], batch) / groups;
            let k = w.dims[1..].iter().map(|d| fixed(d, batch)).product::<u64>();
            let ifmap = elements(x, batch) / groups;
            (Gemm { name: layer_name, m, n, k, ifmap_elems: ifmap, filter_elems: n * k, ofmap_elems: m * n }, groups)
        }
        _ => return Ok(None),
    };
    let arith = match o.attr("arith") {
        Some(Attr::Arith(a)) => a.to_string(),
        _ => return Err(format!("{}: a contraction without #arith", o.name())),
    };
    let formats = [tensor(0)?.format.to_string(), tensor(1)?.format.to_string(), out.format.to_string()];
    Ok(Some(LayerSpec { gemm, repeat, formats, arith, vector: Vec::new() }))
}

/// Sets the accumulation of every contraction (dense, matmul, conv2d) of the first function
/// of `module` (nn level, before `optimize`) to `acc`, without chunks: what `qc sim --sweep`
/// varies. A stochastic `acc` gives each op its own random stream (numbered from 2^20, clear
/// of the ones lowering assigns).
pub fn with_accumulator(module: &mut Module, acc: RoundTo) -> Result<(), String> {
    let f = module.funcs.first().ok_or("the module has no function")?;
    let entry = module.entry_block(f.body).ok_or("the function has no body")?;
    let ops = module.blocks[entry].ops.clone();
    for (i, op) in ops.into_iter().enumerate() {
        let o = &mut module.ops[op];
        if !matches!(o.name(), "nn.dense" | "nn.matmul" | "nn.conv2d") {
            continue;
        }
        if let Some(Attr::Arith(a)) = o.attrs.get_mut("arith") {
            a.acc = acc;
            a.chunk = None;
            if a.is_stochastic() && a.stream.is_none() {
                a.stream = Some((1 << 20) + i as u32);
            }
        }
    }
    Ok(())
}

/// Parses `FORMAT [@ ROUNDING]` (nearest when omitted), e.g. `fp<6,5> @ stochastic:9`.
pub fn parse_round_to(text: &str) -> Result<RoundTo, String> {
    let (f, r) = text.split_once('@').unwrap_or((text, "nearest"));
    let format = qc_runtime::numerics::Format::parse(f.trim()).map_err(|e| format!("`{text}`: {e}"))?;
    if !format.is_elementwise() {
        return Err(format!("`{text}`: an accumulator has an element-wise format"));
    }
    let rounding = qc_runtime::numerics::Rounding::parse(r.trim()).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(RoundTo { format, rounding })
}

/// Elements of an operand buffer's active half (the other half is being refilled).
fn active_capacity(arch: &Arch, buffer: usize, format: &str) -> f64 {
    let bits = qc_runtime::numerics::Format::parse(format).map_or(8.0, |f| f.bits_per_element());
    arch.sram_kb[buffer] as f64 * 1024.0 * 8.0 / bits / 2.0
}

/// Appends `layer` tiled for `dataflow` on `arch`'s array: configuration, DMA loads, one
/// `array.step` per fold (column folds outside, row folds inside, as SCALE-Sim), the vector
/// passes and the store.
///
/// Reuse model: the operand indexed by the inner (row) folds is loaded once if it fits in
/// its buffer's active half, else once per column fold; the other input is loaded once.
/// Outputs accumulate on chip when the ofmap buffer's active half holds them (ws/is reduce
/// over row folds), else every partial sum goes to DRAM.
pub fn emit_layer(program: &mut Program, layer: &LayerSpec, arch: &Arch, dataflow: Dataflow) {
    let g = &layer.gemm;
    let name = program.intern(&g.name);
    let (rows, cols) = (arch.rows, arch.cols);
    let (sr, sc, _) = dataflow.spatial(g.m, g.n, g.k);
    let (row_folds, col_folds) = (sr.div_ceil(rows), sc.div_ceil(cols));
    let mut instrs = vec![
        Instr::Layer { name, macs: g.macs() * layer.repeat },
        Instr::CfgArray { dataflow: dataflow.code(), rows, cols, mac: arch.mac.code() },
    ];
    for (buffer, f) in layer.formats.iter().enumerate() {
        instrs.push(Instr::CfgOperand { buffer: buffer as u64, format: program.intern(f) });
    }
    instrs.push(Instr::CfgArith { arith: program.intern(&layer.arith) });
    // The input operand whose tile changes with the row fold (os: ifmap rows of M; ws: ifmap
    // columns of K; is: filter rows of K); the other is indexed by the column fold only, or
    // by both (read once either way).
    let (streamed, streamed_elems, once, once_elems) = match dataflow {
        Dataflow::Os | Dataflow::Ws => (0, g.ifmap_elems, 1, g.filter_elems),
        Dataflow::Is => (1, g.filter_elems, 0, g.ifmap_elems),
    };
    let refetch = streamed_elems as f64 > active_capacity(arch, streamed, &layer.formats[streamed]);
    let partial_sums_on_chip = (g.ofmap_elems as f64) <= active_capacity(arch, 2, &layer.formats[2]) || dataflow == Dataflow::Os;
    for _ in 0..layer.repeat {
        instrs.push(Instr::DmaLoad { buffer: once as u64, count: once_elems });
        for fc in 0..col_folds {
            if fc == 0 || refetch {
                instrs.push(Instr::DmaLoad { buffer: streamed as u64, count: streamed_elems });
            }
            for fr in 0..row_folds {
                let r0 = fr * rows;
                let c0 = fc * cols;
                let r = rows.min(sr - r0);
                let c = cols.min(sc - c0);
                let (m0, n0, k0, m, n, k) = match dataflow {
                    Dataflow::Os => (r0, c0, 0, r, c, g.k),
                    Dataflow::Ws => (0, c0, r0, g.m, c, r),
                    Dataflow::Is => (c0, 0, r0, c, g.n, r),
                };
                instrs.push(Instr::ArrayStep { m0, n0, k0, m, n, k });
            }
        }
    }
    for &(op, count) in &layer.vector {
        instrs.push(Instr::Vector { op, count });
    }
    let stored = if partial_sums_on_chip { g.ofmap_elems } else { g.ofmap_elems * row_folds };
    instrs.push(Instr::DmaStore { count: stored * layer.repeat });
    instrs.push(Instr::Sync {});
    program.instrs.extend(instrs);
}

/// The program for `layers` on `arch`: each layer's dataflow fixed or searched (the search
/// simulates every dataflow with `table` and keeps the best; ties go to os, ws, is in that
/// order). A layer whose sizes do not fit the instruction fields is an error.
pub fn compile(layers: &[LayerSpec], arch: &Arch, mode: MapMode, table: &EnergyTable) -> Result<Program, String> {
    let mut program = Program::default();
    for layer in layers {
        let dataflow = match mode {
            MapMode::Fixed => arch.dataflow,
            MapMode::SearchCycles | MapMode::SearchEnergy => {
                let cost = |d: Dataflow| {
                    let mut trial = Program::default();
                    emit_layer(&mut trial, layer, arch, d);
                    let report = simulate(&trial, arch, table).expect("an emitted layer simulates");
                    let t = report.total();
                    if mode == MapMode::SearchCycles { t.total_cycles() as f64 } else { t.energy_pj() }
                };
                let costs = Dataflow::ALL.map(|d| (cost(d), d));
                costs.iter().fold(costs[0], |best, c| if c.0 < best.0 { *c } else { best }).1
            }
        };
        emit_layer(&mut program, layer, arch, dataflow);
    }
    program.instrs.push(Instr::Halt {});
    if let Some(e) = program.instrs.iter().find_map(|i| i.encode().err()) {
        return Err(format!("a layer is too large for the accelerator's instruction fields: {e}"));
    }
    Ok(program)
}
