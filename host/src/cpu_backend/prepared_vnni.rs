//! The model's constants in the layouts of the explicit x86-64 kernels
//! (AVX-512 VNNI and AVX2 share them): weight codes grouped four by four for
//! `vpdpbusd`/`vpmaddubsw` (pairs for `vpdpwssd`/`vpmaddwd`), sorted
//! threshold tables for the binary-search code lookups. Built where the
//! model allows them (codes of at most 7 bits, small convolution weights);
//! plain data, so it builds on every target.

use tdquant_core::int::attention::AvParams;
use tdquant_core::int::layernorm::FixedQuant;
use tdquant_core::int::linear::CodeAffine;
use tdquant_core::int::model::BlockParams;
use tdquant_core::int::{I32Src, LeI32, EMBED, HEAD_DIM, MLP, TOKENS};
use tdquant_core::requant::Requantizer;

use super::prepared::LnFast;

/// A linear layer for `vpdpbusd`: input group `g` (4 inputs) of row `j` is
/// the `i32` at `w[g·rows_pad + j]` (four `i8` weight codes, rows padded
/// with zeros to a multiple of 16).
pub(crate) struct LinV {
    pub(crate) w: Vec<i32>,
    pub(crate) k: usize,
    pub(crate) rows_pad: usize,
    /// `C_j << c_shift` (zero in the padding).
    pub(crate) cs: Vec<i64>,
    /// `128·Σ_i w_ji` (zero in the padding): the AVX2 kernels multiply
    /// `x − 128` and add it back.
    pub(crate) wsum128: Vec<i32>,
    pub(crate) a: i64,
    pub(crate) b: i64,
    pub(crate) frac: u32,
}

