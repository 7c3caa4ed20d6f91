//! Forms of the language that the examples do not show: where `with` and casts attach, chained
//! casts, roundings on formats and their precedence, defaults written after their uses, a layer's
//! backward arithmetic over the train section's.

use qc_lang::check::{Op, Rounded};
use qc_runtime::numerics::{Format, Rounding};

fn checked(body: &str) -> qc_lang::CheckedModule {
    let source = format!("model m {{ input x: [B, 64] fp32; param w: [10, 64] fp32 = zeros; {body} }}");
    let (checked, diagnostics) = qc_lang::check_source(&source);
    assert!(diagnostics.is_empty(), "{}", qc_lang::render(&diagnostics, &source, "t.qnn", false));
    checked.unwrap()
}

fn f(text: &str) -> Format {
    Format::parse(text).unwrap()
}

#[test]
fn with_and_cast_attach_to_the_call_in_either_order() {
    for expr in ["dense(x, w) with { acc = fp16 } : bf16", "dense(x, w) : bf16 with { acc = fp16 }"] {
        let m = checked(&format!("let y = {expr}; output y;"));
        assert_eq!(m.nodes.len(), 1, "{expr}");
        let n = &m.nodes[0];
        assert_eq!((n.format, n.arith.unwrap().acc.format), (f("bf16"), f("fp16")), "{expr}");
    }
}

#[test]
fn chained_casts_round_twice() {
    let m = checked("let y = x : e4m3 : fp16; let _unused = dense(x, w); output y;");
    let ops: Vec<(&Op, Format)> = m.nodes.iter().take(2).map(|n| (&n.op, n.format)).collect();
    assert_eq!(ops, vec![(&Op::Cast, f("e4m3")), (&Op::Cast, f("fp16"))]);
}

#[test]
fn a_rounding_on_a_format_wins_over_the_op_and_the_defaults() {
    let m = checked(
        "let y = dense(x, w) with { acc = fp16 @ stochastic:9, chunk = 16, chunk_acc = fp32, rounding = up } : bf16; output y;
         defaults { rounding = toward-zero; mul = bf16; }",
    );
    let n = &m.nodes[0];
    let a = n.arith.unwrap();
    assert_eq!(a.acc, Rounded { format: f("fp16"), rounding: Rounding::StochasticBits(9) });
    assert_eq!(a.chunk_acc, Some(Rounded { format: f("fp32"), rounding: Rounding::Up }));
    assert_eq!(a.mul, Some(Rounded { format: f("bf16"), rounding: Rounding::Up }));
    assert_eq!(n.rounding, Rounding::Up);
    assert_eq!(m.inputs[0].rounding, Rounding::TowardZero, "defaults apply to items written before them");
}

#[test]
fn dot_products_yield_their_accumulator_and_elementwise_ops_their_operand_format() {
    let m = checked("let y = relu(dense(x : e4m3, w) with { acc = fp16, chunk = 8, chunk_acc = bf16 }); let z = relu(x : e4m3); output y, z;");
    let formats: Vec<Format> = m.nodes.iter().map(|n| n.format).collect();
    assert_eq!(formats, vec![f("e4m3"), f("bf16"), f("bf16"), f("e4m3"), f("e4m3")]);
}

#[test]
fn a_layers_backward_arithmetic_resolves_over_the_train_sections() {
    let source = "model m {
      input x: [B, 64] fp32;
      param w: [10, 64] fp32 = zeros;
      let y = dense(x, w) with { bwd_acc = fp16, bwd_chunk_acc = bf16 @ up, rounding = toward-zero };
      output y;
      train { loss = mse; optimizer = sgd(lr = 0.1); backward { acc = fp32 @ stochastic:9; chunk = 16; mul = bf16; } }
    }";
    let (checked, diagnostics) = qc_lang::check_source(source);
    assert!(diagnostics.is_empty(), "{}", qc_lang::render(&diagnostics, source, "t.qnn", false));
    let m = checked.unwrap();
    let own = m.nodes[0].grads.backward;
    assert_eq!(own.acc, Some(Rounded { format: f("fp16"), rounding: Rounding::TowardZero }), "the op's rounding");
    assert_eq!(own.chunk, None);
    let model = m.training.unwrap().backward;
    let layer = own.over(&model);
    assert_eq!(layer.acc, own.acc.unwrap());
    assert_eq!(layer.chunk, Some(16), "the chunk comes from `backward`");
    assert_eq!(layer.chunk_acc, Some(Rounded { format: f("bf16"), rounding: Rounding::Up }));
    assert_eq!(layer.mul, model.mul, "products are always the model's");
    assert_eq!(model.acc, Rounded { format: f("fp32"), rounding: Rounding::StochasticBits(9) });
}
