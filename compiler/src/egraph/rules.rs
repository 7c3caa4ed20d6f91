//! The fusion rules, as data: [`RULES`] lists each rule's name, a one-line statement of the
//! identity it uses with its conditions, and the function that finds its matches in one
//! e-class. Every rule is exact — it never changes a bit of any result — and fires only
//! when its conditions are proven from the types and attributes (format relations come from
//! `qc_runtime::numerics::represents_all_of`, decided from format descriptors). The proofs
//! are in spec/ir.md, "Fusion"; compiler/tests/fusion_soundness.rs checks each identity
//! exhaustively on small formats with the runtime's rounding.
//!
//! A rule implements egg's `Searcher` and `Applier` at once ([`Rule`]): the search finds the
//! classes where the rule's left-hand side matches and its condition holds, the application
//! adds the right-hand side ([`Build`]) and unites it with the matched class.

use super::lang::{class_type, ops_named, FusionGraph, Head, Node, Sig};
use crate::ir::{Arith, Attr, Dim, TensorType, Type};
use egg::{Applier, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use qc_runtime::numerics::{represents_all_of, Format, Rounding};
use std::collections::BTreeMap;

/// A right-hand side: an existing class, or a new op over right-hand sides.
#[derive(Clone, Debug)]
pub enum Build {
    Class(Id),
    Op { name: &'static str, attrs: BTreeMap<String, Attr>, ty: Type, children: Vec<Build> },
}

/// One rewrite rule.
pub struct RuleDef {
    pub name: &'static str,
    /// The identity, `lhs ⇒ rhs when conditions`, in one line.
    pub doc: &'static str,
    /// Every right-hand side equal to class `id` that this rule proves.
    pub find: fn(&FusionGraph, Id) -> Vec<Build>,
}

/// Every fusion rule, in the order the runner tries them.
pub const RULES: &[RuleDef] = &[
    RuleDef {
        name: "fuse-bias",
        doc: "add(dense|conv2d(x, w), b) ⇒ dense|conv2d(x, w, b) when the add rounds like the accumulator (same format and deterministic mode) and the contraction's result format holds the accumulator's values",
        find: fuse_bias,
    },
    RuleDef {
        name: "fuse-batchnorm",
        doc: "batchnorm(dense|conv2d(x, w[, b]), γ, β, μ, σ²) ⇒ fused_dense|fused_conv2d(x, w[, b], γ, β, μ, σ²){batchnorm} when the contraction's result format holds the accumulator's values (the batch norm then reads the accumulator value itself) and the batch norm rounds deterministically",
        find: fuse_batchnorm,
    },
    RuleDef {
        name: "fuse-activation",
        doc: "relu|clip(dense|conv2d(..)) ⇒ fused_dense|fused_conv2d(..){clip} when the activation's result format rounds like the contraction's and the bounds are values of it",
        find: fuse_activation,
    },
    RuleDef {
        name: "fuse-quantize",
        doc: "quantize_F,r(contraction(..)) ⇒ contraction(..) with result F and out=r when r is deterministic, the contraction's result format holds the accumulator's values and clip bounds are values of F",
        find: fuse_quantize,
    },
    RuleDef {
        name: "relu-quantize-to-clip",
        doc: "quantize_F(relu|clip(x)) ⇒ clip(quantize_F(x)) when F is element-wise and holds the bounds, and the activation is exact (its result format holds x's values and the bounds)",
        find: relu_quantize_to_clip,
    },
    RuleDef {
        name: "dequantize-quantize",
        doc: "quantize_F(dequantize_G(x : F)) ⇒ x when F is element-wise and G holds every value of F",
        find: dequantize_quantize,
    },
    RuleDef {
        name: "requantize-to-finer",
        doc: "quantize_F,r(y : G) ⇒ y (or the exact dequantize of y to F) when F holds every value of G, in every mode r",
        find: requantize_to_finer,
    },
    RuleDef {
        name: "collapse-directed",
        doc: "quantize_G,r(quantize_F,r(x)) ⇒ quantize_G,r(x) for r in {toward-zero, up, down} when F and G are floats, F holds every value of G and their overflow results agree",
        find: collapse_directed,
    },
];

/// A rule as an egg rewrite.
pub struct Rule(pub &'static RuleDef);

/// The rewrites of every rule in [`RULES`].
pub fn rewrites() -> Vec<Rewrite<Node, super::lang::Facts>> {
    RULES.iter().map(|r| Rewrite::new(r.name, Rule(r), Rule(r)).expect("rules bind no variables")).collect()
}

impl Searcher<Node, super::lang::Facts> for Rule {
    fn search_eclass_with_limit(&self, egraph: &FusionGraph, eclass: Id, limit: usize) -> Option<SearchMatches<'_, Node>> {
        let n = (self.0.find)(egraph, eclass).len().min(limit);
        (n > 0).then(|| SearchMatches { eclass, substs: vec![Subst::default(); n], ast: None })
    }
    fn vars(&self) -> Vec<Var> {
        Vec::new()
    }
}

impl Applier<Node, super::lang::Facts> for Rule {
    /// Applies every right-hand side of each matched class once (the substitutions carry no
    /// bindings: they only count the matches).
    fn apply_matches(&self, egraph: &mut FusionGraph, matches: &[SearchMatches<Node>], rule_name: Symbol) -> Vec<Id> {
        matches.iter().flat_map(|m| self.apply_one(egraph, m.eclass, &Subst::default(), None, rule_name)).collect()
    }

    fn apply_one(&self, egraph: &mut FusionGraph, eclass: Id, _: &Subst, _: Option<&PatternAst<Node>>, _: Symbol) -> Vec<Id> {
        let builds = (self.0.find)(egraph, eclass);
        let mut changed = Vec::new();
        for b in builds {
            let id = add_build(egraph, &b);
            if egraph.union(eclass, id) {
                changed.push(eclass);
            }
        }
        changed
    }
}

fn add_build(egraph: &mut FusionGraph, b: &Build) -> Id {
    match b {
        Build::Class(id) => *id,
        Build::Op { name, attrs, ty, children } => {
            let children = children.iter().map(|c| add_build(egraph, c)).collect();
            let sig = egraph.analysis.intern(attrs.clone(), ty.clone());
            egraph.add(Node { head: Head::Op { name, sig }, children })
        }
    }
}

// ---------------------------------------------------------------- helpers for conditions

fn tensor(ty: &Type) -> Option<&TensorType> {
    ty.as_tensor()
}

fn format_of(egraph: &FusionGraph, id: Id) -> Option<Format> {
    tensor(class_type(egraph, id)).map(|t| t.format)
}

/// `finer` provably holds every value of `coarser` (never assumed: `None` counts as no).
fn holds(finer: &Format, coarser: &Format) -> bool {
    represents_all_of(finer, coarser) == Some(true)
}

/// Two formats round every real number identically: the same format, or the same float
/// descriptor under different names (`fp16` and `fp<5,10>`). Equal value sets are not
/// enough: `fp16` and `fp16<sat>` hold the same values but overflow differently.
fn rounds_alike(a: &Format, b: &Format) -> bool {
    a == b || matches!((a.as_float(), b.as_float()), (Some(x), Some(y)) if x == y)
}

fn rounding(sig: &Sig) -> Rounding {
    match sig.attrs.get("round") {
        Some(Attr::Rounding(r)) => *r,
        _ => Rounding::Nearest,
    }
}

fn arith(sig: &Sig) -> Option<Arith> {
    match sig.attrs.get("arith") {
        Some(Attr::Arith(a)) => Some(*a),
        _ => None,
    }
}

fn float_attr(sig: &Sig, name: &str) -> Option<f64> {
    sig.attrs.get(name).and_then(Attr::as_f64)
}

/// The `[lo, hi]` of a fused contraction, if it has one.
fn clip_bounds(sig: &Sig) -> Option<(f64, f64)> {
    match sig.attrs.get("clip") {
        Some(Attr::Array(items)) => match items.as_slice() {
            [lo, hi] => Some((lo.as_f64()?, hi.as_f64()?)),
            _ => None,
        },
        _ => None,
    }
}

/// A bound that clamping in format `f` keeps exact: a value of `f`, or an infinity.
fn bound_fits(bound: f64, f: &Format) -> bool {
    bound.is_infinite() || f.contains(bound)
}

/// The bounds of an activation e-node: relu is `[+0, +∞]`, clip its attributes.
fn activation_bounds(node: &Node, egraph: &FusionGraph) -> Option<(f64, f64)> {
    match node.head {
        Head::Op { name: "nn.relu", .. } => Some((0.0, f64::INFINITY)),
        Head::Op { name: "nn.clip", sig } => {
            let s = egraph.analysis.sig(sig);
            Some((float_attr(s, "min")?, float_attr(s, "max")?))
        }
        _ => None,
    }
}

fn with_result(sig: &Sig, ty: Type) -> (BTreeMap<String, Attr>, Type) {
    (sig.attrs.clone(), ty)
}

const CONTRACTIONS: [&str; 2] = ["nn.dense", "nn.conv2d"];
const FUSED: [(&str, &str); 2] = [("nn.dense", "nn.fused_dense"), ("nn.conv2d", "nn.fused_conv2d")];

/// Every contraction e-node (plain or fused) of class `id`.
fn contractions<'a>(egraph: &'a FusionGraph, id: Id) -> impl Iterator<Item = (&'a Node, &'static str, &'a Sig)> + 'a {
    ["nn.dense", "nn.conv2d", "nn.fused_dense", "nn.fused_conv2d"]
        .into_iter()
        .flat_map(move |name| ops_named(egraph, id, name).map(move |(n, s)| (n, name, s)))
}

// ---------------------------------------------------------------- the rules

/// `add(c, b)` or `add(b, c)` with `c` an unbiased dense/conv2d: the bias add becomes the
/// contraction's step 4, `a = round_acc(a + b)`, followed by `out` rounding to the add's
/// format. Exact when the contraction's own rounding to its result format is exact (that
/// format holds the accumulator's values), the add rounds like the accumulator (same
/// rounding function and mode, deterministic so no draws move) and b has the bias's shape.
fn fuse_bias(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (add, add_sig) in ops_named(egraph, id, "nn.add") {
        let r = rounding(add_sig);
        let Some(result) = tensor(&add_sig.ty) else { continue };
        for (c, b) in [(add.children[0], add.children[1]), (add.children[1], add.children[0])] {
            for name in CONTRACTIONS {
                for (node, sig) in ops_named(egraph, c, name) {
                    let (Some(a), Some(t)) = (arith(sig), tensor(&sig.ty)) else { continue };
                    if node.children.len() != 2 || r.is_stochastic() || r != a.acc.rounding {
                        continue;
                    }
                    if !rounds_alike(&result.format, &a.acc.format) || !holds(&t.format, &a.acc.format) || result.dims != t.dims {
                        continue;
                    }
                    let Some(bias) = bias_operand(egraph, name, t, b) else { continue };
                    let (attrs, ty) = with_result(sig, add_sig.ty.clone());
                    out.push(Build::Op { name, attrs, ty, children: vec![Build::Class(node.children[0]), Build::Class(node.children[1]), bias] });
                }
            }
        }
    }
    out
}

/// The bias operand for a contraction of result type `t` from the add's other operand `b`:
/// `[N]` (dense) or `[O]` (conv2d, channels last) as it is; conv2d also takes `[1, 1, O]` or
/// `[1, 1, 1, O]` (what broadcasts over `[N, H, W, O]` per channel) reshaped to `[O]` — a
/// reshape moves values, exactly.
fn bias_operand(egraph: &FusionGraph, contraction: &str, t: &TensorType, b: Id) -> Option<Build> {
    let bt = tensor(class_type(egraph, b))?;
    let channels = *t.dims.last()?;
    if let Dim::Dynamic = channels {
        return None;
    }
    if bt.dims == [channels] {
        return Some(Build::Class(b));
    }
    let one = Dim::Fixed(1);
    let per_channel = contraction == "nn.conv2d" && (bt.dims == [one, one, channels] || bt.dims == [one, one, one, channels]);
    per_channel.then(|| Build::Op {
        name: "nn.reshape",
        attrs: BTreeMap::new(),
        ty: Type::Tensor(TensorType::new(vec![channels], bt.format)),
        children: vec![Build::Class(b)],
    })
}

/// `batchnorm(c, γ, β, μ, σ²)` with `c` a plain contraction: the batch norm becomes the
/// contraction's epilogue, applied to the accumulator value a (after the bias) in place of
/// the rounding to c's result format, with the batch norm's own arithmetic and result type,
/// and an unbounded clamp. Exact when c's rounding to its result format T is exact (T holds
/// the accumulator's values: L1), so the batch norm reads exactly a, and the batch norm is
/// deterministic (no draws to keep in place). The per-channel axis of both is the last.
fn fuse_batchnorm(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (bn, bn_sig) in ops_named(egraph, id, "nn.batchnorm") {
        let Some(bn_arith) = arith(bn_sig) else { continue };
        if bn_arith.is_stochastic() || bn.children.len() != 5 {
            continue;
        }
        let mut norm: BTreeMap<String, Attr> = BTreeMap::new();
        norm.insert("arith".into(), Attr::Arith(bn_arith));
        for key in ["epsilon", "momentum"] {
            if let Some(v) = bn_sig.attrs.get(key) {
                norm.insert(key.into(), v.clone());
            }
        }
        for (plain, fused) in FUSED {
            for (inner, sig) in ops_named(egraph, bn.children[0], plain) {
                let (Some(a), Some(t)) = (arith(sig), tensor(&sig.ty)) else { continue };
                if !holds(&t.format, &a.acc.format) {
                    continue;
                }
                let mut attrs = sig.attrs.clone();
                attrs.insert("clip".into(), Attr::Array(vec![Attr::Float(f64::NEG_INFINITY), Attr::Float(f64::INFINITY)]));
                attrs.insert("batchnorm".into(), Attr::Dict(norm.clone()));
                let children = inner.children.iter().chain(&bn.children[1..]).map(|c| Build::Class(*c)).collect();
                out.push(Build::Op { name: fused, attrs, ty: bn_sig.ty.clone(), children });
            }
        }
    }
    out
}

/// A contraction with a fused batch norm and no clamp yet: an activation may still fuse.
fn unclamped_batchnorm(sig: &Sig) -> bool {
    sig.attrs.contains_key("batchnorm") && clip_bounds(sig) == Some((f64::NEG_INFINITY, f64::INFINITY))
}

/// `relu|clip(c)` with `c` a plain contraction of result format T (or one with a fused batch
/// norm and no clamp yet): the clamp moves into the contraction (applied after its last
/// rounding). Exact when the activation's result format rounds like T (then its rounding of
/// a clamped value of T is the identity, and the fused op may round straight to it) and the
/// bounds are values of T or infinities.
fn fuse_activation(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for node in &egraph[id].nodes {
        let Some((lo, hi)) = activation_bounds(node, egraph) else { continue };
        let Some(c_format) = format_of(egraph, id) else { continue };
        for (plain, fused) in FUSED {
            let normed = ops_named(egraph, node.children[0], fused).filter(|(_, sig)| unclamped_batchnorm(sig));
            for (inner, sig) in ops_named(egraph, node.children[0], plain).chain(normed) {
                let Some(t) = tensor(&sig.ty) else { continue };
                if !rounds_alike(&c_format, &t.format) || !bound_fits(lo, &t.format) || !bound_fits(hi, &t.format) {
                    continue;
                }
                let (mut attrs, ty) = with_result(sig, class_type(egraph, id).clone());
                attrs.insert("clip".into(), Attr::Array(vec![Attr::Float(lo), Attr::Float(hi)]));
                out.push(Build::Op { name: fused, attrs, ty, children: inner.children.iter().map(|c| Build::Class(*c)).collect() });
            }
        }
    }
    out
}

/// `quantize_F,r(c)` with `c` a contraction (plain or fused): the contraction rounds straight
/// to F with `out = r`. Exact when c's own rounding to its result format is exact (it holds
/// the accumulator's values), F is element-wise, r is deterministic (no draws move between
/// ops) and a clamp's bounds are values of F (clamping commutes with rounding to F).
fn fuse_quantize(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (q, q_sig) in ops_named(egraph, id, "q.quantize") {
        let r = rounding(q_sig);
        let Some(f) = tensor(&q_sig.ty).map(|t| t.format) else { continue };
        if q.children.len() != 1 || r.is_stochastic() || !f.is_elementwise() {
            continue;
        }
        for (inner, name, sig) in contractions(egraph, q.children[0]) {
            let (Some(a), Some(t)) = (arith(sig), tensor(&sig.ty)) else { continue };
            // With a fused batch norm the value before the last rounding is the batch norm's.
            if !holds(&t.format, &a.acc.format) || sig.attrs.contains_key("batchnorm") {
                continue;
            }
            if let Some((lo, hi)) = clip_bounds(sig) {
                if !bound_fits(lo, &f) || !bound_fits(hi, &f) {
                    continue;
                }
            }
            let mut fused = Arith { out: r, ..a };
            fused.stream = if fused.is_stochastic() { a.stream } else { None };
            let mut attrs = sig.attrs.clone();
            attrs.insert("arith".into(), Attr::Arith(fused));
            out.push(Build::Op { name, attrs, ty: q_sig.ty.clone(), children: inner.children.iter().map(|c| Build::Class(*c)).collect() });
        }
    }
    out
}

/// `quantize_F,r(relu|clip(x))` ⇒ `clip(quantize_F,r(x))`: the clamp moves after the
/// quantization, into F's (narrower) values. Exact when the activation itself is exact (its
/// result format B holds every value of x's format and the bounds), F is element-wise (a
/// scaled format would take its scale from different data) and holds the bounds. Every mode
/// qualifies, stochastic ones included: the quantize keeps its stream and element indices.
fn relu_quantize_to_clip(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (q, q_sig) in ops_named(egraph, id, "q.quantize") {
        let Some(f) = tensor(&q_sig.ty).map(|t| t.format) else { continue };
        if q.children.len() != 1 || !f.is_elementwise() {
            continue;
        }
        for act in &egraph[q.children[0]].nodes {
            let Some((lo, hi)) = activation_bounds(act, egraph) else { continue };
            let x = act.children[0];
            let (Some(b), Some(xf)) = (format_of(egraph, q.children[0]), format_of(egraph, x)) else { continue };
            let exact_activation = holds(&b, &xf) && bound_fits(lo, &b) && bound_fits(hi, &b);
            if !exact_activation || !bound_fits(lo, &f) || !bound_fits(hi, &f) {
                continue;
            }
            let Some(xt) = tensor(class_type(egraph, x)) else { continue };
            let quantized = Build::Op { name: "q.quantize", attrs: q_sig.attrs.clone(), ty: Type::Tensor(xt.with_format(f)), children: vec![Build::Class(x)] };
            let attrs = BTreeMap::from([("min".to_string(), Attr::Float(lo)), ("max".to_string(), Attr::Float(hi))]);
            out.push(Build::Op { name: "nn.clip", attrs, ty: q_sig.ty.clone(), children: vec![quantized] });
        }
    }
    out
}

/// `quantize_F(dequantize_G(x))` with x of exactly the quantize's type: the round trip
/// returns x when F is element-wise and G holds every value of F (the dequantize is exact,
/// and quantizing a value of F to F returns it in every mode).
fn dequantize_quantize(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (q, q_sig) in ops_named(egraph, id, "q.quantize") {
        let Some(f) = tensor(&q_sig.ty).map(|t| t.format) else { continue };
        if q.children.len() != 1 || !f.is_elementwise() {
            continue;
        }
        for (dq, dq_sig) in ops_named(egraph, q.children[0], "q.dequantize") {
            let x = dq.children[0];
            let Some(g) = tensor(&dq_sig.ty).map(|t| t.format) else { continue };
            if *class_type(egraph, x) == q_sig.ty && holds(&g, &f) {
                out.push(Build::Class(x));
            }
        }
    }
    out
}

/// `quantize_F,r(y)` where y's format G is held by F: every value of y is a value of F, and
/// quantizing a value of F returns it in every mode. The result is y itself when the types
/// are equal, else the exact conversion `dequantize` of y to F.
fn requantize_to_finer(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (q, q_sig) in ops_named(egraph, id, "q.quantize") {
        let (Some(f), Some(g)) = (tensor(&q_sig.ty).map(|t| t.format), format_of(egraph, q.children[0])) else { continue };
        if q.children.len() != 1 || !holds(&f, &g) {
            continue;
        }
        let y = q.children[0];
        if *class_type(egraph, y) == q_sig.ty {
            out.push(Build::Class(y));
        } else if f.is_elementwise() {
            out.push(Build::Op { name: "q.dequantize", attrs: BTreeMap::new(), ty: q_sig.ty.clone(), children: vec![Build::Class(y)] });
        }
    }
    out
}

/// Whether `quantize_G,r ∘ quantize_F,r = quantize_G,r` for a directed mode r, floats F ⊇ G:
/// directed roundings to nested sets compose (the G-neighbour of x in r's direction is an
/// F-value between x and the F-neighbour), so only overflow can differ. `up`/`down` send a
/// finite value beyond max to ±∞ in an IEEE format without `sat`; then G must overflow the
/// same way from F's ±∞ (G without `sat`, or with no ∞ at all). When F saturates instead
/// and G goes to ∞, F's ±max must itself overflow G (max_F > max_G).
pub fn directed_collapse_is_exact(fine: &Format, coarse: &Format, r: Rounding) -> bool {
    let (Some(f), Some(g)) = (fine.as_float(), coarse.as_float()) else { return false };
    if !matches!(r, Rounding::TowardZero | Rounding::Up | Rounding::Down) || !holds(fine, coarse) {
        return false;
    }
    let overflows_to_inf = |x: &qc_runtime::numerics::FloatFormat| x.has_inf() && !x.saturate;
    match r {
        Rounding::TowardZero => true,
        _ if overflows_to_inf(f) => overflows_to_inf(g) || !g.has_inf(),
        _ => !overflows_to_inf(g) || f.max() > g.max(),
    }
}

fn collapse_directed(egraph: &FusionGraph, id: Id) -> Vec<Build> {
    let mut out = Vec::new();
    for (outer, outer_sig) in ops_named(egraph, id, "q.quantize") {
        let r = rounding(outer_sig);
        let Some(g) = tensor(&outer_sig.ty).map(|t| t.format) else { continue };
        if outer.children.len() != 1 {
            continue;
        }
        for (inner, inner_sig) in ops_named(egraph, outer.children[0], "q.quantize") {
            let Some(f) = tensor(&inner_sig.ty).map(|t| t.format) else { continue };
            if inner.children.len() != 1 || rounding(inner_sig) != r || !directed_collapse_is_exact(&f, &g, r) {
                continue;
            }
            out.push(Build::Op { name: "q.quantize", attrs: outer_sig.attrs.clone(), ty: outer_sig.ty.clone(), children: vec![Build::Class(inner.children[0])] });
        }
    }
    out
}
