//! Linear layers (core's `linear`/`linear_codes`) on transposed `i16`
//! weights, and the GELU codes on decoded thresholds.

use tdquant_core::int::arith::{clamp_code, rshift_round};
use tdquant_core::int::linear::{sum_codes, CodeAffine};
use tdquant_core::int::MLP;

use crate::cpu_backend::prepared::Lin;

/// Core's `gelu_code` on the decoded thresholds: `#{k : t ≥ H_k or t ≤ L_k}`.
#[inline(always)]
pub(crate) fn gelu_fast(t: i64, hl: &[(i64, i64)]) -> u8 {
    hl.iter()
        .map(|&(hi, lo)| u8::from(t >= hi || t <= lo))
        .fold(0u8, u8::saturating_add)
}

/// An accumulator lane of the weight × code dot products: `i16` where
/// `Lin::narrow` proves every partial sum fits, else `i32`. Wrapping
/// arithmetic, so the exact sum is the result whenever it fits the lane.
trait Lane: Copy + Default {
    fn code(x: u8) -> Self;
    fn weight(w: i16) -> Self;
    fn mac(self, x: Self, w: Self) -> Self;
    fn exact(self) -> i32;
}

macro_rules! lane {
    ($($t:ty),*) => {$(
        impl Lane for $t {
            #[inline(always)]
            fn code(x: u8) -> Self {
                <$t>::from(x)
            }
            #[inline(always)]
            fn weight(w: i16) -> Self {
                <$t>::from(w)
            }
            #[inline(always)]
            fn mac(self, x: Self, w: Self) -> Self {
                self.wrapping_add(x.wrapping_mul(w))
            }
            #[inline(always)]
            fn exact(self) -> i32 {
                i32::from(self)
            }
        }
    )*};
}

lane!(i16, i32);

/// `Σ_i x_i·w_ji` of one token `x` for every row `j` (`acc.len()` rows of
/// the transposed weights `wt`).
#[inline(always)]
fn dot_rows<'a, A: Lane>(x: &[u8], wt: &[i16], acc: &'a mut [A]) -> &'a [A] {
    acc.fill(A::default());
    for (&xi, wcol) in x.iter().zip(wt.chunks_exact(acc.len())) {
        let xi = A::code(xi);
        for (a, &w) in acc.iter_mut().zip(wcol) {
            *a = a.mac(xi, A::weight(w));
        }
    }
    acc
}

/// `t` of every (token, row) as core's `linear` computes it
/// (`CodeAffine::t` of the exact integer `Σ a_i c_ji` and `Σ a_i`).
#[inline(always)]
pub(crate) fn linear<F: FnMut(usize, usize, i64)>(
    input: &[u8],
    lin: &Lin,
    affine: &CodeAffine,
    c: &[i32],
    mut emit: F,
) {
    let (k, rows) = (lin.k, lin.rows);
    let mut acc16 = [0i16; MLP];
    let mut acc32 = [0i32; MLP];
    for (t, x) in input.chunks_exact(k).enumerate() {
        let s = sum_codes(x);
        if lin.narrow {
            let acc = dot_rows(x, &lin.wt, &mut acc16[..rows]);
            for (j, (&a, &cj)) in acc.iter().zip(c).enumerate() {
                emit(t, j, affine.t(a.exact(), s, cj));
            }
        } else {
            let acc = dot_rows(x, &lin.wt, &mut acc32[..rows]);
            for (j, (&a, &cj)) in acc.iter().zip(c).enumerate() {
                emit(t, j, affine.t(a.exact(), s, cj));
            }
        }
    }
}

/// Core's `linear_codes` on decoded weights.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn linear_codes(
    input: &[u8],
    lin: &Lin,
    affine: &CodeAffine,
    c: &[i32],
    levels: u8,
    out: &mut [u8],
) {
    let frac = affine.frac;
    let rows = lin.rows;
    linear(input, lin, affine, c, |t, j, v| {
        out[t * rows + j] = clamp_code(rshift_round(v, frac), levels);
    });
}
