//! The verifier: generic rules for every op (operand/result/region counts, attributes
//! present and of the right kind, terminators, single-block regions, dominance of SSA
//! values, function returns) followed by each op's own rules from its `OpDef`.
//! Every violation becomes a [`Diagnostic`] at the op's span; all are reported in one run.

use crate::dialect::{Failure, OpView};
use crate::diag::Diagnostic;
use crate::ir::{BlockId, Func, Module, OpId, RegionId, Type, ValueId};
use std::collections::HashSet;

/// Checks the whole module; `Err` holds every violation found.
pub fn verify(module: &Module) -> Result<(), Vec<Diagnostic>> {
    let mut v = Verifier { module, diags: Vec::new(), visible: Vec::new() };
    let mut names = HashSet::new();
    for f in &module.funcs {
        if !names.insert(f.name.as_str()) {
            v.diags.push(Diagnostic::new("V012", format!("function `@{}` is defined twice", f.name), f.span.clone(), "second definition"));
        }
        v.func(f);
    }
    if v.diags.is_empty() { Ok(()) } else { Err(v.diags) }
}

struct Verifier<'a> {
    module: &'a Module,
    diags: Vec<Diagnostic>,
    /// Values defined so far in each enclosing block (innermost last).
    visible: Vec<HashSet<ValueId>>,
}

impl Verifier<'_> {
    fn error(&mut self, op: OpId, code: &'static str, message: String, hint: Option<String>) {
        let o = &self.module.ops[op];
        self.diags.push(Diagnostic::new(code, message, o.span.clone(), format!("this `{}`", o.name())).with_hint(hint));
    }

    fn func(&mut self, f: &Func) {
        let m = self.module;
        let [entry] = m.regions[f.body].blocks[..] else {
            self.diags.push(Diagnostic::new("V011", format!("the body of `@{}` must be one block", f.name), f.span.clone(), "this function"));
            return;
        };
        self.region(f.body);
        match m.blocks[entry].ops.last() {
            Some(&ret) if m.ops[ret].name() == "func.return" => {
                let got: Vec<&Type> = m.ops[ret].operands.iter().map(|v| m.ty(*v)).collect();
                let want: Vec<&Type> = f.results.iter().collect();
                if got != want {
                    self.error(
                        ret,
                        "V010",
                        format!(
                            "`@{}` returns {} but its signature says {}",
                            f.name,
                            crate::dialect::kernel::show_types(&got),
                            crate::dialect::kernel::show_types(&want)
                        ),
                        None,
                    );
                }
            }
            _ => self.diags.push(
                Diagnostic::new("V009", format!("the body of `@{}` does not end with `func.return`", f.name), f.span.clone(), "this function")
                    .with_hint(Some("end the body with `func.return %value : (type) -> ()`".into())),
            ),
        }
    }

    fn region(&mut self, region: RegionId) {
        for &b in &self.module.regions[region].blocks {
            self.block(b);
        }
    }

    fn block(&mut self, block: BlockId) {
        let m = self.module;
        self.visible.push(m.blocks[block].args.iter().copied().collect());
        let ops = &m.blocks[block].ops;
        for (i, &op) in ops.iter().enumerate() {
            if m.ops[op].def.terminator && i + 1 != ops.len() {
                self.error(op, "V009", format!("`{}` ends a block but ops follow it", m.ops[op].name()), None);
            }
            self.op(op);
        }
        self.visible.pop();
    }

    fn op(&mut self, op: OpId) {
        let m = self.module;
        let o = &m.ops[op];
        for (i, v) in o.operands.iter().enumerate() {
            if !self.visible.iter().any(|s| s.contains(v)) {
                self.error(
                    op,
                    "V008",
                    format!("operand #{i} of `{}` is used where its definition does not dominate", o.name()),
                    Some("a value is visible after its definition in the same block and inside regions nested there".into()),
                );
            }
        }
        let generic_ok = self.generic(op);
        for &r in &o.regions {
            if m.regions[r].blocks.len() != 1 {
                self.error(op, "V011", format!("every region of `{}` must have exactly one block", o.name()), Some("no op has branches yet".into()));
            }
            self.region(r);
        }
        if let Some(scope) = self.visible.last_mut() {
            scope.extend(o.results.iter().copied());
        }
        if generic_ok {
            if let Err(Failure { message, hint }) = (o.def.verify)(&OpView { module: m, op }) {
                self.error(op, "V007", format!("invalid `{}`: {message}", o.name()), hint);
            }
        }
    }

    /// Counts and attributes; `false` if the op-specific verifier must not run.
    fn generic(&mut self, op: OpId) -> bool {
        let o = &self.module.ops[op];
        let d = o.def;
        let mut ok = true;
        if !d.operands.allows(o.operands.len()) {
            self.error(op, "V001", format!("`{}` takes {} operand(s), not {}", d.name, d.operands, o.operands.len()), None);
            ok = false;
        }
        if !d.results.allows(o.results.len()) {
            self.error(op, "V002", format!("`{}` has {} result(s), not {}", d.name, d.results, o.results.len()), None);
            ok = false;
        }
        if o.regions.len() != d.regions {
            self.error(op, "V003", format!("`{}` has {} region(s), not {}", d.name, d.regions, o.regions.len()), None);
            ok = false;
        }
        for a in d.attrs {
            match o.attrs.get(a.name) {
                None if a.required => {
                    self.error(op, "V004", format!("`{}` needs the attribute `{}` ({})", d.name, a.name, a.kind), None);
                    ok = false;
                }
                Some(value) if !a.kind.accepts(value.kind()) => {
                    self.error(op, "V006", format!("attribute `{}` of `{}` must be {}, not `{value}`", a.name, d.name, a.kind), None);
                    ok = false;
                }
                _ => {}
            }
        }
        for name in o.attrs.keys() {
            if !d.attrs.iter().any(|a| a.name == name) {
                let known: Vec<&str> = d.attrs.iter().map(|a| a.name).collect();
                let hint = if known.is_empty() { "it takes no attributes".to_string() } else { format!("it accepts: {}", known.join(", ")) };
                self.error(op, "V005", format!("`{}` has no attribute `{name}`", d.name), Some(hint));
                ok = false;
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_module;

    #[test]
    fn a_use_before_its_definition_is_reported() {
        // Text cannot express this (the parser resolves names in order); a buggy pass can.
        let src = "func @f(%x: tensor<4xfp32>) -> (tensor<4xfp32>) {\n  %a = nn.relu %x : (tensor<4xfp32>) -> tensor<4xfp32>\n  %b = nn.tanh %a : (tensor<4xfp32>) -> tensor<4xfp32>\n  func.return %b : (tensor<4xfp32>) -> ()\n}\n";
        let mut m = parse_module(src).unwrap();
        assert!(verify(&m).is_ok());
        let entry = m.entry_block(m.funcs[0].body).unwrap();
        m.blocks[entry].ops.swap(0, 1);
        let diags = verify(&m).unwrap_err();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, "V008");
        assert!(diags[0].message.contains("`nn.tanh`"), "{}", diags[0]);
    }
}
