//! `qc sim`: the accelerator simulator. On a `.qnn` model: compile it (nn level, `optimize`),
//! map its contractions onto the PE array and print per layer MACs, cycles, utilisation, SRAM
//! and DRAM traffic and energy (MAC / SRAM / DRAM), with totals. On SCALE-Sim's own inputs
//! (`--topology layers.csv --config arch.cfg [--gemm]`): the same figures for its layers, with
//! one-byte integer operands. `--mac` chooses the PEs' MAC unit (fixed, precision-scalable,
//! bit-serial). `--data` also runs labelled data through the simulated array (bit-exact) and
//! prints the accuracy. `--sweep` tabulates formats × accumulators × arrays with the Pareto
//! front (and an SVG plot). `--json` prints the figures for scripts; `--isa-reference` prints
//! the instruction reference of spec/isa.md.

use super::CliError;
use crate::report::table::{Align, Table};
use qc_compiler::accel::{compile, layers_from_module, parse_round_to, with_accumulator, LayerSpec, MapMode};
use qc_compiler::ir::RoundTo;
use qc_runtime::accel::energy::EnergyTable;
use qc_runtime::accel::isa::{reference_markdown, Program};
use qc_runtime::accel::model::{parse_array, Arch, Dataflow, Mac};
use qc_runtime::accel::scalesim::{parse_config, parse_topology};
use qc_runtime::accel::sim::{simulate, LayerStats, Report};
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Map {
    /// The `--dataflow` for every layer.
    Fixed,
    /// Per layer, the dataflow with the fewest cycles.
    Search,
    /// Per layer, the dataflow with the least energy.
    SearchEnergy,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MacArg {
    Fixed,
    PrecisionScalable,
    BitSerial,
}

#[derive(clap::Args)]
pub struct Args {
    /// The .qnn model (or use --topology).
    pub file: Option<PathBuf>,
    /// A SCALE-Sim topology CSV instead of a model.
    #[arg(long, conflicts_with = "file")]
    pub topology: Option<PathBuf>,
    /// A SCALE-Sim .cfg file (array, SRAM sizes, dataflow); flags given too override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The topology has GEMM rows (`name, M, N, K,`).
    #[arg(long, requires = "topology")]
    pub gemm: bool,
    /// PE array ROWSxCOLS.
    #[arg(long)]
    pub array: Option<String>,
    /// os, ws or is.
    #[arg(long)]
    pub dataflow: Option<String>,
    /// The PEs' MAC unit: fixed (one MAC per cycle), precision-scalable (Bit Fusion: 4 4x4 or
    /// 16 2x2 products per 8x8 unit and cycle) or bit-serial (one weight bit per cycle).
    #[arg(long, value_enum, default_value = "fixed")]
    pub mac: MacArg,
    /// Scratchpad sizes in KiB: ifmap,filter,ofmap.
    #[arg(long)]
    pub sram_kb: Option<String>,
    /// DRAM bandwidth in GB/s (default: unlimited, SCALE-Sim's stall-free mode).
    #[arg(long)]
    pub dram_gbps: Option<f64>,
    /// An energy table (`key = value` in pJ) over the default Horowitz 45 nm figures.
    #[arg(long)]
    pub energy_table: Option<PathBuf>,
    /// How each layer's dataflow is chosen.
    #[arg(long, value_enum, default_value = "fixed")]
    pub map: Map,
    /// The size of `?` (batch) dimensions of a model.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub batch: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also run labelled data (`digits` or a path) through the simulated array, bit-exactly,
    /// and print the accuracy (equal to `qc run`'s).
    #[arg(long, requires = "file")]
    pub data: Option<String>,
    /// Parameters by name from a .safetensors, .npz or .npy file (with --data).
    #[arg(long, requires = "data")]
    pub weights: Option<PathBuf>,
    /// The run's seed for stochastic rounding (with --data).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sweep the formats of `qc run --format-sweep`, the accumulators of --sweep-acc and the
    /// arrays of --sweep-array: cycles, energy and (with --data) accuracy, with the Pareto front.
    #[arg(long, requires = "file")]
    pub sweep: bool,
    /// With --sweep: an accumulator for every contraction, `FORMAT [@ ROUNDING]` (repeat the
    /// flag for several).
    #[arg(long, requires = "sweep", default_values = ["fp32", "fp16", "fp<6,5> @ stochastic:9"])]
    pub sweep_acc: Vec<String>,
    /// With --sweep: a PE array ROWSxCOLS (repeat the flag for several).
    #[arg(long, requires = "sweep", default_values = ["8x8", "16x16", "32x32"])]
    pub sweep_array: Vec<String>,
    /// With --sweep: write an SVG plot (energy and cycles against accuracy) to this file.
    #[arg(long, requires = "sweep")]
    pub plot: Option<PathBuf>,
    /// Print the instruction reference (spec/isa.md's generated part) and exit.
    #[arg(long)]
    pub isa_reference: bool,
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))
}

