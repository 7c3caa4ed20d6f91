//! `fusion`: e-graph rewriting of the `nn`/`q` dataflow with the exact rules of
//! `crate::egraph::rules` (fused contractions with bias, activation and output
//! quantization; clamps moved after quantization; redundant quantizations removed), then
//! extraction under the hardware cost model. With `listing=true` it prints which rules
//! fired in each function, and the cost before and after, to standard error.

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::egraph::fuse_module;
use crate::ir::Module;

pub const INFO: PassInfo = PassInfo {
    name: "fusion",
    description: "E-graph fusion with exact rewrite rules and cost-model extraction.",
    options: &[("listing", "true: print the rules that fired and the costs to standard error")],
    create: |args: &PassArgs| {
        let listing = match args.get("listing").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("`listing` is `true` or `false`, not `{other}`")),
        };
        Ok(Box::new(Fusion { listing }))
    },
};

struct Fusion {
    listing: bool,
}

impl Pass for Fusion {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        let report = fuse_module(module);
        if self.listing {
            eprint!("{report}");
        }
        Ok(())
    }
}
