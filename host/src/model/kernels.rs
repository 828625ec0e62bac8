//! Fused CPU kernels for the hot element-wise parts of the forward pass, as candle custom ops
//! **with a backward**, so the model stays differentiable:
//!
//! - [`attention_softmax`]: `softmax(logits + rel_pos_bias (+ mask))` over the last dim;
//! - [`layer_norm`]: LayerNorm over the last dim (biased variance, eps 1e-5);
//! - [`gelu_erf`]: exact-form GELU, `x/2·(1 + erf(x/√2))`;
//! - [`im2col3x3`]: the 3×3 / padding-1 patch matrix of a token map, so a conv is one matmul.
//!
//! candle's own `softmax` / `layer_norm_slow` are chains of 5–9 single-threaded passes that
//! each allocate; these run in one parallel pass (rayon) with an AVX2+FMA code path chosen at run
//! time. `exp` is a Cephes-style polynomial (≈1 ulp) and `erf` is the Abramowitz–Stegun 7.1.26
//! form PyTorch's vectorized CPU `erf` uses (|error| ≤ 1.5e-7); both keep the FP model within
//! ~1e-6 of PyTorch. Backward passes are written with candle tensor ops (or a fused
//! forward-only op for col2im and the GELU derivative).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::model::geometry::ShiftMask;
use crate::model::LN_EPS;

/// Tokens per window (64) = attention row length.
const N: usize = 64;

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

fn has_avx2_fma() -> bool {
    crate::cpu_features::cpu_features().avx2_fma
}

/// Runs `$body` (a generic `#[inline(always)]` kernel call) compiled for AVX2+FMA when the CPU
/// has them, else for the baseline target.
macro_rules! dispatch {
    ($name:ident, ($($arg:ident : $ty:ty),*), $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fast($($arg: $ty),*) { $body }
        fn base($($arg: $ty),*) { $body }
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { fast($($arg),*) }
            } else {
                base($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            base($($arg),*)
        }
    }};
}

/// `e^x` for f32, ≈1 ulp on [−87, 88]; 0 below −87.3 (no denormals), clamped above.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let xc = x.clamp(-87.3, 88.3);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    if x < -87.3 {
        0.0
    } else {
        e * scale
    }
}

/// erf, Abramowitz–Stegun 7.1.26 (as PyTorch's vectorized CPU erf), |error| ≤ 1.5e-7.
#[inline(always)]
pub fn fast_erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (0.327_591_1 * a + 1.0);
    let r =
        (((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6;
    let y = 1.0 - r * t * fast_exp(-(x * x));
    if x < 0.0 {
        -y
    } else {
        y
    }
}

// ---------------------------------------------------------------------------------------------
// Attention softmax

/// Softmax over the last dim of `logits + bias (+ mask)`, one window-head block at a time.
#[derive(Clone)]
struct AttnSoftmax {
    bias: Arc<Vec<f32>>,
    mask: Option<Arc<ShiftMask>>,
    heads: usize,
    n_windows: usize,
}

#[inline(always)]
fn softmax_block(x: &[f32], bias: &[f32], mask: Option<&[f32]>, out: &mut [f32]) {
    for r in 0..N {
        let xr = &x[r * N..(r + 1) * N];
        let br = &bias[r * N..(r + 1) * N];
        let mut v = [0f32; N];
        match mask {
            Some(m) => {
                let mr = &m[r * N..(r + 1) * N];
                for j in 0..N {
                    v[j] = (xr[j] + br[j]) + mr[j];
                }
            }
            None => {
                for j in 0..N {
                    v[j] = xr[j] + br[j];
                }
            }
        }
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
    fn name(&self) -> &'static str {
        "tdq-attn-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let blk = N * N;
        let mut out = vec![0f32; x.len()];
        let (heads, nw) = (self.heads, self.n_windows);
        let bias = &self.bias[..];
        let mask = self.mask.as_deref();
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
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // d logits = p ⊙ (g − Σ_j g_j p_j)
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((res * grad.broadcast_sub(&dot)?)?))
    }
}

/// `softmax(logits + bias + mask)` over the last dim. `logits`: `[B·nW, heads, 64, 64]`
/// (window-major inside each image); `bias`: `heads·64·64` values; `mask`: the shifted-window
/// mask of the `nW` windows of one image, or `None`. Differentiable in `logits`.
pub fn attention_softmax(
    logits: &Tensor,
    bias: &Arc<Vec<f32>>,
    mask: Option<&Arc<ShiftMask>>,
    heads: usize,
    n_windows: usize,
) -> Result<Tensor> {
    let (bw, h, n1, n2) = logits.dims4()?;
    if h != heads || n1 != N || n2 != N || bw % n_windows != 0 || bias.len() != heads * N * N {
        candle_core::bail!("attention_softmax: bad shape {:?}", logits.dims());
    }
    if let Some(m) = mask {
        if m.n_windows() != n_windows {
            candle_core::bail!("attention_softmax: mask for {} windows", m.n_windows());
        }
    }
    logits.contiguous()?.apply_op1(AttnSoftmax {
        bias: bias.clone(),
        mask: mask.cloned(),
        heads,
        n_windows,
    })
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

struct LayerNormOp;

/// Sum with 8 independent accumulators (vectorizes; fixed order, so deterministic).
#[inline(always)]
fn sum8(v: &[f32]) -> f32 {
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
    fn name(&self) -> &'static str {
        "tdq-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
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
    }

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
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNormOp)
}

