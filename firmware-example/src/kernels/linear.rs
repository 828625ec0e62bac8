//! Packed b-bit linear layers with the asymmetric-grid correction
//! (`tdquant_core::int::linear::linear`, same checks, same `emit` order).
//!
//! The input codes of a block of 64 tokens are unpacked once into 16-bit
//! pairs (`c0 | c2 << 16`, `c1 | c3 << 16`, two `UXTB16` per four codes,
//! 16 KiB of stack at the widest input), and four weight rows at a time are
//! decoded into the same layout, so each group of four inputs costs one
//! `LDRD` of inputs shared by the four rows, and per row one `LDRD` of
//! weights and two `SMLAD`. `t = acc·A + Σa·B + (C_j <<
//! c_shift)` is summed in another order than the oracle's; every term and
//! partial sum is below `2^62` (module docs of the oracle), so the `i64`
//! result is the same.

use tdquant_core::int::arith::{clamp_code, rshift_round};
use tdquant_core::int::gelu::{gelu_code, WORDS_PER_LEVEL};
use tdquant_core::int::linear::{add_stream, LinearCall, MAX_K};
use tdquant_core::int::{I32Src, OpError, STREAM_LIMIT};
use tdquant_core::BitWidth;

use crate::dsp::{dot4_pairs, expand_codes, usat};

/// Tokens per block (as the oracle).
const TOKEN_BLOCK: usize = 64;
/// Weight rows decoded together.
const GROUP: usize = 4;

/// What happens to one weight row's outputs `t = acc·A + sb + base` of a
/// block of tokens (`sb` = `Σa·B` per token, `base = C_j << c_shift`).
trait Epilogue {
    fn row(&mut self, token0: usize, j: usize, acc: &[i32], sb: &[i64], base: i64, a: i64);
}

/// `emit(token, row, t)`, the oracle's interface.
struct Emit<F>(F);

impl<F: FnMut(usize, usize, i64)> Epilogue for Emit<F> {
    #[inline(always)]
    fn row(&mut self, token0: usize, j: usize, acc: &[i32], sb: &[i64], base: i64, a: i64) {
        for (t, (&x, &s)) in acc.iter().zip(sb).enumerate() {
            (self.0)(token0 + t, j, i64::from(x) * a + (s + base));
        }
    }
}

/// `rshift_round(t, frac)` for `frac ≥ 33`: adding `2^(frac−1)` only
/// changes the high word, and the result is that word shifted right by
/// `frac − 32` (`|t| < 2^62`: the high word and the sum fit `i32`).
#[inline(always)]
fn round_high(t: i64, frac: u32) -> i32 {
    let hi = (t >> 32) as i32;
    (hi + (1 << (frac - 33))) >> (frac - 32)
}

/// `out[token·rows + j] = clamp_code(rshift_round(t, frac), levels)`.
struct Codes<'o> {
    out: &'o mut [u8],
    rows: usize,
    levels: u8,
    frac: u32,
}

impl Epilogue for Codes<'_> {
    #[inline(always)]
    fn row(&mut self, token0: usize, j: usize, acc: &[i32], sb: &[i64], base: i64, a: i64) {
        let (frac, levels, rows) = (self.frac, i32::from(self.levels), self.rows);
        // Token t's code is byte j of the t-th `rows`-byte chunk from token0's.
        let Some(block) = token0
            .checked_mul(rows)
            .and_then(|start| self.out.get_mut(start..))
        else {
            return;
        };
        let tokens = block.chunks_mut(rows.max(1)).zip(acc.iter().zip(sb));
        if frac >= 33 {
            // Only the high word of t matters (round_high); codes of a b-bit
            // quantizer (N = 2^b − 1) clamp with one USAT.
            let (add, shift) = (1i32 << (frac - 33), frac - 32);
            let a = Multiplier::new(a);
            let round = |x: i32, s: i64| (a.high_word(x, s + base) + add) >> shift;
            macro_rules! codes {
                ($clamp:expr) => {
                    for (chunk, (&x, &s)) in tokens {
                        if let Some(o) = chunk.get_mut(j) {
                            *o = $clamp(round(x, s)) as u8;
                        }
                    }
                };
            }
            match levels {
                3 => codes!(usat::<2>),
                7 => codes!(usat::<3>),
                15 => codes!(usat::<4>),
                255 => codes!(usat::<8>),
                _ => codes!(|v: i32| v.clamp(0, levels)),
            }
        } else {
            for (chunk, (&x, &s)) in tokens {
                let v = i64::from(x) * a + (s + base);
                if let Some(o) = chunk.get_mut(j) {
                    *o = clamp_code(rshift_round(v, frac), self.levels);
                }
            }
        }
    }
}

