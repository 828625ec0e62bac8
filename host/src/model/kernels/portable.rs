//! The same operators as the fused CPU kernels, composed of candle's own differentiable tensor
//! ops, so they run on any candle device (CUDA through candle's kernels and cuBLAS) and
//! autograd derives their backward. Each public operator of [`super`] runs its fused kernel on
//! a CPU tensor and the composition here on any other device; `host/tests/fp_autograd.rs`
//! holds the two equal on the CPU, values and gradients, so the device path is checked where
//! there is no GPU.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Result, Tensor, D};

use super::{WindowTerms, EXP_ZERO_BELOW, N};
use crate::model::LN_EPS;

/// LayerNorm over the last dim (biased variance, eps 1e-5).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let rstd = (var + LN_EPS)?.sqrt()?.recip()?;
    xc.broadcast_mul(&rstd)?.broadcast_mul(w)?.broadcast_add(b)
}

/// `scale·(x·wᵀ + b)` over the last dim of `x` (`w`: `[out, in]`).
pub fn linear_scaled(x: &Tensor, w: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    // One 2-D product (a plain cuBLAS GEMM with `w` transposed), not a broadcast batch.
    let (n, k) = w.dims2()?;
    let mut dims = x.dims().to_vec();
    let m = x.elem_count() / k;
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    let y = x
        .reshape((m, k))?
        .matmul(&w.t()?)?
        .broadcast_add(b)?
        .reshape(dims)?;
    if scale == 1.0 {
        Ok(y)
    } else {
        y * scale
    }
}

/// Batched `a·b` or `a·bᵀ`.
pub fn bmm(a: &Tensor, b: &Tensor, transpose_b: bool) -> Result<Tensor> {
    if transpose_b {
        a.matmul(&b.transpose(D::Minus1, D::Minus2)?.contiguous()?)
    } else {
        a.matmul(b)
    }
}

/// `logits + bias (+ mask)` of [`WindowTerms`] over `[B·nW, heads, 64, 64]` logits.
fn with_window_terms(logits: &Tensor, terms: &WindowTerms) -> Result<Tensor> {
    let (bw, heads, _, _) = logits.dims4()?;
    let dev = logits.device();
    let bias = Tensor::from_slice(&terms.bias[..], (1, heads, N, N), dev)?;
    let x = logits.broadcast_add(&bias)?;
    let Some(mask) = &terms.mask else {
        return Ok(x);
    };
    // Built on the device from the 4 mask classes and each window's class, so a
    // block uploads 64 KiB and a byte per window, not the whole `nW·64·64` mask.
    let nw = terms.n_windows;
    let classes = Tensor::from_slice(&mask.classes, (mask.classes.len() / (N * N), N * N), dev)?;
    let class_of = Tensor::from_iter(mask.window_class.iter().map(|&c| u32::from(c)), dev)?;
    let mask = classes
        .index_select(&class_of, 0)?
        .reshape((1, nw, 1, N, N))?;
    x.reshape((bw / nw, nw, heads, N, N))?
        .broadcast_add(&mask)?
        .reshape((bw, heads, N, N))
}

/// `softmax(logits + bias (+ mask))` over the last dim. As in the fused kernel, `e^d` is exactly
/// 0 for `d = x − max x` below [`EXP_ZERO_BELOW`]: a masked entry (`−100`) is then 0, not a
/// denormal, which matters to the quantizer after it (an element at its lower bound 0 feeds
/// that bound's gradient).
pub fn attention_softmax(logits: &Tensor, terms: &WindowTerms) -> Result<Tensor> {
    let x = with_window_terms(logits, terms)?;
    let d = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?;
    let e = (d.exp()? * d.ge(EXP_ZERO_BELOW)?.to_dtype(DType::F32)?)?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// `softmax(q·kᵀ + bias (+ mask))` over the last dim.
pub fn attention_probs(q: &Tensor, k: &Tensor, terms: &WindowTerms) -> Result<Tensor> {
    attention_softmax(&bmm(q, k, true)?, terms)
}

/// GELU, exact (erf) form.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// `[B, h·w, C] → [B, h·w, 9·C]`: each pixel's 3×3 neighbourhood (zero outside) in
/// `(ky, kx, c)` order, as nine shifted views of the zero-padded map.
pub fn im2col3x3(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, hw, c) = x.dims3()?;
    if hw != h * w {
        candle_core::bail!("im2col: {hw} tokens for {h}×{w}");
    }
    let padded = x
        .reshape((b, h, w, c))?
        .pad_with_zeros(1, 1, 1)?
        .pad_with_zeros(2, 1, 1)?;
    let mut taps = Vec::with_capacity(9);
    for ky in 0..3 {
        for kx in 0..3 {
            taps.push(padded.narrow(1, ky, h)?.narrow(2, kx, w)?);
        }
    }
    Tensor::cat(&taps, 3)?.reshape((b, hw, 9 * c))
}

/// `x + o[:, inverse[p], :]` (undo the window partition of `o`, add the residual).
pub fn window_reverse_add(x: &Tensor, o: &Tensor, inverse: &[u32]) -> Result<Tensor> {
    let inverse = Tensor::from_slice(inverse, inverse.len(), o.device())?;
    x + o.index_select(&inverse, 1)?
}

/// See [`run_portable_on_cpu`].
static PORTABLE_ON_CPU: AtomicBool = AtomicBool::new(false);

/// Makes the CPU run these compositions too, process-wide, so a whole model (or a DQC step)
/// takes the device path where there is no device: `host/tests/portable_model.rs` compares it
/// with the fused kernels. Not for production runs (the compositions are slower on the CPU).
pub fn run_portable_on_cpu(on: bool) {
    PORTABLE_ON_CPU.store(on, Ordering::Relaxed);
}

/// Whether the fused CPU kernels serve tensors on `device`.
#[inline]
pub fn fused_on(device: &Device) -> bool {
    device.is_cpu() && !PORTABLE_ON_CPU.load(Ordering::Relaxed)
}
