//! `qc sim` and `qc compile --target accel` end to end. File-driven over `examples/*.qnn`: the
//! emitted program (snapshot; it assembles back to the same text) and the simulator's table
//! (snapshot); SCALE-Sim inputs in `tests/accel/` (snapshot); the dataflow search against every
//! fixed dataflow; the energy table and DRAM bandwidth options; bad input (exit 2, one line).

use qc_runtime::accel::isa::Program;
use std::process::Command;

fn qc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qc")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = qc(args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    stdout
}

/// The number after `"key": ` in the `"total"` object of `qc sim --json` output.
fn total(json: &str, key: &str) -> f64 {
    let t = &json[json.find("\"total\"").expect("a total")..];
    let at = t.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key}")) + key.len() + 4;
    t[at..].split([',', '}']).next().unwrap().trim().parse().unwrap()
}

#[test]
fn every_example_emits_a_program_that_assembles_back() {
    insta::glob!("../examples", "*.qnn", |path| {
        let file = path.to_str().unwrap();
        let isa = ok(&["compile", file, "--target", "accel"]);
        assert_eq!(ok(&["compile", file, "--emit", "isa"]), isa);
        let program = Program::assemble(&isa).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(program.to_string(), isa);
        assert_eq!(Program::decode(&program.encode().unwrap()).unwrap(), program);
        insta::assert_snapshot!("isa", isa);
    });
}

#[test]
fn every_example_simulates() {
    insta::glob!("../examples", "*.qnn", |path| {
        let file = path.to_str().unwrap();
        insta::assert_snapshot!("sim", ok(&["sim", file]));
        let json = ok(&["sim", file, "--json"]);
        let parts = total(&json, "energy_mac_pj") + total(&json, "energy_sram_pj") + total(&json, "energy_dram_pj");
        assert!((parts - total(&json, "energy_pj")).abs() <= 1e-6 * parts, "{file}");
        assert!(total(&json, "macs") > 0.0 && total(&json, "cycles") > 0.0, "{file}");
    });
}

#[test]
fn scalesim_inputs_give_its_figures() {
    insta::assert_snapshot!("scalesim_gemm_sa8_os", ok(&["sim", "--topology", "tests/accel/fc_gemm.csv", "--gemm", "--config", "tests/accel/sa8.cfg"]));
    insta::assert_snapshot!(
        "scalesim_conv_sa8_ws",
        ok(&["sim", "--topology", "tests/accel/conv.csv", "--config", "tests/accel/sa8.cfg", "--dataflow", "ws", "--json"])
    );
}

#[test]
fn the_dataflow_search_is_never_slower_than_a_fixed_dataflow() {
    for model in ["examples/lenet.qnn", "examples/mlp.qnn"] {
        let cycles = |extra: &[&str]| {
            let mut args = vec!["sim", model, "--array", "16x16", "--json"];
            args.extend(extra);
            total(&ok(&args), "total_cycles")
        };
        let fixed = ["os", "ws", "is"].map(|d| cycles(&["--dataflow", d]));
        let searched = cycles(&["--map", "search"]);
        assert!(fixed.iter().all(|&f| searched <= f), "{model}: {searched} against {fixed:?}");
        assert!(fixed.iter().any(|&f| searched < f), "{model}: the dataflows should differ");
    }
}

