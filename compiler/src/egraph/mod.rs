//! E-graph fusion with egg: the `nn`/`q` dataflow of each function is encoded into an
//! e-graph ([`lang`]), saturated with the exact rewrite rules of [`rules`], and the
//! cheapest equivalent program under the hardware cost model of [`cost`] is extracted and
//! written back in place of the original ops.
//!
//! What is encoded: the single-result, region-free `nn` and `q` ops of a function's entry
//! block. Everything else (function arguments, `kernel` ops and their regions, terminators)
//! stays as it is; values those ops define are leaves, and values they use are the roots
//! extraction starts from. A function where no rule fired is left untouched; where one did,
//! its encoded ops are rebuilt from the extraction — which, as any e-graph round trip, also
//! merges identical ops and drops ops whose results nothing uses.

pub mod cost;
pub mod lang;
pub mod rules;

use crate::dialect;
use crate::ir::{Module, OpId, ValueDef, ValueId};
use egg::{Extractor, Id, Runner, SimpleScheduler};
use lang::{Facts, FusionGraph, Head, Node};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Saturation limits: the rules only ever shrink chains, so these are generous.
const ITERATION_LIMIT: usize = 32;
const NODE_LIMIT: usize = 100_000;

/// Which rules fired where, and what extraction chose.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FusionReport {
    /// Every function looked at, in module order.
    pub functions: Vec<String>,
    /// `(function, rule, times applied)`, in rule-table order; rules that never fired are
    /// absent.
    pub fired: Vec<(String, &'static str, usize)>,
    /// `(function, cost before, cost after)` of the functions that changed.
    pub costs: Vec<(String, cost::Cost, cost::Cost)>,
}

impl fmt::Display for FusionReport {
    /// Per function: one line per fired rule (`@f: fuse-bias ×1`) and the cost before and
    /// after, or `@f: no rule fired`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for func in &self.functions {
            let fired: Vec<_> = self.fired.iter().filter(|x| &x.0 == func).collect();
            if fired.is_empty() {
                writeln!(f, "@{func}: no rule fired")?;
            }
            for (_, rule, n) in fired {
                writeln!(f, "@{func}: {rule} ×{n}")?;
            }
            for (_, before, after) in self.costs.iter().filter(|x| &x.0 == func) {
                writeln!(f, "@{func}: cost {:.1} -> {:.1}", before.score(), after.score())?;
            }
        }
        Ok(())
    }
}

/// Runs fusion on every function of `module`.
pub fn fuse_module(module: &mut Module) -> FusionReport {
    let mut report = FusionReport::default();
    for index in 0..module.funcs.len() {
        fuse_function(module, index, &mut report);
    }
    report
}

/// The encoding of one function's entry block.
struct Encoding {
    egraph: FusionGraph,
    /// Encoded op results and leaves → their class.
    class_of: HashMap<ValueId, Id>,
    /// The encoded ops, in block order.
    encoded: Vec<OpId>,
    /// Leaf index → the value it stands for.
    leaves: HashMap<u32, ValueId>,
}

fn is_encoded(module: &Module, op: OpId) -> bool {
    let o = &module.ops[op];
    matches!(o.def.dialect(), "nn" | "q") && o.results.len() == 1 && o.regions.is_empty() && !o.def.terminator
}

fn encode(module: &Module, block: crate::ir::BlockId) -> Encoding {
    let mut enc = Encoding { egraph: FusionGraph::new(Facts::default()), class_of: HashMap::new(), encoded: Vec::new(), leaves: HashMap::new() };
    for &op in &module.blocks[block].ops {
        if !is_encoded(module, op) {
            continue;
        }
        let o = &module.ops[op];
        let children = o.operands.iter().map(|&v| class_or_leaf(module, &mut enc, v)).collect();
        let result = o.results[0];
        let sig = enc.egraph.analysis.intern(o.attrs.clone(), module.ty(result).clone());
        let id = enc.egraph.add(Node { head: Head::Op { name: o.def.name, sig }, children });
        enc.class_of.insert(result, id);
        enc.encoded.push(op);
    }
    enc.egraph.rebuild();
    enc
}

