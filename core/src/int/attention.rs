//! Window attention on codes: `q·kᵀ` + relative-position bias + shift mask →
//! softmax → AttnProb codes ([`SoftmaxCall::run`]), and `P·v` → ProjInput codes
//! ([`AvCall::run`]).
//!
//! # Logits (base-2, Q32)
//!
//! With `q = l_q + s_q·a`, `k = l_k + s_k·b` (head dim `D = 10`):
//! `q_i·k_j = s_q s_k·Σ_d a_id b_jd + l_q s_k·Σ_d b_jd + (terms that depend on i only)`.
//! Softmax is invariant to per-row constants, so those are dropped and the
//! logit is kept in base-2 units (`z = logit·log2 e`) in Q32:
//!
//! ```text
//! z_ij = acc_ij·A + kb_j·B + (R[h, rpi(i, j)] << rpb_shift) + (masked(i, j) ? MASK_Z : 0)
//! acc_ij = Σ_d a_id b_jd,   kb_j = Σ_d b_jd
//! A = round(s_q s_k log2e·2^32),  B = round(l_q s_k log2e·2^32)
//! R = round(rpb·log2e·2^(32 − rpb_shift))  (i16 table, [heads, 225])
//! MASK_Z = round(−100·log2e·2^32) = −619632801872
//! rpi(i, j) = (y_i − y_j + 7)·15 + (x_i − x_j + 7)   (y = i / 8, x = i % 8)
//! ```
//!
//! Bounds: `|acc| ≤ 10·255² < 2^20`, `kb < 2^12`; with `|A|, |B| ≤ 2^40`,
//! `rpb_shift ≤ 40`: `|z| < 2^60 + 2^52 + 2^55 + 2^40 < 2^61`.
//!
//! # Softmax → codes
//!
//! ```text
//! m_i  = max_j z_ij
//! e_ij = exp2_neg_q31(m_i − z_ij)            ∈ [0, 2^31]   (see super::exp2)
//! S_i  = Σ_j e_ij                             ∈ [2^31, 2^37]
//! code_ij = #{k ∈ 1..=N : e_ij·2^30 ≥ S_i·T_k}
//! T_k  = round((l_p + (k − 1/2)·s_p)·2^30)   (i64, |T_k| ≤ 2^40)
//! ```
//!
//! i.e. `p = e/S` is compared exactly (as integers) with the quantizer's
//! decision levels; a value exactly on a level rounds up. The comparison is
//! evaluated per row as `e_ij ≥ E_k`, `E_k = ⌈S_i·T_k / 2^30⌉` (i128 product
//! `< 2^78`), which is equivalent because `e_ij` is an integer.
//!
//! # `P·v` → codes
//!
//! With `p = l_p + s_p·c`, `v = l_v + s_v·v'` over the 64 keys `j`:
//!
//! ```text
//! t_id = acc_id·A + cs_i·B + vs_d·C + D        acc_id = Σ_j c_ij v'_jd,  cs_i = Σ_j c_ij,  vs_d = Σ_j v'_jd
//! A = s_p s_v/s_o,  B = s_p l_v/s_o,  C = l_p s_v/s_o,  D = (64 l_p l_v − l_o)/s_o     (× 2^frac, rounded)
//! code = clamp(rshift_round(t, frac), 0, N)
//! ```
//!
//! Bounds: `acc < 2^22`, `cs, vs < 2^14`; `|A| ≤ 2^38`, `|B|, |C| ≤ 2^44`,
//! `|D| ≤ 2^60` give `|t| < 2^62`.

use super::arith::{ceil_shift_i128, clamp_code, fits_bits, rshift_round};
use super::exp2::exp2_neg_q31;
use super::view::{I32Src, LeI16};
use super::{check_len, check_param, OpError, HEAD_DIM, RPB_ROWS, TOKENS, WINDOW};

/// `round(−100·log2(e)·2^32)`: the shifted-window mask in Q32 base-2 units.
pub const MASK_Z: i64 = -619_632_801_872;
/// Fractional bits of the AttnProb decision levels `T_k`.
pub const PROB_FRAC: u32 = 30;
/// Fractional bits of the logits `z`.
pub const LOGIT_FRAC: u32 = 32;

/// Constants of the logits (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkParams {
    /// `A`, `|A| ≤ 2^40`.
    pub a: i64,
    /// `B`, `|B| ≤ 2^40`.
    pub b: i64,
    /// Left shift of the i16 bias table, `≤ 40`.
    pub rpb_shift: u32,
}

impl QkParams {
    /// Checks the bounds of the module docs.
    pub fn validate(&self) -> Result<(), OpError> {
        check_param("qk A", fits_bits(self.a, 40))?;
        check_param("qk B", fits_bits(self.b, 40))?;
        check_param("qk rpb shift", self.rpb_shift <= 40)
    }
}

