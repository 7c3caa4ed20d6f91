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

/// The multiply-accumulate unit of every PE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mac {
    /// One multiply-accumulate per cycle whatever the operand widths (SCALE-Sim's PE).
    Fixed,
    /// Bit Fusion (Sharma et al., ISCA 2018): 2-bit BitBricks fused into an 8×8 multiplier,
    /// which does one 8×8, four 4×4 (or 8×2) or sixteen 2×2 products per cycle: a product of
    /// `a`- and `b`-bit operands takes `a'·b'/64` of a cycle, `a'` and `b'` the widths rounded
    /// up to 2, 4, 8, 16 or 32 bits (wider than 8: several cycles).
    PrecisionScalable,
    /// Weight-bit-serial (UNPU, Lee et al., ISSCC 2018; Stripes, Judd et al., MICRO 2016
    /// serialises activations the same way): the weight's bits enter one per cycle, so a
    /// multiply-accumulate takes as many cycles as the weight has (significand) bits.
    BitSerial,
}

impl Mac {
    pub const ALL: [Mac; 3] = [Mac::Fixed, Mac::PrecisionScalable, Mac::BitSerial];

    pub fn parse(text: &str) -> Option<Mac> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fixed" => Some(Mac::Fixed),
            "precision-scalable" => Some(Mac::PrecisionScalable),
            "bit-serial" => Some(Mac::BitSerial),
            _ => None,
        }
    }

    /// The code of `cfg.array`'s `mac` field.
    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Option<Mac> {
        Mac::ALL.get(code as usize).copied()
    }

    /// The cycles the array spends on `t` streamed steps of a fold (one MAC per PE each) with
    /// `ifmap_bits`- and `weight_bits`-bit operands (significand bits for floats).
    pub fn streamed_cycles(self, t: u64, ifmap_bits: u32, weight_bits: u32) -> u64 {
        let brick = |bits: u32| u64::from(bits.clamp(2, 32).next_power_of_two());
        match self {
            Mac::Fixed => t,
            Mac::PrecisionScalable => (t * brick(ifmap_bits) * brick(weight_bits)).div_ceil(64),
            Mac::BitSerial => t * u64::from(weight_bits.max(1)),
        }
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mac::Fixed => "fixed",
            Mac::PrecisionScalable => "precision-scalable",
            Mac::BitSerial => "bit-serial",
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
    /// The PEs' multiply-accumulate unit.
    pub mac: Mac,
}

impl Default for Arch {
    fn default() -> Self {
        Arch { rows: 32, cols: 32, dataflow: Dataflow::Os, sram_kb: [256, 256, 128], dram_gbps: None, clock_ghz: 1.0, mac: Mac::Fixed }
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
/// the array) on `rows × cols` PEs of fixed MACs; [`FoldCost::with_streamed_cycles`] for
/// others.
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

impl FoldCost {
    /// The cost when the fold's `t` streamed steps take `cycles` cycles instead of `t`
    /// (precision-scalable or bit-serial MACs; fill and drain unchanged, SRAM reads unchanged:
    /// an operand word is read once per step).
    pub fn with_streamed_cycles(self, t: u64, cycles: u64) -> FoldCost {
        FoldCost { cycles: self.cycles - t + cycles, util_cycles: self.util_cycles - t + cycles, ..self }
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
    fn bit_serial_time_follows_the_weight_bits_and_bit_fusion_the_brick_product() {
        assert_eq!(Mac::BitSerial.streamed_cycles(100, 8, 4) * 2, Mac::BitSerial.streamed_cycles(100, 8, 8));
        assert_eq!(Mac::PrecisionScalable.streamed_cycles(64, 8, 8), 64);
        assert_eq!(Mac::PrecisionScalable.streamed_cycles(64, 4, 4), 16);
        assert_eq!(Mac::PrecisionScalable.streamed_cycles(64, 2, 1), 4);
        assert_eq!(Mac::PrecisionScalable.streamed_cycles(64, 8, 3), 32);
        assert_eq!(Mac::Fixed.streamed_cycles(64, 32, 32), 64);
        let f = fold_cost(Dataflow::Os, 8, 8, 8, 8, 64);
        assert_eq!(f.with_streamed_cycles(64, 16).cycles, f.cycles - 48);
    }

    #[test]
    fn the_array_shape_parses_and_rejects_zero() {
        assert_eq!(parse_array("32x16"), Some((32, 16)));
        assert_eq!(parse_array("0x4"), None);
        assert_eq!(parse_array("8"), None);
    }
}
