//! GEMM-based ops: fused linear, batched matmul.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::portable;

/// `dst[m×n] (row-major) = alpha·dst + beta·lhs·rhs`, with explicit strides (elements).
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    read_dst: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    alpha: f32,
    beta: f32,
    parallel: bool,
) {
    assert!(dst.len() >= m * n);
    if m > 0 && k > 0 {
        assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    }
    if k > 0 && n > 0 {
        assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    }
    let par = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every access of the m×k, k×n and m×n operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            alpha,
            beta,
            false,
            false,
            false,
            par,
        )
    }
}

/// `scale·(x·wᵀ + b)`.
struct LinearOp {
    scale: f32,
}

impl CustomOp3 for LinearOp {
    cpu_fwd!("tdq-linear", |op, (x, l1), (w, l2), (b, l3)| {
        let (n, k) = l2.shape().dims2()?;
        let m = x.len() / k;
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(b);
        }
        // out = scale·out + scale·(x · wᵀ); wᵀ[kk, j] = w[j·k + kk].
        sgemm(
            m,
            n,
            k,
            &mut out,
            true,
            x,
            (k, 1),
            w,
            (1, k),
            op.scale,
            op.scale,
            true,
        );
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("rank ≥ 1") = n;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    });

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let m = x.elem_count() / k;
        let g2 = (g.reshape((m, n))? * self.scale as f64)?;
        let dx = g2.matmul(w)?.reshape(x.dims())?;
        let dw = if w.track_op() {
            Some(g2.t()?.matmul(&x.reshape((m, k))?)?)
        } else {
            None
        };
        let db = if b.track_op() { Some(g2.sum(0)?) } else { None };
        Ok((Some(dx), dw, db))
    }
}

/// `scale·(x·wᵀ + b)` over the last dim of `x` (`w`: `[out, in]`, `b`: `[out]`), one GEMM with
/// the bias folded in. Differentiable in all three.
pub fn linear_scaled(x: &Tensor, w: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    if x.dim(D::Minus1)? != k || b.elem_count() != n {
        candle_core::bail!(
            "linear: x {:?}, w {:?}, b {:?}",
            x.dims(),
            w.dims(),
            b.dims()
        );
    }
    if !portable::fused_on(x.device()) {
        return portable::linear_scaled(x, w, b, scale);
    }
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LinearOp {
            scale: scale as f32,
        },
    )
}

/// `x·wᵀ + b` (see [`linear_scaled`]).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    linear_scaled(x, w, b, 1.0)
}

/// Batched `a·b` or `a·bᵀ` over all leading dims, batches spread over threads.
struct BmmOp {
    transpose_b: bool,
}

impl CustomOp2 for BmmOp {
    cpu_fwd!("tdq-bmm", |op, (a, l1), (b, l2)| {
        let ad = l1.dims();
        let bd = l2.dims();
        let r = ad.len();
        let (m, k) = (ad[r - 2], ad[r - 1]);
        let (n, kb) = if op.transpose_b {
            (bd[r - 2], bd[r - 1])
        } else {
            (bd[r - 1], bd[r - 2])
        };
        let batch = a.len() / (m * k);
        if kb != k || b.len() != batch * k * n || ad[..r - 2] != bd[..r - 2] {
            candle_core::bail!("bmm: shapes {ad:?} and {bd:?}");
        }
        let mut out = vec![0f32; batch * m * n];
        let rhs_strides = if op.transpose_b { (1, k) } else { (n, 1) };
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, o)| {
            sgemm(
                m,
                n,
                k,
                o,
                false,
                &a[i * m * k..(i + 1) * m * k],
                (k, 1),
                &b[i * k * n..(i + 1) * k * n],
                rhs_strides,
                1.0,
                1.0,
                false,
            );
        });
        let mut dims = ad.to_vec();
        dims[r - 1] = n;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    });

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        if self.transpose_b {
            // c = a·bᵀ: da = g·b, db = gᵀ·a
            let da = bmm(&g, b)?;
            let db = bmm(&g.transpose(D::Minus1, D::Minus2)?.contiguous()?, a)?;
            Ok((Some(da), Some(db)))
        } else {
            // c = a·b: da = g·bᵀ, db = aᵀ·g
            let da = bmm_nt(&g, b)?;
            let db = bmm(&a.transpose(D::Minus1, D::Minus2)?.contiguous()?, &g)?;
            Ok((Some(da), Some(db)))
        }
    }
}

/// Batched `a·b` (`[…, m, k]·[…, k, n]`, same leading dims). Differentiable.
pub fn bmm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !portable::fused_on(a.device()) {
        return portable::bmm(a, b, false);
    }
    a.contiguous()?
        .apply_op2(&b.contiguous()?, BmmOp { transpose_b: false })
}

/// Batched `a·bᵀ` (`[…, m, k]·[…, n, k]ᵀ`, same leading dims). Differentiable.
pub fn bmm_nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !portable::fused_on(a.device()) {
        return portable::bmm(a, b, true);
    }
    a.contiguous()?
        .apply_op2(&b.contiguous()?, BmmOp { transpose_b: true })
}
