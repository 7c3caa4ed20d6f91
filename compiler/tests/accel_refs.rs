//! The simulator against every entry of `tests/accel/refs-public.json` (SCALE-Sim 3.0.0
//! stall-free, ZigZag 3.9.1): prints each figure beside the reference with the difference,
//! and requires SCALE-Sim's cycles, SRAM counts, folds and utilisations to be identical.
//! DRAM traffic and energy are printed, not required (spec/isa.md says where and why the
//! models differ). Run with `--nocapture` to see the tables.

use qc_compiler::accel::{compile, LayerSpec, MapMode};
use qc_runtime::accel::energy::EnergyTable;
use qc_runtime::accel::model::{Arch, Dataflow};
use qc_runtime::accel::scalesim::Gemm;
use qc_runtime::accel::sim::{simulate, LayerStats};
use std::collections::BTreeMap;

/// A JSON value (enough of JSON for the reference file; booleans read as 1 and 0).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(key).unwrap_or(&Json::Null),
            _ => &Json::Null,
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(x) => *x,
            other => panic!("expected a number, found {other:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a string, found {other:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("expected an array, found {other:?}"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(self.s[self.at], c, "JSON: expected {} at {}", c as char, self.at);
        self.at += 1;
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.at] {
            b'{' => {
                self.at += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.s[self.at] == b'}' {
                    self.at += 1;
                    return Json::Obj(m);
                }
                loop {
                    let Json::Str(k) = self.value() else { panic!("JSON: key") };
                    self.eat(b':');
                    m.insert(k, self.value());
                    self.ws();
                    self.at += 1;
                    if self.s[self.at - 1] == b'}' {
                        return Json::Obj(m);
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s[self.at] == b']' {
                    self.at += 1;
                    return Json::Arr(a);
                }
                loop {
                    a.push(self.value());
                    self.ws();
                    self.at += 1;
                    if self.s[self.at - 1] == b']' {
                        return Json::Arr(a);
                    }
                }
            }
            b'"' => {
                self.at += 1;
                let start = self.at;
                while self.s[self.at] != b'"' {
                    self.at += if self.s[self.at] == b'\\' { 2 } else { 1 };
                }
                self.at += 1;
                Json::Str(String::from_utf8(self.s[start..self.at - 1].to_vec()).unwrap().replace("\\n", "\n"))
            }
            b't' => {
                self.at += 4;
                Json::Num(1.0)
            }
            b'f' => {
                self.at += 5;
                Json::Num(0.0)
            }
            b'n' => {
                self.at += 4;
                Json::Null
            }
            _ => {
                let start = self.at;
                while self.at < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.at]) {
                    self.at += 1;
                }
                Json::Num(std::str::from_utf8(&self.s[start..self.at]).unwrap().parse().unwrap())
            }
        }
    }
}

fn refs() -> Json {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/accel/refs-public.json")).unwrap();
    Parser { s: text.as_bytes(), at: 0 }.value()
}

/// The SCALE-Sim layer of a workload entry (convolutions with their halo, as SCALE-Sim ran them).
fn gemm(w: &Json) -> Gemm {
    let name = w.get("name").str();
    let n = |k: &str| w.get(k).num() as u64;
    match w.get("kind").str() {
        "fc" => Gemm::matmul(name, n("M"), n("N"), n("K")),
        _ => Gemm::conv(name, n("H_padded"), n("W_padded"), n("R"), n("S"), n("C"), n("N"), 1),
    }
}

fn run(layer: &Gemm, arch: &Arch) -> LayerStats {
    let program = compile(&[LayerSpec::scalesim(layer.clone())], arch, MapMode::Fixed, &EnergyTable::default()).unwrap();
    simulate(&program, arch, &EnergyTable::default()).unwrap().layers.remove(0)
}

fn pct(ours: f64, theirs: f64) -> String {
    if theirs == 0.0 { format!("{ours}") } else { format!("{:+.1}%", 100.0 * (ours - theirs) / theirs) }
}

