//! No input makes the front end panic: random token streams and mutated examples go through
//! parse, check and both renderings (bounded: a few thousand cases, a few seconds).

use proptest::prelude::*;
use std::path::Path;

/// Fragments that the lexer knows, so that random sequences reach deep into the grammar.
const FRAGMENTS: &[&str] = &[
    "model", "format", "input", "param", "let", "output", "train", "defaults", "with", "x", "w", "B", "y", "relu", "dense",
    "conv2d", "max_pool", "reshape", "transpose", "concat", "quantize", "e4m3", "fp<6,5,nosub>", "mxfp4", "int<8,axis=0>",
    "stochastic:9", "nearest-away", "he_normal", "load(\"w.npz\")", "sgd(lr = 0.1)", "formats", "backward", "{", "}", "(", ")",
    "[", "]", "<", ">", ",", ";", ":", "=", "@", "-", "0", "1", "64", "-1", "0.5", "5e-4", "\"s\"", "// c\n", "/* c */", "$",
    "\"open", "/* open", "99999999999999999999999", "é",
];

fn exercise(source: &str) {
    let (module, mut diagnostics) = qc_lang::parse(source);
    if let Some(m) = &module {
        let (_checked, more) = qc_lang::check(m);
        diagnostics.extend(more);
    }
    let _ = qc_lang::check_source(source);
    let _ = qc_lang::render(&diagnostics, source, "fuzz.qnn", false);
    let _ = qc_lang::render_json(&diagnostics, source, "fuzz.qnn");
}

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "qnn"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    texts
}

/// One edit of a text: delete, duplicate or replace a byte range, or insert a fragment.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, usize),
    Truncate(usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Delete(at, len) => {
                let at = at % n;
                let end = (at + len % 40).min(bytes.len());
                bytes.drain(at.min(bytes.len())..end);
            }
            Edit::Duplicate(at, len) => {
                let at = (at % n).min(bytes.len());
                let end = (at + len % 40).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            Edit::Insert(at, fragment) => {
                let at = (at % n).min(bytes.len());
                let f = FRAGMENTS[fragment % FRAGMENTS.len()].as_bytes().to_vec();
                bytes.splice(at..at, f);
            }
            Edit::Truncate(at) => bytes.truncate(at % n),
        }
    }
    // Byte edits may split a UTF-8 character; the front end takes `&str`, so repair lossily.
    String::from_utf8_lossy(&bytes).into_owned()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Duplicate(a, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, f)| Edit::Insert(a, f)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_token_streams_do_not_panic(picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..60)) {
        let source: Vec<&str> = picks.iter().map(|&i| FRAGMENTS[i]).collect();
        exercise(&source.join(" "));
    }

    #[test]
    fn mutated_examples_do_not_panic(which in any::<usize>(), edits in proptest::collection::vec(edit(), 1..6)) {
        let texts = examples();
        let text = &texts[which % texts.len()];
        exercise(&apply(text, &edits));
    }
}

#[test]
fn huge_sizes_do_not_overflow() {
    let big = "9223372036854775807";
    let source = format!(
        "model m {{ input x: [{big}, {big}, {big}, {big}] fp32; param k: [{big}, {big}, {big}, {big}] fp32;
          let c = conv2d(x, k, stride = {big}, dilation = {big}, padding = [{big}, {big}], groups = {big});
          let p = avg_pool(x, size = {big}); let g = global_avg_pool(x); let f = flatten(x);
          let r = reshape(x, shape = [-1]); let j = concat(x, x, axis = 0);
          output c, p, g, f, r, j; }}"
    );
    exercise(&source);
    let params = format!("model m {{ input x: [B, 1] fp32; param a: [{big}, 2] fp32; param b: [{big}, 2] fp32; output x; }}");
    let (checked, _) = qc_lang::check_source(&params);
    assert!(checked.unwrap().summary().contains("parameters"));
}

#[test]
fn wrapping_a_valid_model_in_fragments_does_not_panic() {
    let model = "model m { input x: [B, 4] fp32; output x; }";
    for f in FRAGMENTS {
        exercise(&format!("{f}{model}"));
        exercise(&format!("{model}{f}"));
    }
}
