//! Residual adds: plain, and fused with the window-reverse permutation.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{portable, zip2_par};

/// `a + b` (same shape).
struct AddOp;

impl CustomOp2 for AddOp {
    cpu_fwd!("tdq-add", |op, (a, l1), (b, l2)| {
        let out = zip2_par(a, b, "add", |x, y, o| {
            for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                *o = x + y;
            }
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    });

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(g.clone()), Some(g.clone())))
    }
}

/// `a + b` for same-shape tensors, one parallel pass. Differentiable.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        candle_core::bail!("add: {:?} vs {:?}", a.dims(), b.dims());
    }
    if !portable::fused_on(a.device()) {
        return a + b;
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddOp)
}

/// `x + o[:, inverse[p], :]`: undoes the window partition of `o` and adds the residual.
struct WindowReverseAdd {
    inverse: Arc<Vec<u32>>,
    order: Tensor,
}

impl CustomOp2 for WindowReverseAdd {
    cpu_fwd!("tdq-window-reverse-add", |op, (x, l1), (o, l2)| {
        let (_, l, c) = l1.shape().dims3()?;
        if x.len() != o.len() || op.inverse.len() != l {
            candle_core::bail!("window reverse add: bad sizes");
        }
        let inv = &op.inverse[..];
        let mut out = vec![0f32; x.len()];
        let rows_per_task = 256;
        out.par_chunks_mut(rows_per_task * c)
            .enumerate()
            .for_each(|(t, dst)| {
                for (i, d) in dst.chunks_exact_mut(c).enumerate() {
                    let row = t * rows_per_task + i;
                    let (bi, p) = (row / l, row % l);
                    let src = (bi * l + inv[p] as usize) * c;
                    let xr = &x[row * c..(row + 1) * c];
                    for ((d, a), b) in d.iter_mut().zip(xr).zip(&o[src..src + c]) {
                        *d = a + b;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    });

    fn bwd(
        &self,
        _x: &Tensor,
        _o: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(g.clone()), Some(g.index_select(&self.order, 1)?)))
    }
}

/// `x + reverse(o)` where `o` (`[B, L, C]`) is in the window order given by `order` (token `t`
/// comes from pixel `order[t]`) and `inverse` is its inverse. Differentiable.
pub fn window_reverse_add(
    x: &Tensor,
    o: &Tensor,
    order: &Tensor,
    inverse: &Arc<Vec<u32>>,
) -> Result<Tensor> {
    if x.dims() != o.dims() {
        candle_core::bail!("window reverse add: {:?} vs {:?}", x.dims(), o.dims());
    }
    if !portable::fused_on(x.device()) {
        return portable::window_reverse_add(x, o, inverse);
    }
    x.contiguous()?.apply_op2(
        &o.contiguous()?,
        WindowReverseAdd {
            inverse: inverse.clone(),
            order: order.clone(),
        },
    )
}
