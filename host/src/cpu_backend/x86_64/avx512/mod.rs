//! The AVX-512 (VNNI) kernels: attention windows, MLP chunks and
//! convolutions on explicit 512-bit intrinsics.
//!
//! Products of codes are formed with `vpdpbusd` (four `u8 × i8` products
// added to an `i32` lane, no saturation): the unsigned operand is always an
// activation/probability code (any `u8`), the signed one a weight, key or
// value code, which is why the path requires those to be `≤ 127` (`VBlock`
// is `None` otherwise and the portable path runs). Every `i32` sum is the
// exact integer core computes (`< 2^23`, see core's bounds); everything
// after it is the same `i64` expression as in core, evaluated lane-wise.
//! Sums of `i64` terms may be regrouped: core's bounds keep every partial sum
//! in range, and wrapping addition is associative anyway.
//!
//! Every function here is compiled for AVX-512 F, BW, DQ, VL and VNNI and
//! may only run on a CPU that has them: the dispatch table installs
//! [`VNNI_KERNELS`] only after `cpu_features` found all five.

pub(crate) mod av;
pub(crate) mod conv;
pub(crate) mod gelu;
pub(crate) mod linear;
pub(crate) mod softmax;

use rayon::prelude::*;
use tdquant_core::int::arith::clamp_stream;
use tdquant_core::int::runner::window_tokens;
use tdquant_core::int::{EMBED, HEADS, HEAD_DIM, MLP, TOKENS, WINDOW};

use self::av::av_head_v;
use self::gelu::gelu_search_v;
use self::linear::linear_v;
use self::softmax::{softmax_head_v, SoftmaxV};
use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::{ConvV, VBlock};
use crate::cpu_backend::scalar::layernorm::{
    code_of, ln_apply, ln_stats, quant_token, rsr, LnStats,
};

/// Every output row of a convolution: `(conv, layout, input, h, w, out,
/// padded-input scratch)`.
pub(crate) type ConvRows =
    unsafe fn(&FastConv, &ConvV, &[i32], usize, usize, &mut [i64], &mut Vec<i16>);

