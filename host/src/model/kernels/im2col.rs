//! The 3×3 / padding-1 patch matrix of a token map (so a conv is one matmul) and its adjoint.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::portable;

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
    cpu_fwd!("tdq-im2col3x3", |op, (x, l)| {
        let (b, hw, c) = l.shape().dims3()?;
        let (h, w) = (op.h, op.w);
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
    });

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2Im {
            h: self.h,
            w: self.w,
        })?))
    }
}

impl CustomOp1 for Col2Im {
    cpu_fwd!("tdq-col2im3x3", |op, (g, l)| {
        let (b, hw, c9) = l.shape().dims3()?;
        let c = c9 / 9;
        let (h, w) = (op.h, op.w);
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
    });
}

/// The 3×3 (padding 1) patch matrix of a token map `[B, h·w, C]` → `[B, h·w, 9·C]`, in
/// `(ky, kx, c)` order. Differentiable.
pub fn im2col3x3(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    if !portable::fused_on(x.device()) {
        return portable::im2col3x3(x, h, w);
    }
    x.contiguous()?.apply_op1(Im2Col { h, w })
}