/// `r[pos[token]·stride + j] = add_stream(r[…], rshift_round(t, frac))`.
struct Stream<'r, 'p> {
    r: &'r mut [i32],
    pos: &'p [usize],
    stride: usize,
    frac: u32,
    /// `pos[token0 + t]·stride` (saturated) for the block of `starts_of`.
    starts: [usize; TOKEN_BLOCK],
    /// The `token0` that `starts` belongs to (`usize::MAX`: none yet).
    starts_of: usize,
}

/// `acc·A + sb` for `acc ≥ 0` (a sum of products of codes, `< 2^23`): one
/// 32×64-bit product; the true value is below `2^62` in magnitude, so the
/// wrapping operations give it exactly.
#[inline(always)]
fn raw(acc: i32, a: i64, sb: i64) -> i64 {
    (u64::from(acc as u32).wrapping_mul(a as u64) as i64).wrapping_add(sb)
}

/// `A` split for [`Multiplier::high_word`]: `A = hi·2^32 + lo`, `lo`
/// unsigned.
#[derive(Clone, Copy)]
pub(crate) struct Multiplier {
    lo: u32,
    hi: u32,
}

impl Multiplier {
    #[inline(always)]
    pub(crate) fn new(a: i64) -> Self {
        Self {
            lo: a as u32,
            hi: (a >> 32) as u32,
        }
    }

    /// The high word of `acc·A + off` for `acc ≥ 0` (the `raw` value):
    /// `off + acc·lo` is one `UMLAL`, and `acc·hi` adds to the high word
    /// (one `MLA`); modulo `2^64` that is `acc·A + off`, whose true value is
    /// below `2^62` in magnitude.
    #[inline(always)]
    pub(crate) fn high_word(self, acc: i32, off: i64) -> i32 {
        let t = (off as u64).wrapping_add(u64::from(acc as u32) * u64::from(self.lo));
        ((t >> 32) as u32).wrapping_add((acc as u32).wrapping_mul(self.hi)) as i32
    }
}

/// The oracle's `add_stream(r, y)` for `y` already in `i32`:
/// `clamp_stream(r + clamp_stream(y))`. The `i32` sum saturates only when
/// the exact sum is outside `i32`, where the final clamp gives the same
/// bound either way.
#[inline(always)]
fn add_clamped(r: i32, y: i32) -> i32 {
    r.saturating_add(y.clamp(-STREAM_LIMIT, STREAM_LIMIT))
        .clamp(-STREAM_LIMIT, STREAM_LIMIT)
}

impl Epilogue for Stream<'_, '_> {
    #[inline(always)]
    fn row(&mut self, token0: usize, j: usize, acc: &[i32], sb: &[i64], base: i64, a: i64) {
        let frac = self.frac;
        let stride = self.stride;
        let pos = self.pos.get(token0..).unwrap_or(&[]);
        // An index that overflows saturates, so `get_mut` skips it as the
        // oracle does.
        let at = |p: usize| p.saturating_mul(stride).saturating_add(j);
        if (1..=31).contains(&frac) {
            // The rows of a block share their tokens' positions.
            if self.starts_of != token0 {
                for (start, &p) in self.starts.iter_mut().zip(pos) {
                    *start = p.saturating_mul(stride);
                }
                self.starts_of = token0;
            }
            // w = t + 2^(frac−1); q = the low word of ⌊w/2^frac⌋ =
            // `lo >> frac | hi << (32 − frac)`, which is the quotient when
            // the bits above it (`hi >> frac`) are its sign; otherwise the
            // quotient is beyond ±2^31 and clamps to ±L by the sign of `hi`.
            let limit = STREAM_LIMIT;
            let (right, left) = (frac & 31, (32 - frac) & 31);
            let base = base + (1i64 << (frac - 1));
            let tokens = self.starts.iter().zip(pos).zip(acc.iter().zip(sb));
            for ((&start, _), (&x, &s)) in tokens {
                let w = raw(x, a, s + base);
                let (lo, hi) = (w as u32, (w >> 32) as i32);
                let q = (lo >> right | (hi as u32) << left) as i32;
                let y = if hi >> right == q >> 31 {
                    q.clamp(-limit, limit)
                } else if hi < 0 {
                    -limit
                } else {
                    limit
                };
                if let Some(dst) = self.r.get_mut(start.saturating_add(j)) {
                    *dst = dst.saturating_add(y).clamp(-limit, limit);
                }
            }
            return;
        }
        if (32..=62).contains(&frac) {
            for ((&p, &x), &s) in pos.iter().zip(acc).zip(sb) {
                let v = raw(x, a, s + base);
                let y = if frac >= 33 {
                    round_high(v, frac)
                } else {
                    // |v·2^−32| < 2^30: the high word after rounding.
                    ((v + (1 << 31)) >> 32) as i32
                };
                if let Some(dst) = self.r.get_mut(at(p)) {
                    *dst = add_clamped(*dst, y);
                }
            }
            return;
        }
        for (t, (&x, &s)) in acc.iter().zip(sb).enumerate() {
            let Some(&p) = self.pos.get(token0 + t) else {
                continue;
            };
            let Some(dst) = self.r.get_mut(at(p)) else {
                continue;
            };
            *dst = add_stream(*dst, rshift_round(i64::from(x) * a + (s + base), frac));
        }
    }
}

