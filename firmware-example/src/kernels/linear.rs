//! Packed b-bit linear layers with the asymmetric-grid correction
//! (`tdquant_core::int::linear::linear`, same checks, same `emit` order).
//!
//! The input codes of a block of 64 tokens are unpacked once into 16-bit
//! pairs (`c0 | c2 << 16`, `c1 | c3 << 16`, two `UXTB16` per four codes,
//! 16 KiB at the widest input), and four weight rows at a time are
//! decoded into the same layout, so each group of four inputs costs one
//! `LDRD` of inputs shared by the four rows, and per row one `LDRD` of
//! weights and two `SMLAD`. These buffers are a [`LinearScratch`] that the
//! kernels own, so a call does not clear them. `t = acc·A + Σa·B + (C_j <<
//! c_shift)` is summed in another order than the oracle's; every term and
//! partial sum is below `2^62` (module docs of the oracle), so the `i64`
//! result is the same.

use core::arch::asm;

use tdquant_core::int::arith::{clamp_code, rshift_round};
use tdquant_core::int::gelu::{gelu_code, WORDS_PER_LEVEL};
use tdquant_core::int::linear::{add_stream, LinearCall, MAX_K};
use tdquant_core::int::{I32Src, OpError, STREAM_LIMIT};
use tdquant_core::BitWidth;

use crate::dsp::{dot4_block, expand_codes, usat, RowGroup, TokenSums};

/// Tokens per block (as the oracle).
const TOKEN_BLOCK: usize = 64;
/// Weight rows decoded together.
const GROUP: usize = 4;

/// A linear layer's working buffers. A call writes every element it reads
/// before reading it (codes and weight rows up to `k`, the block's tokens),
/// so they are kept between calls instead of being cleared (19 KiB; about
/// 2,600 instructions a call on the M4).
pub struct LinearScratch {
    codes: [u8; MAX_K],
    /// Per group of 4 inputs: GROUP rows × (even pair, odd pair).
    group: RowGroup<{ MAX_K / 4 * GROUP * 2 }>,
    tails: [[u8; 3]; GROUP],
    sums: [TokenSums; TOKEN_BLOCK],
    /// The block's input codes expanded once for all its row groups.
    xexp: [u32; TOKEN_BLOCK * MAX_K / 2],
}

impl LinearScratch {
    pub const fn new() -> Self {
        Self {
            codes: [0; MAX_K],
            group: RowGroup::new(),
            tails: [[0; 3]; GROUP],
            sums: [TokenSums::ZERO; TOKEN_BLOCK],
            xexp: [0; TOKEN_BLOCK * MAX_K / 2],
        }
    }
}

impl Default for LinearScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// A group of `g ≤ GROUP` weight rows `j..j + g` for a block of tokens
/// from `token0`, with the terms of its outputs `t_r = acc_r·A + sb +
/// base_r` other than the tokens' sums: `A` and `base_r = C_{j+r} <<
/// c_shift`.
#[derive(Clone, Copy)]
struct RowBlock {
    token0: usize,
    j: usize,
    g: usize,
    bases: [i64; GROUP],
    a: i64,
}

/// What happens to the outputs of a [`RowBlock`] for the block's tokens
/// (`sums[t].acc` token t's sums, `sums[t].sb` its `Σa·B`). Code and stream
/// outputs of different rows and tokens go to different places, so they are
/// written token by token.
trait Epilogue {
    fn block(&mut self, block: &RowBlock, sums: &[TokenSums]);
}

/// Token `token0`'s codes from row `j` on, where a token's codes are `rows`
/// bytes long (each later token's start `rows` bytes further), or `None`
/// past the end of `out`.
fn codes_from(out: &mut [u8], rows: usize, token0: usize, j: usize) -> Option<&mut [u8]> {
    let start = token0.checked_mul(rows)?.checked_add(j)?;
    out.get_mut(start..)
}