impl LinV {
    /// `w`: `rows × k` codes; `None` unless every code is `≤ 127` and
    /// `k` is a multiple of 4.
    pub(crate) fn new(
        w: &[u8],
        k: usize,
        rows: usize,
        aff: &CodeAffine,
        c: &LeI32<'_>,
    ) -> Option<Self> {
        if !k.is_multiple_of(4) || k > 1 << 16 || w.len() < k * rows || c.len() != rows {
            return None;
        }
        if w[..k * rows].iter().any(|&x| x > 127) || aff.validate().is_err() {
            return None;
        }
        let rows_pad = rows.div_ceil(16) * 16;
        let mut wv = vec![0i32; k / 4 * rows_pad];
        for j in 0..rows {
            for g in 0..k / 4 {
                let b = &w[j * k + 4 * g..j * k + 4 * g + 4];
                wv[g * rows_pad + j] = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        let mut wsum128 = vec![0i32; rows_pad];
        for (j, dst) in wsum128.iter_mut().take(rows).enumerate() {
            // k·127·128 < 2^31 for k ≤ 2^17 (k is 60 or 120).
            *dst = 128
                * w[j * k..(j + 1) * k]
                    .iter()
                    .map(|&x| i32::from(x))
                    .sum::<i32>();
        }
        let mut cs = vec![0i64; rows_pad];
        for (j, dst) in cs.iter_mut().take(rows).enumerate() {
            *dst = i64::from(c.at(j)) << aff.c_shift;
        }
        Some(Self {
            w: wv,
            k,
            rows_pad,
            cs,
            wsum128,
            a: aff.a,
            b: aff.b,
            frac: aff.frac,
        })
    }
}

/// A block's constants for the AVX-512 path.
pub(crate) struct VBlock {
    pub(crate) ln1: LnFast,
    pub(crate) ln2: LnFast,
    pub(crate) fq_q: FixedQuant,
    pub(crate) fq_k: FixedQuant,
    pub(crate) fq_v: FixedQuant,
    pub(crate) fq_fc1: FixedQuant,
    pub(crate) lq: LinV,
    pub(crate) lk: LinV,
    pub(crate) lv: LinV,
    pub(crate) lproj: LinV,
    pub(crate) lfc1: LinV,
    pub(crate) lfc2: LinV,
    /// Code range of q, k, v and the `P·v` output.
    pub(crate) levels: u8,
    pub(crate) qk_a: i64,
    pub(crate) qk_b: i64,
    pub(crate) av: tdquant_core::int::attention::AvParams,
    /// The AttnProb levels are at most 15 and non-decreasing (so are the
    /// row edges `E_k`, `S > 0`): codes by a 4-step binary search.
    pub(crate) prob_search: bool,
    /// The GELU code as two sorted searches (see [`GeluSearch`]).
    pub(crate) gelu_search: Option<GeluSearch>,
    /// GELU thresholds `H_k`, `L_k`.
    pub(crate) gelu_h: Vec<i64>,
    pub(crate) gelu_l: Vec<i64>,
}

impl VBlock {
    pub(crate) fn new<'w>(
        p: &BlockParams<'_>,
        attn: impl Fn(usize) -> &'w [u8],
        w_fc1: &[u8],
        w_fc2: &[u8],
        levels: u8,
    ) -> Option<Self> {
        // The quantizers' validity bounds `|Y − L| < 2^61` (so `-` equals core's
        // `saturating_sub`) and the products below 2^63.
        let quants_ok = [p.fq_q, p.fq_k, p.fq_v, p.fq_fc1]
            .iter()
            .all(|q| q.validate().is_ok());
        if levels > 127 || !quants_ok || p.qk.validate().is_err() || p.av.validate().is_err() {
            return None;
        }
        let gelu_n = (p.gelu.len() / 4).min(255);
        Some(Self {
            ln1: LnFast::new(&p.ln1)?,
            ln2: LnFast::new(&p.ln2)?,
            fq_q: p.fq_q,
            fq_k: p.fq_k,
            fq_v: p.fq_v,
            fq_fc1: p.fq_fc1,
            lq: LinV::new(attn(0), EMBED, EMBED, &p.aff_q, &p.c_q)?,
            lk: LinV::new(attn(1), EMBED, EMBED, &p.aff_k, &p.c_k)?,
            lv: LinV::new(attn(2), EMBED, EMBED, &p.aff_v, &p.c_v)?,
            lproj: LinV::new(attn(3), EMBED, EMBED, &p.aff_proj, &p.c_proj)?,
            lfc1: LinV::new(w_fc1, EMBED, MLP, &p.aff_fc1, &p.c_fc1)?,
            lfc2: LinV::new(w_fc2, MLP, EMBED, &p.aff_fc2, &p.c_fc2)?,
            levels,
            qk_a: p.qk.a,
            qk_b: p.qk.b,
            av: p.av,
            prob_search: {
                let n = p.prob.len() / 2;
                let t: Vec<i64> = (0..n).map(|k| p.prob.at_i64(2 * k)).collect();
                n <= 15 && t.windows(2).all(|w| w[0] <= w[1])
            },
            gelu_search: GeluSearch::new(
                &(0..gelu_n)
                    .map(|k| p.gelu.at_i64(4 * k))
                    .collect::<Vec<_>>(),
                &(0..gelu_n)
                    .map(|k| p.gelu.at_i64(4 * k + 2))
                    .collect::<Vec<_>>(),
            ),
            gelu_h: (0..gelu_n).map(|k| p.gelu.at_i64(4 * k)).collect(),
            gelu_l: (0..gelu_n).map(|k| p.gelu.at_i64(4 * k + 2)).collect(),
        })
    }
}

/// Core's `gelu_code` as `#{k : t ≥ H_k} + #{k : t ≤ L_k}`: equal when no
/// `k` has both (`L_k < H_k`, or `L_k = i64::MIN`, never reached since
/// `|t| < 2^62`). Counting ignores the order of the `k`, so `H` is sorted
/// ascending and `L` descending, each padded to 16 with a value no `t`
/// reaches, and each count is a 4-step binary search.
pub(crate) struct GeluSearch {
    pub(crate) h: [i64; 16],
    pub(crate) l: [i64; 16],
    /// `h`, `l` shifted by 3 and 1 entries (the search's steps 4 and 2).
    pub(crate) h_shift: [[i64; 16]; 2],
    pub(crate) l_shift: [[i64; 16]; 2],
    /// The same searches on `i32` (16 lanes), when the thresholds other than
    /// `i64::MIN`/`i64::MAX` span at most `2^30`: with `lo`/`hi` their
    /// extremes, `t' = clamp(t, lo − 1, hi + 1) − lo` and `x' = x − lo`
    /// (`i64::MIN`/`MAX` → `i32::MIN`/`MAX`) keep every comparison
    /// `t ≥ x`, `t ≤ x` (a clamped `t` lies beyond every such threshold;
    /// `|t| < 2^62`, so the MIN/MAX outcomes are fixed and preserved).
    pub(crate) narrow: Option<GeluNarrow>,
}

/// [`GeluSearch::narrow`]: for each table, the entry the binary search's
/// steps 8, 4, 2, 1 compare with at lane value `c` (`c + step − 1`; step 8
/// always starts from `c = 0`).
pub(crate) struct GeluNarrow {
    pub(crate) lo: i64,
    pub(crate) hi: i64,
    pub(crate) h: [[i32; 16]; 4],
    pub(crate) l: [[i32; 16]; 4],
}

impl GeluNarrow {
    pub(crate) fn new(h: &[i64; 16], l: &[i64; 16]) -> Option<Self> {
        let finite = || {
            h.iter()
                .chain(l)
                .copied()
                .filter(|&x| x != i64::MIN && x != i64::MAX)
        };
        let (lo, hi) = (finite().min().unwrap_or(0), finite().max().unwrap_or(0));
        if hi.checked_sub(lo).is_none_or(|span| span > 1 << 30) {
            return None;
        }
        let map = |x: i64| match x {
            i64::MIN => i32::MIN,
            i64::MAX => i32::MAX,
            x => (x - lo) as i32,
        };
        // Step 8 starts from c = 0 in every lane: its table is E[7] broadcast.
        let shifted = |t: &[i64; 16]| -> [[i32; 16]; 4] {
            [
                [map(t[7]); 16],
                core::array::from_fn(|c| map(t[(c + 3).min(15)])),
                core::array::from_fn(|c| map(t[(c + 1).min(15)])),
                core::array::from_fn(|c| map(t[c])),
            ]
        };
        Some(Self {
            lo,
            hi,
            h: shifted(h),
            l: shifted(l),
        })
    }
}

impl GeluSearch {
    pub(crate) fn new(h: &[i64], l: &[i64]) -> Option<Self> {
        if h.len() > 15 || h.len() != l.len() {
            return None;
        }
        if h.iter().zip(l).any(|(&h, &l)| l >= h && l != i64::MIN) {
            return None;
        }
        let mut hs = [i64::MAX; 16];
        hs[..h.len()].copy_from_slice(h);
        hs[..h.len()].sort_unstable();
        let mut ls = [i64::MIN; 16];
        ls[..l.len()].copy_from_slice(l);
        ls[..l.len()].sort_unstable_by(|a, b| b.cmp(a));
        let shift = |t: &[i64; 16], s: usize| core::array::from_fn(|c| t[(c + s).min(15)]);
        Some(Self {
            h: hs,
            l: ls,
            h_shift: [shift(&hs, 3), shift(&hs, 1)],
            l_shift: [shift(&ls, 3), shift(&ls, 1)],
            narrow: GeluNarrow::new(&hs, &ls),
        })
    }
}

/// A convolution's weights for `vpdpwssd`: for tap `s` (of 9) and input
/// channel pair `c`, output `o`'s two `i16` weights as one `i32` at
/// `w[(s·cin/2 + c)·cout_pad + o]` (outputs padded with zeros to a multiple
/// of 16).
///
/// Exactness: every partial sum of an output's `9·cin` products is bounded
/// by `Σ|a_i|·|w_oi| ≤ 2^15·Σ_i |w_oi|`; the path is only built when
/// `Σ_i |w_oi| < 2^16` for every output, so all `i32` partial sums are
/// below `2^31` and the `i32` total equals core's `i64` sum.
pub(crate) struct ConvV {
    pub(crate) w: Vec<i32>,
    /// The epilogue in `i64` lanes, when every requantizer rounds half up
    /// with a right shift `k ∈ 1..=62` and every `|bias| ≤ 2^61`: then
    /// `apply_i64(acc)` for `|acc| < 2^31` is core's `apply_parts_i32`,
    /// `(acc·M + 2^(k−1)) >> k` (`|acc·M| < 2^62`: no overflow), and adding
    /// the bias cannot saturate (`|·| < 2^61 + 2^61`).
    pub(crate) epi: Option<ConvEpi>,
    pub(crate) cout_pad: usize,
    /// `cin` rounded up to even (the extra channel is zero).
    pub(crate) cin_pad: usize,
}

impl ConvV {
    pub(crate) fn new(weights: &[i16], cin: usize, cout: usize) -> Option<Self> {
        let taps = 9 * cin;
        if cout == 0 || cout > 64 || weights.len() != cout * taps {
            return None;
        }
        let l1_ok = weights
            .chunks_exact(taps)
            .all(|row| row.iter().map(|&x| i64::from(x).abs()).sum::<i64>() < 1 << 16);
        if !l1_ok {
            return None;
        }
        let cout_pad = cout.div_ceil(16) * 16;
        let cin_pad = cin.div_ceil(2) * 2;
        let pairs = cin_pad / 2;
        let mut w = vec![0i32; 9 * pairs * cout_pad];
        for o in 0..cout {
            for s in 0..9 {
                let wt = |c: usize| {
                    if c < cin {
                        weights[o * taps + s * cin + c] as u16
                    } else {
                        0
                    }
                };
                for c in 0..pairs {
                    let (lo, hi) = (wt(2 * c), wt(2 * c + 1));
                    w[(s * pairs + c) * cout_pad + o] =
                        (u32::from(lo) | (u32::from(hi) << 16)) as i32;
                }
            }
        }
        Some(Self {
            w,
            epi: None,
            cout_pad,
            cin_pad,
        })
    }
}

/// A convolution's requantization and bias as lane vectors (see
/// [`ConvV::epi`]); padded with `M = 0`, `k = 1`.
pub(crate) struct ConvEpi {
    pub(crate) mult: Vec<i64>,
    pub(crate) round: Vec<i64>,
    pub(crate) shift: Vec<i64>,
    pub(crate) bias: Vec<i64>,
}

impl ConvEpi {
    pub(crate) fn new(requant: &[Requantizer], bias: &[i64], cout_pad: usize) -> Option<Self> {
        use tdquant_core::RoundingMode;
        let ok = requant
            .iter()
            .all(|r| r.rounding() == RoundingMode::HalfUp && (1..=62).contains(&r.total_shift()))
            && bias.iter().all(|&b| b.unsigned_abs() <= 1 << 61);
        if !ok || requant.len() != bias.len() || requant.len() > cout_pad {
            return None;
        }
        let lane = |f: &dyn Fn(usize) -> i64, pad: i64| -> Vec<i64> {
            (0..cout_pad)
                .map(|o| if o < requant.len() { f(o) } else { pad })
                .collect()
        };
        Some(Self {
            mult: lane(&|o| i64::from(requant[o].multiplier()), 0),
            round: lane(&|o| 1i64 << (requant[o].total_shift() - 1), 0),
            shift: lane(&|o| i64::from(requant[o].total_shift()), 1),
            bias: lane(&|o| bias[o], 0),
        })
    }
}

impl LinV {
    /// Core's `t_j = acc_j·A + (Σ x)·B + C_j` of the tokens `x` (`k` codes
    /// each) from their exact `i32` dot products `acc` (`rows_pad` per
    /// token), emitted as `emit(t0 + token, t)`; `trow` holds `rows_pad`.
    #[inline(always)]
    pub(crate) fn emit_tokens<F: FnMut(usize, &[i64])>(
        &self,
        x: &[u8],
        acc: &[i32],
        t0: usize,
        trow: &mut [i64],
        emit: &mut F,
    ) {
        let rp = self.rows_pad;
        for (t, xs) in x.chunks_exact(self.k).enumerate() {
            let s = i64::from(xs.iter().map(|&v| u32::from(v)).sum::<u32>());
            let sb = s * self.b;
            let ar = &acc[t * rp..(t + 1) * rp];
            let tr = &mut trow[..rp];
            for ((d, &a), &c) in tr.iter_mut().zip(ar).zip(&self.cs) {
                *d = i64::from(a) * self.a + sb + c;
            }
            emit(t0 + t, tr);
        }
    }
}

/// The softmax constants of one block.
pub(crate) struct SoftmaxV<'b> {
    pub(crate) a: i64,
    pub(crate) b: i64,
    /// `T_k` (at most 255).
    pub(crate) levels_t: &'b [i64],
    /// At most 15 levels, non-decreasing.
    pub(crate) search: bool,
    /// With `search`: `T_k >> 20` and `T_k & (2^20 − 1)` (16 lanes; the
    /// unused ones are replaced by `i32::MAX` edges).
    pub(crate) th: [i64; 16],
    pub(crate) tl: [i64; 16],
}