/// `gelu_code(t, table) = #{k : t ≥ H_k or t ≤ L_k}` for a table of
/// `N ≤ 15` levels split by `c = min{H_k : H_k ≠ i64::MIN}`, when every
/// `H_k` is `i64::MIN` ("always") or `≥ c` and every `L_k` of the other
/// levels is `< c` (true of a GELU table: `L_k ≤ t⁻_k·2^frac < y*·2^frac <
/// t⁺_k·2^frac ≤ H_k`). Then, for `|t| < 2^62`:
///
/// * `t ≥ c`: no `t ≤ L_k` holds that is not already counted, and the code
///   is `#{k : H_k ≤ t}` (the "always" levels included);
/// * `t < c`: `t ≥ H_k` only for the "always" levels, and the code is their
///   number plus `#{k not always : L_k ≥ t}`.
///
/// Each count is a four-step descent over 15 sorted values padded to 16
/// with a value `t` never reaches: one 64-bit compare per step.
struct GeluSplit {
    split: i64,
    always: u8,
    /// The `H_k`, ascending, then `i64::MAX`.
    high: [i64; 16],
    /// The `L_k` of the levels that are not "always", descending, then
    /// `i64::MIN`.
    low: [i64; 16],
}

impl GeluSplit {
    /// `None` unless the table has at most 15 levels and splits as above.
    fn new<G: I32Src + ?Sized>(words: &G) -> Option<Self> {
        let levels = words.len() / WORDS_PER_LEVEL;
        if levels > 15 {
            return None;
        }
        let level = |k: usize| {
            (
                words.at_i64(k * WORDS_PER_LEVEL),
                words.at_i64(k * WORDS_PER_LEVEL + 2),
            )
        };
        let split = (0..levels)
            .map(|k| level(k).0)
            .filter(|&h| h != i64::MIN)
            .min()
            .unwrap_or(i64::MAX);
        let mut s = GeluSplit {
            split,
            always: 0,
            high: [i64::MAX; 16],
            low: [i64::MIN; 16],
        };
        let mut lows = 0;
        for k in 0..levels {
            let (h, l) = level(k);
            s.high[k] = h;
            if h == i64::MIN {
                s.always += 1;
            } else if l < split {
                s.low[lows] = l;
                lows += 1;
            } else {
                return None;
            }
        }
        s.high[..levels].sort_unstable();
        s.low[..lows].sort_unstable_by(|a, b| b.cmp(a));
        Some(s)
    }

    #[inline(always)]
    fn code(&self, t: i64) -> u8 {
        let mut c = 0usize;
        if t >= self.split {
            for half in [8usize, 4, 2, 1] {
                if self.high[(c + half - 1) & 15] <= t {
                    c += half;
                }
            }
            c as u8
        } else {
            for half in [8usize, 4, 2, 1] {
                if self.low[(c + half - 1) & 15] >= t {
                    c += half;
                }
            }
            self.always + c as u8
        }
    }
}

/// `out[token·rows + j] = gelu_code(t, table)`.
struct Gelu<'o, 'g, G: ?Sized> {
    out: &'o mut [u8],
    rows: usize,
    search: Option<GeluSplit>,
    words: &'g G,
}

impl<G: I32Src + ?Sized> Epilogue for Gelu<'_, '_, G> {
    #[inline(always)]
    fn row(&mut self, token0: usize, j: usize, acc: &[i32], sb: &[i64], base: i64, a: i64) {
        let Some(out) = token0
            .checked_mul(self.rows)
            .and_then(|i| i.checked_add(j))
            .and_then(|i| self.out.get_mut(i..))
        else {
            return;
        };
        // Outputs of row j: every `rows`-th byte from token0's.
        let outs = out.iter_mut().step_by(self.rows.max(1));
        match &self.search {
            Some(search) => {
                for ((o, &x), &s) in outs.zip(acc).zip(sb) {
                    *o = search.code(raw(x, a, s + base));
                }
            }
            None => {
                for ((o, &x), &s) in outs.zip(acc).zip(sb) {
                    *o = gelu_code(raw(x, a, s + base), self.words);
                }
            }
        }
    }
}

