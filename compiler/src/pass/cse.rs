//! `cse`: common-subexpression elimination. Two ops without regions are the same
//! computation when they have the same name, operands, attributes and result types (every
//! op is deterministic: stochastic rounding draws from counter-based streams named by its
//! attributes and operands). A later op is replaced by an earlier one whose block encloses
//! it — the same block before it, or an enclosing block before the op holding its region.

use super::{Pass, PassArgs, PassError, PassInfo};
use crate::ir::attr::write_dict;
use crate::ir::{Module, RegionId, ValueId};
use std::collections::HashMap;

pub const INFO: PassInfo = PassInfo {
    name: "cse",
    description: "Replaces an op by an identical dominating one.",
    options: &[],
    create: |_: &PassArgs| Ok(Box::new(Cse)),
};

struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn description(&self) -> &'static str {
        INFO.description
    }
    fn run(&self, module: &mut Module) -> Result<(), PassError> {
        let mut state = State { scopes: Vec::new(), replaced: HashMap::new() };
        for body in module.funcs.iter().map(|f| f.body).collect::<Vec<_>>() {
            state.region(module, body);
        }
        for op in module.all_ops() {
            for v in &mut module.ops[op].operands {
                if let Some(r) = state.replaced.get(v) {
                    *v = *r;
                }
            }
        }
        Ok(())
    }
}

struct State {
    /// Available computations of each enclosing block, innermost last.
    scopes: Vec<HashMap<String, Vec<ValueId>>>,
    /// Results of erased ops and what replaces them.
    replaced: HashMap<ValueId, ValueId>,
}

impl State {
    fn region(&mut self, module: &mut Module, region: RegionId) {
        for block in module.regions[region].blocks.clone() {
            self.scopes.push(HashMap::new());
            for op in module.blocks[block].ops.clone() {
                let o = &module.ops[op];
                if !o.regions.is_empty() || o.def.terminator {
                    for r in o.regions.clone() {
                        self.region(module, r);
                    }
                    continue;
                }
                let key = self.key(module, op);
                let found = self.scopes.iter().rev().find_map(|s| s.get(&key)).cloned();
                match found {
                    Some(earlier) => {
                        for (r, e) in module.ops[op].results.clone().into_iter().zip(earlier) {
                            self.replaced.insert(r, e);
                        }
                        module.erase_op(op);
                    }
                    None => {
                        let results = module.ops[op].results.clone();
                        if let Some(scope) = self.scopes.last_mut() {
                            scope.insert(key, results);
                        }
                    }
                }
            }
            self.scopes.pop();
        }
    }

    /// The op's identity: name, operands (after earlier replacements), attributes as
    /// canonical text, result types.
    fn key(&self, module: &Module, op: crate::ir::OpId) -> String {
        let o = &module.ops[op];
        let operands: Vec<usize> = o.operands.iter().map(|v| self.replaced.get(v).unwrap_or(v).index()).collect();
        let mut attrs = String::new();
        let _ = write_dict(&mut attrs, &o.attrs);
        let types: Vec<String> = o.results.iter().map(|v| module.ty(*v).to_string()).collect();
        format!("{} {operands:?} {attrs} {}", o.name(), types.join(","))
    }
}
