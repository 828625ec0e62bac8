//! The attention and MLP branches on the explicit kernels of one level
//! (AVX2 or AVX-512 VNNI), written once: generic over the level's
//! primitives ([`CodeOps`]) and `#[inline(always)]`, so that each level
//! instantiates them inside its own `#[target_feature]` function and every
//! primitive is compiled for that level.
//!
//! Every value is the integer core computes: the primitives are exact (each
//! states why), and the rest is the same `i64` expression as in core.

use rayon::prelude::*;
use tdquant_core::int::arith::clamp_stream;
use tdquant_core::int::runner::window_tokens;
use tdquant_core::int::{EMBED, HEADS, HEAD_DIM, MLP, TOKENS, WINDOW};

use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::{
    ConvV, GeluSearch, HeadAv, HeadQk, LinV, SoftmaxV, VBlock,
};
use crate::cpu_backend::scalar::layernorm::{
    code_of, ln_apply, ln_stats, quant_token, rsr, LnStats,
};

/// One output row of a convolution on the zero-bordered `i16` input:
/// `(conv, layout, padded input, w, y, row)`.
pub(crate) type ConvRow = unsafe fn(&FastConv, &ConvV, &[i16], usize, usize, &mut [i64]);

/// One attention window updating the stream in place:
/// `(model, block, layout, stream, hp, wp, window, scratch)`.
pub(crate) type WindowFn = unsafe fn(
    &FastIntModel<'_>,
    usize,
    &VBlock,
    &SharedStream,
    usize,
    usize,
    usize,
    &mut WinScratch,
);

/// A level's entries of the dispatch table (they work on the layouts of
/// `prepared_vnni`, which the model builds where its codes allow).
pub(crate) struct BlockKernels {
    /// Convolution rows.
    pub(crate) conv_row: ConvRow,
    /// The attention branch of one block, updating the stream in place:
    /// `(model, block, layout, stream, hp, wp)`.
    pub(crate) attention: unsafe fn(&FastIntModel<'_>, usize, &VBlock, &mut [i32], usize, usize),
    /// The MLP on up to 64 tokens: `(layout, tokens, fc1 input, hidden)`.
    pub(crate) mlp_chunk:
        unsafe fn(&VBlock, &mut [i32], &mut [u8; TOKENS * EMBED], &mut [u8; TOKENS * MLP]),
}

/// The primitives of one level. Each is `unsafe`: it may only run on a CPU
/// with the level's instruction sets.
pub(crate) trait CodeOps {
    /// Core's `linear` on `input.len() / k` tokens: `emit(token, t)` with
    /// `t[j]` for the `rows_pad` rows.
    unsafe fn linear<F: FnMut(usize, &[i64])>(input: &[u8], lin: &LinV, emit: F);