/// The architecture from `--config` and the flags over it.
fn arch(args: &Args) -> Result<Arch, CliError> {
    let mut arch = match &args.config {
        Some(path) => parse_config(&read(path)?).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?,
        None => Arch::default(),
    };
    if let Some(a) = &args.array {
        (arch.rows, arch.cols) = parse_array(a).ok_or_else(|| CliError::new(format!("--array `{a}`: expected ROWSxCOLS, e.g. 32x32, each 1..4096")))?;
    }
    if let Some(d) = &args.dataflow {
        arch.dataflow = Dataflow::parse(d).ok_or_else(|| CliError::new(format!("--dataflow `{d}`: expected os, ws or is")))?;
    }
    if let Some(s) = &args.sram_kb {
        let sizes: Vec<u64> = s.split(',').filter_map(|v| v.trim().parse().ok().filter(|&v| v > 0 && v <= 1 << 20)).collect();
        arch.sram_kb = sizes
            .try_into()
            .map_err(|_| CliError::new(format!("--sram-kb `{s}`: expected three sizes in KiB, ifmap,filter,ofmap")))?;
    }
    arch.mac = match args.mac {
        MacArg::Fixed => Mac::Fixed,
        MacArg::PrecisionScalable => Mac::PrecisionScalable,
        MacArg::BitSerial => Mac::BitSerial,
    };
    if let Some(g) = args.dram_gbps {
        if !(g.is_finite() && g > 0.0) {
            return Err(CliError::new(format!("--dram-gbps {g}: expected a positive bandwidth")));
        }
        arch.dram_gbps = Some(g);
    }
    Ok(arch)
}

pub fn energy_table(path: Option<&Path>) -> Result<EnergyTable, CliError> {
    match path {
        Some(p) => EnergyTable::parse(&read(p)?).map_err(|e| CliError::new(format!("{}: {e}", p.display()))),
        None => Ok(EnergyTable::default()),
    }
}

/// The layers of a `.qnn` model after the nn-level `optimize` pipeline.
pub fn model_layers(path: &Path, batch: u64) -> Result<Vec<LayerSpec>, CliError> {
    let shown = path.display().to_string();
    let source = read(path)?;
    let (checked, diagnostics) = qc_lang::check_source(&source);
    let Some(model) = checked else {
        let first = diagnostics.first().map_or_else(String::new, |d| format!(": {}", d.message));
        return Err(CliError::new(format!("{shown} has errors{first} (see `qc check {shown}`)")));
    };
    checked_layers(&model, batch, None).map_err(|e| CliError::new(format!("{shown}: {e}")))
}

/// The layers of a checked model after the nn-level `optimize` pipeline, every contraction
/// accumulating in `acc` when given.
fn checked_layers(model: &qc_lang::CheckedModule, batch: u64, acc: Option<RoundTo>) -> Result<Vec<LayerSpec>, CliError> {
    let shown = "the model";
    let mut module = qc_compiler::lower::lower_model(model).map_err(|e| CliError::new(format!("{shown}: {e}")))?;
    if let Some(acc) = acc {
        with_accumulator(&mut module, acc).map_err(CliError::new)?;
    }
    let passes = qc_compiler::pass::parse_pipeline("optimize").map_err(CliError::new)?;
    qc_compiler::pass::PassManager::new(passes, qc_compiler::pass::PassOptions::default())
        .run(&mut module)
        .map_err(|e| CliError::new(format!("{shown}: {e}")))?;
    layers_from_module(&module, batch).map_err(|e| CliError::new(format!("{shown}: {e}")))
}