/// One head's softmax operands: the 60-wide `q` and `k` code planes, the
/// head's first column, the block's constants, `R[h, rpi(i, j)] << rpb_shift`
/// (64 × 64) and, in a shifted block, the tokens' mask regions.
#[derive(Clone, Copy)]
pub(crate) struct HeadQk<'a> {
    pub(crate) q: &'a [u8],
    pub(crate) k: &'a [u8],
    pub(crate) col: usize,
    pub(crate) sm: &'a SoftmaxV<'a>,
    pub(crate) bias_h: &'a [i64],
    pub(crate) labels: Option<&'a [u8; TOKENS]>,
}

impl HeadQk<'_> {
    /// Panics unless the planes hold a window and `probs` its 64 × 64 codes:
    /// the kernels index them unchecked.
    pub(crate) fn check(&self, probs: &[u8]) {
        assert!(
            self.q.len() >= TOKENS * EMBED
                && self.k.len() >= TOKENS * EMBED
                && self.col + HEAD_DIM <= EMBED
                && self.bias_h.len() >= TOKENS * TOKENS
                && probs.len() >= TOKENS * TOKENS
        );
    }
}

/// One head's `P·v` operands: the 60-wide `v` code plane, the head's first
/// column, the block's constants and the output code levels.
#[derive(Clone, Copy)]
pub(crate) struct HeadAv<'a> {
    pub(crate) v: &'a [u8],
    pub(crate) col: usize,
    pub(crate) av: &'a AvParams,
    pub(crate) levels: u8,
}

