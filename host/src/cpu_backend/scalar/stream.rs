//! Whole-map stages between the blocks: skip additions, the `i16`
//! requantization before a convolution, padding and the edge mirror.

use rayon::prelude::*;
use tdquant_core::int::arith::{clamp_i16, clamp_stream, rshift_round};
use tdquant_core::int::WINDOW;

/// `r = clamp_stream(clamp_stream(v) + skip)`.
pub(crate) fn add_skip(r: &mut [i32], v: &[i64], skip: &[i32]) {
    r.par_iter_mut()
        .zip(v.par_iter().zip(skip.par_iter()))
        .for_each(|(dst, (&v, &s))| {
            *dst = clamp_stream(i64::from(clamp_stream(v)) + i64::from(s));
        });
}

/// `a = i16(r ≫ k)`.
pub(crate) fn to_i16(r: &[i32], a: &mut [i32], k: u32) {
    a.par_iter_mut()
        .zip(r.par_iter())
        .for_each(|(dst, &v)| *dst = clamp_i16(rshift_round(i64::from(v), k)));
}

/// The zero-bordered `i16` copy of an `h × w × cin` map, channels padded
/// with zeros to `cp ≥ cin`, in `padded` (reused: every entry is written):
/// the input of the explicit convolution kernels.
pub(crate) fn pad_i16<'b>(
    input: &[i32],
    h: usize,
    w: usize,
    cin: usize,
    cp: usize,
    padded: &'b mut Vec<i16>,
) -> &'b mut [i16] {
    let wp = w + 2;
    let padded = sized(padded, (h + 2) * wp * cp);
    padded
        .par_chunks_mut(wp * cp)
        .enumerate()
        .for_each(|(yy, prow)| {
            if yy == 0 || yy > h {
                prow.fill(0);
                return;
            }
            prow[..cp].fill(0);
            prow[(w + 1) * cp..].fill(0);
            let src = &input[(yy - 1) * w * cin..yy * w * cin];
            for (dpx, spx) in prow[cp..(w + 1) * cp]
                .chunks_exact_mut(cp)
                .zip(src.chunks_exact(cin))
            {
                for (d, &v) in dpx.iter_mut().zip(spx) {
                    *d = clamp_i16(i64::from(v)) as i16;
                }
                dpx[cin..].fill(0);
            }
        });
    padded
}

/// `buf` with length `n`, keeping its allocation; the contents are left as
/// they are (zeros where it grows): every caller overwrites all of it.
pub(crate) fn sized<T: Copy + Default>(buf: &mut Vec<T>, n: usize) -> &mut [T] {
    buf.resize(n, T::default());
    buf
}

pub(crate) fn pad8(n: usize) -> usize {
    n.div_ceil(WINDOW) * WINDOW
}

/// The runner's edge-repeating mirror.
pub(crate) fn mirror(i: usize, n: usize) -> usize {
    let period = 2 * n;
    let m = i % period;
    if m < n {
        m
    } else {
        period - 1 - m
    }
}

// ---------------------------------------------------------------------------