/// The accelerator program of a model for the default array (what `qc compile --emit isa`
/// prints).
pub fn model_isa(module: &qc_compiler::Module) -> Result<Program, CliError> {
    let layers = layers_from_module(module, 1).map_err(CliError::new)?;
    compile(&layers, &Arch::default(), MapMode::Fixed, &EnergyTable::default()).map_err(CliError::new)
}

pub fn run(args: Args) -> Result<(), CliError> {
    if args.isa_reference {
        return super::print(&reference_markdown());
    }
    let arch = arch(&args)?;
    let table = energy_table(args.energy_table.as_deref())?;
    if let (true, Some(file)) = (args.sweep, &args.file) {
        return super::print(&sweep(&args, file, &arch, &table)?);
    }
    let layers = match (&args.file, &args.topology) {
        (Some(file), _) => model_layers(file, args.batch)?,
        (None, Some(topo)) => parse_topology(&read(topo)?, args.gemm)
            .map_err(|e| CliError::new(format!("{}: {e}", topo.display())))?
            .into_iter()
            .map(LayerSpec::scalesim)
            .collect(),
        (None, None) => return Err(CliError::new("give a .qnn model or --topology FILE (see `qc sim --help`)")),
    };
    let mode = match args.map {
        Map::Fixed => MapMode::Fixed,
        Map::Search => MapMode::SearchCycles,
        Map::SearchEnergy => MapMode::SearchEnergy,
    };
    let program = compile(&layers, &arch, mode, &table).map_err(CliError::new)?;
    let report = simulate(&program, &arch, &table).map_err(|e| CliError::new(format!("simulation failed: {e}")))?;
    let mut text = if args.json { json(&report, &arch) } else { render(&report, &arch) };
    if let (Some(data), Some(file)) = (&args.data, &args.file) {
        let accuracy = data_accuracy(file, data, args.weights.as_deref(), args.seed, &arch)?;
        if args.json {
            text = format!("{{\"accuracy\": {}, \"cost\": {}}}\n", accuracy.0 as f64 / accuracy.1.max(1) as f64, text.trim_end());
        } else {
            text += &format!("accuracy on the simulated array: {:.2}% ({}/{})\n", 100.0 * accuracy.0 as f64 / accuracy.1.max(1) as f64, accuracy.0, accuracy.1);
        }
    }
    super::print(&text)
}

/// Correct predictions and samples of the test part of `data`, run on the simulated array
/// (the nn-level program after `optimize`, weights bound first as `qc run` does).
fn data_accuracy(file: &Path, data: &str, weights: Option<&Path>, seed: u64, arch: &Arch) -> Result<(usize, usize), CliError> {
    let model = super::run::load_model(file)?;
    let weights = weights.map(|p| qc_runtime::io::WeightFile::open(p).map_err(CliError::new)).transpose()?;
    let test = super::run::load_test_data(data)?;
    checked_accuracy(&model, weights.as_ref(), &test, seed, arch, None)
}

/// Correct predictions and samples of `test` for a checked model on the simulated array,
/// every contraction accumulating in `acc` when given.
fn checked_accuracy(
    model: &qc_lang::CheckedModule,
    weights: Option<&qc_runtime::io::WeightFile>,
    test: &qc_runtime::data::Dataset,
    seed: u64,
    arch: &Arch,
    acc: Option<RoundTo>,
) -> Result<(usize, usize), CliError> {
    let mut module = qc_compiler::lower::lower_model(model).map_err(CliError::new)?;
    if let Some(weights) = weights {
        qc_compiler::backend::program::bind_weights(&mut module, weights).map_err(CliError::new)?;
    }
    if let Some(acc) = acc {
        with_accumulator(&mut module, acc).map_err(CliError::new)?;
    }
    let passes = qc_compiler::pass::parse_pipeline("optimize").map_err(CliError::new)?;
    qc_compiler::pass::PassManager::new(passes, qc_compiler::pass::PassOptions::default())
        .run(&mut module)
        .map_err(|e| CliError::new(e.to_string()))?;
    let program = qc_compiler::backend::Program::prepare(module, seed).map_err(CliError::new)?;
    let simulator = qc_compiler::accel::exec::ArraySimulator { arch: arch.clone() };
    let predictions = super::run::predict(&program, &simulator, test, None)?;
    Ok((super::run::correct(test, &predictions), test.len()))
}