/// The VNNI entries of the dispatch table (they work on the layouts of
/// `prepared_vnni`, which the model builds where its codes allow).
pub(crate) struct VnniKernels {
    /// Convolutions.
    pub(crate) conv_rows: ConvRows,
    /// The attention branch of one block, updating the stream in place:
    /// `(model, block, layout, stream, hp, wp)`.
    pub(crate) attention: unsafe fn(&FastIntModel<'_>, usize, &VBlock, &mut [i32], usize, usize),
    /// The MLP on up to 64 tokens: `(layout, tokens, fc1 input, hidden)`.
    pub(crate) mlp_chunk:
        unsafe fn(&VBlock, &mut [i32], &mut [u8; TOKENS * EMBED], &mut [u8; TOKENS * MLP]),
}

/// The table entries.
pub(crate) const VNNI_KERNELS: VnniKernels = VnniKernels {
    conv_rows: conv::conv_rows,
    attention,
    mlp_chunk: mlp_chunk_v,
};

/// The attention branch of block `index`, windows in parallel, each
/// updating its own pixels of `r` in place.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ, VL and VNNI.
unsafe fn attention(
    m: &FastIntModel<'_>,
    index: usize,
    vb: &VBlock,
    r: &mut [i32],
    hp: usize,
    wp: usize,
) {
    let stream = SharedStream(r.as_mut_ptr(), r.len());
    let windows = hp / WINDOW * (wp / WINDOW);
    (0..windows).into_par_iter().for_each_init(
        || Box::new(WinScratch::new()),
        |scratch, win| {
            // SAFETY: the caller's CPU has the features; the windows touch
            // disjoint pixels (see `SharedStream`).
            unsafe { window_v(m, index, vb, &stream, hp, wp, win, scratch) }
        },
    );
}

/// The residual stream shared by the attention windows of one block, which
/// read and update it in place. Sound because the windows partition the
/// pixels: `window_tokens` sends (window, token) to pixel
/// `((8wy + t/8 + s) mod hp, (8wx + t%8 + s) mod wp)`, a bijection, so each
/// pixel's 60 values are touched by one task only (core's runner updates
/// the stream in place window by window for the same reason).
struct SharedStream(*mut i32, usize);

// SAFETY: see the type's docs: tasks access disjoint pixels.
unsafe impl Sync for SharedStream {}

/// One attention window's code planes (reused across the windows of a task).
struct WinScratch {
    qin: [u8; TOKENS * EMBED],
    kin: [u8; TOKENS * EMBED],
    vin: [u8; TOKENS * EMBED],
    qc: [u8; TOKENS * EMBED],
    kc: [u8; TOKENS * EMBED],
    vc: [u8; TOKENS * EMBED],
    oc: [u8; TOKENS * EMBED],
    probs: [u8; TOKENS * TOKENS],
}

impl WinScratch {
    fn new() -> Self {
        Self {
            qin: [0; TOKENS * EMBED],
            kin: [0; TOKENS * EMBED],
            vin: [0; TOKENS * EMBED],
            qc: [0; TOKENS * EMBED],
            kc: [0; TOKENS * EMBED],
            vc: [0; TOKENS * EMBED],
            oc: [0; TOKENS * EMBED],
            probs: [0; TOKENS * TOKENS],
        }
    }
}

/// The portable `window` on the AVX-512 kernels, updating the stream in
/// place.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
fn window_v(
    m: &FastIntModel<'_>,
    index: usize,
    vb: &VBlock,
    stream: &SharedStream,
    hp: usize,
    wp: usize,
    win: usize,
    scratch: &mut WinScratch,
) {
    let fb = &m.blocks[index];
    let shifted = fb.p.shifted;
    let nwx = wp / WINDOW;
    let (wy, wx) = (win / nwx, win % nwx);
    let mut pos = [0usize; TOKENS];
    let mut labels = [0u8; TOKENS];
    window_tokens(wy, wx, hp, wp, shifted, &mut pos, &mut labels);
    let WinScratch {
        qin,
        kin,
        vin,
        qc,
        kc,
        vc,
        oc,
        probs,
    } = scratch;
    let mut y = [0i64; EMBED];
    assert!(hp * wp * EMBED <= stream.1);
    // SAFETY: pixel p < hp·wp belongs to this window only.
    let token = |p: usize| unsafe { core::slice::from_raw_parts(stream.0.add(p * EMBED), EMBED) };
    // All statistics first: the tokens' long dependency chains overlap.
    let mut stats = [LnStats::default(); TOKENS];
    for (st, &p) in stats.iter_mut().zip(&pos) {
        *st = ln_stats(token(p), vb.ln1.eps_t);
    }
    for (t, (&p, st)) in pos.iter().zip(&stats).enumerate() {
        ln_apply(token(p), st, &vb.ln1, &mut y);
        let at = t * EMBED..(t + 1) * EMBED;
        quant_token(&vb.fq_q, &y, &mut qin[at.clone()]);
        quant_token(&vb.fq_k, &y, &mut kin[at.clone()]);
        quant_token(&vb.fq_v, &y, &mut vin[at]);
    }
    let levels = vb.levels;
    for (input, lin, out) in [
        (&qin[..], &vb.lq, &mut qc[..]),
        (&kin[..], &vb.lk, &mut kc[..]),
        (&vin[..], &vb.lv, &mut vc[..]),
    ] {
        let frac = lin.frac;
        // SAFETY: the features are enabled on this function.
        unsafe {
            linear_v(input, lin, |t, tr| {
                for (o, &x) in out[t * EMBED..(t + 1) * EMBED].iter_mut().zip(tr) {
                    *o = code_of(rsr(x, frac), levels);
                }
            });
        }
    }
    let sm = SoftmaxV {
        a: vb.qk_a,
        b: vb.qk_b,
        levels_t: &fb.levels_t[..fb.levels_t.len().min(255)],
        search: vb.prob_search,
        th: core::array::from_fn(|k| fb.levels_t.get(k).map_or(0, |&t| t >> 20)),
        tl: core::array::from_fn(|k| fb.levels_t.get(k).map_or(0, |&t| t & 0xF_FFFF)),
    };
    let mask = shifted.then_some(&labels);
    for h in 0..HEADS {
        let col = h * HEAD_DIM;
        let bias = &fb.bias[h * TOKENS * TOKENS..(h + 1) * TOKENS * TOKENS];
        softmax_head_v(&qc[..], &kc[..], col, &sm, bias, mask, &mut probs[..]);
        av_head_v(&probs[..], &vc[..], col, &vb.av, levels, &mut oc[..]);
    }
    let frac = vb.lproj.frac;
    // SAFETY: the features are enabled on this function.
    unsafe {
        linear_v(&oc[..], &vb.lproj, |t, tr| {
            // SAFETY (of the enclosing block): pixel pos[t] < hp·wp
            // belongs to this window only.
            let px = core::slice::from_raw_parts_mut(stream.0.add(pos[t] * EMBED), EMBED);
            for (d, &x) in px.iter_mut().zip(tr) {
                *d = clamp_stream(i64::from(*d) + i64::from(clamp_stream(rsr(x, frac))));
            }
        });
    }
}

/// The MLP on a chunk of tokens, AVX-512 path.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
fn mlp_chunk_v(
    vb: &VBlock,
    chunk: &mut [i32],
    fc1in: &mut [u8; TOKENS * EMBED],
    hidden: &mut [u8; TOKENS * MLP],
) {
    let n = chunk.len() / EMBED;
    let mut y = [0i64; EMBED];
    let mut t0 = 0;
    while t0 < n {
        let m = (n - t0).min(TOKENS);
        let block = &mut chunk[t0 * EMBED..(t0 + m) * EMBED];
        let mut stats = [LnStats::default(); TOKENS];
        for (st, x) in stats.iter_mut().zip(block.chunks_exact(EMBED)) {
            *st = ln_stats(x, vb.ln2.eps_t);
        }
        for (t, (x, st)) in block.chunks_exact(EMBED).zip(&stats).enumerate() {
            ln_apply(x, st, &vb.ln2, &mut y);
            quant_token(&vb.fq_fc1, &y, &mut fc1in[t * EMBED..(t + 1) * EMBED]);
        }
        let (gh, gl) = (&vb.gelu_h[..], &vb.gelu_l[..]);
        // SAFETY: the features are enabled on this function.
        unsafe {
            linear_v(&fc1in[..m * EMBED], &vb.lfc1, |t, tr| {
                if let Some(gs) = &vb.gelu_search {
                    gelu_search_v(&tr[..MLP], gs, &mut hidden[t * MLP..(t + 1) * MLP]);
                    return;
                }
                let mut cnt = [0u8; MLP];
                let tr = &tr[..MLP];
                for (&h, &l) in gh.iter().zip(gl) {
                    for (c, &x) in cnt.iter_mut().zip(tr) {
                        *c += u8::from(x >= h || x <= l);
                    }
                }
                hidden[t * MLP..(t + 1) * MLP].copy_from_slice(&cnt);
            });
            let frac = vb.lfc2.frac;
            linear_v(&hidden[..m * MLP], &vb.lfc2, |t, tr| {
                let dst = &mut block[t * EMBED..(t + 1) * EMBED];
                for (d, &x) in dst.iter_mut().zip(&tr[..EMBED]) {
                    *d = clamp_stream(i64::from(*d) + i64::from(clamp_stream(rsr(x, frac))));
                }
            });
        }
        t0 += m;
    }
}
