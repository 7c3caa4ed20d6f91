//! The simulator's accounting: runs a [`Program`] instruction by instruction (dispatch on
//! [`Instr`], the table's typed form) and counts, per layer and in total, cycles, utilisation,
//! SRAM and DRAM traffic and energy split into MAC / SRAM / DRAM.

use super::datapath::Datapath;
use super::energy::EnergyTable;
use super::isa::{Instr, IsaError, Program, VECTOR_OPS};
use super::energy::Operand;
use super::model::{fold_cost, Arch, Dataflow, Mac};
use crate::numerics::Format;

/// Counts of one layer (or the total).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerStats {
    pub name: String,
    pub dataflow: Option<Dataflow>,
    pub macs: u64,
    pub folds: u64,
    /// Array cycles as SCALE-Sim reports them (`total_cycles`, stall-free): the folds back to
    /// back, minus one.
    pub cycles: u64,
    /// Cycles the array waits for DRAM when the bandwidth is limited.
    pub stall_cycles: u64,
    /// Cycles of the vector unit (element-wise tail).
    pub vector_cycles: u64,
    /// Σ over folds of the fold's mapping efficiency and compute utilisation (averaged in
    /// [`LayerStats::mapping_eff_pct`], [`LayerStats::compute_util_pct`]).
    mapping_eff_sum: f64,
    compute_util_sum: f64,
    /// PEs of the array.
    pub pes: u64,
    /// SRAM accesses in words, as SCALE-Sim counts them.
    pub sram_ifmap_reads: u64,
    pub sram_filter_reads: u64,
    pub sram_ofmap_writes: u64,
    /// SRAM traffic in bits (every access in its operand's storage bits; DMA fills, array
    /// reads, result writes, vector reads and writes).
    pub sram_bits: [f64; 3],
    /// DRAM traffic in bytes per operand (ifmap, filter, ofmap).
    pub dram_bytes: [f64; 3],
    pub energy_mac_pj: f64,
    pub energy_sram_pj: f64,
    pub energy_dram_pj: f64,
}

impl LayerStats {
    pub fn mapping_eff_pct(&self) -> f64 {
        if self.folds == 0 { 0.0 } else { 100.0 * self.mapping_eff_sum / self.folds as f64 }
    }

    pub fn compute_util_pct(&self) -> f64 {
        if self.folds == 0 { 0.0 } else { 100.0 * self.compute_util_sum / self.folds as f64 }
    }

    /// MACs over PE-cycles of the array's cycles (SCALE-Sim's `overall_util`).
    pub fn overall_util_pct(&self) -> f64 {
        if self.cycles == 0 || self.pes == 0 { 0.0 } else { 100.0 * self.macs as f64 / (self.cycles * self.pes) as f64 }
    }

    /// Array cycles, stalls and vector cycles.
    pub fn total_cycles(&self) -> u64 {
        self.cycles + self.stall_cycles + self.vector_cycles
    }

    pub fn energy_pj(&self) -> f64 {
        self.energy_mac_pj + self.energy_sram_pj + self.energy_dram_pj
    }

    pub fn dram_total_bytes(&self) -> f64 {
        self.dram_bytes.iter().sum()
    }

    fn add(&mut self, o: &LayerStats) {
        self.macs += o.macs;
        self.folds += o.folds;
        self.cycles += o.cycles;
        self.stall_cycles += o.stall_cycles;
        self.vector_cycles += o.vector_cycles;
        self.mapping_eff_sum += o.mapping_eff_sum;
        self.compute_util_sum += o.compute_util_sum;
        self.pes = self.pes.max(o.pes);
        self.sram_ifmap_reads += o.sram_ifmap_reads;
        self.sram_filter_reads += o.sram_filter_reads;
        self.sram_ofmap_writes += o.sram_ofmap_writes;
        for i in 0..3 {
            self.sram_bits[i] += o.sram_bits[i];
            self.dram_bytes[i] += o.dram_bytes[i];
        }
        self.energy_mac_pj += o.energy_mac_pj;
        self.energy_sram_pj += o.energy_sram_pj;
        self.energy_dram_pj += o.energy_dram_pj;
    }
}