/// One point of the sweep.
struct Point {
    label: &'static str,
    acc: String,
    rows: u64,
    cols: u64,
    cycles: u64,
    energy_uj: f64,
    accuracy: Option<f64>,
    pareto: bool,
}

/// `--sweep`: the model with weights and activations in each format of `qc run
/// --format-sweep` (`format_sweep::with_formats`), every contraction accumulating in each
/// `--sweep-acc` (no chunks), on each `--sweep-array`; cycles, energy and, with `--data`,
/// accuracy on the simulated array; points not dominated in (cycles, energy, accuracy) are
/// marked as the Pareto front. Writes an SVG plot to `--plot`.
fn sweep(args: &Args, file: &Path, arch: &Arch, table: &EnergyTable) -> Result<String, CliError> {
    let model = super::run::load_model(file)?;
    let weights = args.weights.as_deref().map(|p| qc_runtime::io::WeightFile::open(p).map_err(CliError::new)).transpose()?;
    let test = args.data.as_deref().map(super::run::load_test_data).transpose()?;
    let accs: Vec<(String, RoundTo)> = args
        .sweep_acc
        .iter()
        .map(|t| parse_round_to(t).map(|r| (t.split_whitespace().collect::<String>(), r)).map_err(|e| CliError::new(format!("--sweep-acc {e}"))))
        .collect::<Result<_, _>>()?;
    let arrays: Vec<(u64, u64)> = args
        .sweep_array
        .iter()
        .map(|a| parse_array(a).ok_or_else(|| CliError::new(format!("--sweep-array `{a}`: expected ROWSxCOLS, e.g. 32x32, each 1..4096"))))
        .collect::<Result<_, _>>()?;
    let mut points = Vec::new();
    for (label, w, a) in super::format_sweep::FORMATS {
        let parse = |t: &str| qc_runtime::numerics::Format::parse(t).map_err(CliError::new);
        let variant = super::format_sweep::with_formats(&model, parse(w)?, parse(a)?, false);
        for (acc_label, acc) in &accs {
            let layers = checked_layers(&variant, args.batch, Some(*acc))?;
            let accuracy = match &test {
                Some(t) => {
                    let (right, n) = checked_accuracy(&variant, weights.as_ref(), t, args.seed, arch, Some(*acc)).map_err(|e| CliError::new(format!("{label}, {acc_label}: {e}")))?;
                    Some(100.0 * right as f64 / n.max(1) as f64)
                }
                None => None,
            };
            for &(rows, cols) in &arrays {
                let a = Arch { rows, cols, ..arch.clone() };
                let program = compile(&layers, &a, MapMode::Fixed, table).map_err(CliError::new)?;
                let t = simulate(&program, &a, table).map_err(|e| CliError::new(format!("simulation failed: {e}")))?.total();
                points.push(Point { label, acc: acc_label.clone(), rows, cols, cycles: t.total_cycles(), energy_uj: t.energy_pj() / 1e6, accuracy, pareto: false });
            }
        }
    }
    for i in 0..points.len() {
        let p = &points[i];
        let dominated = points.iter().any(|q| {
            let no_worse = q.cycles <= p.cycles && q.energy_uj <= p.energy_uj && q.accuracy >= p.accuracy;
            let better = q.cycles < p.cycles || q.energy_uj < p.energy_uj || q.accuracy > p.accuracy;
            no_worse && better
        });
        points[i].pareto = !dominated;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, svg(&points, &arrays)).map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    }
    let (l, r) = (Align::Left, Align::Right);
    let mut t = Table::new(&[("format", l), ("accumulator", l), ("array", l), ("cycles", r), ("energy µJ", r), ("accuracy %", r), ("Pareto", l)]);
    for p in &points {
        t.row(vec![
            p.label.to_string(),
            p.acc.clone(),
            format!("{}x{}", p.rows, p.cols),
            qc_lang::check::with_thousands(p.cycles),
            format!("{:.3}", p.energy_uj),
            p.accuracy.map_or("-".into(), |a| format!("{a:.2}")),
            if p.pareto { "*".into() } else { String::new() },
        ]);
    }
    Ok(t.render())
}

