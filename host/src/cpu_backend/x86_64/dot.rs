//! The dot-product loops of the convolution and linear kernels, written once
//! for both vector widths: generic over a width's `i32`-lane operations
//! ([`DotLanes`]) and `#[inline(always)]`, so that each level instantiates
//! them inside its own `#[target_feature]` function and every intrinsic is
//! compiled for that level.
//!
//! The loops keep the products exact the way each width's operations
//! document; the accumulators are the `i32` sums core computes.

use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::{ConvV, LinV};

/// The `i32`-lane operations of one vector width. Each is `unsafe`: it may
/// only run on a CPU with the width's instruction sets.
pub(crate) trait DotLanes {
    /// `LANES` `i32` lanes.
    type V: Copy;
    /// `i32` lanes per vector.
    const LANES: usize;
    /// Every lane zero.
    unsafe fn zero() -> Self::V;
    /// `LANES` `i32` from `p` (unaligned).
    unsafe fn load(p: *const i32) -> Self::V;
    /// `v` to `LANES` `i32` at `p` (unaligned).
    unsafe fn store(p: *mut i32, v: Self::V);
    /// `word` in every lane.
    unsafe fn splat(word: i32) -> Self::V;
    /// `acc` plus, in each lane, the sum of the two `i16 × i16` products of
    /// the lane's halves in `x` and `w` (`vpdpwssd`), exact in `i32`.
    unsafe fn dot_i16_pairs(acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// Four input codes (`word`'s bytes, any `u8`) in every lane, in the
    /// form [`Self::dot_codes`] takes: by default as they are.
    #[inline(always)]
    unsafe fn splat_codes(word: i32) -> Self::V {
        // SAFETY: the caller's contract.
        unsafe { Self::splat(word) }
    }
    /// `acc` plus, in each lane, the four products of the lane's weight
    /// codes in `w` (`≤ 127`) with the input codes of `x` (`vpdpbusd`),
    /// less the offset [`Self::finish_codes`] adds back.
    unsafe fn dot_codes(acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// The exact sums of rows `r..r + LANES` of `lin` from their
    /// [`Self::dot_codes`] accumulators: by default the accumulators (no
    /// offset).
    #[inline(always)]
    unsafe fn finish_codes(acc: Self::V, lin: &LinV, r: usize) -> Self::V {
        let _ = (lin, r);
        acc
    }
}

/// Implements [`DotLanes`] for `$lanes` (`$n` lanes of `$v`): `zero`,
/// `load`, `store` and `splat` from the width's intrinsics of those names,
/// and each further method from one expression. Every method is
/// `#[inline(always)]`, its body `unsafe` on the trait's contract (the
/// caller runs on the width's features; the pointers hold the lanes its
/// bounds give).
macro_rules! dot_lanes {
    (
        $lanes:ident: $v:ty, $n:literal, [$zero:ident, $load:ident, $store:ident, $splat:ident];
        $(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:expr;)+
    ) => {
        impl $crate::cpu_backend::x86_64::dot::DotLanes for $lanes {
            type V = $v;
            const LANES: usize = $n;

            #[inline(always)]
            unsafe fn zero() -> $v {
                // SAFETY: the trait's contract.
                unsafe { $zero() }
            }

            #[inline(always)]
            unsafe fn load(p: *const i32) -> $v {
                // SAFETY: the trait's contract.
                unsafe { $load(p.cast()) }
            }

            #[inline(always)]
            unsafe fn store(p: *mut i32, v: $v) {
                // SAFETY: the trait's contract.
                unsafe { $store(p.cast(), v) }
            }

            #[inline(always)]
            unsafe fn splat(word: i32) -> $v {
                // SAFETY: the trait's contract.
                unsafe { $splat(word) }
            }

            $(
                #[inline(always)]
                unsafe fn $name($($arg: $ty),*) -> $ret {
                    // SAFETY: the trait's contract.
                    unsafe { $body }
                }
            )+
        }
    };
}

pub(crate) use dot_lanes;

/// `PX` output pixels from `x0` of row `y`, outputs `o0..o0 + LANES·NV`:
/// `acc[p·cout_pad + o]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_px<S: DotLanes, const NV: usize, const PX: usize>(
    cv: &ConvV,
    cin: usize,
    padded: &[i16],
    w: usize,
    y: usize,
    x0: usize,
    o0: usize,
    acc: &mut [i32],
) {
    let wp = w + 2;
    let pairs = cin / 2;
    let cp = cv.cout_pad;
    assert!(
        o0 + S::LANES * NV <= cp
            && cv.w.len() >= 9 * pairs * cp
            && acc.len() >= PX * cp
            && x0 + PX <= w
            && padded.len() >= (y + 3) * wp * cin
    );
    let (pp, wv) = (padded.as_ptr(), cv.w.as_ptr());
    // SAFETY (every `S` call below): the caller runs on the width's features.
    let mut a = [[unsafe { S::zero() }; NV]; PX];
    for s in 0..9 {
        let (dy, dx) = (s / 3, s % 3);
        let base = ((y + dy) * wp + x0 + dx) * cin;
        for c in 0..pairs {
            let wts: [S::V; NV] = core::array::from_fn(|v| {
                // SAFETY: (s·pairs + c)·cp + o0 + LANES·(v + 1) ≤ 9·pairs·cp (asserted).
                unsafe { S::load(wv.add((s * pairs + c) * cp + o0 + S::LANES * v)) }
            });
            for (p, ap) in a.iter_mut().enumerate() {
                // SAFETY: pixel (y + dy, x0 + p + dx) of the padded image, channels 2c, 2c + 1.
                let word = unsafe {
                    pp.add(base + p * cin + 2 * c)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let xb = unsafe { S::splat(word) };
                for (av, &wt) in ap.iter_mut().zip(&wts) {
                    *av = unsafe { S::dot_i16_pairs(*av, xb, wt) };
                }
            }
        }
    }
    for (p, ap) in a.iter().enumerate() {
        for (v, &av) in ap.iter().enumerate() {
            // SAFETY: p·cp + o0 + LANES·(v + 1) ≤ PX·cp ≤ acc.len() (asserted).
            unsafe { S::store(acc.as_mut_ptr().add(p * cp + o0 + S::LANES * v), av) };
        }
    }
}

/// The `i32` sums of `PX` output pixels from `x0` of row `y` for every
/// output (`acc[p·cout_pad + o]`), up to four vectors of outputs at a time.
#[inline(always)]
unsafe fn conv_sums<S: DotLanes, const PX: usize>(
    cv: &ConvV,
    padded: &[i16],
    w: usize,
    y: usize,
    x0: usize,
    acc: &mut [i32],
) {
    let (cin, cp) = (cv.cin_pad, cv.cout_pad);
    let mut o0 = 0;
    while o0 < cp {
        let nv = ((cp - o0) / S::LANES).min(4);
        // SAFETY (each call): the caller runs on the width's features;
        // `cout_pad` is a multiple of 16, so of `LANES`.
        unsafe {
            match nv {
                4 => conv_px::<S, 4, PX>(cv, cin, padded, w, y, x0, o0, acc),
                3 => conv_px::<S, 3, PX>(cv, cin, padded, w, y, x0, o0, acc),
                2 => conv_px::<S, 2, PX>(cv, cin, padded, w, y, x0, o0, acc),
                _ => conv_px::<S, 1, PX>(cv, cin, padded, w, y, x0, o0, acc),
            }
        }
        o0 += nv.max(1) * S::LANES;
    }
}

/// Output row `y` of `conv` on the zero-bordered `i16` input, `PX ≤ 4`
/// pixels at a time (one at a time at the end of the row);
/// `requantize(sums, out)` turns one pixel's `i32` sums into its `cout`
/// outputs.
#[inline(always)]
pub(crate) unsafe fn conv_row<S: DotLanes, const PX: usize>(
    conv: &FastConv,
    cv: &ConvV,
    padded: &[i16],
    w: usize,
    y: usize,
    orow: &mut [i64],
    requantize: impl Fn(&[i32], &mut [i64]),
) {
    let (cout, cp) = (conv.cout, cv.cout_pad);
    assert!(PX <= 4 && cp <= 64);
    let mut acc = [0i32; 4 * 64];
    let mut x0 = 0;
    while x0 < w {
        let m = if w - x0 >= PX { PX } else { 1 };
        // SAFETY: the caller runs on the width's features.
        unsafe {
            if m == PX {
                conv_sums::<S, PX>(cv, padded, w, y, x0, &mut acc);
            } else {
                conv_sums::<S, 1>(cv, padded, w, y, x0, &mut acc);
            }
        }
        for p in 0..m {
            let dst = &mut orow[(x0 + p) * cout..(x0 + p + 1) * cout];
            requantize(&acc[p * cp..(p + 1) * cp], dst);
        }
        x0 += m;
    }
}

/// `acc[t·rows_pad + r0 + j] = Σ_i x[t·k + i]·w_{r0+j, i}` for
/// `j < LANES·NV` and `T` tokens.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // a[t][v] pairs two index spaces
pub(crate) unsafe fn lin_dot<S: DotLanes, const NV: usize, const T: usize>(
    x: &[u8],
    lin: &LinV,
    r0: usize,
    acc: &mut [i32],
) {
    let (k, rp) = (lin.k, lin.rows_pad);
    assert!(
        x.len() >= T * k
            && r0 + S::LANES * NV <= rp
            && acc.len() >= T * rp
            && lin.w.len() >= k / 4 * rp
            && lin.wsum128.len() >= rp
    );
    let (xp, wp) = (x.as_ptr(), lin.w.as_ptr());
    // SAFETY (every `S` call below): the caller runs on the width's features.
    let mut a = [[unsafe { S::zero() }; NV]; T];
    for g in 0..k / 4 {
        let mut xb = [unsafe { S::zero() }; T];
        for (t, xb) in xb.iter_mut().enumerate() {
            // SAFETY: t·k + 4g + 4 ≤ T·k ≤ x.len() (asserted).
            let word = unsafe { xp.add(t * k + 4 * g).cast::<i32>().read_unaligned() };
            *xb = unsafe { S::splat_codes(word) };
        }
        for v in 0..NV {
            // SAFETY: g·rp + r0 + LANES·(v + 1) ≤ k/4·rp ≤ w.len() (asserted).
            let wv = unsafe { S::load(wp.add(g * rp + r0 + S::LANES * v)) };
            for t in 0..T {
                a[t][v] = unsafe { S::dot_codes(a[t][v], xb[t], wv) };
            }
        }
    }
    for v in 0..NV {
        let r = r0 + S::LANES * v;
        for t in 0..T {
            // SAFETY: r + LANES ≤ rp ≤ wsum128.len(), and t·rp + r + LANES ≤
            // T·rp ≤ acc.len() (asserted).
            unsafe {
                let sum = S::finish_codes(a[t][v], lin, r);
                S::store(acc.as_mut_ptr().add(t * rp + r), sum);
            }
        }
    }
}
