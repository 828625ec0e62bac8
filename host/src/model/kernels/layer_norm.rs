//! LayerNorm over the last dim (biased variance, eps 1e-5).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::model::LN_EPS;

use super::{has_avx2_fma, portable};

struct LayerNormOp;

/// Sum with 8 independent accumulators (vectorizes; fixed order, so deterministic).
#[inline(always)]
pub(super) fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    for (l, &x) in it.remainder().iter().enumerate() {
        acc[l] += x;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn ln_rows(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
    let c = w.len();
    let inv_c = 1.0 / c as f32;
    for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let mean = sum8(xr) * inv_c;
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = v - mean;
        }
        let mut acc = [0f32; 8];
        let mut it = or.chunks_exact(8);
        for ch in &mut it {
            for l in 0..8 {
                acc[l] += ch[l] * ch[l];
            }
        }
        for (l, &d) in it.remainder().iter().enumerate() {
            acc[l] += d * d;
        }
        let var = (((acc[0] + acc[4]) + (acc[1] + acc[5]))
            + ((acc[2] + acc[6]) + (acc[3] + acc[7])))
            * inv_c;
        let rstd = 1.0 / (var + LN_EPS as f32).sqrt();
        for ((o, &wj), &bj) in or.iter_mut().zip(w).zip(b) {
            *o = *o * rstd * wj + bj;
        }
    }
}

impl CustomOp3 for LayerNormOp {
    cpu_fwd!("tdq-layer-norm", |op, (x, l1), (w, l2), (b, l3)| {
        let c = w.len();
        let mut out = vec![0f32; x.len()];
        let rows_per_task = 256;
        out.par_chunks_mut(c * rows_per_task)
            .zip(x.par_chunks(c * rows_per_task))
            .for_each(|(o, xi)| {
                dispatch!(
                    k,
                    (xi: &[f32], w: &[f32], b: &[f32], o: &mut [f32]),
                    ln_rows(xi, w, b, o)
                );
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    });

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + LN_EPS)?.sqrt()?.recip()?;
        let xhat = xc.broadcast_mul(&rstd)?;
        let gw = g.broadcast_mul(w)?;
        let m1 = gw.mean_keepdim(D::Minus1)?;
        let m2 = (&gw * &xhat)?.mean_keepdim(D::Minus1)?;
        let dx = gw
            .broadcast_sub(&m1)?
            .sub(&xhat.broadcast_mul(&m2)?)?
            .broadcast_mul(&rstd)?;
        let c = w.elem_count();
        let (dw, db) = if w.track_op() || _b.track_op() {
            let rows = g.elem_count() / c;
            let g2 = g.reshape((rows, c))?;
            let dw = (&g2 * xhat.reshape((rows, c))?)?.sum(0)?;
            let db = g2.sum(0)?;
            (Some(dw), Some(db))
        } else {
            (None, None)
        };
        Ok((Some(dx), dw, db))
    }
}

/// LayerNorm over the last dim with weight `w` and bias `b` (`[C]`), biased variance, eps 1e-5.
/// Differentiable in all three.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let c = x.dim(D::Minus1)?;
    if w.elem_count() != c || b.elem_count() != c {
        candle_core::bail!("layer_norm: {:?} with weight {:?}", x.dims(), w.dims());
    }
    if !portable::fused_on(x.device()) {
        return portable::layer_norm(x, w, b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNormOp)
}