/// Constants of `P·v` (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvParams {
    /// `A`, `|A| ≤ 2^38`.
    pub a: i64,
    /// `B`, `|B| ≤ 2^44`.
    pub b: i64,
    /// `C`, `|C| ≤ 2^44`.
    pub c: i64,
    /// `D`, `|D| ≤ 2^60`.
    pub d: i64,
    /// Fractional bits, `≤ 62`.
    pub frac: u32,
}

impl AvParams {
    /// Checks the bounds of the module docs.
    pub fn validate(&self) -> Result<(), OpError> {
        check_param("av A", fits_bits(self.a, 38))?;
        check_param("av B", fits_bits(self.b, 44))?;
        check_param("av C", fits_bits(self.c, 44))?;
        check_param("av D", fits_bits(self.d, 60))?;
        check_param("av frac", self.frac <= 62)
    }
}

/// Relative-position index of tokens `i`, `j` of a window (`< 225`).
#[allow(clippy::arithmetic_side_effects)] // every term is < 15 after the modulos
pub const fn rpb_index(i: usize, j: usize) -> usize {
    let (yi, xi) = (i / WINDOW % WINDOW, i % WINDOW);
    let (yj, xj) = (j / WINDOW % WINDOW, j % WINDOW);
    (yi + WINDOW - 1 - yj) * (2 * WINDOW - 1) + (xi + WINDOW - 1 - xj)
}

/// The inputs of one attention head of one window (the reference: [`SoftmaxCall::run`]).
#[derive(Debug)]
pub struct SoftmaxCall<'a, W: ?Sized> {
    /// `64 × stride` query codes; this head's `D = 10` columns start at `col`.
    pub q: &'a [u8],
    /// `64 × stride` key codes, laid out as `q`.
    pub k: &'a [u8],
    /// Codes per token in `q` and `k`.
    pub stride: usize,
    /// First column of this head.
    pub col: usize,
    /// The logit map.
    pub qk: &'a QkParams,
    /// This head's 225 bias entries.
    pub rpb: LeI16<'a>,
    /// For shifted blocks, the region label of each of the 64 tokens; pairs
    /// with different labels get `MASK_Z`. `None`: no mask.
    pub labels: Option<&'a [u8]>,
    /// The `N` levels `T_k` as `i64` word pairs (`2N` words).
    pub thresholds: &'a W,
}

impl<W: I32Src + ?Sized> SoftmaxCall<'_, W> {
    /// The shape and parameter checks every softmax kernel makes first, in
    /// this order, for an output of `probs_len` codes.
    pub fn check(&self, probs_len: usize) -> Result<(), OpError> {
        let (stride, col) = (self.stride, self.col);
        check_param(
            "attention head columns",
            col.checked_add(HEAD_DIM).is_some_and(|end| end <= stride),
        )?;
        let window_len = TOKENS.saturating_mul(stride);
        check_len("attention q", window_len, self.q.len())?;
        check_len("attention k", window_len, self.k.len())?;
        check_len("attention bias table", RPB_ROWS, self.rpb.len())?;
        if let Some(labels) = self.labels {
            check_len("attention mask labels", TOKENS, labels.len())?;
        }
        let thresholds = self.thresholds;
        check_param("attention thresholds", thresholds.len().is_multiple_of(2))?;
        check_len("attention probabilities", TOKENS * TOKENS, probs_len)?;
        self.qk.validate()?;
        for t in 0..thresholds.len() / 2 {
            check_param(
                "attention threshold",
                fits_bits(thresholds.at_i64(t.saturating_mul(2)), 40),
            )?;
        }
        Ok(())
    }

    /// The reference operator: the `64 × 64` output codes (row = query)
    /// into `probs`.
    pub fn run(&self, probs: &mut [u8]) -> Result<(), OpError> {
        self.check(probs.len())?;
        softmax_unchecked(self, probs);
        Ok(())
    }
}

/// Largest N handled on the stack by the row thresholds.
const MAX_LEVELS: usize = 255;

