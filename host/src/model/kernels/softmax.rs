//! Softmax over attention rows (`logits + rel_pos_bias (+ mask)`), alone and fused with the
//! `q·kᵀ` product that feeds it.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::model::geometry::ShiftMask;

use super::layer_norm::sum8;
use super::matmul::{bmm, sgemm};
use super::portable;
use super::{fast_exp, has_avx2_fma, N};

/// The position terms of window attention, added to the logits before the
/// softmax: the relative-position bias (`heads·64·64` values) and, in a
/// shifted block, the mask of the `n_windows` windows of one image.
#[derive(Clone)]
pub struct WindowTerms {
    /// `heads` 64 × 64 blocks.
    pub bias: Arc<Vec<f32>>,
    /// The mask of the windows of one image, in a shifted block.
    pub mask: Option<Arc<ShiftMask>>,
    /// Attention heads.
    pub heads: usize,
    /// Windows per image.
    pub n_windows: usize,
}

impl WindowTerms {
    /// Errors (naming `what`) unless `bw` windows of `heads` heads fit the
    /// bias and the mask.
    fn check(&self, what: &str, bw: usize, heads: usize) -> Result<()> {
        if heads != self.heads
            || !bw.is_multiple_of(self.n_windows)
            || self.bias.len() != heads * N * N
        {
            candle_core::bail!(
                "{what}: {bw} windows of {heads} heads, terms for {}",
                self.heads
            );
        }
        if let Some(m) = &self.mask {
            if m.n_windows() != self.n_windows {
                candle_core::bail!("{what}: mask for {} windows", m.n_windows());
            }
        }
        Ok(())
    }
}

/// Softmax over the last dim of `logits + bias (+ mask)`, one window-head block at a time.
struct AttnSoftmax(WindowTerms);

/// `v[j] ← e^(v[j] − max v)`, the max over 8 lanes (a row of either softmax
/// kernel, `N` values).
#[inline(always)]
fn exp_minus_max(v: &mut [f32]) {
    let mut mx = [f32::NEG_INFINITY; 8];
    for c in v.chunks_exact(8) {
        for l in 0..8 {
            mx[l] = if c[l] > mx[l] { c[l] } else { mx[l] };
        }
    }
    let m = mx
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for e in v.iter_mut() {
        *e = fast_exp(*e - m);
    }
}

/// Row `r` of a block's logits `v` plus row `r` of the bias and of the
/// mask, in PyTorch's order (`(x + bias) + mask`).
#[inline(always)]
fn add_bias_row(r: usize, bias: &[f32], mask: Option<&[f32]>, v: &mut [f32]) {
    let br = &bias[r * N..(r + 1) * N];
    match mask {
        Some(m) => {
            let mr = &m[r * N..(r + 1) * N];
            for j in 0..N {
                v[j] = (v[j] + br[j]) + mr[j];
            }
        }
        None => {
            for j in 0..N {
                v[j] += br[j];
            }
        }
    }
}

#[inline(always)]
fn softmax_block(x: &[f32], bias: &[f32], mask: Option<&[f32]>, out: &mut [f32]) {
    for r in 0..N {
        let mut v = [0f32; N];
        v.copy_from_slice(&x[r * N..(r + 1) * N]);
        add_bias_row(r, bias, mask, &mut v);
        exp_minus_max(&mut v[..]);
        let mut acc = [0f32; 8];
        for c in v.chunks_exact(8) {
            for l in 0..8 {
                acc[l] += c[l];
            }
        }
        let s: f32 = acc.iter().sum();
        let o = &mut out[r * N..(r + 1) * N];
        for j in 0..N {
            o[j] = v[j] / s;
        }
    }
}

impl CustomOp1 for AttnSoftmax {
    cpu_fwd!("tdq-attn-softmax", |op, (x, l)| {
        let blk = N * N;
        let mut out = vec![0f32; x.len()];
        let (heads, nw) = (op.0.heads, op.0.n_windows);
        let bias = &op.0.bias[..];
        let mask = op.0.mask.as_deref();
        out.par_chunks_mut(blk)
            .zip(x.par_chunks(blk))
            .enumerate()
            .for_each(|(i, (o, xi))| {
                let head = i % heads;
                let win = (i / heads) % nw;
                let b = &bias[head * blk..(head + 1) * blk];
                let m = mask.and_then(|m| m.window(win));
                dispatch!(
                    k,
                    (xi: &[f32], b: &[f32], m: Option<&[f32]>, o: &mut [f32]),
                    softmax_block(xi, b, m, o)
                );
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    });

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // d logits = p ⊙ (g − Σ_j g_j p_j)
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((res * grad.broadcast_sub(&dot)?)?))
    }
}