/// `f(output r, acc_r, base_r)` for the group's `g` rows whose outputs
/// `dst` holds; a whole group of [`GROUP`] rows as a fixed-length loop,
/// which unrolls.
#[inline(always)]
fn for_outputs<T>(
    dst: &mut [T],
    g: usize,
    acc: &[i32; GROUP],
    bases: &[i64; GROUP],
    mut f: impl FnMut(&mut T, i32, i64),
) {
    if g == GROUP {
        if let Some(Ok(d)) = dst.get_mut(..GROUP).map(<&mut [T; GROUP]>::try_from) {
            for (o, (&x, &base)) in d.iter_mut().zip(acc.iter().zip(bases)) {
                f(o, x, base);
            }
            return;
        }
    }
    for (o, (&x, &base)) in dst.iter_mut().zip(acc.iter().zip(bases)).take(g) {
        f(o, x, base);
    }
}

/// `bases` with `2^(frac−1)` added: the rounding of `rshift_round(t, frac)`
/// moved into the constant term.
fn rounding_in(mut bases: [i64; GROUP], frac: u32) -> [i64; GROUP] {
    for b in bases.iter_mut() {
        *b += 1 << (frac - 1);
    }
    bases
}

/// `emit(token, row, t)`, the oracle's interface and order (row by row,
/// each over the block's tokens).
struct Emit<F>(F);

impl<F: FnMut(usize, usize, i64)> Epilogue for Emit<F> {
    fn block(&mut self, block: &RowBlock, sums: &[TokenSums]) {
        for (r, &base) in block.bases.iter().enumerate().take(block.g) {
            for (t, s) in sums.iter().enumerate() {
                (self.0)(
                    block.token0 + t,
                    block.j + r,
                    i64::from(s.acc[r]) * block.a + (s.sb + base),
                );
            }
        }
    }
}

/// `out[token·rows + j] = clamp_code(rshift_round(t, frac), levels)`.
struct Codes<'o> {
    out: &'o mut [u8],
    rows: usize,
    levels: u8,
    frac: u32,
}

impl Epilogue for Codes<'_> {
    fn block(&mut self, block: &RowBlock, sums: &[TokenSums]) {
        let (g, a) = (block.g, block.a);
        let (frac, levels, rows) = (self.frac, self.levels, self.rows);
        let Some(out) = codes_from(self.out, rows, block.token0, block.j) else {
            return;
        };
        let tokens = out.chunks_mut(rows.max(1)).zip(sums);
        if frac >= 33 {
            // Only the high word of t matters (with the rounding in the
            // bases); codes of a b-bit quantizer (N = 2^b − 1) clamp with
            // one USAT.
            let bases = rounding_in(block.bases, frac);
            let (shift, m) = (frac - 32, Multiplier::new(a));
            macro_rules! codes {
                ($clamp:expr) => {
                    for (dst, TokenSums { acc: acc_t, sb: s }) in tokens {
                        for_outputs(dst, g, acc_t, &bases, |o, x, base| {
                            *o = $clamp(m.high_word(x, s + base) >> shift) as u8;
                        });
                    }
                };
            }
            match levels {
                3 => codes!(usat::<2>),
                7 => codes!(usat::<3>),
                15 => codes!(usat::<4>),
                255 => codes!(usat::<8>),
                _ => codes!(|v: i32| v.clamp(0, i32::from(levels))),
            }
        } else {
            for (dst, TokenSums { acc: acc_t, sb: s }) in tokens {
                for_outputs(dst, g, acc_t, &block.bases, |o, x, base| {
                    let v = i64::from(x) * a + (s + base);
                    *o = clamp_code(rshift_round(v, frac), levels);
                });
            }
        }
    }
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
    /// below `2^63` in magnitude.
    #[inline(always)]
    pub(crate) fn high_word(self, acc: i32, off: i64) -> i32 {
        let t = (off as u64).wrapping_add(u64::from(acc as u32) * u64::from(self.lo));
        ((t >> 32) as u32).wrapping_add((acc as u32).wrapping_mul(self.hi)) as i32
    }
}