fn class_or_leaf(module: &Module, enc: &mut Encoding, v: ValueId) -> Id {
    if let Some(&id) = enc.class_of.get(&v) {
        return id;
    }
    let index = u32::try_from(v.index()).expect("value ids fit in 32 bits");
    enc.egraph.analysis.leaf_types.insert(index, module.ty(v).clone());
    enc.leaves.insert(index, v);
    let id = enc.egraph.add(Node { head: Head::Leaf(index), children: Vec::new() });
    enc.class_of.insert(v, id);
    id
}

fn fuse_function(module: &mut Module, index: usize, report: &mut FusionReport) {
    let func_name = module.funcs[index].name.clone();
    report.functions.push(func_name.clone());
    let Some(block) = module.entry_block(module.funcs[index].body) else { return };
    let enc = encode(module, block);
    if enc.encoded.is_empty() {
        return;
    }
    let encoded_set: HashSet<OpId> = enc.encoded.iter().copied().collect();

    // Roots: encoded values used by ops that stay, grouped by the entry-block op (anchor)
    // that holds the use, in block order.
    let mut anchors: Vec<(OpId, Vec<ValueId>)> = Vec::new();
    for &top in &module.blocks[block].ops {
        if encoded_set.contains(&top) {
            continue;
        }
        let mut nested = vec![top];
        for &r in &module.ops[top].regions {
            module.collect_ops(r, &mut nested);
        }
        let used: Vec<ValueId> = nested
            .iter()
            .flat_map(|&op| module.ops[op].operands.iter().copied())
            .filter(|v| matches!(module.values[*v].def, ValueDef::Result { op, .. } if encoded_set.contains(&op)))
            .collect();
        anchors.push((top, used));
    }

    let runner = Runner::default()
        .with_egraph(enc.egraph)
        .with_scheduler(SimpleScheduler)
        .with_iter_limit(ITERATION_LIMIT)
        .with_node_limit(NODE_LIMIT)
        .run(&rules::rewrites());
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for it in &runner.iterations {
        for (rule, n) in &it.applied {
            if let Some(pos) = rules::RULES.iter().position(|r| r.name == rule.as_str()) {
                *counts.entry(pos).or_default() += n;
            }
        }
    }
    if counts.is_empty() {
        return;
    }
    for (pos, n) in counts {
        report.fired.push((func_name.clone(), rules::RULES[pos].name, n));
    }

    let egraph = &runner.egraph;
    let roots: Vec<ValueId> = anchors.iter().flat_map(|(_, used)| used.iter().copied()).collect();
    let computed = roots.iter().map(|v| egraph.find(enc.class_of[v])).collect();
    let extractor = Extractor::new(egraph, cost::HardwareCost { egraph, computed });
    let before = original_cost(module, &enc.encoded, &roots);
    let mut rebuild = Rebuild {
        egraph,
        extractor: &extractor,
        leaves: &enc.leaves,
        made: HashMap::new(),
        in_progress: HashSet::new(),
        names: HashMap::new(),
        cost: cost::Cost::default(),
    };
    for &op in enc.encoded.iter().rev() {
        let v = module.ops[op].results[0];
        if let Some(name) = &module.values[v].name {
            rebuild.names.insert(egraph.find(enc.class_of[&v]), name.clone());
        }
    }
    let mut replace: Vec<(ValueId, ValueId)> = Vec::new();
    for (anchor, used) in &anchors {
        for &v in used {
            let new = rebuild.value(module, *anchor, enc.class_of[&v]);
            replace.push((v, new));
        }
    }
    for (old, new) in replace {
        if old != new {
            module.replace_all_uses(old, new);
        }
    }
    for &op in &enc.encoded {
        module.erase_op(op);
    }
    report.costs.push((func_name, before, rebuild.cost));
}

