//! The instruction set's round trips (encode → decode → disassemble → assemble) for every
//! instruction of the table with random field values, whole programs through the binary and
//! text forms, malformed input giving errors (never panics), and `spec/isa.md` carrying the
//! reference generated from the table (set `QC_UPDATE_SPEC=1` to rewrite it).

use proptest::prelude::*;
use qc_runtime::accel::isa::{reference_markdown, Instr, Program, INSTRUCTIONS, WORD_BYTES};

/// Any instruction: a table entry and one value per field within its width.
fn any_instr() -> impl Strategy<Value = Instr> {
    (0..INSTRUCTIONS.len(), proptest::collection::vec(any::<u64>(), 8)).prop_map(|(i, raw)| {
        let def = &INSTRUCTIONS[i];
        let args: Vec<u64> = def.fields.iter().zip(raw).map(|(f, v)| if f.bits >= 64 { v } else { v & ((1 << f.bits) - 1) }).collect();
        Instr::new(def.opcode, &args).expect("values within the widths")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_instruction_round_trips(instr in any_instr()) {
        let word = instr.encode().unwrap();
        let decoded = Instr::decode(&word).unwrap();
        prop_assert_eq!(&decoded, &instr);
        let text = decoded.to_string();
        prop_assert_eq!(Instr::assemble(&text).unwrap(), instr.clone());
        prop_assert_eq!(Instr::assemble(&text).unwrap().encode().unwrap(), word);
    }

    #[test]
    fn programs_round_trip_through_binary_and_text(
        instrs in proptest::collection::vec(any_instr(), 0..40),
        pool in proptest::collection::vec("[ -~]{0,20}", 0..6),
    ) {
        let program = Program { pool, instrs };
        let binary = program.encode().unwrap();
        prop_assert_eq!(&Program::decode(&binary).unwrap(), &program);
        prop_assert_eq!(&Program::assemble(&program.to_string()).unwrap(), &program);
    }

    #[test]
    fn any_word_decodes_or_is_refused(bytes in proptest::array::uniform16(any::<u8>())) {
        if let Ok(instr) = Instr::decode(&bytes) {
            prop_assert_eq!(instr.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn truncated_or_mutated_programs_never_panic(instrs in proptest::collection::vec(any_instr(), 1..8), cut in 0usize..200, flip in 0usize..200) {
        let mut binary = Program { pool: vec!["e4m3".into()], instrs }.encode().unwrap();
        if flip < binary.len() {
            binary[flip] ^= 0x5a;
        }
        binary.truncate(cut.min(binary.len()));
        let _ = Program::decode(&binary);
    }
}

#[test]
fn every_opcode_has_a_word_and_the_words_differ() {
    let words: Vec<[u8; WORD_BYTES]> = INSTRUCTIONS
        .iter()
        .map(|d| Instr::new(d.opcode, &vec![0; d.fields.len()]).unwrap().encode().unwrap())
        .collect();
    for (i, w) in words.iter().enumerate() {
        assert_eq!(words.iter().filter(|v| *v == w).count(), 1, "{}", INSTRUCTIONS[i].name);
    }
}

#[test]
fn bad_assembly_gives_one_line_errors() {
    for (text, expected) in [
        ("array.stepp m0=0", "unknown instruction"),
        ("dma.store", "missing field `count`"),
        ("dma.store count=1, count=2", "given twice"),
        ("dma.store size=1", "no field `size`"),
        ("dma.load buffer=4, count=1", "does not fit in 2 bits"),
        ("dma.store count=-1", "not an unsigned integer"),
        ("sync extra", "expected `field=value`"),
    ] {
        let e = Instr::assemble(text).unwrap_err().0;
        assert!(e.contains(expected) && !e.contains('\n'), "{text}: {e}");
    }
    assert!(Program::assemble(".string 1 \"x\"").unwrap_err().0.contains("line 1"));
    assert!(Program::decode(b"not a program").is_err());
}

#[test]
fn spec_isa_md_carries_the_generated_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/isa.md");
    let spec = std::fs::read_to_string(path).unwrap();
    let marker = "<!-- Generated from runtime/src/accel/isa.rs";
    let update = std::env::var_os("QC_UPDATE_SPEC").is_some();
    let start = spec.find(marker).or(update.then_some(spec.len())).expect("spec/isa.md has the generated section");
    let generated = reference_markdown();
    if spec[start..] != generated {
        if update {
            std::fs::write(path, format!("{}{}", &spec[..start], generated)).unwrap();
        } else {
            panic!("spec/isa.md's instruction reference is stale: rerun with QC_UPDATE_SPEC=1 (or paste `qc sim --isa-reference`)");
        }
    }
}