/// `r[pos[token]·stride + j] = add_stream(r[…], rshift_round(t, frac))`,
/// for `stride ≥ rows`: then every (token position, row) pair has a place of
/// its own apart from repeated positions, whose updates stay in token
/// order, so writing token by token is the oracle's row-by-row result.
struct Stream<'r, 'p> {
    r: &'r mut [i32],
    pos: &'p [usize],
    stride: usize,
    frac: u32,
}

impl Stream<'_, '_> {
    /// `f(place, acc_t, sb_t)` per token of the block with a position: the
    /// token's outputs of rows `j..` from `r[pos·stride + j]` (an index that
    /// overflows saturates, so the token is skipped as the oracle does).
    #[inline(always)]
    fn tokens(
        &mut self,
        token0: usize,
        j: usize,
        sums: &[TokenSums],
        mut f: impl FnMut(&mut [i32], &[i32; GROUP], i64),
    ) {
        let pos = self.pos.get(token0..).unwrap_or(&[]);
        for (&p, s) in pos.iter().zip(sums) {
            let start = p.saturating_mul(self.stride).saturating_add(j);
            if let Some(dst) = self.r.get_mut(start..) {
                f(dst, &s.acc, s.sb);
            }
        }
    }
}

impl Epilogue for Stream<'_, '_> {
    fn block(&mut self, block: &RowBlock, sums: &[TokenSums]) {
        let (g, a) = (block.g, block.a);
        let (frac, limit) = (self.frac, STREAM_LIMIT);
        if (1..=31).contains(&frac) {
            // w = t + 2^(frac−1); q = the low word of ⌊w/2^frac⌋ =
            // `lo >> frac | hi << (32 − frac)`, which is the quotient when
            // the bits above it (`hi >> frac`) are its sign; otherwise the
            // quotient is beyond ±2^31 and clamps to ±L by the sign of `hi`.
            let bases = rounding_in(block.bases, frac);
            let (right, left) = (frac & 31, (32 - frac) & 31);
            self.tokens(block.token0, block.j, sums, |dst, acc_t, s| {
                for_outputs(dst, g, acc_t, &bases, |o, x, base| {
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
                    *o = o.saturating_add(y).clamp(-limit, limit);
                });
            });
        } else if (32..=62).contains(&frac) {
            // The rounded quotient is the high word of w shifted right by
            // frac − 32 (|w| < 2^63: it fits i32).
            let bases = rounding_in(block.bases, frac);
            let (shift, m) = (frac - 32, Multiplier::new(a));
            self.tokens(block.token0, block.j, sums, |dst, acc_t, s| {
                for_outputs(dst, g, acc_t, &bases, |o, x, base| {
                    *o = add_clamped(*o, m.high_word(x, s + base) >> shift);
                });
            });
        } else {
            self.tokens(block.token0, block.j, sums, |dst, acc_t, s| {
                for_outputs(dst, g, acc_t, &block.bases, |o, x, base| {
                    *o = add_stream(*o, rshift_round(i64::from(x) * a + (s + base), frac));
                });
            });
        }
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
/// Each count is a four-step descent of a breadth-first tree of 15 sorted
/// values (padded with a value `t` never reaches), in assembly: the
/// values are stored as unsigned keys (`x ^ 2^63`, which order as the
/// signed `x`), so `CMP`/`SBCS` leave the carry set exactly when the key is
/// `≥` the node, and `i ← 2i + carry` is one `ADC`. The low side counts
/// `#{L_k ≥ t} = #{!L_k ≤ !t}` over the ascending `!L_k`, the same descent.
#[repr(C, align(8))]
struct GeluSplit {
    split: i64,
    _pad: u64,
    /// Slot 0: `0`; slots `1..16`: the `H_k` keys, ascending, then `u64::MAX`.
    high: [u64; 16],
    /// Slot 0: the number of "always" levels; slots `1..16`: the keys of the
    /// `!L_k` of the other levels, ascending, then `u64::MAX`.
    low: [u64; 16],
}

const _: () = assert!(core::mem::offset_of!(GeluSplit, high) == 16);
const _: () = assert!(core::mem::offset_of!(GeluSplit, low) == 16 + 128);

/// The unsigned key of `x`: `x ^ 2^63` orders as `x`.
const fn key(x: i64) -> u64 {
    x as u64 ^ 1 << 63
}

/// `tree[1..16]`, breadth first, from 15 ascending values: node `i` at
/// depth `d` holds rank `(2(i − 2^d) + 1)·2^(3−d) − 1`.
fn breadth_first(sorted: &[u64; 15], tree: &mut [u64; 16]) {
    for (i, node) in tree.iter_mut().enumerate().skip(1) {
        let d = (usize::BITS - 1 - i.leading_zeros()) as usize;
        let rank = ((2 * (i - (1 << d)) + 1) << (3 - d)) - 1;
        *node = sorted[rank % 15];
    }
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
        let (mut high, mut low) = ([u64::MAX; 15], [u64::MAX; 15]);
        let (mut always, mut lows) = (0u64, 0);
        for (k, h) in high.iter_mut().enumerate().take(levels) {
            let (hk, lk) = level(k);
            *h = key(hk);
            if hk == i64::MIN {
                always += 1;
            } else if lk < split {
                low[lows] = key(!lk);
                lows += 1;
            } else {
                return None;
            }
        }
        high.sort_unstable();
        low[..lows].sort_unstable();
        let mut s = GeluSplit {
            split,
            _pad: 0,
            high: [0; 16],
            low: [always; 16],
        };
        breadth_first(&high, &mut s.high);
        breadth_first(&low, &mut s.low);
        Some(s)
    }

    /// The code of `t` (`|t| < 2^62`).
    #[inline(always)]
    fn code(&self, t: i64) -> u8 {
        let i: u32;
        // One level of the descent: `i ← 2i + [t ≥ tree[i]]`, the 64-bit
        // compare's carry added by `ADC`.
        macro_rules! step {
            () => {
                concat!(
                    "add {a}, {tp}, {i}, lsl #3\n",
                    "ldrd {a}, {b}, [{a}]\n",
                    "cmp {lo}, {a}\n",
                    "sbcs {a}, {hi}, {b}\n",
                    "adc {i}, {i}, {i}\n",
                )
            };
        }
        // SAFETY: reads `split` and, from the side chosen, slot 0 and the
        // tree slots `1..16` (the descent's `i < 16` before each probe), all
        // within `self` and 8-aligned for LDRD; registers and flags
        // otherwise.
        unsafe {
            asm!(
                "ldrd {a}, {b}, [{tp}]",
                "cmp {lo}, {a}",
                "sbcs {a}, {hi}, {b}",
                "add {tp}, {tp}, #16",
                "bge 2f",
                "mvn {lo}, {lo}",
                "mvn {hi}, {hi}",
                "add {tp}, {tp}, #128",
                "2:",
                "eor {hi}, {hi}, #0x80000000",
                "mov {i}, #1",
                step!(),
                step!(),
                step!(),
                step!(),
                "ldr {a}, [{tp}]",
                "add {i}, {i}, {a}",
                "sub {i}, {i}, #16",
                tp = inout(reg) self as *const Self => _,
                lo = inout(reg) t as u32 => _,
                hi = inout(reg) (t >> 32) as u32 => _,
                i = out(reg) i,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack, readonly),
            );
        }
        i as u8
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
    fn block(&mut self, block: &RowBlock, sums: &[TokenSums]) {
        let (g, a) = (block.g, block.a);
        let rows = self.rows;
        let Some(out) = codes_from(self.out, rows, block.token0, block.j) else {
            return;
        };
        let tokens = out.chunks_mut(rows.max(1)).zip(sums);
        match &self.search {
            Some(search) => {
                for (dst, TokenSums { acc: acc_t, sb: s }) in tokens {
                    for_outputs(dst, g, acc_t, &block.bases, |o, x, base| {
                        *o = search.code(raw(x, a, s + base));
                    });
                }
            }
            None => {
                for (dst, TokenSums { acc: acc_t, sb: s }) in tokens {
                    for_outputs(dst, g, acc_t, &block.bases, |o, x, base| {
                        *o = gelu_code(raw(x, a, s + base), self.words);
                    });
                }
            }
        }
    }
}

/// `tdquant_core::int::IntKernels::linear_gelu` (the oracle's checks, then
/// its outputs through the GELU thresholds).
pub fn linear_gelu<W: I32Src + ?Sized, G: I32Src + ?Sized>(
    scratch: &mut LinearScratch,
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
    linear_with(scratch, call, &mut epi)
}

/// See the [module docs](self).
pub fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
    scratch: &mut LinearScratch,
    call: &LinearCall<'_, W>,
    emit: F,
) -> Result<(), OpError> {
    linear_with(scratch, call, &mut Emit(emit))
}

