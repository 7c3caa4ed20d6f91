//! SCALE-Sim's inputs, so its users can compare directly: the topology CSV (convolution rows
//! `name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
//! Strides,` or, in GEMM mode, `name, M, N, K,`) and the `.cfg` file's architecture presets.
//! Each layer becomes a [`Gemm`]: the IR-free description the compiler's tiler maps onto the
//! array.

use super::model::{Arch, Dataflow};

/// A layer as a matrix product `out[M, N] = in[M, K] · w[K, N]` with the number of distinct
/// elements of each operand (a convolution's im2col input repeats elements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gemm {
    pub name: String,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub ifmap_elems: u64,
    pub filter_elems: u64,
    pub ofmap_elems: u64,
}

impl Gemm {
    pub fn macs(&self) -> u64 {
        self.m * self.n * self.k
    }

    /// A plain matrix product: every input element distinct.
    pub fn matmul(name: &str, m: u64, n: u64, k: u64) -> Gemm {
        Gemm { name: name.into(), m, n, k, ifmap_elems: m * k, filter_elems: k * n, ofmap_elems: m * n }
    }

    /// A convolution of an `h × w × c` input (padding included) with `filters` filters of
    /// `r × s × c` at `stride`: SCALE-Sim's output size `⌈(h − r + stride)/stride⌉`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(name: &str, h: u64, w: u64, r: u64, s: u64, c: u64, filters: u64, stride: u64) -> Gemm {
        let oh = (h - r + stride).div_ceil(stride);
        let ow = (w - s + stride).div_ceil(stride);
        Gemm {
            name: name.into(),
            m: oh * ow,
            n: filters,
            k: r * s * c,
            ifmap_elems: h * w * c,
            filter_elems: r * s * c * filters,
            ofmap_elems: oh * ow * filters,
        }
    }
}

/// The fields of a row: SCALE-Sim drops the text after the last comma (rows end with `,`);
/// a row without the trailing comma keeps its last field here.
fn fields(row: &str) -> Vec<&str> {
    let mut f: Vec<&str> = row.split(',').map(str::trim).collect();
    if f.last() == Some(&"") {
        f.pop();
    }
    f
}

/// Reads a topology CSV (the first line is a header; empty lines are skipped).
pub fn parse_topology(text: &str, gemm: bool) -> Result<Vec<Gemm>, String> {
    let mut layers = Vec::new();
    for (n, row) in text.lines().enumerate().skip(1) {
        let row = row.trim();
        if row.is_empty() {
            continue;
        }
        let f = fields(row);
        let at = |e: String| format!("topology line {}: {e}", n + 1);
        let numbers = |count: usize| -> Result<Vec<u64>, String> {
            if f.len() < count + 1 {
                return Err(at(format!("expected {} fields after the name, found {}", count, f.len().saturating_sub(1))));
            }
            f[1..=count]
                .iter()
                .map(|s| s.parse::<u64>().ok().filter(|&v| v > 0 && v < 1 << 24).ok_or_else(|| at(format!("`{s}` is not a positive integer below 2^24"))))
                .collect()
        };
        let name = f[0].to_string();
        if gemm {
            let v = numbers(3)?;
            layers.push(Gemm::matmul(&name, v[0], v[1], v[2]));
        } else {
            let v = numbers(7)?;
            let (h, w, r, s, c, filters, stride) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
            if r > h || s > w {
                return Err(at(format!("the {r}x{s} filter is larger than the {h}x{w} input")));
            }
            layers.push(Gemm::conv(&name, h, w, r, s, c, filters, stride));
        }
    }
    if layers.is_empty() {
        return Err("the topology has no layers".into());
    }
    Ok(layers)
}

/// Reads the `[architecture_presets]` of a SCALE-Sim `.cfg` (keys case-insensitive, `:` or
/// `=`): array size, SRAM sizes, dataflow; `[run_presets] InterfaceBandwidth` must be CALC
/// (qc's stall-free mode) or absent. Other keys are ignored.
pub fn parse_config(text: &str) -> Result<Arch, String> {
    let mut arch = Arch::default();
    let mut seen = [false; 6];
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let Some((key, value)) = line.split_once([':', '=']) else {
            return Err(format!("config line {}: expected `key: value`", n + 1));
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        let number = |i: usize, seen: &mut [bool; 6]| -> Result<u64, String> {
            seen[i] = true;
            value.parse::<u64>().ok().filter(|&v| v > 0 && v <= 1 << 20).ok_or_else(|| format!("config line {}: `{key}` must be a positive integer, found `{value}`", n + 1))
        };
        match key.as_str() {
            "arrayheight" => arch.rows = number(0, &mut seen)?,
            "arraywidth" => arch.cols = number(1, &mut seen)?,
            "ifmapsramszkb" => arch.sram_kb[0] = number(2, &mut seen)?,
            "filtersramszkb" => arch.sram_kb[1] = number(3, &mut seen)?,
            "ofmapsramszkb" => arch.sram_kb[2] = number(4, &mut seen)?,
            "dataflow" => {
                seen[5] = true;
                arch.dataflow = Dataflow::parse(value).ok_or_else(|| format!("config line {}: dataflow `{value}` is not os, ws or is", n + 1))?;
            }
            "interfacebandwidth" if !value.eq_ignore_ascii_case("calc") => {
                return Err(format!("config line {}: only InterfaceBandwidth: CALC (stall-free) is modelled; use --dram-gbps for a limited bandwidth", n + 1));
            }
            _ => {}
        }
    }
    let names = ["ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB", "Dataflow"];
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(format!("the config has no `{}`", names[i]));
    }
    Ok(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_and_gemm_rows_become_gemms() {
        let conv = parse_topology("Layer, H, W, R, S, C, N, Stride,\nc1, 10, 10, 3, 3, 1, 16, 1,\n", false).unwrap();
        assert_eq!((conv[0].m, conv[0].n, conv[0].k, conv[0].ifmap_elems), (64, 16, 9, 100));
        let gemm = parse_topology("Layer, M, N, K,\nfc, 32, 128, 64,\n", true).unwrap();
        assert_eq!((gemm[0].m, gemm[0].n, gemm[0].k), (32, 128, 64));
        assert!(parse_topology("h\nfc, 32, x, 64,\n", true).unwrap_err().contains("line 2"));
    }

    #[test]
    fn the_config_needs_every_preset() {
        let cfg = "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nIfmapSramSzkB: 32\nFilterSramSzkB: 32\nOfmapSramSzkB: 16\nDataflow : ws\n[run_presets]\nInterfaceBandwidth: CALC\n";
        let a = parse_config(cfg).unwrap();
        assert_eq!((a.rows, a.cols, a.sram_kb, a.dataflow), (8, 8, [32, 32, 16], Dataflow::Ws));
        assert!(parse_config("ArrayHeight: 8\n").unwrap_err().contains("ArrayWidth"));
    }
}
