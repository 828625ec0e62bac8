//! Window attention: `q·kᵀ` → softmax → AttnProb codes, and `P·v` → codes
//! (`tdquant_core::int::attention::{softmax_codes, av_codes}`, same checks).
//!
//! Softmax: the 10-code head rows are packed into 16-bit pairs once and the
//! logit dot products are five `SMLAD`s; `z = acc·A + kb·B + bias + mask`
//! uses a per-call table of the 225 shifted biases and per-key `kb·B + mask`
//! for the row's label (every partial sum is below `2^62`, so the order does
//! not matter).
//! The logits, the exponentials (the oracle's `exp2` on 32-bit halves:
//! identical integers, no 64-bit division) and the codes are the assembly
//! row loops of [`softmax_row`]. The decision levels are sorted
//! once per call, so each row's edges `E_k = ⌈S·T_k/2^30⌉` come out sorted
//! (`S > 0`); they are computed exactly in `u64` pieces and clipped to
//! `[0, 2^31 + 1]`, where `e ∈ [0, 2^31]` compares with them as with the
//! oracle's `i64` edges. A code is then the descent of a breadth-first
//! binary search tree of them ([`EdgeTree`]), not `N` compares.
//! Every row starts at `rpb_index(i, 0)` in the bias table, whose window of
//! [`BIAS_REACH`] entries below it is in range for `i < 64`; the error
//! for a window out of range cannot occur.
//!
//! `P·v`: the head of `v` is transposed into pairs laid out as `UXTB16`
//! unpacks four probabilities; each row is ten `SMLAD` dot products of 64.

use tdquant_core::int::arith::{clamp_code, rshift_round};
use tdquant_core::int::attention::{rpb_index, AvCall, SoftmaxCall, MASK_Z, PROB_FRAC};
use tdquant_core::int::{I32Src, OpError, HEAD_DIM, RPB_ROWS, TOKENS};

use super::linear::Multiplier;
use super::softmax_row::{
    codes_row_2, codes_row_3, codes_row_4, exp2_row, logits_row, RowBuffers, BIAS_REACH,
};
use crate::dsp::{byte_sum, dot5_keys, dot5_probs, usat};

/// Most decision levels (the oracle's cap).
const MAX_LEVELS: usize = 255;
/// `HEAD_DIM / 2` pair words per head row.
const PAIRS: usize = HEAD_DIM / 2;

/// `⌈S·T / 2^30⌉` clipped to `[0, 2^31 + 1]`, for `0 < S < 2^38`, `|T| < 2^40`:
/// `e ≥ edge` for `e ∈ [0, 2^31]` exactly when `e ≥ ⌈S·T / 2^30⌉`.
///
/// On 32-bit halves (`s_h < 2^6`, `t_h < 2^8`): `S·T = L + M·2^32 + H·2^64`
/// with `L = s_l·t_l mod 2^32`, `M = s_l·t_h + s_h·t_l + ⌊s_l·t_l / 2^32⌋ <
/// 2^41` and `H = s_h·t_h`, so `⌈S·T / 2^30⌉ = H·2^34 + 4M + ⌈L / 2^30⌉`,
/// which is above `2^31` whenever `H > 0`: three `UMULL`s and no 64×64
/// product.
#[inline(always)]
fn edge(s: u64, t: i64) -> u32 {
    const CLIPPED: u32 = (1 << 31) + 1;
    if t <= 0 {
        return 0;
    }
    let t = t as u64;
    let (sl, sh) = (s & 0xFFFF_FFFF, s >> 32);
    let (tl, th) = (t & 0xFFFF_FFFF, t >> 32);
    if sh * th != 0 {
        return CLIPPED;
    }
    let low = sl * tl;
    let m = sl * th + sh * tl + (low >> 32);
    let e = (m << (32 - PROB_FRAC)) + (((low & 0xFFFF_FFFF) + (1 << PROB_FRAC) - 1) >> PROB_FRAC);
    if e > 1 << 31 {
        CLIPPED
    } else {
        e as u32
    }
}

// The halves above split S·T at 2^32 = 2^PROB_FRAC·4.
const _: () = assert!(PROB_FRAC == 30);

/// The sorted decision edges of a row as a binary search tree in
/// breadth-first (Eytzinger) order: `2^steps − 1 ≥ levels` slots, node
/// `i ∈ [2^d, 2^(d+1))` holding the edge of rank
/// `(2(i − 2^d) + 1)·2^(steps−d−1) − 1` (ranks `≥ levels` hold `u32::MAX`,
/// never `≤ e ≤ 2^31`). From `i = 1`, `steps` moves `i ← 2i + [e ≥ tree[i]]`
/// end at `2^steps + #{edges ≤ e}`: one load, one compare and one add per
/// level, with no index arithmetic.
struct EdgeTree {
    tree: [u32; 256],
    /// `slot[r]`: the node of rank `r`.
    slot: [u8; MAX_LEVELS],
    steps: u32,
}

impl EdgeTree {
    /// All zeros (so a scratch holding it starts as one cleared block):
    /// [`Self::reset`] fills the nodes a descent reads.
    const EMPTY: Self = Self {
        tree: [0; 256],
        slot: [0; MAX_LEVELS],
        steps: 0,
    };

