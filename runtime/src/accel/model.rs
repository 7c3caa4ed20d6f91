//! The array's cost model: the hardware description ([`Arch`]) and the cycles and SRAM
//! accesses of one fold of a GEMM on a systolic array, as SCALE-Sim 3.0 counts them in its
//! stall-free mode (`systolic_compute_{os,ws,is}.py`, `double_buffered_scratchpad_mem.py`).
//! spec/isa.md, "Cost model", derives every formula and says where qc departs.

use std::fmt;

/// Which operand stays in the PEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataflow {
    /// Output stationary: PE rows × columns hold M × N outputs; K streams in time.
    Os,
    /// Weight stationary: K × N weights; M streams.
    Ws,
    /// Input stationary: K × M inputs; N streams.
    Is,
}

impl Dataflow {
    pub const ALL: [Dataflow; 3] = [Dataflow::Os, Dataflow::Ws, Dataflow::Is];

    pub fn parse(text: &str) -> Option<Dataflow> {
        match text.trim().to_ascii_lowercase().as_str() {
            "os" => Some(Dataflow::Os),
            "ws" => Some(Dataflow::Ws),
            "is" => Some(Dataflow::Is),
            _ => None,
        }
    }

    /// The code of `cfg.array`'s `dataflow` field.
    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Option<Dataflow> {
        Dataflow::ALL.get(code as usize).copied()
    }

    /// The GEMM extents `(m, n, k)` as (PE rows, PE columns, time steps).
    pub fn spatial(self, m: u64, n: u64, k: u64) -> (u64, u64, u64) {
        match self {
            Dataflow::Os => (m, n, k),
            Dataflow::Ws => (k, n, m),
            Dataflow::Is => (k, m, n),
        }
    }
}

impl fmt::Display for Dataflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dataflow::Os => "os",
            Dataflow::Ws => "ws",
            Dataflow::Is => "is",
        })
    }
}

/// The accelerator: a rows × cols PE array with three scratchpads and a DRAM interface.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    pub rows: u64,
    pub cols: u64,
    pub dataflow: Dataflow,
    /// Scratchpad sizes in KiB: ifmap, filter, ofmap (double-buffered: half is active).
    pub sram_kb: [u64; 3],
    /// DRAM bandwidth in GB/s; `None` is SCALE-Sim's CALC mode (whatever the run needs, no
    /// stalls).
    pub dram_gbps: Option<f64>,
    /// Clock frequency in GHz (turns the DRAM bandwidth into bytes per cycle).
    pub clock_ghz: f64,
}

impl Default for Arch {
    fn default() -> Self {
        Arch { rows: 32, cols: 32, dataflow: Dataflow::Os, sram_kb: [256, 256, 128], dram_gbps: None, clock_ghz: 1.0 }
    }
}

/// The cost of one fold, in SCALE-Sim's units (words of any width).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldCost {
    /// Cycles from the fold's first operand entering the array to its last result leaving.
    pub cycles: u64,
    /// The cycle count SCALE-Sim divides by for the fold's compute utilisation.
    pub util_cycles: u64,
    /// PEs holding a useful operand.
    pub pes_used: u64,
    pub ifmap_reads: u64,
    pub filter_reads: u64,
    /// Output writes as SCALE-Sim counts them (os adds rows + cols per fold).
    pub ofmap_writes: u64,
    /// Output writes that carry a value.
    pub ofmap_values: u64,
}

/// The cost of the fold `m × n × k` (GEMM extents, each at most what the dataflow maps onto
/// the array) on `rows × cols` PEs.
pub fn fold_cost(dataflow: Dataflow, rows: u64, cols: u64, m: u64, n: u64, k: u64) -> FoldCost {
    let (r_used, c_used, t) = dataflow.spatial(m, n, k);
    let pes_used = r_used * c_used;
    match dataflow {
        Dataflow::Os => FoldCost {
            cycles: t + rows + cols - 2,
            util_cycles: t + rows + cols - 2,
            pes_used,
            ifmap_reads: t * r_used,
            filter_reads: t * c_used,
            ofmap_writes: pes_used + rows + cols,
            ofmap_values: pes_used,
        },
        Dataflow::Ws => FoldCost {
            cycles: 2 * rows + cols + t - 2,
            util_cycles: 2 * rows + 2 * cols + t - 3,
            pes_used,
            ifmap_reads: t * r_used,
            filter_reads: pes_used,
            ofmap_writes: t * c_used,
            ofmap_values: t * c_used,
        },
        Dataflow::Is => FoldCost {
            cycles: 2 * rows + cols + t - 2,
            util_cycles: 2 * rows + 2 * cols + t - 3,
            pes_used,
            ifmap_reads: pes_used,
            filter_reads: t * r_used,
            ofmap_writes: t * c_used,
            ofmap_values: t * c_used,
        },
    }
}

/// Parses `RxC` (`32x32`).
pub fn parse_array(text: &str) -> Option<(u64, u64)> {
    let (r, c) = text.trim().split_once(['x', 'X'])?;
    let (r, c) = (r.trim().parse().ok()?, c.trim().parse().ok()?);
    (r > 0 && c > 0 && r <= 4096 && c <= 4096).then_some((r, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_fold_streams_k_through_a_full_array_diagonal() {
        let c = fold_cost(Dataflow::Os, 8, 8, 1, 8, 64);
        assert_eq!((c.cycles, c.ifmap_reads, c.filter_reads, c.ofmap_writes), (78, 64, 512, 24));
    }

    #[test]
    fn the_array_shape_parses_and_rejects_zero() {
        assert_eq!(parse_array("32x16"), Some((32, 16)));
        assert_eq!(parse_array("0x4"), None);
        assert_eq!(parse_array("8"), None);
    }
}