/// `tdquant_core::int::linear::linear_codes` (same checks).
pub fn linear_codes<W: I32Src + ?Sized>(
    scratch: &mut LinearScratch,
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
    linear_with(scratch, call, &mut epi)
}

/// `tdquant_core::int::linear::linear_stream`.
pub fn linear_stream<W: I32Src + ?Sized>(
    scratch: &mut LinearScratch,
    call: &LinearCall<'_, W>,
    pos: &[usize],
    stride: usize,
    r: &mut [i32],
) -> Result<(), OpError> {
    if stride < call.rows {
        // Rows can share places: the oracle's row-by-row order of updates.
        let frac = call.affine.frac;
        return linear(scratch, call, |t, j, v| {
            let at = pos
                .get(t)
                .map(|&p| p.saturating_mul(stride).saturating_add(j));
            if let Some(dst) = at.and_then(|at| r.get_mut(at)) {
                *dst = add_stream(*dst, rshift_round(v, frac));
            }
        });
    }
    let mut epi = Stream {
        r,
        pos,
        stride,
        frac: call.affine.frac,
    };
    linear_with(scratch, call, &mut epi)
}

fn linear_with<W: I32Src + ?Sized, E: Epilogue>(
    scratch: &mut LinearScratch,
    call: &LinearCall<'_, W>,
    epi: &mut E,
) -> Result<(), OpError> {
    call.check()?;
    let (input, k, weights, row0) = (call.input, call.k, call.weights, call.row0);
    let (rows, affine, c) = (call.rows, call.affine, call.c);

    let k4 = k / 4 * 4;
    // 4-bit weights without a tail decode straight from the packed bytes.
    let nibbles = weights.bits() == BitWidth::B4 && k4 == k;
    let LinearScratch {
        codes,
        group,
        tails,
        sums,
        xexp,
    } = scratch;
    let xexp_len = k4 / 2;
    for (block_index, block) in input.chunks(TOKEN_BLOCK * k).enumerate() {
        let token0 = block_index * TOKEN_BLOCK;
        let m = block.len() / k;
        for ((s, x), xe) in sums
            .iter_mut()
            .zip(block.chunks_exact(k))
            .zip(xexp.chunks_exact_mut(xexp_len.max(1)))
        {
            let sum = x.iter().fold(0i32, |a, &v| a + i32::from(v));
            s.sb = i64::from(sum) * affine.b;
            expand_codes(&x[..k4], xe);
        }
        let mut j = 0;
        while j < rows {
            let g = GROUP.min(rows - j);
            let wexp = &mut group.w;
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
            let sums = &mut sums[..m];
            dot4_block(&xexp[..m * xexp_len], group, k4 / 4, sums);
            if k4 < k {
                for (s, x) in sums.iter_mut().zip(block.chunks_exact(k)) {
                    for (i, &xv) in x[k4..].iter().enumerate() {
                        for (a, tail) in s.acc.iter_mut().zip(tails.iter()) {
                            *a += i32::from(xv) * i32::from(tail[i]);
                        }
                    }
                }
            }
            let mut bases = [0i64; GROUP];
            for (r, b) in bases.iter_mut().enumerate().take(g) {
                *b = i64::from(c.at(j + r)) << affine.c_shift;
            }
            let at = RowBlock {
                token0,
                j,
                g,
                bases,
                a: affine.a,
            };
            epi.block(&at, sums);
            j += g;
        }
    }
    Ok(())
}
