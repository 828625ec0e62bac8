//! Exact-form GELU, `x/2·(1 + erf(x/√2))`, and its derivative.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{fast_erf, fast_exp, has_avx2_fma, portable, zip2_par, CHUNK};

struct GeluOp;
struct GeluGradOp;

#[inline(always)]
fn gelu_slice(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * 0.5 * (1.0 + fast_erf(v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn gelu_grad_slice(x: &[f32], g: &[f32], out: &mut [f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((o, &v), &gv) in out.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + fast_erf(v * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * fast_exp(-0.5 * v * v);
        *o = gv * (cdf + v * pdf);
    }
}

impl CustomOp1 for GeluOp {
    cpu_fwd!("tdq-gelu-erf", |op, (x, l)| {
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, xi)| {
                dispatch!(k, (xi: &[f32], o: &mut [f32]), gelu_slice(xi, o));
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    });

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &GeluGradOp)?,
        ))
    }
}

impl CustomOp2 for GeluGradOp {
    cpu_fwd!("tdq-gelu-erf-grad", |op, (x, l1), (g, l2)| {
        let out = zip2_par(x, g, "gelu grad", |xi, gi, o| {
            dispatch!(k, (xi: &[f32], gi: &[f32], o: &mut [f32]), gelu_grad_slice(xi, gi, o));
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    });
}

/// GELU, exact (erf) form, as `torch.nn.GELU()`. Differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !portable::fused_on(x.device()) {
        return portable::gelu_erf(x);
    }
    x.contiguous()?.apply_op1(GeluOp)
}