    /// Core's `softmax_codes` for one head (`k` codes `≤ 127`).
    unsafe fn softmax_head(head: &HeadQk<'_>, probs: &mut [u8]);

    /// Core's `av_codes` for one head (`v` codes `≤ 127`).
    unsafe fn av_head(probs: &[u8], head: &HeadAv<'_>, out: &mut [u8]);

    /// Core's `gelu_code` of every `t[j]` (`t.len()` a multiple of 8).
    unsafe fn gelu_search(t: &[i64], gs: &GeluSearch, out: &mut [u8]);
}

/// The attention branch of block `index`, windows in parallel, each
/// updating its own pixels of `r` in place through `window`.
///
/// # Safety
/// The CPU must be able to run `window`.
pub(crate) unsafe fn attention(
    m: &FastIntModel<'_>,
    index: usize,
    vb: &VBlock,
    r: &mut [i32],
    hp: usize,
    wp: usize,
    window: WindowFn,
) {
    let stream = SharedStream(r.as_mut_ptr(), r.len());
    let windows = hp / WINDOW * (wp / WINDOW);
    (0..windows).into_par_iter().for_each_init(
        || Box::new(WinScratch::new()),
        |scratch, win| {
            // SAFETY: the caller's CPU has the features; the windows touch
            // disjoint pixels (see `SharedStream`).
            unsafe { window(m, index, vb, &stream, hp, wp, win, scratch) }
        },
    );
}

/// The residual stream shared by the attention windows of one block, which
/// read and update it in place. Sound because the windows partition the
/// pixels: `window_tokens` sends (window, token) to pixel
/// `((8wy + t/8 + s) mod hp, (8wx + t%8 + s) mod wp)`, a bijection, so each
/// pixel's 60 values are touched by one task only (core's runner updates
/// the stream in place window by window for the same reason).
pub(crate) struct SharedStream(*mut i32, usize);

// SAFETY: see the type's docs: tasks access disjoint pixels.
unsafe impl Sync for SharedStream {}

/// One attention window's code planes (reused across the windows of a task).
pub(crate) struct WinScratch {
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

/// The portable `window` on the primitives of `K`, updating the stream in
/// place.
///
/// # Safety
/// The CPU must be able to run `K`'s primitives.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn window<K: CodeOps>(
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
        // SAFETY: the caller's CPU runs K.
        unsafe {
            K::linear(input, lin, |t, tr| {
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
        // SAFETY: the caller's CPU runs K; q, k, v codes are ≤ levels ≤ 127
        // (`VBlock` exists).
        unsafe {
            let qk = HeadQk {
                q: &qc[..],
                k: &kc[..],
                col,
                sm: &sm,
                bias_h: bias,
                labels: mask,
            };
            K::softmax_head(&qk, &mut probs[..]);
            let pv = HeadAv {
                v: &vc[..],
                col,
                av: &vb.av,
                levels,
            };
            K::av_head(&probs[..], &pv, &mut oc[..]);
        }
    }
    let frac = vb.lproj.frac;
    // SAFETY: the caller's CPU runs K.
    unsafe {
        K::linear(&oc[..], &vb.lproj, |t, tr| {
            // SAFETY (of the enclosing block): pixel pos[t] < hp·wp
            // belongs to this window only.
            let px = core::slice::from_raw_parts_mut(stream.0.add(pos[t] * EMBED), EMBED);
            for (d, &x) in px.iter_mut().zip(tr) {
                *d = clamp_stream(i64::from(*d) + i64::from(clamp_stream(rsr(x, frac))));
            }
        });
    }
}

/// The MLP on a chunk of tokens, on the primitives of `K`.
///
/// # Safety
/// The CPU must be able to run `K`'s primitives.
#[inline(always)]
pub(crate) unsafe fn mlp_chunk<K: CodeOps>(
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
        // SAFETY: the caller's CPU runs K.
        unsafe {
            K::linear(&fc1in[..m * EMBED], &vb.lfc1, |t, tr| {
                if let Some(gs) = &vb.gelu_search {
                    K::gelu_search(&tr[..MLP], gs, &mut hidden[t * MLP..(t + 1) * MLP]);
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
            K::linear(&hidden[..m * MLP], &vb.lfc2, |t, tr| {
                let dst = &mut block[t * EMBED..(t + 1) * EMBED];
                for (d, &x) in dst.iter_mut().zip(&tr[..EMBED]) {
                    *d = clamp_stream(i64::from(*d) + i64::from(clamp_stream(rsr(x, frac))));
                }
            });
        }
        t0 += m;
    }
}

/// One level's dispatch-table entries (`KERNELS`) and its [`CodeOps`]
/// (`$ops`), in a level module with the same kernel names as every other
/// (`conv::PX`, `conv::requantize`, `linear::linear`, `softmax::softmax_head`,
/// `av::av_head`, `gelu::gelu_search`) and its dot-product lanes (`$lanes`,
/// for the shared convolution row `dot::conv_row`): the shared orchestration
/// instantiated inside `#[target_feature]` functions of the level's
/// `$features`, so that every primitive inlined into it is compiled for the
/// level. The table installs `KERNELS` only on a CPU that has the features.
macro_rules! level_kernels {
    ($level:literal, $ops:ident, $lanes:ty, $features:literal) => {
        #[doc = concat!("The ", $level, " entries of the dispatch table.")]
        pub(crate) const KERNELS: $crate::cpu_backend::x86_64::blocks::BlockKernels =
            $crate::cpu_backend::x86_64::blocks::BlockKernels {
                conv_row: conv_row_level,
                attention: attention_level,
                mlp_chunk: mlp_chunk_level,
            };

        #[doc = concat!("The ", $level, " primitives of the shared block orchestration.")]
        pub(crate) struct $ops;

        // SAFETY (of every method): the caller's CPU has the level's features.
        impl $crate::cpu_backend::x86_64::blocks::CodeOps for $ops {
            #[inline(always)]
            unsafe fn linear<F: FnMut(usize, &[i64])>(
                input: &[u8],
                lin: &$crate::cpu_backend::prepared_vnni::LinV,
                emit: F,
            ) {
                unsafe { linear::linear(input, lin, emit) }
            }

            #[inline(always)]
            unsafe fn softmax_head(
                head: &$crate::cpu_backend::prepared_vnni::HeadQk<'_>,
                probs: &mut [u8],
            ) {
                unsafe { softmax::softmax_head(head, probs) }
            }

            #[inline(always)]
            unsafe fn av_head(
                probs: &[u8],
                head: &$crate::cpu_backend::prepared_vnni::HeadAv<'_>,
                out: &mut [u8],
            ) {
                unsafe { av::av_head(probs, head, out) }
            }

            #[inline(always)]
            unsafe fn gelu_search(
                t: &[i64],
                gs: &$crate::cpu_backend::prepared_vnni::GeluSearch,
                out: &mut [u8],
            ) {
                unsafe { gelu::gelu_search(t, gs, out) }
            }
        }

        /// Output row `y` of `conv` on the zero-bordered `i16` input,
        /// compiled for the level (see `dot::conv_row`).
        ///
        /// # Safety
        /// The CPU must have the level's features.
        #[target_feature(enable = $features)]
        unsafe fn conv_row_level(
            conv: &$crate::cpu_backend::prepared::FastConv,
            cv: &$crate::cpu_backend::prepared_vnni::ConvV,
            padded: &[i16],
            w: usize,
            y: usize,
            orow: &mut [i64],
        ) {
            use $crate::cpu_backend::x86_64::dot;
            // SAFETY: the features are enabled on this function.
            unsafe {
                dot::conv_row::<$lanes, { conv::PX }>(conv, cv, padded, w, y, orow, |sums, out| {
                    conv::requantize(conv, cv, sums, out)
                })
            }
        }

        /// The attention branch of block `index` (see `blocks::attention`).
        ///
        /// # Safety
        /// The CPU must have the level's features.
        unsafe fn attention_level(
            m: &$crate::cpu_backend::model::FastIntModel<'_>,
            index: usize,
            vb: &$crate::cpu_backend::prepared_vnni::VBlock,
            r: &mut [i32],
            hp: usize,
            wp: usize,
        ) {
            use $crate::cpu_backend::x86_64::blocks;
            // SAFETY: the caller's CPU has the features `window_level` needs.
            unsafe { blocks::attention(m, index, vb, r, hp, wp, window_level) }
        }

        /// One attention window, compiled for the level.
        ///
        /// # Safety
        /// The CPU must have the level's features; `stream` as in
        /// `blocks::attention`.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn window_level(
            m: &$crate::cpu_backend::model::FastIntModel<'_>,
            index: usize,
            vb: &$crate::cpu_backend::prepared_vnni::VBlock,
            stream: &$crate::cpu_backend::x86_64::blocks::SharedStream,
            hp: usize,
            wp: usize,
            win: usize,
            scratch: &mut $crate::cpu_backend::x86_64::blocks::WinScratch,
        ) {
            // SAFETY: the features are enabled on this function.
            unsafe {
                $crate::cpu_backend::x86_64::blocks::window::<$ops>(
                    m, index, vb, stream, hp, wp, win, scratch,
                )
            }
        }

        /// The MLP on a chunk of tokens, compiled for the level.
        ///
        /// # Safety
        /// The CPU must have the level's features.
        #[target_feature(enable = $features)]
        unsafe fn mlp_chunk_level(
            vb: &$crate::cpu_backend::prepared_vnni::VBlock,
            chunk: &mut [i32],
            fc1in: &mut [u8; tdquant_core::int::TOKENS * tdquant_core::int::EMBED],
            hidden: &mut [u8; tdquant_core::int::TOKENS * tdquant_core::int::MLP],
        ) {
            // SAFETY: the features are enabled on this function.
            unsafe {
                $crate::cpu_backend::x86_64::blocks::mlp_chunk::<$ops>(vb, chunk, fc1in, hidden)
            }
        }
    };
}

pub(crate) use level_kernels;