#[test]
fn the_energy_table_and_the_dram_bandwidth_take_effect() {
    let dir = std::env::temp_dir().join(format!("qc-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let table = dir.join("energy.txt");
    std::fs::write(&table, "dram_32b = 1280 # twice Horowitz's\n").unwrap();
    let base = ok(&["sim", "examples/mlp.qnn", "--json"]);
    let doubled = ok(&["sim", "examples/mlp.qnn", "--json", "--energy-table", table.to_str().unwrap()]);
    let ratio = total(&doubled, "energy_dram_pj") / total(&base, "energy_dram_pj");
    assert!((ratio - 2.0).abs() < 1e-9, "{ratio}");
    assert_eq!(total(&doubled, "energy_mac_pj"), total(&base, "energy_mac_pj"));
    assert_eq!(total(&base, "stall_cycles"), 0.0);
    let slow = ok(&["sim", "examples/mlp.qnn", "--json", "--dram-gbps", "0.5"]);
    assert!(total(&slow, "stall_cycles") > 0.0);
    std::fs::write(&table, "dram = 1\n").unwrap();
    let (code, _, stderr) = qc(&["sim", "examples/mlp.qnn", "--energy-table", table.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown key `dram`"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_one_line_with_exit_status_2() {
    let dir = std::env::temp_dir().join(format!("qc-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let topo = dir.join("t.csv");
    std::fs::write(&topo, "Layer, M, N, K,\nfc, 1, zero, 3,\n").unwrap();
    let cfg = dir.join("a.cfg");
    std::fs::write(&cfg, "ArrayHeight: 8\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["sim"], "give a .qnn model or --topology"),
        (vec!["sim", "missing.qnn"], "cannot read missing.qnn"),
        (vec!["sim", "examples/mlp.qnn", "--array", "0x8"], "--array `0x8`"),
        (vec!["sim", "examples/mlp.qnn", "--dataflow", "rs"], "--dataflow `rs`"),
        (vec!["sim", "examples/mlp.qnn", "--sram-kb", "1,2"], "--sram-kb `1,2`"),
        (vec!["sim", "examples/mlp.qnn", "--dram-gbps=0"], "--dram-gbps 0"),
        (vec!["sim", "--topology", topo.to_str().unwrap(), "--gemm"], "line 2: `zero` is not a positive integer"),
        (vec!["sim", "--topology", topo.to_str().unwrap(), "--gemm", "--config", cfg.to_str().unwrap()], "no `ArrayWidth`"),
        (vec!["sim", "examples/mlp.qnn", "--batch", "1048576", "--dataflow", "ws"], "too large for the accelerator's instruction fields"),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = qc(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_accuracy_on_the_simulated_array_equals_qc_run() {
    for (model, weights) in [("examples/mlp.qnn", "examples/weights/mlp.safetensors"), ("examples/lenet.qnn", "examples/weights/lenet.safetensors")] {
        let run = ok(&["run", model, "--data", "digits", "--weights", weights]);
        let sim = ok(&["sim", model, "--data", "digits", "--weights", weights, "--array", "8x8", "--dataflow", "ws"]);
        let accuracy = |text: &str, prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix)).map(str::to_string).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(accuracy(&sim, "accuracy on the simulated array: "), accuracy(&run, "accuracy: "), "{model}");
    }
}

#[test]
fn the_sweep_tabulates_formats_accumulators_and_arrays_with_a_pareto_front_and_a_plot() {
    let plot = std::env::temp_dir().join(format!("qc-sweep-{}.svg", std::process::id()));
    let text = ok(&["sim", "examples/mlp.qnn", "--sweep", "--data", "digits", "--weights", "examples/weights/mlp.safetensors", "--plot", plot.to_str().unwrap()]);
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(rows.len(), 11 * 3 * 3, "{text}");
    assert!(rows.iter().any(|r| r.ends_with('*')), "{text}");
    let energy = |label: &str, acc: &str, array: &str| {
        let row = rows.iter().map(|r| r.split_whitespace().collect::<Vec<_>>()).find(|c| c[0] == label && c[1] == acc && c[2] == array).unwrap_or_else(|| panic!("{text}"));
        row[4].parse::<f64>().unwrap()
    };
    // Narrower formats move fewer bytes: e4m3 costs less energy than fp32 on the same array;
    // a narrower accumulator costs less than fp32's.
    assert!(energy("e4m3", "fp32", "32x32") < energy("fp32", "fp32", "32x32"), "{text}");
    assert!(energy("e4m3", "fp16", "8x8") < energy("e4m3", "fp32", "8x8"), "{text}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<circle").count() >= 99, "{svg}");
    std::fs::remove_file(&plot).unwrap();
}

/// `qc sim --mac`: a 64×256 · 256×128 int layer on the 32x32 os array (8 folds of 256 streamed
/// steps, 62 fill/drain cycles each). Bit-serial: the streamed steps take one cycle per weight
/// bit, so int4 weights halve what int8 weights add over the fixed MAC; Bit Fusion: int8 × int4
/// does two products per cycle. Energy per MAC moves with them.
#[test]
fn precision_scalable_and_bit_serial_macs_scale_the_cycles_with_the_operand_widths() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let model = |bits: u32| {
        let path = dir.join(format!("mac_int{bits}.qnn"));
        let source = format!(
            "model t {{\n  defaults {{ mul = exact; acc = fixed<32,0>; rounding = nearest; }}\n  input x: [B, 256] int<8,noscale>;\n  param w: [128, 256] int<{bits},noscale> = he_normal;\n  let y = dense(x, w);\n  output y;\n}}\n"
        );
        std::fs::write(&path, source).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (int8, int4) = (model(8), model(4));
    let sim = |file: &str, mac: &str, key: &str| total(&ok(&["sim", file, "--mac", mac, "--batch", "64", "--json"]), key);
    let streamed = 8.0 * 256.0;
    let fixed = sim(&int8, "fixed", "cycles");
    assert_eq!(fixed, 8.0 * (256.0 + 62.0) - 1.0);
    assert_eq!(sim(&int4, "fixed", "cycles"), fixed);
    let (serial8, serial4) = (sim(&int8, "bit-serial", "cycles"), sim(&int4, "bit-serial", "cycles"));
    assert_eq!((serial8 - fixed, serial4 - fixed), (7.0 * streamed, 3.0 * streamed));
    assert_eq!(sim(&int8, "precision-scalable", "cycles"), fixed);
    assert_eq!(fixed - sim(&int4, "precision-scalable", "cycles"), streamed / 2.0);
    assert!(sim(&int4, "bit-serial", "energy_mac_pj") < sim(&int8, "bit-serial", "energy_mac_pj"));
    assert!(sim(&int8, "bit-serial", "energy_mac_pj") > sim(&int8, "fixed", "energy_mac_pj"));
    let (code, _, stderr) = qc(&["sim", &int8, "--mac", "serial"]);
    assert_eq!((code, stderr.trim().lines().count() > 0), (2, true));
}