// ---------------------------------------------------------------------------------------------
// GELU

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

const CHUNK: usize = 16 * 1024;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "tdq-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, xi)| {
                dispatch!(k, (xi: &[f32], o: &mut [f32]), gelu_slice(xi, o));
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &GeluGradOp)?,
        ))
    }
}

impl CustomOp2 for GeluGradOp {
    fn name(&self) -> &'static str {
        "tdq-gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        if x.len() != g.len() {
            candle_core::bail!("gelu grad: size mismatch");
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (xi, gi))| {
                dispatch!(k, (xi: &[f32], gi: &[f32], o: &mut [f32]), gelu_grad_slice(xi, gi, o));
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// GELU, exact (erf) form, as `torch.nn.GELU()`. Differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp)
}

// ---------------------------------------------------------------------------------------------
// im2col for 3×3 convolutions, padding 1, on token maps

/// `[B, H·W, C] → [B, H·W, 9·C]`: for each pixel, its 3×3 neighbourhood (zero outside), in
/// `(ky, kx, c)` order.
struct Im2Col {
    h: usize,
    w: usize,
}

/// The adjoint of [`Im2Col`] (sums the 9 contributions back onto their source pixels).
struct Col2Im {
    h: usize,
    w: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "tdq-im2col3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let (b, hw, c) = l.shape().dims3()?;
        let (h, w) = (self.h, self.w);
        if hw != h * w {
            candle_core::bail!("im2col: {hw} tokens for {h}×{w}");
        }
        let mut out = vec![0f32; b * hw * 9 * c];
        // One task per output row.
        out.par_chunks_mut(w * 9 * c)
            .enumerate()
            .for_each(|(row, o)| {
                let (bi, y) = (row / h, row % h);
                let img = &x[bi * hw * c..(bi + 1) * hw * c];
                for xo in 0..w {
                    let dst = &mut o[xo * 9 * c..(xo + 1) * 9 * c];
                    for ky in 0..3 {
                        let sy = y as isize + ky as isize - 1;
                        for kx in 0..3 {
                            let sx = xo as isize + kx as isize - 1;
                            let d = &mut dst[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                            if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                                let p = sy as usize * w + sx as usize;
                                d.copy_from_slice(&img[p * c..(p + 1) * c]);
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, hw, 9 * c))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im {
            h: self.h,
            w: self.w,
        })?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "tdq-col2im3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, self.name())?;
        let (b, hw, c9) = l.shape().dims3()?;
        let c = c9 / 9;
        let (h, w) = (self.h, self.w);
        let mut out = vec![0f32; b * hw * c];
        out.par_chunks_mut(w * c).enumerate().for_each(|(row, o)| {
            let (bi, y) = (row / h, row % h);
            let gi = &g[bi * hw * c9..(bi + 1) * hw * c9];
            for xs in 0..w {
                let d = &mut o[xs * c..(xs + 1) * c];
                // Source pixel (y, xs) feeds output (y − ky + 1, xs − kx + 1) at slot (ky, kx).
                for ky in 0..3 {
                    let oy = y as isize - ky as isize + 1;
                    if oy < 0 || oy >= h as isize {
                        continue;
                    }
                    for kx in 0..3 {
                        let ox = xs as isize - kx as isize + 1;
                        if ox < 0 || ox >= w as isize {
                            continue;
                        }
                        let p = oy as usize * w + ox as usize;
                        let src = &gi[p * c9 + (ky * 3 + kx) * c..p * c9 + (ky * 3 + kx + 1) * c];
                        for (dv, sv) in d.iter_mut().zip(src) {
                            *dv += sv;
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, hw, c))))
    }
}

/// The 3×3 (padding 1) patch matrix of a token map `[B, h·w, C]` → `[B, h·w, 9·C]`, in
/// `(ky, kx, c)` order. Differentiable.
pub fn im2col3x3(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Im2Col { h, w })
}

// ---------------------------------------------------------------------------------------------
// GEMM-based ops: fused linear, batched matmul

/// `dst[m×n] (row-major) = alpha·dst + beta·lhs·rhs`, with explicit strides (elements).
#[allow(clippy::too_many_arguments)]
fn sgemm(
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
    fn name(&self) -> &'static str {
        "tdq-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
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
            self.scale,
            self.scale,
            true,
        );
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("rank ≥ 1") = n;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

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
    fn name(&self) -> &'static str {
        "tdq-bmm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice(s1, l1, self.name())?;
        let b = f32_slice(s2, l2, self.name())?;
        let ad = l1.dims();
        let bd = l2.dims();
        let r = ad.len();
        let (m, k) = (ad[r - 2], ad[r - 1]);
        let (n, kb) = if self.transpose_b {
            (bd[r - 2], bd[r - 1])
        } else {
            (bd[r - 1], bd[r - 2])
        };
        let batch = a.len() / (m * k);
        if kb != k || b.len() != batch * k * n || ad[..r - 2] != bd[..r - 2] {
            candle_core::bail!("bmm: shapes {ad:?} and {bd:?}");
        }
        let mut out = vec![0f32; batch * m * n];
        let rhs_strides = if self.transpose_b { (1, k) } else { (n, 1) };
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
    }

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
    a.contiguous()?
        .apply_op2(&b.contiguous()?, BmmOp { transpose_b: false })
}

/// Batched `a·bᵀ` (`[…, m, k]·[…, n, k]ᵀ`, same leading dims). Differentiable.
pub fn bmm_nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?
        .apply_op2(&b.contiguous()?, BmmOp { transpose_b: true })
}