/// The cost of the original encoded ops that the roots depend on.
fn original_cost(module: &Module, encoded: &[OpId], roots: &[ValueId]) -> cost::Cost {
    let producer: HashMap<ValueId, OpId> = encoded.iter().map(|&op| (module.ops[op].results[0], op)).collect();
    let mut seen = HashSet::new();
    let mut stack: Vec<ValueId> = roots.to_vec();
    let mut total = cost::Cost::default();
    while let Some(v) = stack.pop() {
        let Some(&op) = producer.get(&v) else { continue };
        if !seen.insert(op) {
            continue;
        }
        let o = &module.ops[op];
        let operands: Vec<&crate::ir::Type> = o.operands.iter().map(|x| module.ty(*x)).collect();
        total = total + cost::op_cost(o.def.name, &operands, module.ty(v));
        stack.extend(o.operands.iter().copied());
    }
    total
}

/// Writes extracted classes back as ops, each class once, just before the first op that
/// needs it.
struct Rebuild<'a, 'g> {
    egraph: &'g FusionGraph,
    extractor: &'a Extractor<'g, cost::HardwareCost<'g>, Node, Facts>,
    leaves: &'a HashMap<u32, ValueId>,
    made: HashMap<Id, ValueId>,
    /// Classes being written (their operands are being written first).
    in_progress: HashSet<Id>,
    /// Canonical class → the name of an original value in it.
    names: HashMap<Id, String>,
    /// The summed cost of the ops written.
    cost: cost::Cost,
}

impl Rebuild<'_, '_> {
    fn value(&mut self, module: &mut Module, anchor: OpId, class: Id) -> ValueId {
        let class = self.egraph.find(class);
        if let Some(&v) = self.made.get(&class) {
            return v;
        }
        // The cheapest node, unless it needs a class being written (a value is free as an
        // operand where it is computed anyway, which can make a node refer to its own class
        // or close a cycle); then the cheapest node that does not.
        self.in_progress.insert(class);
        let acyclic = |n: &Node| n.children.iter().all(|c| !self.in_progress.contains(&self.egraph.find(*c)));
        let best = self.extractor.find_best_node(class);
        let node = if acyclic(best) {
            best.clone()
        } else {
            let score = |n: &Node| match n.head {
                Head::Leaf(_) => 0.0,
                Head::Op { name, sig } => {
                    let operands: Vec<&crate::ir::Type> = n.children.iter().map(|c| &self.egraph[*c].data).collect();
                    let own = cost::op_cost(name, &operands, &self.egraph.analysis.sig(sig).ty);
                    n.children.iter().fold(own, |acc, c| acc + self.extractor.find_best_cost(*c)).score()
                }
            };
            let candidates = self.egraph[class].nodes.iter().filter(|n| acyclic(n));
            candidates.min_by(|a, b| score(a).total_cmp(&score(b))).expect("the original op of a class is acyclic").clone()
        };
        let v = match node.head {
            Head::Leaf(i) => self.leaves[&i],
            Head::Op { name, sig } => {
                let operands: Vec<ValueId> = node.children.iter().map(|&c| self.value(module, anchor, c)).collect();
                let s = self.egraph.analysis.sig(sig);
                let def = dialect::lookup(name).expect("encoded ops are registered");
                let operand_types: Vec<&crate::ir::Type> = node.children.iter().map(|c| &self.egraph[*c].data).collect();
                self.cost = self.cost + cost::op_cost(name, &operand_types, &s.ty);
                let op = module.new_op(def, operands, vec![s.ty.clone()], s.attrs.clone(), Vec::new(), None);
                module.insert_before(anchor, op);
                let v = module.ops[op].results[0];
                module.values[v].name = self.names.get(&class).cloned();
                v
            }
        };
        self.in_progress.remove(&class);
        self.made.insert(class, v);
        v
    }
}
