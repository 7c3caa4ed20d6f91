//! The accelerator's instruction set, defined once in [`isa!`]'s table: the typed
//! [`Instr`] enum (the simulator's dispatch matches on it), the [`INSTRUCTIONS`] table of
//! names, fields, widths and semantics (the encoder, decoder, disassembler, assembler and
//! `spec/isa.md` read it), and nothing else. Every instruction is one 128-bit word: the
//! opcode in bits 0..8, then the fields in table order from bit 8 upwards, each an unsigned
//! integer of its width; unused high bits are zero.

use std::fmt;

/// The bytes of one instruction word.
pub const WORD_BYTES: usize = 16;
/// Bits of the opcode at the bottom of the word.
const OPCODE_BITS: u32 = 8;

/// One field of an instruction: a name, a width in bits and its meaning.
#[derive(Debug)]
pub struct FieldDef {
    pub name: &'static str,
    pub bits: u32,
    pub doc: &'static str,
}

/// One instruction of the table.
#[derive(Debug)]
pub struct InstrDef {
    pub opcode: Opcode,
    pub name: &'static str,
    pub fields: &'static [FieldDef],
    pub doc: &'static str,
}

/// Defines the instruction table: each entry `Variant = opcode, "mnemonic", "semantics"
/// { field: bits, "meaning"; ... }` becomes an [`Opcode`], an [`Instr`] variant with one `u64`
/// per field, and an [`InstrDef`] in [`INSTRUCTIONS`].
macro_rules! isa {
    ($( $variant:ident = $code:literal, $name:literal, $doc:literal { $( $field:ident : $bits:literal, $fdoc:literal; )* } )*) => {
        /// The operation of an instruction (its code is the low byte of the word).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Opcode { $( $variant = $code ),* }

        /// A decoded instruction: one variant per table entry, one integer per field.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Instr { $( $variant { $( $field: u64 ),* } ),* }

        /// Every instruction, in opcode order.
        pub static INSTRUCTIONS: &[InstrDef] = &[ $( InstrDef {
            opcode: Opcode::$variant,
            name: $name,
            doc: $doc,
            fields: &[ $( FieldDef { name: stringify!($field), bits: $bits, doc: $fdoc } ),* ],
        } ),* ];

        impl Instr {
            /// The instruction's opcode.
            pub fn opcode(&self) -> Opcode {
                match self { $( Instr::$variant { .. } => Opcode::$variant ),* }
            }

            /// The field values in table order.
            pub fn args(&self) -> Vec<u64> {
                match self { $( Instr::$variant { $( $field ),* } => vec![ $( *$field ),* ] ),* }
            }

            /// Builds an instruction from its field values in table order (`args` has exactly
            /// as many values as the instruction has fields).
            fn from_args(opcode: Opcode, args: &[u64]) -> Instr {
                #[allow(unused_variables, unused_mut)]
                let mut values = args.iter().copied();
                match opcode { $( Opcode::$variant => Instr::$variant { $( $field: values.next().unwrap_or(0) ),* } ),* }
            }
        }
    };
}