    /// The tree for `levels` edges, every node at `u32::MAX` until
    /// [`Self::set`]; only the `2^steps` nodes a descent reads are touched.
    fn reset(&mut self, levels: usize) {
        let steps = usize::BITS - levels.min(MAX_LEVELS).leading_zeros();
        for i in 1usize..1 << steps {
            let d = usize::BITS - 1 - i.leading_zeros();
            let rank = ((2 * (i - (1 << d)) + 1) << (steps - d - 1)) - 1;
            if let Some(s) = self.slot.get_mut(rank) {
                *s = i as u8;
            }
        }
        if let Some(used) = self.tree.get_mut(..1 << steps) {
            used.fill(u32::MAX);
        }
        self.steps = steps;
    }

    #[inline(always)]
    fn set(&mut self, rank: usize, edge: u32) {
        let i = self.slot[rank % MAX_LEVELS];
        self.tree[usize::from(i)] = edge;
    }

    /// `#{edges ≤ e}`, descending `self.steps` levels (the widths without
    /// an assembly descent in [`softmax_row`]).
    fn count_le(&self, e: u32) -> usize {
        let mut i = 1usize;
        for _ in 0..self.steps {
            i = 2 * i + usize::from(e >= self.tree[i & 255]);
        }
        i - (1 << self.steps)
    }
}

/// The attention kernels' working buffers (9 KiB). A call writes every
/// element it reads before reading it, so they are kept between calls
/// instead of being cleared.
pub struct AttentionScratch {
    levels_sorted: [i64; MAX_LEVELS],
    keys: [[u32; PAIRS]; TOKENS],
    kb_b: [i64; TOKENS],
    bias: [i64; RPB_ROWS],
    edges: EdgeTree,
    acc: [i32; TOKENS],
    rows: RowBuffers,
    /// `P·v`'s transposed head of `v`.
    vp: [[[u32; 2]; HEAD_DIM]; TOKENS / 4],
}

impl AttentionScratch {
    pub const fn new() -> Self {
        Self {
            levels_sorted: [0; MAX_LEVELS],
            keys: [[0; PAIRS]; TOKENS],
            kb_b: [0; TOKENS],
            bias: [0; RPB_ROWS],
            edges: EdgeTree::EMPTY,
            acc: [0; TOKENS],
            rows: RowBuffers::new(),
            vp: [[[0; 2]; HEAD_DIM]; TOKENS / 4],
        }
    }
}

impl Default for AttentionScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Head row `t` of `codes` as five `lo | hi << 16` pairs.
#[inline(always)]
fn head_pairs(codes: &[u8], t: usize, stride: usize, col: usize) -> [u32; PAIRS] {
    let mut out = [0u32; PAIRS];
    let start = t * stride + col;
    if let Some(src) = codes.get(start..start + HEAD_DIM) {
        for (o, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
            *o = u32::from(pair[0]) | u32::from(pair[1]) << 16;
        }
    }
    out
}

/// See the [module docs](self).
pub fn softmax_codes<W: I32Src + ?Sized>(
    scratch: &mut AttentionScratch,
    call: &SoftmaxCall<'_, W>,
    probs: &mut [u8],
) -> Result<(), OpError> {
    call.check(probs.len())?;
    let AttentionScratch {
        levels_sorted,
        keys,
        kb_b,
        bias,
        edges,
        acc,
        rows: buffers,
        ..
    } = scratch;
    let (q, k, stride, col) = (call.q, call.k, call.stride, call.col);
    let (qk, rpb, labels, thresholds) = (call.qk, call.rpb, call.labels, call.thresholds);

    let levels = (thresholds.len() / 2).min(MAX_LEVELS);
    let levels_sorted = &mut levels_sorted[..levels];
    for (i, l) in levels_sorted.iter_mut().enumerate() {
        *l = thresholds.at_i64(2 * i);
    }
    levels_sorted.sort_unstable();

    for (j, (key, kbb)) in keys.iter_mut().zip(kb_b.iter_mut()).enumerate() {
        *key = head_pairs(k, j, stride, col);
        let kb: u32 = key.iter().map(|&p| (p & 0xFFFF) + (p >> 16)).sum();
        *kbb = i64::from(kb) * qk.b;
    }
    for (idx, b) in bias.iter_mut().enumerate() {
        *b = i64::from(rpb.at(idx)) << qk.rpb_shift;
    }
    edges.reset(levels);
    // The keys hold kb_j·B plus the mask of the current row's label (rows
    // of one label are mostly consecutive, so they are rebuilt only when
    // the label changes).
    if labels.is_none() {
        buffers.keys = *kb_b;
    }
    let mut masked_label = None;
    for (i, row) in probs.chunks_exact_mut(TOKENS).enumerate() {
        let qp = head_pairs(q, i, stride, col);
        dot5_keys(&qp, keys, acc);
        if let Some(l) = labels {
            let li = l[i];
            if masked_label != Some(li) {
                for ((mk, &kbb), &lj) in buffers.keys.iter_mut().zip(kb_b.iter()).zip(l) {
                    *mk = if lj == li { kbb } else { kbb + MASK_Z };
                }
                masked_label = Some(li);
            }
        }
        // rpb_index(i, j) = base − (15·y_j + x_j), base ∈ [BIAS_REACH, 224].
        let base = rpb_index(i, 0);
        let window = base
            .checked_sub(BIAS_REACH)
            .and_then(|lo| bias.get(lo..=base))
            .and_then(|w| <&[i64; BIAS_REACH + 1]>::try_from(w).ok())
            .ok_or(OpError::Param {
                what: "softmax bias window",
            })?;
        let m = logits_row(acc, buffers, window, qk.a);
        exp2_row(buffers, m);
        let sum: u64 = (0..TOKENS).map(|j| u64::from(buffers.exp(j))).sum();
        // Edges at 0 count for every e; below the first other edge the code
        // is their number (most probabilities of a row land there). Edges
        // come in ascending order (S > 0), so the zeros lead.
        let (mut zeros, mut first) = (0, u32::MAX);
        for (rank, &t) in levels_sorted.iter().enumerate() {
            let x = edge(sum, t);
            edges.set(rank, x);
            if x == 0 {
                zeros = rank + 1;
            } else if first == u32::MAX {
                first = x;
            }
        }
        let zeros = zeros as u8;
        let Ok(row) = <&mut [u8; TOKENS]>::try_from(row) else {
            continue;
        };
        match edges.steps {
            2 => codes_row_2(buffers, &edges.tree, first, zeros, row),
            3 => codes_row_3(buffers, &edges.tree, first, zeros, row),
            4 => codes_row_4(buffers, &edges.tree, first, zeros, row),
            _ => {
                for (j, out) in row.iter_mut().enumerate() {
                    let ej = buffers.exp(j);
                    *out = if ej < first {
                        zeros
                    } else {
                        edges.count_le(ej) as u8
                    };
                }
            }
        }
    }
    Ok(())
}

