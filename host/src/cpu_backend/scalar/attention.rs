//! Attention windows (core's runner: LayerNorm, q/k/v linears, softmax
//! codes, `P·v`, `proj`), the relative-position bias pre-shifted per head
//! and the AttnProb thresholds decoded to `i64`.

use anyhow::{anyhow, Result};
use tdquant_core::int::arith::{ceil_shift_i128, rshift_round};
use tdquant_core::int::attention::{AvCall, MASK_Z, PROB_FRAC};
use tdquant_core::int::exp2::exp2_neg_q31;
use tdquant_core::int::layernorm::normalize;
use tdquant_core::int::runner::window_tokens;
use tdquant_core::int::{EMBED, HEADS, HEAD_DIM, TOKENS, WINDOW};

use super::linear::{linear, linear_codes};
use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared::FastBlock;

/// One attention window of block `index`: writes the `proj` outputs
/// (`rshift_round(t, frac)`) of its 64 tokens to `delta`.
#[inline(always)]
pub(crate) fn window(
    m: &FastIntModel<'_>,
    index: usize,
    rr: &[i32],
    hp: usize,
    wp: usize,
    win: usize,
    delta: &mut [i64],
) -> Result<()> {
    let fb = &m.blocks[index];
    let bp = &fb.p;
    let levels = m.model.bits().levels();
    let nwx = wp / WINDOW;
    let (wy, wx) = (win / nwx, win % nwx);
    let mut pos = [0usize; TOKENS];
    let mut labels = [0u8; TOKENS];
    window_tokens(wy, wx, hp, wp, bp.shifted, &mut pos, &mut labels);
    let mut qin = [0u8; TOKENS * EMBED];
    let mut kin = [0u8; TOKENS * EMBED];
    let mut vin = [0u8; TOKENS * EMBED];
    let mut xhat = [0i32; EMBED];
    for (t, &p) in pos.iter().enumerate() {
        normalize(&rr[p * EMBED..(p + 1) * EMBED], bp.ln1.eps_t, &mut xhat)
            .map_err(|e| anyhow!("{e}"))?;
        for (c, &xh) in xhat.iter().enumerate() {
            let y = bp.ln1.output(c, xh);
            let at = t * EMBED + c;
            qin[at] = bp.fq_q.code(y);
            kin[at] = bp.fq_k.code(y);
            vin[at] = bp.fq_v.code(y);
        }
    }
    let mut qc = [0u8; TOKENS * EMBED];
    let mut kc = [0u8; TOKENS * EMBED];
    let mut vc = [0u8; TOKENS * EMBED];
    let mut oc = [0u8; TOKENS * EMBED];
    let mut probs = [0u8; TOKENS * TOKENS];
    linear_codes(&qin, &fb.lq, &bp.aff_q, &fb.c_q, levels, &mut qc);
    linear_codes(&kin, &fb.lk, &bp.aff_k, &fb.c_k, levels, &mut kc);
    linear_codes(&vin, &fb.lv, &bp.aff_v, &fb.c_v, levels, &mut vc);
    let mask = bp.shifted.then_some(&labels[..]);
    for h in 0..HEADS {
        let col = h * HEAD_DIM;
        softmax_head(&qc, &kc, col, fb, h, mask, &mut probs);
        AvCall {
            probs: &probs,
            v: &vc,
            stride: EMBED,
            col,
            av: &bp.av,
            levels,
            out_stride: EMBED,
        }
        .run(&mut oc)
        .map_err(|e| anyhow!("{e}"))?;
    }
    let frac = bp.aff_proj.frac;
    linear(&oc, &fb.lproj, &bp.aff_proj, &fb.c_proj, |t, j, v| {
        delta[t * EMBED + j] = rshift_round(v, frac);
    });
    Ok(())
}

/// Core's `softmax_codes` for head `h` (same expressions, bias and
/// thresholds pre-decoded; the arguments were checked by the oracle's
/// function on head 0 of the window).
#[inline(always)]
pub(crate) fn softmax_head(
    q: &[u8],
    k: &[u8],
    col: usize,
    fb: &FastBlock<'_>,
    h: usize,
    labels: Option<&[u8]>,
    probs: &mut [u8],
) {
    let qk = &fb.p.qk;
    let mut keys = [[0u8; HEAD_DIM]; TOKENS];
    let mut kb = [0i64; TOKENS];
    for (j, (key, s)) in keys.iter_mut().zip(kb.iter_mut()).enumerate() {
        key.copy_from_slice(&k[j * EMBED + col..j * EMBED + col + HEAD_DIM]);
        *s = key.iter().map(|&b| i64::from(b)).sum();
    }
    // `kb_j·B`, the same i64 product for every query row.
    let kbb: [i64; TOKENS] = core::array::from_fn(|j| kb[j] * qk.b);
    let levels = fb.levels_t.len().min(255);
    let mut edges = [0i64; 255];
    let bias = &fb.bias[h * TOKENS * TOKENS..(h + 1) * TOKENS * TOKENS];
    for (i, row) in probs.chunks_exact_mut(TOKENS).enumerate() {
        let query = &q[i * EMBED + col..i * EMBED + col + HEAD_DIM];
        let brow = &bias[i * TOKENS..(i + 1) * TOKENS];
        let mut z = [0i64; TOKENS];
        for (j, zj) in z.iter_mut().enumerate() {
            // 10 products of codes < 2^8: the i32 sum is exact (< 2^20).
            let acc: i32 = query
                .iter()
                .zip(&keys[j])
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            let masked = labels.is_some_and(|l| l[i] != l[j]);
            *zj = i64::from(acc) * qk.a + kbb[j] + brow[j] + if masked { MASK_Z } else { 0 };
        }
        let m = z.iter().copied().max().unwrap_or(0);
        let mut e = [0i64; TOKENS];
        let mut sum = 0u64;
        for (ej, &zj) in e.iter_mut().zip(z.iter()) {
            let v = exp2_neg_q31((m - zj) as u64);
            sum += u64::from(v);
            *ej = i64::from(v);
        }
        for (edge, &level) in edges.iter_mut().zip(&fb.levels_t[..levels]) {
            *edge = ceil_shift_i128(i128::from(sum) * i128::from(level), PROB_FRAC) as i64;
        }
        let edges = &edges[..levels];
        for (out, &ej) in row.iter_mut().zip(e.iter()) {
            let count = edges.iter().filter(|&&edge| ej >= edge).count();
            *out = count.min(255) as u8;
        }
    }
}