isa! {
    Halt = 0, "halt", "Ends the program." {}
    Layer = 1, "layer", "Starts the accounting of a new layer: every count until the next `layer` belongs to it. `name` indexes the program's string pool." {
        name: 16, "string-pool index of the layer's name";
        macs: 48, "multiply-accumulates the layer performs (for utilisation)";
    }
    CfgArray = 2, "cfg.array", "Configures the PE array for the following steps: its shape, dataflow (0 output-, 1 weight-, 2 input-stationary) and MAC unit (0 fixed, 1 precision-scalable, 2 bit-serial; spec/isa.md, \"MAC units\")." {
        dataflow: 2, "0 = os, 1 = ws, 2 = is";
        rows: 16, "PE rows of the array the program was tiled for";
        cols: 16, "PE columns of the array the program was tiled for";
        mac: 2, "0 = fixed, 1 = precision-scalable, 2 = bit-serial";
    }
    CfgOperand = 3, "cfg.operand", "Sets the number format of an operand buffer: `format` indexes the string pool (a format as spec/numerics.md writes it); memory traffic is counted in its storage bits, block scales included." {
        buffer: 2, "0 = ifmap, 1 = filter, 2 = ofmap";
        format: 16, "string-pool index of the format";
    }
    CfgArith = 4, "cfg.arith", "Sets the MAC datapath for the following steps: the `#arith` of the contraction (spec/ir.md), as the string-pool entry `arith` in its textual form. Multiplier energy follows the operand significands, adder energy the accumulator and chunk widths, stochastic roundings add their random bits." {
        arith: 16, "string-pool index of the `#arith<...>` text";
    }
    DmaLoad = 5, "dma.load", "Moves `count` elements of operand `buffer` from DRAM into its scratchpad (DRAM reads and SRAM writes in the operand's storage format)." {
        buffer: 2, "0 = ifmap, 1 = filter";
        count: 48, "elements moved";
    }
    DmaStore = 6, "dma.store", "Moves `count` output elements from the ofmap scratchpad to DRAM." {
        count: 48, "elements moved";
    }
    ArrayStep = 7, "array.step", "One fold of the GEMM `out[M,N] += in[M,K]·w[K,N]` on the array: output rows `m0..m0+m`, columns `n0..n0+n`, reduction `k0..k0+k`. Which extents map to PE rows, columns and time follows the dataflow: os (m, n, k), ws (k, n, m), is (k, m, n). Costs SCALE-Sim's stall-free cycles and SRAM reads/writes for that fold." {
        m0: 20, "first output row";
        n0: 20, "first output column";
        k0: 20, "first reduction index";
        m: 20, "output rows";
        n: 20, "output columns";
        k: 20, "reduction length";
    }
    Vector = 8, "vector", "A pass of the vector unit over `count` results (one lane per array column; reads and writes the ofmap scratchpad): `op` indexes the vector-operation table below, which gives each operation's steps per result." {
        op: 8, "index into the vector-operation table";
        count: 48, "result elements";
    }
    Sync = 9, "sync", "Waits until every DMA transfer and array step issued before it has finished." {}
}

/// One operation of the vector unit: its name (the `nn`/`q` op it executes, without the
/// dialect prefix), the steps it costs per result element (fp32 operations of one lane; an
/// exponential, error function or square root counts as one step of the lane's function
/// unit; moves cost none) and what it computes.
#[derive(Debug)]
pub struct VectorOpDef {
    pub name: &'static str,
    pub steps: u32,
    pub doc: &'static str,
}

/// The vector unit's operations, in `vector`'s `op` order. Their numerics are the kernel
/// dialect's (spec/ir.md, "Lowering to kernel").
pub static VECTOR_OPS: &[VectorOpDef] = &[
    VectorOpDef { name: "relu", steps: 1, doc: "`max(x, 0)`" },
    VectorOpDef { name: "leaky_relu", steps: 2, doc: "`max(x, α·x)` (α ≤ 1, else `min`)" },
    VectorOpDef { name: "clip", steps: 2, doc: "`min(max(x, lo), hi)`" },
    VectorOpDef { name: "pact", steps: 2, doc: "`min(max(x, 0), α)`" },
    VectorOpDef { name: "add", steps: 1, doc: "`x + y` (broadcast)" },
    VectorOpDef { name: "mul", steps: 1, doc: "`x · y` (broadcast)" },
    VectorOpDef { name: "sigmoid", steps: 3, doc: "`1 / (1 + exp(−x))`" },
    VectorOpDef { name: "tanh", steps: 3, doc: "`tanh x`" },
    VectorOpDef { name: "gelu", steps: 4, doc: "`0.5·x·(1 + erf(x/√2))`" },
    VectorOpDef { name: "cast", steps: 1, doc: "one rounding to an element-wise format" },
    VectorOpDef { name: "quantize", steps: 2, doc: "rounding to a format (a scaled one: the block's or tensor's maximum, then the rounding)" },
    VectorOpDef { name: "dequantize", steps: 1, doc: "rounding back to an element-wise format" },
    VectorOpDef { name: "maxpool2d", steps: 1, doc: "the window's maximum" },
    VectorOpDef { name: "avgpool2d", steps: 2, doc: "the window's sum, divided by its count" },
    VectorOpDef { name: "batchnorm", steps: 4, doc: "`shift + (x − mean)/√(var + ε)·scale`" },
    VectorOpDef { name: "softmax", steps: 5, doc: "along an axis: maximum, `exp(x − max)`, sum, division" },
    VectorOpDef { name: "layernorm", steps: 8, doc: "along the last axis: mean, squared deviations, `√(v + ε)`, division, `β + n·γ`" },
    VectorOpDef { name: "transpose", steps: 0, doc: "a permutation of the axes (a move)" },
    VectorOpDef { name: "concat", steps: 0, doc: "a concatenation along an axis (a move)" },
];

