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
            let acc = &mut acc16[..rows];
            acc.fill(0);
            for (&xi, wcol) in x.iter().zip(lin.wt.chunks_exact(rows)) {
                let xi = i16::from(xi);
                for (a, &w) in acc.iter_mut().zip(wcol) {
                    *a = a.wrapping_add(xi.wrapping_mul(w));
                }
            }
            for (j, (&a, &cj)) in acc.iter().zip(c).enumerate() {
                emit(t, j, affine.t(i32::from(a), s, cj));
            }
        } else {
            let acc = &mut acc32[..rows];
            acc.fill(0);
            for (&xi, wcol) in x.iter().zip(lin.wt.chunks_exact(rows)) {
                let xi = i32::from(xi);
                for (a, &w) in acc.iter_mut().zip(wcol) {
                    *a = a.wrapping_add(xi.wrapping_mul(i32::from(w)));
                }
            }
            for (j, (&a, &cj)) in acc.iter().zip(c).enumerate() {
                emit(t, j, affine.t(a, s, cj));
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