/// See the [module docs](self).
pub fn av_codes(
    scratch: &mut AttentionScratch,
    call: &AvCall<'_>,
    out: &mut [u8],
) -> Result<(), OpError> {
    call.check(out.len())?;
    let (probs, v, stride, col) = (call.probs, call.v, call.stride, call.col);
    let (av, levels, out_stride) = (call.av, call.levels, call.out_stride);

    // vp[g][d] = (v[4g][d] | v[4g+2][d] << 16, v[4g+1][d] | v[4g+3][d] << 16).
    let vp = &mut scratch.vp;
    let mut vs_c = [0i64; HEAD_DIM];
    let at = |j: usize, d: usize| u32::from(v[j * stride + col + d]);
    for (g, group) in vp.iter_mut().enumerate() {
        let j = 4 * g;
        for (d, pair) in group.iter_mut().enumerate() {
            pair[0] = at(j, d) | at(j + 2, d) << 16;
            pair[1] = at(j + 1, d) | at(j + 3, d) << 16;
        }
    }
    for (d, s) in vs_c.iter_mut().enumerate() {
        let sum: u32 = (0..TOKENS).map(|j| at(j, d)).sum();
        *s = i64::from(sum) * av.c;
    }
    let multiplier = Multiplier::new(av.a);
    for (i, prow) in probs.chunks_exact(TOKENS).enumerate() {
        let prow: &[u8; TOKENS] = prow.try_into().unwrap_or(&[0; TOKENS]);
        let cs = byte_sum(prow);
        let flat = vp.as_flattened().as_flattened();
        let (mut lo, mut hi) = ([0i32; 5], [0i32; 5]);
        dot5_probs(prow, flat, &mut lo);
        dot5_probs(prow, &flat[10..], &mut hi);
        let acc = [
            lo[0], lo[1], lo[2], lo[3], lo[4], hi[0], hi[1], hi[2], hi[3], hi[4],
        ];
        let row_const = i64::from(cs) * av.b + av.d;
        let dst = &mut out[i * out_stride + col..i * out_stride + col + HEAD_DIM];
        if av.frac >= 33 {
            // |t| < 2^62 and acc ≥ 0: the high word by UMLAL + MLA, then its
            // rounding and, for 4-bit codes, one USAT.
            let (add, shift) = (1i32 << (av.frac - 33), av.frac - 32);
            let words = dst.iter_mut().zip(acc.iter()).zip(vs_c.iter());
            let rounded =
                |a: i32, vc: i64| (multiplier.high_word(a, vc + row_const) + add) >> shift;
            if levels == 15 {
                for ((o, &a), &vc) in words {
                    *o = usat::<4>(rounded(a, vc)) as u8;
                }
            } else {
                for ((o, &a), &vc) in words {
                    *o = rounded(a, vc).clamp(0, i32::from(levels)) as u8;
                }
            }
            continue;
        }
        for ((o, &a), &vc) in dst.iter_mut().zip(acc.iter()).zip(vs_c.iter()) {
            let t = i64::from(a) * av.a + vc + row_const;
            *o = clamp_code(rshift_round(t, av.frac), levels);
        }
    }
    Ok(())
}