impl HeadAv<'_> {
    /// The value codes by groups of four tokens, as the dot products take
    /// them: `groups[g][d]` holds the codes of tokens `4g..4g + 4` in
    /// dimension `d` (lane 10 holds ones, so that it accumulates the
    /// probability sums), and `sums[d] = Σ_j v_jd`. Checks the operands
    /// first (`check`).
    #[inline(always)]
    pub(crate) fn value_groups(&self, probs: &[u8], out: &[u8]) -> ([[i32; 16]; 16], [i64; 16]) {
        self.check(probs, out);
        let mut groups = [[0i32; 16]; 16];
        let mut sums = [0i64; 16];
        for (g, lanes) in groups.iter_mut().enumerate() {
            for (d, lane) in lanes.iter_mut().enumerate().take(HEAD_DIM) {
                let b: [u8; 4] =
                    core::array::from_fn(|s| self.v[(4 * g + s) * EMBED + self.col + d]);
                sums[d] += b.iter().map(|&x| i64::from(x)).sum::<i64>();
                *lane = i32::from_le_bytes(b);
            }
            lanes[HEAD_DIM] = 0x0101_0101;
        }
        (groups, sums)
    }

    /// Panics unless `probs` holds a window's 64 × 64 codes and the planes a
    /// window: the kernels index them unchecked.
    pub(crate) fn check(&self, probs: &[u8], out: &[u8]) {
        assert!(
            probs.len() >= TOKENS * TOKENS
                && self.v.len() >= TOKENS * EMBED
                && out.len() >= TOKENS * EMBED
                && self.col + HEAD_DIM <= EMBED
        );
    }
}
