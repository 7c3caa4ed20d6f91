//! The printer: a module as text in the syntax `text::parse` reads (grammar in spec/ir.md).
//!
//! Values keep the names they were parsed with unless a name is numeric or already taken in
//! the function; the others are numbered `%0, %1, ...` in textual order. Blocks are
//! numbered `^bb0, ...`. Attributes print in sorted order. So print → parse → print is the
//! identity on text.

use crate::ir::attr::write_dict;
use crate::ir::{BlockId, Func, Module, OpId, RegionId, Type, ValueId};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// The module as text.
pub fn print_module(module: &Module) -> String {
    let mut out = String::new();
    for (i, f) in module.funcs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        Printer { module, out: &mut out, names: HashMap::new(), used: HashSet::new(), next_value: 0, next_block: 0 }.func(f);
    }
    out
}

struct Printer<'a> {
    module: &'a Module,
    out: &'a mut String,
    names: HashMap<ValueId, String>,
    used: HashSet<String>,
    next_value: usize,
    next_block: usize,
}

impl Printer<'_> {
    fn define(&mut self, v: ValueId) -> String {
        let wanted = self.module.values[v].name.as_deref().filter(|n| !n.bytes().all(|b| b.is_ascii_digit()));
        let name = match wanted {
            Some(n) if !self.used.contains(n) => n.to_string(),
            Some(n) => (1..).map(|k| format!("{n}_{k}")).find(|c| !self.used.contains(c)).unwrap_or_default(),
            None => loop {
                let c = self.next_value.to_string();
                self.next_value += 1;
                if !self.used.contains(&c) {
                    break c;
                }
            },
        };
        self.used.insert(name.clone());
        self.names.insert(v, name.clone());
        name
    }

    fn use_of(&self, v: ValueId) -> String {
        // A value used before it is printed (invalid IR) still prints, visibly so.
        self.names.get(&v).cloned().unwrap_or_else(|| format!("<undefined {}>", v.index()))
    }

    fn func(&mut self, f: &Func) {
        let m = self.module;
        let blocks = &m.regions[f.body].blocks;
        let args = blocks.first().map(|b| m.blocks[*b].args.clone()).unwrap_or_default();
        let params: Vec<String> = args.iter().map(|&a| format!("%{}: {}", self.define(a), m.ty(a))).collect();
        let results: Vec<String> = f.results.iter().map(Type::to_string).collect();
        let _ = writeln!(self.out, "func @{}({}) -> ({}) {{", f.name, params.join(", "), results.join(", "));
        for (i, &b) in blocks.iter().enumerate() {
            if i > 0 {
                self.label(b, 0);
            }
            self.ops(b, 1);
        }
        self.out.push_str("}\n");
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    fn label(&mut self, b: BlockId, depth: usize) {
        let m = self.module;
        let n = self.next_block;
        self.next_block += 1;
        let args: Vec<String> = m.blocks[b].args.clone().into_iter().map(|a| format!("%{}: {}", self.define(a), m.ty(a))).collect();
        self.indent(depth);
        if args.is_empty() {
            let _ = writeln!(self.out, "^bb{n}:");
        } else {
            let _ = writeln!(self.out, "^bb{n}({}):", args.join(", "));
        }
    }

    fn ops(&mut self, b: BlockId, depth: usize) {
        for op in self.module.blocks[b].ops.clone() {
            self.op(op, depth);
        }
    }

    fn region(&mut self, r: RegionId, depth: usize) {
        self.out.push_str(" {\n");
        for b in self.module.regions[r].blocks.clone() {
            self.label(b, depth);
            self.ops(b, depth + 1);
        }
        self.indent(depth);
        self.out.push('}');
    }

    fn op(&mut self, op: OpId, depth: usize) {
        let m = self.module;
        let o = &m.ops[op];
        self.indent(depth);
        let operands: Vec<String> = o.operands.iter().map(|&v| format!("%{}", self.use_of(v))).collect();
        let operand_types: Vec<String> = o.operands.iter().map(|&v| m.ty(v).to_string()).collect();
        let mut line = String::new();
        line.push_str(o.name());
        if !operands.is_empty() {
            let _ = write!(line, " {}", operands.join(", "));
        }
        if !o.attrs.is_empty() {
            line.push(' ');
            let _ = write_dict(&mut line, &o.attrs);
        }
        let result_types: Vec<String> = o.results.iter().map(|&v| m.ty(v).to_string()).collect();
        let results = match result_types.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        };
        let _ = write!(line, " : ({}) -> {results}", operand_types.join(", "));
        if !o.results.is_empty() {
            let names: Vec<String> = o.results.iter().map(|&v| format!("%{}", self.define(v))).collect();
            let _ = write!(self.out, "{} = ", names.join(", "));
        }
        self.out.push_str(&line);
        for &r in &o.regions {
            self.region(r, depth);
        }
        self.out.push('\n');
    }
}