/// The index of the vector operation executing the IR op `op_name` (`nn.gelu`, `q.quantize`).
pub fn vector_op(op_name: &str) -> Option<u64> {
    let name = op_name.trim_start_matches("nn.").trim_start_matches("q.");
    VECTOR_OPS.iter().position(|v| v.name == name).map(|i| i as u64)
}

impl Opcode {
    /// The table entry of this opcode.
    pub fn def(self) -> &'static InstrDef {
        INSTRUCTIONS.iter().find(|d| d.opcode == self).expect("every opcode is in the table")
    }
}

impl Instr {
    /// This instruction's table entry.
    pub fn def(&self) -> &'static InstrDef {
        self.opcode().def()
    }

    /// Builds an instruction from field values, checking the count and every width.
    pub fn new(opcode: Opcode, args: &[u64]) -> Result<Instr, IsaError> {
        let def = opcode.def();
        if args.len() != def.fields.len() {
            return Err(IsaError(format!("`{}` takes {} fields, got {}", def.name, def.fields.len(), args.len())));
        }
        for (f, &v) in def.fields.iter().zip(args) {
            if f.bits < 64 && v >> f.bits != 0 {
                return Err(IsaError(format!("`{}` field `{}` = {v} does not fit in {} bits", def.name, f.name, f.bits)));
            }
        }
        Ok(Instr::from_args(opcode, args))
    }

    /// The instruction word (little-endian bytes of the 128-bit value).
    pub fn encode(&self) -> Result<[u8; WORD_BYTES], IsaError> {
        let def = self.def();
        let mut word = self.opcode() as u128;
        let mut at = OPCODE_BITS;
        for (f, v) in def.fields.iter().zip(self.args()) {
            if f.bits < 64 && v >> f.bits != 0 {
                return Err(IsaError(format!("`{}` field `{}` = {v} does not fit in {} bits", def.name, f.name, f.bits)));
            }
            word |= (v as u128) << at;
            at += f.bits;
        }
        Ok(word.to_le_bytes())
    }

    /// Decodes one instruction word; an unknown opcode or bits set above the last field are
    /// errors.
    pub fn decode(bytes: &[u8; WORD_BYTES]) -> Result<Instr, IsaError> {
        let word = u128::from_le_bytes(*bytes);
        let code = (word & 0xff) as u8;
        let def = INSTRUCTIONS
            .iter()
            .find(|d| d.opcode as u8 == code)
            .ok_or_else(|| IsaError(format!("unknown opcode {code}")))?;
        let mut at = OPCODE_BITS;
        let mut args = Vec::with_capacity(def.fields.len());
        for f in def.fields {
            args.push(((word >> at) & ((1u128 << f.bits) - 1)) as u64);
            at += f.bits;
        }
        if at < 128 && word >> at != 0 {
            return Err(IsaError(format!("`{}`: bits set above its last field", def.name)));
        }
        Ok(Instr::from_args(def.opcode, &args))
    }

    /// Parses one line of assembly: `name field=value, ...` with every field named once, in
    /// any order.
    pub fn assemble(line: &str) -> Result<Instr, IsaError> {
        let line = line.trim();
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let def = INSTRUCTIONS
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| IsaError(format!("unknown instruction `{name}`")))?;
        let mut args: Vec<Option<u64>> = vec![None; def.fields.len()];
        for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| IsaError(format!("`{name}`: expected `field=value`, found `{item}`")))?;
            let (key, value) = (key.trim(), value.trim());
            let i = def
                .fields
                .iter()
                .position(|f| f.name == key)
                .ok_or_else(|| IsaError(format!("`{name}` has no field `{key}`")))?;
            let v = value.parse::<u64>().map_err(|_| IsaError(format!("`{name}` field `{key}`: `{value}` is not an unsigned integer")))?;
            if args[i].replace(v).is_some() {
                return Err(IsaError(format!("`{name}` field `{key}` given twice")));
            }
        }
        let args: Vec<u64> = def
            .fields
            .iter()
            .zip(&args)
            .map(|(f, a)| a.ok_or_else(|| IsaError(format!("`{name}` is missing field `{}`", f.name))))
            .collect::<Result<_, _>>()?;
        Instr::new(def.opcode, &args)
    }
}

