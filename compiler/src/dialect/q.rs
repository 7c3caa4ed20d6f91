//! The `q` dialect: quantization. `q.scale` computes the scales a scaled format assigns to a
//! tensor; `q.quantize` rounds a tensor to its result format (with given or computed scales);
//! `q.dequantize` turns values of a scaled format back into an element-wise format.

use super::check::*;
use super::{opt, Arity, OpDef, OpView, ROUND_OPT};
use crate::ir::{AttrKind, Dim, TensorType};
use qc_runtime::numerics::{BlockScale, Format};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "q.scale",
        summary: "The scales that the result of quantizing x to `format` uses (see `scale_type`).",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[super::req("format", AttrKind::Format)],
        terminator: false,
        verify: verify_scale,
    },
    OpDef {
        name: "q.quantize",
        summary: "Rounds x to the result's format, with the scales given as operand 2 or computed.",
        operands: Arity::Between(1, 2),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &ROUND_OPT,
        terminator: false,
        verify: verify_quantize,
    },
    OpDef {
        name: "q.dequantize",
        summary: "The values of x (a scaled format) in the result's element-wise format.",
        operands: Arity::Exactly(1),
        results: Arity::Exactly(1),
        regions: 0,
        attrs: &[opt("round", AttrKind::Rounding), opt("stream", AttrKind::Int)],
        terminator: false,
        verify: verify_dequantize,
    },
];

/// The type of the scales of `format` for a tensor of shape `dims`: per tensor a rank-0
/// `fp32`, per channel `[dims[axis]]` of `fp32`, per block `[..., ⌈K/block⌉]` of the block's
/// scale format (`e8m0` for powers of two, `e4m3` for NVFP4). `None` for element-wise formats.
pub fn scale_type(format: Format, dims: &[Dim]) -> Result<Option<TensorType>, Failure> {
    let fp32 = Format::parse("fp32").expect("fp32 is a named format");
    if format.is_elementwise() {
        return Ok(None);
    }
    if let Format::Block(b) = format {
        let Some((&last, rest)) = dims.split_last() else {
            return fail(format!("the block format `{format}` needs a tensor with at least one axis"));
        };
        let blocks = match last {
            Dim::Fixed(k) => Dim::Fixed(k.div_ceil(b.block as u64)),
            Dim::Dynamic => Dim::Dynamic,
        };
        let scale_format = match b.scale {
            BlockScale::E8m0(_) | BlockScale::SharedExponent => Format::E8m0,
            BlockScale::E4m3 => Format::parse("e4m3").expect("e4m3 is a named format"),
        };
        let mut s = rest.to_vec();
        s.push(blocks);
        return Ok(Some(TensorType::new(s, scale_format)));
    }
    match format.channel_axis() {
        Some(a) if a >= dims.len() => fail(format!("`{format}` scales along axis {a}, beyond rank {}", dims.len())),
        Some(a) => Ok(Some(TensorType::new(vec![dims[a]], fp32))),
        None => Ok(Some(TensorType::new(Vec::new(), fp32))),
    }
}

fn verify_scale(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let Some(crate::ir::Attr::Format(f)) = v.attr("format") else { return fail("`format` is missing") };
    match scale_type(*f, &x.dims)? {
        None => fail_hint(format!("`{f}` is element-wise and has no scale"), "quantize to it directly with `q.quantize`"),
        Some(t) if &t == v.result_tensor(0)? => Ok(()),
        Some(t) => fail(format!("the scales of `{f}` have type `{t}`, not `{}`", v.result(0))),
    }
}

fn verify_quantize(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let y = v.result_tensor(0)?;
    expect_dims(y, &x.dims)?;
    if v.operand_count() == 2 {
        let given = v.tensor(1, "the scale")?;
        match scale_type(y.format, &y.dims)? {
            None => return fail_hint(format!("`{}` is element-wise and takes no scale", y.format), "drop the scale operand"),
            Some(t) if &t != given => return fail(format!("the scales of `{}` have type `{t}`, not `{given}`", y.format)),
            Some(_) => {}
        }
    } else {
        scale_type(y.format, &y.dims)?;
    }
    check_round_attr(v)
}

fn verify_dequantize(v: &OpView<'_>) -> Result<(), Failure> {
    let x = v.tensor(0, "the input")?;
    let y = v.result_tensor(0)?;
    expect_dims(y, &x.dims)?;
    if !y.format.is_elementwise() {
        return fail_hint(format!("the result format `{}` is not element-wise", y.format), "dequantize to a float such as fp32");
    }
    check_round_attr(v)
}