/// `tdquant_core::int::IntKernels::linear_gelu` (the oracle's checks, then
/// its outputs through the GELU thresholds).
pub fn linear_gelu<W: I32Src + ?Sized, G: I32Src + ?Sized>(
    call: &LinearCall<'_, W>,
    gelu: &G,
    out: &mut [u8],
) -> Result<(), OpError> {
    let mut epi = Gelu {
        out,
        rows: call.rows,
        search: GeluSplit::new(gelu),
        words: gelu,
    };
    linear_with(call, &mut epi)
}

/// See the [module docs](self).
pub fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
    call: &LinearCall<'_, W>,
    emit: F,
) -> Result<(), OpError> {
    linear_with(call, &mut Emit(emit))
}

/// `tdquant_core::int::linear::linear_codes` (same checks).
pub fn linear_codes<W: I32Src + ?Sized>(
    call: &LinearCall<'_, W>,
    levels: u8,
    out: &mut [u8],
) -> Result<(), OpError> {
    call.check_codes_len(out.len())?;
    let mut epi = Codes {
        out,
        rows: call.rows,
        levels,
        frac: call.affine.frac,
    };
    linear_with(call, &mut epi)
}

/// `tdquant_core::int::linear::linear_stream`.
pub fn linear_stream<W: I32Src + ?Sized>(
    call: &LinearCall<'_, W>,
    pos: &[usize],
    stride: usize,
    r: &mut [i32],
) -> Result<(), OpError> {
    let mut epi = Stream {
        r,
        pos,
        stride,
        frac: call.affine.frac,
        starts: [0; TOKEN_BLOCK],
        starts_of: usize::MAX,
    };
    linear_with(call, &mut epi)
}

fn linear_with<W: I32Src + ?Sized, E: Epilogue>(
    call: &LinearCall<'_, W>,
    epi: &mut E,
) -> Result<(), OpError> {
    call.check()?;
    let (input, k, weights, row0) = (call.input, call.k, call.weights, call.row0);
    let (rows, affine, c) = (call.rows, call.affine, call.c);

    let k4 = k / 4 * 4;
    // 4-bit weights without a tail decode straight from the packed bytes.
    let nibbles = weights.bits() == BitWidth::B4 && k4 == k;
    let mut codes = [0u8; MAX_K];
    // Per group of 4 inputs: GROUP rows × (even pair, odd pair).
    let mut wexp = [0u32; MAX_K / 4 * GROUP * 2];
    let mut tails = [[0u8; 3]; GROUP];
    let mut acc = [[0i32; TOKEN_BLOCK]; GROUP];
    let mut asum_b = [0i64; TOKEN_BLOCK];
    let wexp_used = k4 / 4 * GROUP * 2;
    // The block's input codes expanded once for all its row groups.
    let mut xexp = [0u32; TOKEN_BLOCK * MAX_K / 2];
    let xexp_len = k4 / 2;
    for (block_index, block) in input.chunks(TOKEN_BLOCK * k).enumerate() {
        let token0 = block_index * TOKEN_BLOCK;
        let m = block.len() / k;
        for ((s, x), xe) in asum_b
            .iter_mut()
            .zip(block.chunks_exact(k))
            .zip(xexp.chunks_exact_mut(xexp_len.max(1)))
        {
            let sum = x.iter().fold(0i32, |a, &v| a + i32::from(v));
            *s = i64::from(sum) * affine.b;
            expand_codes(&x[..k4], xe);
        }
        let mut j = 0;
        while j < rows {
            let g = GROUP.min(rows - j);
            for (r, tail) in tails.iter_mut().enumerate() {
                let codes = &mut codes[..k];
                let row = row0 + (j + r) as u32;
                if r < g && nibbles {
                    // 4-bit rows: byte 2q holds codes 4q, 4q+1 and byte
                    // 2q+1 codes 4q+2, 4q+3 (low nibble first).
                    let bytes = weights.row_bytes(row).ok_or(OpError::Param {
                        what: "linear weight rows",
                    })?;
                    for (q, b) in bytes.chunks_exact(2).take(k4 / 4).enumerate() {
                        let h = u32::from(b[0]) | u32::from(b[1]) << 8;
                        let at = q * GROUP * 2 + r * 2;
                        wexp[at] = (h & 0xF) | (h & 0xF00) << 8;
                        wexp[at + 1] = (h >> 4 & 0xF) | (h & 0xF000) << 4;
                    }
                    continue;
                }
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
            for (t, (x, xe)) in block
                .chunks_exact(k)
                .zip(xexp.chunks_exact(xexp_len.max(1)))
                .enumerate()
            {
                let [mut a0, mut a1, mut a2, mut a3] =
                    dot4_pairs(&xe[..xexp_len], &wexp[..wexp_used]);
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
                epi.row(token0, j + r, &acc_r[..m], &asum_b[..m], base, affine.a);
            }
            j += g;
        }
    }
    Ok(())
}
