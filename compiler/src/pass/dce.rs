//! `dce`: dead-code elimination. Every op except terminators is free of side effects, so an
//! op none of whose results is used is erased (with its regions), repeatedly until none is
//! left.

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::ir::Module;

pub const INFO: PassInfo = PassInfo {
    name: "dce",
    description: "Erases ops whose results are unused (terminators stay).",
    options: &[],
    create: |_: &PassArgs| Ok(Box::new(Dce)),
};

struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        loop {
            let uses = module.use_counts();
            let dead: Vec<_> = module
                .all_ops()
                .into_iter()
                .filter(|&op| {
                    let o = &module.ops[op];
                    !o.def.terminator && o.results.iter().all(|r| uses[r.index()] == 0)
                })
                .collect();
            if dead.is_empty() {
                return Ok(());
            }
            for op in dead {
                module.erase_op(op);
            }
        }
    }
}