#[test]
fn scalesim_cycles_sram_counts_and_utilisation_are_identical() {
    let refs = refs();
    let workloads: BTreeMap<&str, &Json> = refs.get("workloads").arr().iter().map(|w| (w.get("name").str(), w)).collect();
    let archs: BTreeMap<&str, &Json> = refs.get("architectures").arr().iter().map(|a| (a.get("name").str(), a)).collect();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    println!("{:<34} {:<4} {:<3} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "workload", "arch", "df", "cycles", "ref", "dram in", "ref", "dram w", "ref", "dram out", "ref");
    for r in refs.get("results").arr().iter().filter(|r| r.get("tool").str() == "scalesim") {
        let w = workloads[r.get("workload").str()];
        let a = archs[r.get("architecture").str()];
        let arch = Arch {
            rows: a.get("rows").num() as u64,
            cols: a.get("cols").num() as u64,
            dataflow: Dataflow::parse(r.get("dataflow").str()).unwrap(),
            sram_kb: ["ifmap_kb", "filter_kb", "ofmap_kb"].map(|k| a.get(k).num() as u64),
            ..Arch::default()
        };
        let f = r.get("figures");
        let ours = run(&gemm(w), &arch);
        let exact = [
            ("total_cycles", ours.cycles as f64),
            ("sram_ifmap_reads", ours.sram_ifmap_reads as f64),
            ("sram_filter_reads", ours.sram_filter_reads as f64),
            ("sram_ofmap_writes", ours.sram_ofmap_writes as f64),
            ("macs", ours.macs as f64),
        ];
        for (key, value) in exact {
            if value != f.get(key).num() {
                mismatches.push(format!("{} {} {}: {key} {value} against {}", w.get("name").str(), a.get("name").str(), arch.dataflow, f.get(key).num()));
            }
        }
        let folds = f.get("row_folds").num() * f.get("col_folds").num();
        let close = [
            ("folds", ours.folds as f64, folds),
            ("overall_util_pct", ours.overall_util_pct(), f.get("overall_util_pct").num()),
            ("mapping_eff_pct", ours.mapping_eff_pct(), f.get("mapping_eff_pct").num()),
            ("compute_util_pct", ours.compute_util_pct(), f.get("compute_util_pct").num()),
        ];
        for (key, value, theirs) in close {
            if (value - theirs).abs() > 1e-9 * theirs.abs().max(1.0) {
                mismatches.push(format!("{} {} {}: {key} {value} against {theirs}", w.get("name").str(), a.get("name").str(), arch.dataflow));
            }
        }
        let dram = |k: &str| f.get(k).num();
        println!(
            "{:<34} {:<4} {:<3} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   dram diff {} {} {}",
            w.get("name").str(),
            a.get("name").str(),
            arch.dataflow,
            ours.cycles,
            f.get("total_cycles").num(),
            ours.dram_bytes[0],
            dram("dram_ifmap_reads"),
            ours.dram_bytes[1],
            dram("dram_filter_reads"),
            ours.dram_bytes[2],
            dram("dram_ofmap_writes"),
            pct(ours.dram_bytes[0], dram("dram_ifmap_reads")),
            pct(ours.dram_bytes[1], dram("dram_filter_reads")),
            pct(ours.dram_bytes[2], dram("dram_ofmap_writes")),
        );
        compared += 1;
    }
    assert_eq!(compared, 20, "every SCALE-Sim entry is compared");
    assert!(mismatches.is_empty(), "differences from SCALE-Sim:\n{}", mismatches.join("\n"));
}

#[test]
fn zigzag_energy_side_by_side() {
    let refs = refs();
    let workloads: BTreeMap<&str, &Json> = refs.get("workloads").arr().iter().map(|w| (w.get("name").str(), w)).collect();
    // ZigZag's tpu_like: a 32x32 array; qc's SRAM sizes of the sa32 runs, weight stationary
    // (its D1 = K, D2 = C spatial unrolling keeps weights in the PEs).
    let arch = Arch { rows: 32, cols: 32, dataflow: Dataflow::Ws, sram_kb: [256, 256, 128], ..Arch::default() };
    println!("{:<34} {:>12} {:>12} {:>7} {:>10} {:>10} {:>12} {:>12} {:>8} {:>8}", "workload (32x32, int8)", "E total pJ", "ZigZag", "ratio", "E MAC", "ZigZag", "E mem", "ZigZag", "cycles", "ZigZag");
    let mut compared = 0;
    for r in refs.get("results").arr().iter().filter(|r| r.get("tool").str() == "zigzag") {
        let w = workloads[r.get("workload").str()];
        let f = r.get("figures");
        let ours = run(&gemm(w), &arch);
        let theirs = f.get("energy_total_pJ").num();
        let ratio = ours.energy_pj() / theirs;
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>7.2} {:>10.0} {:>10.0} {:>12.0} {:>12.0} {:>8} {:>8}",
            w.get("name").str(),
            ours.energy_pj(),
            theirs,
            ratio,
            ours.energy_mac_pj,
            f.get("mac_energy_pJ").num(),
            ours.energy_sram_pj + ours.energy_dram_pj,
            f.get("mem_energy_pJ").num(),
            ours.cycles,
            f.get("latency_total2_cycles").num(),
        );
        assert_eq!(ours.macs as f64, f.get("total_mac_count").num());
        // Both models are dominated by DRAM traffic; a factor of ten either way would mean a
        // unit error, not a modelling difference.
        assert!((0.1..10.0).contains(&ratio), "{}: {ratio}", w.get("name").str());
        compared += 1;
    }
    assert_eq!(compared, 5);
}
