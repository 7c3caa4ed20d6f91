//! The egg language of `nn`/`q` dataflow: an e-node is a registered op (its name plus an
//! interned signature — attributes and result type) applied to child e-classes, or a leaf
//! standing for an IR value the encoding does not look into (a function argument, the
//! result of a `kernel` op). The e-class analysis is the value's IR type, which every
//! member of a class shares (rules only union values of equal type).

use crate::ir::{Attr, Type};
use egg::{Analysis, DidMerge, EGraph, Id, Language};
use std::collections::{BTreeMap, HashMap};

/// What an e-node computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Head {
    /// An opaque IR value, by its `ValueId` index.
    Leaf(u32),
    /// A registered op (`nn.dense`) with signature `sig` in [`Facts::sigs`].
    Op { name: &'static str, sig: u32 },
}

/// An e-node: a head and its child e-classes (the op's operands in order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    pub head: Head,
    pub children: Vec<Id>,
}

impl Language for Node {
    type Discriminant = Head;

    fn discriminant(&self) -> Head {
        self.head
    }
    fn matches(&self, other: &Self) -> bool {
        self.head == other.head && self.children.len() == other.children.len()
    }
    fn children(&self) -> &[Id] {
        &self.children
    }
    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

/// An op's attributes and result type: two ops with equal signatures, names and operands
/// compute the same value (every op is deterministic, spec/ir.md).
#[derive(Clone, Debug)]
pub struct Sig {
    pub attrs: BTreeMap<String, Attr>,
    pub ty: Type,
}

/// The analysis: interned signatures, leaf types, and each class's type as its data.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub sigs: Vec<Sig>,
    /// Canonical text of a signature → its index, so equal signatures share one index and
    /// e-nodes hash-cons.
    index: HashMap<String, u32>,
    pub leaf_types: HashMap<u32, Type>,
}

impl Facts {
    /// The index of a signature, interning it on first sight.
    pub fn intern(&mut self, attrs: BTreeMap<String, Attr>, ty: Type) -> u32 {
        let mut key = String::new();
        let _ = crate::ir::attr::write_dict(&mut key, &attrs);
        key.push_str(" : ");
        key.push_str(&ty.to_string());
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = u32::try_from(self.sigs.len()).expect("fewer than 2^32 signatures");
        self.sigs.push(Sig { attrs, ty });
        self.index.insert(key, i);
        i
    }

    pub fn sig(&self, i: u32) -> &Sig {
        &self.sigs[i as usize]
    }
}

/// The e-graph the fusion pass saturates.
pub type FusionGraph = EGraph<Node, Facts>;

impl Analysis<Node> for Facts {
    type Data = Type;

    fn make(egraph: &mut FusionGraph, enode: &Node, _id: Id) -> Type {
        match enode.head {
            Head::Leaf(v) => egraph.analysis.leaf_types[&v].clone(),
            Head::Op { sig, .. } => egraph.analysis.sig(sig).ty.clone(),
        }
    }

    fn merge(&mut self, a: &mut Type, b: Type) -> DidMerge {
        debug_assert_eq!(*a, b, "a fusion rule united values of different types");
        DidMerge(false, false)
    }
}

/// The op e-nodes named `name` in class `id`, with their signatures.
pub fn ops_named<'a>(egraph: &'a FusionGraph, id: Id, name: &'static str) -> impl Iterator<Item = (&'a Node, &'a Sig)> + 'a {
    egraph[id].nodes.iter().filter_map(move |n| match n.head {
        Head::Op { name: m, sig } if m == name => Some((n, egraph.analysis.sig(sig))),
        _ => None,
    })
}

/// The type of the values of class `id`.
pub fn class_type(egraph: &FusionGraph, id: Id) -> &Type {
    &egraph[id].data
}
