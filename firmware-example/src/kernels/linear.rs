//! Packed b-bit linear layers with the asymmetric-grid correction
//! (`tdquant_core::int::linear::linear`, same checks, same `emit` order).
//!
//! Four weight rows at a time are decoded once per block of 64 tokens into
//! 16-bit pairs laid out as `UXTB16` unpacks four input codes
//! (`c0 | c2 << 16`, `c1 | c3 << 16`), so each group of four inputs costs one
//! load, two `UXTB16` and two `SMLAD` per row. `t = acc·A + Σa·B + (C_j <<
//! c_shift)` is summed in another order than the oracle's; every term and
//! partial sum is below `2^62` (module docs of the oracle), so the `i64`
//! result is the same.

use tdquant_core::int::linear::{CodeAffine, MAX_K};
use tdquant_core::int::{I32Src, OpError};
use tdquant_core::packed::PackedMatrix;

use super::{check_len, check_param};
use crate::dsp::dot4_u8;

/// Tokens per block (as the oracle).
const TOKEN_BLOCK: usize = 64;
/// Weight rows decoded together.
const GROUP: usize = 4;

/// See the [module docs](self).
#[allow(clippy::too_many_arguments)]
pub fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
    input: &[u8],
    k: usize,
    weights: &PackedMatrix<'_>,
    row0: u32,
    rows: usize,
    affine: &CodeAffine,
    c: &W,
    mut emit: F,
) -> Result<(), OpError> {
    check_param("linear input width", (1..=MAX_K).contains(&k))?;
    check_len(
        "linear input",
        input.len().div_ceil(k).saturating_mul(k),
        input.len(),
    )?;
    check_len("linear weight columns", k, weights.cols() as usize)?;
    u32::try_from(rows)
        .ok()
        .and_then(|r| row0.checked_add(r))
        .filter(|&end| end <= weights.rows())
        .ok_or(OpError::Param {
            what: "linear weight rows",
        })?;
    check_len("linear row constants", rows, c.len())?;
    affine.validate()?;

    let k4 = k / 4 * 4;
    let mut codes = [0u8; MAX_K];
    // Per group of 4 inputs: GROUP rows × (even pair, odd pair).
    let mut wexp = [0u32; MAX_K / 4 * GROUP * 2];
    let mut tails = [[0u8; 3]; GROUP];
    let mut acc = [[0i32; TOKEN_BLOCK]; GROUP];
    let mut asum_b = [0i64; TOKEN_BLOCK];
    let wexp_used = k4 / 4 * GROUP * 2;
    for (block_index, block) in input.chunks(TOKEN_BLOCK * k).enumerate() {
        let token0 = block_index * TOKEN_BLOCK;
        let m = block.len() / k;
        for (s, x) in asum_b.iter_mut().zip(block.chunks_exact(k)) {
            let sum = x.iter().fold(0i32, |a, &v| a + i32::from(v));
            *s = i64::from(sum) * affine.b;
        }
        let mut j = 0;
        while j < rows {
            let g = GROUP.min(rows - j);
            for (r, tail) in tails.iter_mut().enumerate() {
                let codes = &mut codes[..k];
                if r < g {
                    weights
                        .unpack_row(row0 + (j + r) as u32, codes)
                        .map_err(|_| OpError::Param {
                            what: "linear weight rows",
                        })?;
                } else {
                    codes.fill(0);
                }
                for (q, cq) in codes[..k4].chunks_exact(4).enumerate() {
                    let at = q * GROUP * 2 + r * 2;
                    wexp[at] = u32::from(cq[0]) | u32::from(cq[2]) << 16;
                    wexp[at + 1] = u32::from(cq[1]) | u32::from(cq[3]) << 16;
                }
                tail[..k - k4].copy_from_slice(&codes[k4..k]);
            }
            for (t, x) in block.chunks_exact(k).enumerate() {
                let [mut a0, mut a1, mut a2, mut a3] = dot4_u8(&x[..k4], &wexp[..wexp_used]);
                for (i, &xv) in x[k4..].iter().enumerate() {
                    let xv = i32::from(xv);
                    a0 += xv * i32::from(tails[0][i]);
                    a1 += xv * i32::from(tails[1][i]);
                    a2 += xv * i32::from(tails[2][i]);
                    a3 += xv * i32::from(tails[3][i]);
                }
                acc[0][t] = a0;
                acc[1][t] = a1;
                acc[2][t] = a2;
                acc[3][t] = a3;
            }
            for (r, acc_r) in acc.iter().enumerate().take(g) {
                let base = i64::from(c.at(j + r)) << affine.c_shift;
                for (t, (&a, &sb)) in acc_r.iter().zip(asum_b.iter()).take(m).enumerate() {
                    emit(token0 + t, j + r, i64::from(a) * affine.a + (sb + base));
                }
            }
            j += g;
        }
    }
    Ok(())
}