// ---------------------------------------------------------------------------------------------
// Residual adds

/// `a + b` (same shape).
struct AddOp;

impl CustomOp2 for AddOp {
    fn name(&self) -> &'static str {
        "tdq-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice(s1, l1, self.name())?;
        let b = f32_slice(s2, l2, self.name())?;
        if a.len() != b.len() {
            candle_core::bail!("add: size mismatch");
        }
        let mut out = vec![0f32; a.len()];
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (x, y))| {
                for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                    *o = x + y;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

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
    a.contiguous()?.apply_op2(&b.contiguous()?, AddOp)
}

/// `x + o[:, inverse[p], :]`: undoes the window partition of `o` and adds the residual.
struct WindowReverseAdd {
    inverse: Arc<Vec<u32>>,
    order: Tensor,
}

impl CustomOp2 for WindowReverseAdd {
    fn name(&self) -> &'static str {
        "tdq-window-reverse-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let o = f32_slice(s2, l2, self.name())?;
        let (_, l, c) = l1.shape().dims3()?;
        if x.len() != o.len() || self.inverse.len() != l {
            candle_core::bail!("window reverse add: bad sizes");
        }
        let inv = &self.inverse[..];
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
    }

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
    x.contiguous()?.apply_op2(
        &o.contiguous()?,
        WindowReverseAdd {
            inverse: inverse.clone(),
            order: order.clone(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Fused attention probabilities

/// `softmax(q·kᵀ + bias (+ mask))`, one window-head block per task, without materializing the
/// logits.
struct AttnProbs {
    bias: Arc<Vec<f32>>,
    mask: Option<Arc<ShiftMask>>,
    heads: usize,
    n_windows: usize,
}

impl CustomOp2 for AttnProbs {
    fn name(&self) -> &'static str {
        "tdq-attn-probs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let q = f32_slice(s1, l1, self.name())?;
        let k = f32_slice(s2, l2, self.name())?;
        let (bw, heads, n, d) = l1.shape().dims4()?;
        if l2.dims() != l1.dims() || n != N || heads != self.heads {
            candle_core::bail!("attention_probs: q {:?}, k {:?}", l1.dims(), l2.dims());
        }
        let blk = N * N;
        let (nw, bias) = (self.n_windows, &self.bias[..]);
        let mask = self.mask.as_deref();
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
    }

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
        let s = sum8(v);
        for e in v.iter_mut() {
            *e /= s;
        }
    }
}

/// `softmax(q·kᵀ + bias (+ mask))` over the last dim, for `q`, `k`: `[B·nW, heads, 64, d]`
/// (window-major inside each image); `bias`: `heads·64·64` values; `mask`: the shifted-window
/// mask of the `nW` windows of one image, or `None`. Equals [`attention_softmax`]`(bmm_nt(q, k), …)` without materializing the logits.
/// Differentiable in `q` and `k`.
pub fn attention_probs(
    q: &Tensor,
    k: &Tensor,
    bias: &Arc<Vec<f32>>,
    mask: Option<&Arc<ShiftMask>>,
    heads: usize,
    n_windows: usize,
) -> Result<Tensor> {
    let (bw, h, n, _) = q.dims4()?;
    if h != heads || n != N || bw % n_windows != 0 || bias.len() != heads * N * N {
        candle_core::bail!("attention_probs: bad shape {:?}", q.dims());
    }
    if let Some(m) = mask {
        if m.n_windows() != n_windows {
            candle_core::bail!("attention_probs: mask for {} windows", m.n_windows());
        }
    }
    q.contiguous()?.apply_op2(
        &k.contiguous()?,
        AttnProbs {
            bias: bias.clone(),
            mask: mask.cloned(),
            heads,
            n_windows,
        },
    )
}
