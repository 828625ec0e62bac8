//! The MLP branch (core's runner: LayerNorm, fc1, GELU codes, fc2) on a
//! chunk of tokens, which are independent.

use anyhow::{anyhow, Result};
use tdquant_core::int::arith::{clamp_stream, rshift_round};
use tdquant_core::int::layernorm::normalize;
use tdquant_core::int::{EMBED, MLP};

use super::linear::{gelu_fast, linear};
use crate::cpu_backend::model::FastIntModel;

/// The MLP on up to 64 tokens of block `index`.
#[inline(always)]
pub(crate) fn mlp_chunk(m: &FastIntModel<'_>, index: usize, chunk: &mut [i32]) -> Result<()> {
    let fb = &m.blocks[index];
    let bp = &fb.p;
    let frac = bp.aff_fc2.frac;
    let n = chunk.len() / EMBED;
    let mut fc1in = vec![0u8; n * EMBED];
    let mut xhat = [0i32; EMBED];
    for t in 0..n {
        normalize(&chunk[t * EMBED..(t + 1) * EMBED], bp.ln2.eps_t, &mut xhat)
            .map_err(|e| anyhow!("{e}"))?;
        for (c, &xh) in xhat.iter().enumerate() {
            fc1in[t * EMBED + c] = bp.fq_fc1.code(bp.ln2.output(c, xh));
        }
    }
    let mut hidden = vec![0u8; n * MLP];
    let gelu = &fb.gelu_hl[..];
    linear(&fc1in, &fb.lfc1, &bp.aff_fc1, &fb.c_fc1, |t, j, v| {
        hidden[t * MLP + j] = gelu_fast(v, gelu);
    });
    linear(&hidden, &fb.lfc2, &bp.aff_fc2, &fb.c_fc2, |t, j, v| {
        add_to_stream(chunk, t * EMBED + j, rshift_round(v, frac));
    });
    Ok(())
}

/// `r[at] = clamp_stream(r[at] + clamp_stream(y))`.
#[inline]
fn add_to_stream(r: &mut [i32], at: usize, y: i64) {
    let dst = &mut r[at];
    *dst = clamp_stream(i64::from(*dst) + i64::from(clamp_stream(y)));
}