/// Two panels side by side: energy, then cycles (both log scale) against accuracy (against
/// each other without data), one colour per array, the Pareto points ringed.
fn svg(points: &[Point], arrays: &[(u64, u64)]) -> String {
    let (w, h) = (640.0, 420.0);
    let with_data = points.iter().any(|p| p.accuracy.is_some());
    let log = |v: f64| v.max(1e-9).log10();
    let mut out = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n", 2.0 * w);
    out += &format!("<rect width=\"{}\" height=\"{h}\" fill=\"white\"/>\n", 2.0 * w);
    let energy = |p: &Point| log(p.energy_uj);
    let cycles = |p: &Point| log(p.cycles as f64);
    let accuracy = |p: &Point| p.accuracy.unwrap_or(0.0);
    if with_data {
        out += &panel(points, arrays, 0.0, (&energy, "energy per inference (µJ, log10)"), (&accuracy, "accuracy (%)"));
        out += &panel(points, arrays, w, (&cycles, "cycles (log10)"), (&accuracy, "accuracy (%)"));
    } else {
        out += &panel(points, arrays, 0.0, (&energy, "energy per inference (µJ, log10)"), (&cycles, "cycles (log10)"));
    }
    out + "</svg>\n"
}

/// The value of a point on one axis, and the axis's label.
type Axis<'a> = (&'a dyn Fn(&Point) -> f64, &'a str);

/// One 640×420 scatter panel at horizontal offset `dx`, with its legend.
fn panel(points: &[Point], arrays: &[(u64, u64)], dx: f64, (x_of, x_label): Axis<'_>, (y_of, y_label): Axis<'_>) -> String {
    let (w, h, m) = (640.0, 420.0, 60.0);
    let (ex, ey): (Vec<f64>, Vec<f64>) = points.iter().map(|p| (x_of(p), y_of(p))).unzip();
    let range = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) }
    };
    let ((x0, x1), (y0, y1)) = (range(&ex), range(&ey));
    let px = |x: f64| dx + m + (x - x0) / (x1 - x0) * (w - 2.0 * m);
    let py = |y: f64| h - m - (y - y0) / (y1 - y0) * (h - 2.0 * m);
    let colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"];
    let mut out = format!("<line x1=\"{}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n<line x1=\"{0}\" y1=\"{m}\" x2=\"{0}\" y2=\"{1}\" stroke=\"black\"/>\n", dx + m, h - m, dx + w - m);
    out += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label} ({x0:.2} .. {x1:.2})</text>\n", dx + w / 2.0, h - 20.0);
    out += &format!("<text x=\"{0}\" y=\"{1}\" transform=\"rotate(-90 {0} {1})\" text-anchor=\"middle\">{y_label} ({y0:.2} .. {y1:.2})</text>\n", dx + 15.0, h / 2.0);
    for (i, p) in points.iter().enumerate() {
        let c = colours[arrays.iter().position(|a| *a == (p.rows, p.cols)).unwrap_or(0) % colours.len()];
        let (x, y) = (px(ex[i]), py(ey[i]));
        out += &format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\">{} {}</text>\n", x + 6.0, y - 4.0, p.label, p.acc.replace('<', "&lt;").replace('>', "&gt;"));
        if p.pareto {
            out += &format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"8\" fill=\"none\" stroke=\"black\"/>\n");
        }
    }
    let lx = dx + w - 110.0;
    for (i, (rows, cols)) in arrays.iter().enumerate() {
        out += &format!("<circle cx=\"{lx}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{rows}x{cols}</text>\n", 20.0 + 15.0 * i as f64, colours[i % colours.len()], lx + 10.0, 24.0 + 15.0 * i as f64);
    }
    let ly = 35.0 + 15.0 * arrays.len() as f64;
    out += &format!("<circle cx=\"{lx}\" cy=\"{ly}\" r=\"8\" fill=\"none\" stroke=\"black\"/><text x=\"{}\" y=\"{}\">Pareto front</text>\n", lx + 10.0, ly + 4.0);
    out
}

fn kib(bytes: f64) -> String {
    format!("{:.1}", bytes / 1024.0)
}

fn uj(pj: f64) -> String {
    format!("{:.3}", pj / 1e6)
}