impl fmt::Display for Instr {
    /// The disassembly: `name field=value, ...` in table order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let def = self.def();
        f.write_str(def.name)?;
        for (i, (field, v)) in def.fields.iter().zip(self.args()).enumerate() {
            write!(f, "{}{}={v}", if i == 0 { " " } else { ", " }, field.name)?;
        }
        Ok(())
    }
}

/// A malformed instruction, word or program: one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsaError(pub String);

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IsaError {}

/// A program: instructions and the string pool they index (layer names, formats, `#arith`
/// texts, vector operation names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub pool: Vec<String>,
    pub instrs: Vec<Instr>,
}

/// The first bytes of a binary program.
const MAGIC: &[u8; 8] = b"QCISA\0\0\x01";

impl Program {
    /// The pool index of `text`, adding it if new.
    pub fn intern(&mut self, text: &str) -> u64 {
        match self.pool.iter().position(|s| s == text) {
            Some(i) => i as u64,
            None => {
                self.pool.push(text.to_string());
                (self.pool.len() - 1) as u64
            }
        }
    }

    /// The pool entry `index`, or an error naming the instruction that used it.
    pub fn string(&self, index: u64) -> Result<&str, IsaError> {
        self.pool
            .get(index as usize)
            .map(String::as_str)
            .ok_or_else(|| IsaError(format!("string-pool index {index} out of range ({} entries)", self.pool.len())))
    }

    /// The binary form: magic, pool (count, then length-prefixed UTF-8 strings, u32 LE),
    /// instruction count (u32 LE), instruction words.
    pub fn encode(&self) -> Result<Vec<u8>, IsaError> {
        let mut out = MAGIC.to_vec();
        out.extend((self.pool.len() as u32).to_le_bytes());
        for s in &self.pool {
            out.extend((s.len() as u32).to_le_bytes());
            out.extend(s.as_bytes());
        }
        out.extend((self.instrs.len() as u32).to_le_bytes());
        for i in &self.instrs {
            out.extend(i.encode()?);
        }
        Ok(out)
    }