/// The result of a run: one entry per `layer`, and their sum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub layers: Vec<LayerStats>,
}

impl Report {
    /// The sum over layers (utilisation then refers to the whole run).
    pub fn total(&self) -> LayerStats {
        let mut t = LayerStats { name: "total".into(), ..LayerStats::default() };
        for l in &self.layers {
            t.add(l);
        }
        t
    }
}

/// The machine state the configuration instructions set.
struct State {
    dataflow: Dataflow,
    mac: Mac,
    rows: u64,
    cols: u64,
    formats: [Format; 3],
    datapath: Datapath,
}

/// Runs `program` on `arch` and prices it with `table`.
pub fn simulate(program: &Program, arch: &Arch, table: &EnergyTable) -> Result<Report, IsaError> {
    let fp32 = Format::parse("fp32").expect("fp32 is a format");
    let mut state = State {
        dataflow: arch.dataflow,
        mac: arch.mac,
        rows: arch.rows,
        cols: arch.cols,
        formats: [fp32; 3],
        datapath: Datapath::default(),
    };
    let mut report = Report::default();
    let mut current: Option<LayerStats> = None;
    let sram_bit = [0, 1, 2].map(|i| table.sram_bit(arch.sram_kb[i]));
    let bits = |s: &State, i: usize| s.formats[i].bits_per_element();
    let need_layer = |c: &mut Option<LayerStats>, what: &str| -> Result<(), IsaError> {
        if c.is_none() { Err(IsaError(format!("`{what}` before the first `layer`"))) } else { Ok(()) }
    };
    for instr in &program.instrs {
        match *instr {
            Instr::Halt {} => break,
            Instr::Layer { name, macs } => {
                if let Some(done) = current.take() {
                    report.layers.push(finish(done, arch));
                }
                let pes = state.rows * state.cols;
                current = Some(LayerStats { name: program.string(name)?.to_string(), macs, pes, ..LayerStats::default() });
            }
            Instr::CfgArray { dataflow, rows, cols, mac } => {
                state.dataflow = Dataflow::from_code(dataflow).ok_or_else(|| IsaError(format!("cfg.array: unknown dataflow {dataflow}")))?;
                state.mac = Mac::from_code(mac).ok_or_else(|| IsaError(format!("cfg.array: unknown MAC unit {mac}")))?;
                if rows == 0 || cols == 0 {
                    return Err(IsaError("cfg.array: the array has no PEs".into()));
                }
                (state.rows, state.cols) = (rows, cols);
                if let Some(c) = current.as_mut() {
                    c.pes = rows * cols;
                    c.dataflow = Some(state.dataflow);
                }
            }
            Instr::CfgOperand { buffer, format } => {
                let text = program.string(format)?;
                let f = Format::parse(text).map_err(|e| IsaError(format!("cfg.operand: {e}")))?;
                *state.formats.get_mut(buffer as usize).ok_or_else(|| IsaError(format!("cfg.operand: no buffer {buffer}")))? = f;
            }
            Instr::CfgArith { arith } => {
                state.datapath = Datapath::parse(program.string(arith)?).map_err(|e| IsaError(format!("cfg.arith: {e}")))?;
            }
            Instr::DmaLoad { buffer, count } => {
                need_layer(&mut current, "dma.load")?;
                let c = current.as_mut().expect("checked");
                let i = buffer as usize;
                if i > 1 {
                    return Err(IsaError(format!("dma.load: buffer {buffer} is not an input buffer")));
                }
                let b = count as f64 * bits(&state, i);
                c.dram_bytes[i] += b / 8.0;
                c.sram_bits[i] += b;
                c.energy_dram_pj += b * table.dram_bit();
                c.energy_sram_pj += b * sram_bit[i];
            }
            Instr::DmaStore { count } => {
                need_layer(&mut current, "dma.store")?;
                let c = current.as_mut().expect("checked");
                let b = count as f64 * bits(&state, 2);
                c.dram_bytes[2] += b / 8.0;
                c.sram_bits[2] += b;
                c.energy_dram_pj += b * table.dram_bit();
                c.energy_sram_pj += b * sram_bit[2];
            }
            Instr::ArrayStep { m, n, k, .. } => {
                need_layer(&mut current, "array.step")?;
                let c = current.as_mut().expect("checked");
                let (r_used, c_used, _) = state.dataflow.spatial(m, n, k);
                if r_used > state.rows || c_used > state.cols || m == 0 || n == 0 || k == 0 {
                    return Err(IsaError(format!(
                        "array.step {m}x{n}x{k} does not fit a {}x{} array in {}",
                        state.rows, state.cols, state.dataflow
                    )));
                }
                let time_steps = state.dataflow.spatial(m, n, k).2;
                let [a_bits, w_bits] = [0, 1].map(|i| Operand::of(&state.formats[i]).significand_bits);
                let streamed = state.mac.streamed_cycles(time_steps, a_bits, w_bits);
                let f = fold_cost(state.dataflow, state.rows, state.cols, m, n, k).with_streamed_cycles(time_steps, streamed);
                let pes = (state.rows * state.cols) as f64;
                c.folds += 1;
                c.cycles += f.cycles;
                c.mapping_eff_sum += f.pes_used as f64 / pes;
                c.compute_util_sum += (f.pes_used * time_steps) as f64 / (pes * f.util_cycles as f64);
                c.sram_ifmap_reads += f.ifmap_reads;
                c.sram_filter_reads += f.filter_reads;
                c.sram_ofmap_writes += f.ofmap_writes;
                let read_bits = [f.ifmap_reads as f64 * bits(&state, 0), f.filter_reads as f64 * bits(&state, 1), f.ofmap_values as f64 * bits(&state, 2)];
                for i in 0..3 {
                    c.sram_bits[i] += read_bits[i];
                    c.energy_sram_pj += read_bits[i] * sram_bit[i];
                }
                let macs = (m * n * k) as f64;
                c.energy_mac_pj += macs * state.datapath.mac_energy(table, &state.formats[0], &state.formats[1], state.mac);
                if let Some((size, e)) = state.datapath.chunk_energy(table) {
                    c.energy_mac_pj += (m * n * k.div_ceil(size)) as f64 * e;
                }
            }
            Instr::Vector { op, count } => {
                let def = VECTOR_OPS.get(op as usize).ok_or_else(|| IsaError(format!("vector: no vector operation {op} ({} in the table)", VECTOR_OPS.len())))?;
                need_layer(&mut current, "vector")?;
                let c = current.as_mut().expect("checked");
                let steps = u64::from(def.steps);
                c.vector_cycles += (count * steps.max(1)).div_ceil(state.cols);
                // Read and write each element in the output format; each step one fp32
                // operation of a lane.
                let b = 2.0 * count as f64 * bits(&state, 2);
                c.sram_bits[2] += b;
                c.energy_sram_pj += b * sram_bit[2];
                c.energy_mac_pj += (count * steps) as f64 * table.add(32, true);
            }
            Instr::Sync {} => {}
        }
    }
    if let Some(done) = current.take() {
        report.layers.push(finish(done, arch));
    }
    Ok(report)
}

/// Closes a layer: SCALE-Sim's last-cycle index (folds back to back, minus one) and the stall
/// when DRAM cannot deliver the layer's traffic in its compute time (double buffering hides
/// the rest).
fn finish(mut l: LayerStats, arch: &Arch) -> LayerStats {
    l.cycles = l.cycles.saturating_sub(1);
    if let Some(gbps) = arch.dram_gbps {
        let bytes_per_cycle = gbps / arch.clock_ghz;
        let dram_cycles = (l.dram_total_bytes() / bytes_per_cycle).ceil() as u64;
        l.stall_cycles = dram_cycles.saturating_sub(l.cycles);
    }
    l
}
