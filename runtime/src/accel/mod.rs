//! The accelerator: a systolic PE array with ifmap/filter/ofmap scratchpads and DRAM.
//!
//! - [`isa`]: the instruction set, defined once (encoder, decoder, disassembler, assembler,
//!   the simulator's dispatch and `spec/isa.md` come from that one table).
//! - [`model`]: the hardware description and the cycle and SRAM-access cost of one fold, as
//!   SCALE-Sim 3.0 counts them in stall-free mode.
//! - [`energy`]: energy per action (Horowitz 45 nm by default) scaled by format widths;
//!   [`datapath`]: the MAC datapath of an `#arith`, priced with it.
//! - [`scalesim`]: SCALE-Sim's own inputs (topology CSV, `.cfg`).
//! - [`sim`]: the simulator's accounting per layer; [`array`]: the array steps' numerics, to
//!   the bit of the kernel dialect's contraction.
//!
//! Knows nothing of the IR: programs come from `qc-compiler`'s `accel` module.

pub mod array;
pub mod datapath;
pub mod energy;
pub mod isa;
pub mod model;
pub mod scalesim;
pub mod sim;