    /// Reads the binary form; truncation, bad UTF-8 and bad words are errors.
    pub fn decode(bytes: &[u8]) -> Result<Program, IsaError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], IsaError> {
            let s = bytes.get(at..at + n).ok_or_else(|| IsaError("truncated program".into()))?;
            at += n;
            Ok(s)
        };
        if take(MAGIC.len())? != MAGIC {
            return Err(IsaError("not a qc accelerator program (bad magic)".into()));
        }
        let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("four bytes")) as usize;
        let pool_len = u32_at(take(4)?);
        let mut pool = Vec::new();
        for _ in 0..pool_len {
            let n = u32_at(take(4)?);
            let s = std::str::from_utf8(take(n)?).map_err(|_| IsaError("string pool entry is not UTF-8".into()))?;
            pool.push(s.to_string());
        }
        let count = u32_at(take(4)?);
        let mut instrs = Vec::new();
        for _ in 0..count {
            let word: &[u8; WORD_BYTES] = take(WORD_BYTES)?.try_into().expect("a word");
            instrs.push(Instr::decode(word)?);
        }
        if at != bytes.len() {
            return Err(IsaError("trailing bytes after the last instruction".into()));
        }
        Ok(Program { pool, instrs })
    }

    /// Parses the text form that [`Program`]'s `Display` prints: `.string N "text"` lines
    /// (pool entries in order, `\"` and `\\` escaped), instruction lines, `;` comments.
    pub fn assemble(text: &str) -> Result<Program, IsaError> {
        let mut program = Program::default();
        for (n, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let at_line = |e: IsaError| IsaError(format!("line {}: {}", n + 1, e.0));
            if let Some(rest) = line.strip_prefix(".string") {
                let (index, quoted) = rest.trim().split_once(char::is_whitespace).ok_or_else(|| at_line(IsaError("expected `.string N \"text\"`".into())))?;
                if index.parse::<usize>().ok() != Some(program.pool.len()) {
                    return Err(at_line(IsaError(format!("expected pool entry {}, found `{index}`", program.pool.len()))));
                }
                program.pool.push(unquote(quoted.trim()).map_err(at_line)?);
            } else {
                program.instrs.push(Instr::assemble(line).map_err(at_line)?);
            }
        }
        Ok(program)
    }
}

/// The line without a `;` comment (a `;` inside a quoted string stays).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(s: &str) -> Result<String, IsaError> {
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| IsaError(format!("expected a quoted string, found `{s}`")))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                _ => return Err(IsaError("only `\\\"` and `\\\\` escapes are allowed".into())),
            },
            '"' => return Err(IsaError("unescaped `\"` inside a string".into())),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.pool.iter().enumerate() {
            writeln!(f, ".string {i} \"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        for instr in &self.instrs {
            writeln!(f, "{instr}")?;
        }
        Ok(())
    }
}

/// The instruction reference of `spec/isa.md`, generated from [`INSTRUCTIONS`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "<!-- Generated from runtime/src/accel/isa.rs by `qc sim --isa-reference`; a test checks it is current. -->\n\
         ## Instruction reference\n\n\
         Every instruction is one 128-bit little-endian word: the opcode in bits 0..8, then the\n\
         fields in the order below, from bit 8 upwards. Unused high bits must be zero.\n",
    );
    for d in INSTRUCTIONS {
        let used: u32 = OPCODE_BITS + d.fields.iter().map(|f| f.bits).sum::<u32>();
        out.push_str(&format!("\n### `{}` (opcode {}, {used} bits used)\n\n{}\n", d.name, d.opcode as u8, d.doc));
        if !d.fields.is_empty() {
            out.push_str("\n| field | bits | at | meaning |\n|---|---|---|---|\n");
            let mut at = OPCODE_BITS;
            for f in d.fields {
                out.push_str(&format!("| `{}` | {} | {}..{} | {} |\n", f.name, f.bits, at, at + f.bits, f.doc));
                at += f.bits;
            }
        }
    }
    out.push_str("\n## Vector operations\n\n`vector`'s `op` field indexes this table; steps are per result element.\n\n| op | name | steps | computes |\n|---|---|---|---|\n");
    for (i, v) in VECTOR_OPS.iter().enumerate() {
        out.push_str(&format!("| {i} | `{}` | {} | {} |\n", v.name, v.steps, v.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_fits_in_one_word_and_opcodes_are_distinct() {
        for d in INSTRUCTIONS {
            let used: u32 = OPCODE_BITS + d.fields.iter().map(|f| f.bits).sum::<u32>();
            assert!(used <= 128, "{} uses {used} bits", d.name);
            assert!(d.fields.iter().all(|f| f.bits <= 64), "{}", d.name);
            assert_eq!(INSTRUCTIONS.iter().filter(|e| e.opcode as u8 == d.opcode as u8 || e.name == d.name).count(), 1);
        }
    }

    #[test]
    fn a_comment_after_a_quoted_semicolon_is_stripped() {
        assert_eq!(strip_comment(".string 0 \"a;b\" ; note"), ".string 0 \"a;b\" ");
    }
}