fn row(l: &LayerStats) -> Vec<String> {
    let sram_kib = |i: usize| kib(l.sram_bits[i] / 8.0);
    vec![
        l.name.clone(),
        l.dataflow.map_or("-".into(), |d| d.to_string()),
        qc_lang::check::with_thousands(l.macs),
        qc_lang::check::with_thousands(l.total_cycles()),
        format!("{:.1}", l.overall_util_pct()),
        sram_kib(0),
        sram_kib(1),
        sram_kib(2),
        kib(l.dram_total_bytes()),
        uj(l.energy_mac_pj),
        uj(l.energy_sram_pj),
        uj(l.energy_dram_pj),
        uj(l.energy_pj()),
    ]
}

fn render(report: &Report, arch: &Arch) -> String {
    let mut out = format!(
        "array {}x{} ({} MACs), SRAM {}/{}/{} KiB, DRAM {}\n",
        arch.rows,
        arch.cols,
        arch.mac,
        arch.sram_kb[0],
        arch.sram_kb[1],
        arch.sram_kb[2],
        arch.dram_gbps.map_or("unlimited (stall-free)".to_string(), |g| format!("{g} GB/s at {} GHz", arch.clock_ghz))
    );
    let (l, r) = (Align::Left, Align::Right);
    let mut t = Table::new(&[
        ("layer", l),
        ("df", l),
        ("MACs", r),
        ("cycles", r),
        ("util %", r),
        ("SRAM in KiB", r),
        ("SRAM w KiB", r),
        ("SRAM out KiB", r),
        ("DRAM KiB", r),
        ("E MAC µJ", r),
        ("E SRAM µJ", r),
        ("E DRAM µJ", r),
        ("E total µJ", r),
    ]);
    for layer in &report.layers {
        t.row(row(layer));
    }
    t.row(row(&report.total()));
    out.push_str(&t.render());
    out
}

fn json_stats(l: &LayerStats) -> String {
    let mut s = String::from("{");
    let _ = write!(
        s,
        "\"name\": {:?}, \"dataflow\": {}, \"macs\": {}, \"folds\": {}, \"cycles\": {}, \"stall_cycles\": {}, \"vector_cycles\": {}, \"total_cycles\": {}, \
         \"overall_util_pct\": {}, \"mapping_eff_pct\": {}, \"compute_util_pct\": {}, \
         \"sram_ifmap_reads\": {}, \"sram_filter_reads\": {}, \"sram_ofmap_writes\": {}, \
         \"sram_bytes\": [{}, {}, {}], \"dram_bytes\": [{}, {}, {}], \
         \"energy_mac_pj\": {}, \"energy_sram_pj\": {}, \"energy_dram_pj\": {}, \"energy_pj\": {}}}",
        l.name,
        l.dataflow.map_or("null".into(), |d| format!("\"{d}\"")),
        l.macs,
        l.folds,
        l.cycles,
        l.stall_cycles,
        l.vector_cycles,
        l.total_cycles(),
        l.overall_util_pct(),
        l.mapping_eff_pct(),
        l.compute_util_pct(),
        l.sram_ifmap_reads,
        l.sram_filter_reads,
        l.sram_ofmap_writes,
        l.sram_bits[0] / 8.0,
        l.sram_bits[1] / 8.0,
        l.sram_bits[2] / 8.0,
        l.dram_bytes[0],
        l.dram_bytes[1],
        l.dram_bytes[2],
        l.energy_mac_pj,
        l.energy_sram_pj,
        l.energy_dram_pj,
        l.energy_pj()
    );
    s
}

fn json(report: &Report, arch: &Arch) -> String {
    let layers: Vec<String> = report.layers.iter().map(json_stats).collect();
    format!(
        "{{\"array\": [{}, {}], \"mac\": \"{}\", \"sram_kb\": [{}, {}, {}], \"dram_gbps\": {}, \"layers\": [\n  {}\n], \"total\": {}}}\n",
        arch.rows,
        arch.cols,
        arch.mac,
        arch.sram_kb[0],
        arch.sram_kb[1],
        arch.sram_kb[2],
        arch.dram_gbps.map_or("null".into(), |g| g.to_string()),
        layers.join(",\n  "),
        json_stats(&report.total())
    )
}
