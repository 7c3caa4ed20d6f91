//! Any bytes that are UTF-8 go through parse, check and both renderings without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let (_checked, diagnostics) = qc_lang::check_source(source);
        let _ = qc_lang::render(&diagnostics, source, "fuzz.qnn", false);
        let _ = qc_lang::render_json(&diagnostics, source, "fuzz.qnn");
    }
});