/// `softmax(logits + bias + mask)` over the last dim. `logits`: `[B·nW, heads, 64, 64]`
/// (window-major inside each image). Differentiable in `logits`.
pub fn attention_softmax(logits: &Tensor, terms: &WindowTerms) -> Result<Tensor> {
    let (bw, h, n1, n2) = logits.dims4()?;
    if n1 != N || n2 != N {
        candle_core::bail!("attention_softmax: bad shape {:?}", logits.dims());
    }
    terms.check("attention_softmax", bw, h)?;
    if !portable::fused_on(logits.device()) {
        return portable::attention_softmax(logits, terms);
    }
    logits.contiguous()?.apply_op1(AttnSoftmax(terms.clone()))
}

/// `softmax(q·kᵀ + bias (+ mask))`, one window-head block per task, without materializing the
/// logits.
struct AttnProbs(WindowTerms);

impl CustomOp2 for AttnProbs {
    cpu_fwd!("tdq-attn-probs", |op, (q, l1), (k, l2)| {
        let (bw, heads, n, d) = l1.shape().dims4()?;
        if l2.dims() != l1.dims() || n != N || heads != op.0.heads {
            candle_core::bail!("attention_probs: q {:?}, k {:?}", l1.dims(), l2.dims());
        }
        let blk = N * N;
        let (nw, bias) = (op.0.n_windows, &op.0.bias[..]);
        let mask = op.0.mask.as_deref();
        let mut out = vec![0f32; bw * heads * blk];
        out.par_chunks_mut(blk).enumerate().for_each(|(i, o)| {
            let qi = &q[i * N * d..(i + 1) * N * d];
            let ki = &k[i * N * d..(i + 1) * N * d];
            // o = q·kᵀ
            sgemm(N, N, d, o, false, qi, (d, 1), ki, (1, d), 1.0, 1.0, false);
            let head = i % heads;
            let win = (i / heads) % nw;
            let b = &bias[head * blk..(head + 1) * blk];
            let m = mask.and_then(|m| m.window(win));
            dispatch!(
                k,
                (b: &[f32], m: Option<&[f32]>, o: &mut [f32]),
                softmax_block_inplace(b, m, o)
            );
        });
        Ok((CpuStorage::F32(out), Shape::from((bw, heads, N, N))))
    });

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        p: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dot = (g * p)?.sum_keepdim(D::Minus1)?;
        let dl = (p * g.broadcast_sub(&dot)?)?; // d logits
        let dq = bmm(&dl, k)?;
        let dk = bmm(&dl.transpose(D::Minus1, D::Minus2)?.contiguous()?, q)?;
        Ok((Some(dq), Some(dk)))
    }
}

#[inline(always)]
fn softmax_block_inplace(bias: &[f32], mask: Option<&[f32]>, x: &mut [f32]) {
    for r in 0..N {
        let v = &mut x[r * N..(r + 1) * N];
        add_bias_row(r, bias, mask, v);
        exp_minus_max(v);
        let s = sum8(v);
        for e in v.iter_mut() {
            *e /= s;
        }
    }
}

/// `softmax(q·kᵀ + bias (+ mask))` over the last dim, for `q`, `k`: `[B·nW, heads, 64, d]`
/// (window-major inside each image). Equals [`attention_softmax`]`(bmm_nt(q, k), …)` without
/// materializing the logits. Differentiable in `q` and `k`.
pub fn attention_probs(q: &Tensor, k: &Tensor, terms: &WindowTerms) -> Result<Tensor> {
    let (bw, h, n, _) = q.dims4()?;
    if n != N {
        candle_core::bail!("attention_probs: bad shape {:?}", q.dims());
    }
    terms.check("attention_probs", bw, h)?;
    if !portable::fused_on(q.device()) {
        return portable::attention_probs(q, k, terms);
    }
    q.contiguous()?
        .apply_op2(&k.contiguous()?, AttnProbs(terms.clone()))
}