// Indices: j < 64 = len of keys/kb; levels ≤ MAX_LEVELS = len of edges.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
fn softmax_unchecked<W: I32Src + ?Sized>(call: &SoftmaxCall<'_, W>, probs: &mut [u8]) {
    let (q, k, stride, col) = (call.q, call.k, call.stride, call.col);
    let (qk, rpb, labels, thresholds) = (call.qk, call.rpb, call.labels, call.thresholds);
    let head = |codes: &[u8], t: usize| -> [u8; HEAD_DIM] {
        let mut out = [0u8; HEAD_DIM];
        let start = t * stride + col;
        if let Some(src) = codes.get(start..start + HEAD_DIM) {
            out.copy_from_slice(src);
        }
        out
    };
    let mut keys = [[0u8; HEAD_DIM]; TOKENS];
    let mut kb = [0i64; TOKENS];
    for (j, (key, s)) in keys.iter_mut().zip(kb.iter_mut()).enumerate() {
        *key = head(k, j);
        *s = key.iter().map(|&b| i64::from(b)).sum();
    }
    let levels = (thresholds.len() / 2).min(MAX_LEVELS);
    let mut edges = [0i64; MAX_LEVELS];
    for (i, row) in probs.chunks_exact_mut(TOKENS).enumerate() {
        let query = head(q, i);
        let mut z = [0i64; TOKENS];
        for (j, zj) in z.iter_mut().enumerate() {
            let acc: i64 = query
                .iter()
                .zip(&keys[j])
                .map(|(&a, &b)| i64::from(a) * i64::from(b))
                .sum();
            let bias = i64::from(rpb.at(rpb_index(i, j))) << qk.rpb_shift;
            let masked = labels.is_some_and(|l| l.get(i) != l.get(j));
            *zj = acc * qk.a + kb[j] * qk.b + bias + if masked { MASK_Z } else { 0 };
        }
        let m = z.iter().copied().max().unwrap_or(0);
        let mut e = [0u32; TOKENS];
        let mut sum = 0u64;
        for (ej, &zj) in e.iter_mut().zip(z.iter()) {
            // m ≥ z_j and both are < 2^61 in magnitude: the difference is in [0, 2^62).
            *ej = exp2_neg_q31((m - zj) as u64);
            sum += u64::from(*ej);
        }
        // sum ≤ 64·2^31 = 2^37; |T_k| ≤ 2^40: the i128 product is < 2^78.
        for (edge, kk) in edges.iter_mut().zip(0..levels) {
            let level = i128::from(thresholds.at_i64(2 * kk));
            let needed = ceil_shift_i128(i128::from(sum) * level, PROB_FRAC);
            // |needed| ≤ 2^48: fits i64.
            *edge = needed as i64;
        }
        for (out, &ej) in row.iter_mut().zip(e.iter()) {
            let ej = i64::from(ej);
            let count = edges[..levels].iter().filter(|&&edge| ej >= edge).count();
            *out = count.min(255) as u8;
        }
    }
}

/// The inputs of `P·v` for one head of one window (the reference: [`AvCall::run`]).
#[derive(Debug)]
pub struct AvCall<'a> {
    /// `64 × 64` AttnProb codes (row = query).
    pub probs: &'a [u8],
    /// `64 × stride` codes; this head's columns start at `col`.
    pub v: &'a [u8],
    /// Codes per token in `v`.
    pub stride: usize,
    /// First column of this head, in `v` and in the output.
    pub col: usize,
    /// The output map.
    pub av: &'a AvParams,
    /// Largest output code.
    pub levels: u8,
    /// Codes per token in the output.
    pub out_stride: usize,
}

impl AvCall<'_> {
    /// The shape and parameter checks every `P·v` kernel makes first, in
    /// this order, for an output of `out_len` codes.
    pub fn check(&self, out_len: usize) -> Result<(), OpError> {
        let (stride, col, out_stride) = (self.stride, self.col, self.out_stride);
        check_len("av probabilities", TOKENS * TOKENS, self.probs.len())?;
        check_param(
            "av head columns",
            col.checked_add(HEAD_DIM)
                .is_some_and(|end| end <= stride && end <= out_stride),
        )?;
        check_len("av v", TOKENS.saturating_mul(stride), self.v.len())?;
        check_len("av output", TOKENS.saturating_mul(out_stride), out_len)?;
        self.av.validate()
    }

    /// The reference operator: this head's columns `col .. col + 10` of the
    /// `64 × out_stride` ProjInput codes `out`.
    pub fn run(&self, out: &mut [u8]) -> Result<(), OpError> {
        self.check(out.len())?;
        av_unchecked(self, out);
        Ok(())
    }
}

// Indices: j < 64, d < 10 = the array lengths; bounds of t in the module docs.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
fn av_unchecked(call: &AvCall<'_>, out: &mut [u8]) {
    let (probs, v, stride, col) = (call.probs, call.v, call.stride, call.col);
    let (av, levels, out_stride) = (call.av, call.levels, call.out_stride);
    // Transposed head of v: vt[d][j].
    let mut vt = [[0u8; TOKENS]; HEAD_DIM];
    for j in 0..TOKENS {
        for (d, row) in vt.iter_mut().enumerate() {
            row[j] = v.get(j * stride + col + d).copied().unwrap_or(0);
        }
    }
    let mut vs = [0i64; HEAD_DIM];
    for (s, row) in vs.iter_mut().zip(vt.iter()) {
        *s = row.iter().map(|&x| i64::from(x)).sum();
    }
    for (i, prow) in probs.chunks_exact(TOKENS).enumerate() {
        let cs: i64 = prow.iter().map(|&x| i64::from(x)).sum();
        for (d, vrow) in vt.iter().enumerate() {
            let acc = prow.iter().zip(vrow.iter()).fold(0i32, |acc, (&p, &x)| {
                // 64 products < 2^16 each: < 2^22, never wraps.
                acc.wrapping_add(i32::from(p).wrapping_mul(i32::from(x)))
            });
            let t = i64::from(acc) * av.a + cs * av.b + vs[d] * av.c + av.d;
            if let Some(o) = out.get_mut(i * out_stride + col + d) {
                *o = clamp_code(rshift_round(t, av.frac), levels);
            }
        }
    }
}
