//! The Cortex-M4 DSP-extension instructions the kernels use: one inline
//! `asm!` each for those below, which only compute on registers, and the
//! dot-product loops ([`dot4_block`], [`dot2_i16_i8`], [`dot5_keys`], …),
//! which read their slices within bounds their callers' lengths are checked
//! against (each `SAFETY` comment says how). With the assembly row loops of
//! `kernels::softmax_row`, that is all the `unsafe` in the kernels.
//!
//! | function | instruction | result |
//! |---|---|---|
//! | [`smlad`] | `SMLAD` | `acc + x.lo·y.lo + x.hi·y.hi` (signed 16-bit halves, wrapping i32) |
//! | [`smlald`] | `SMLALD` | the same with an `i64` accumulator |
//! | [`uxtb16`] | `UXTB16` | bytes 0 and 2 zero-extended into the two halves |
//! | [`uxtb16_ror8`] | `UXTB16 …, ROR #8` | bytes 1 and 3 |
//! | [`sxtb16`] | `SXTB16` | bytes 0 and 2 sign-extended |
//! | [`sxtb16_ror8`] | `SXTB16 …, ROR #8` | bytes 1 and 3 |
//! | [`pkhbt`] | `PKHBT` | `lo.lo | hi.lo << 16` |
//! | [`usat`] | `USAT` | `x` clamped to `[0, 2^B − 1]` |
//! | [`usada8`] | `USADA8` | `acc + Σ|x.byte_i − y.byte_i|` |

use core::arch::asm;

/// `acc + x.lo·y.lo + x.hi·y.hi` (halves as `i16`; the sum wraps like `SMLAD`).
#[inline(always)]
pub fn smlad(x: u32, y: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only arithmetic.
    unsafe {
        asm!("smlad {r}, {x}, {y}, {a}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y,
             a = in(reg) acc, options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `acc + x.lo·y.lo + x.hi·y.hi` in 64 bits (halves as `i16`).
#[inline(always)]
pub fn smlald(x: u32, y: u32, acc: i64) -> i64 {
    let mut lo = acc as u32;
    let mut hi = (acc >> 32) as u32;
    // SAFETY: register-only arithmetic.
    unsafe {
        asm!("smlald {lo}, {hi}, {x}, {y}", lo = inout(reg) lo, hi = inout(reg) hi,
             x = in(reg) x, y = in(reg) y, options(pure, nomem, nostack, preserves_flags));
    }
    (i64::from(hi as i32) << 32) | i64::from(lo)
}

/// `pub fn $name(x: u32) -> u32`: the one register-only instruction `$insn`
/// (its operands named `{r}` and `{x}`).
macro_rules! unary_insn {
    ($(#[$doc:meta])* $name:ident = $insn:literal) => {
        $(#[$doc])*
        #[inline(always)]
        pub fn $name(x: u32) -> u32 {
            let r: u32;
            // SAFETY: register-only arithmetic.
            unsafe {
                asm!($insn, r = lateout(reg) r, x = in(reg) x,
                     options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
    };
}

unary_insn!(
    /// Bytes 0 and 2 of `x`, zero-extended into the low and high halves.
    uxtb16 = "uxtb16 {r}, {x}"
);
unary_insn!(
    /// Bytes 1 and 3 of `x`, zero-extended into the low and high halves.
    uxtb16_ror8 = "uxtb16 {r}, {x}, ror #8"
);
unary_insn!(
    /// Bytes 0 and 2 of `x`, sign-extended into the low and high halves.
    sxtb16 = "sxtb16 {r}, {x}"
);
unary_insn!(
    /// Bytes 1 and 3 of `x`, sign-extended into the low and high halves.
    sxtb16_ror8 = "sxtb16 {r}, {x}, ror #8"
);

/// `x` clamped to `[0, 2^B − 1]` (`B ≤ 31`).
#[inline(always)]
pub fn usat<const B: u32>(x: i32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic (USAT sets only the sticky Q flag,
    // which nothing reads).
    unsafe {
        asm!("usat {r}, #{b}, {x}", r = lateout(reg) r, b = const B, x = in(reg) x,
             options(pure, nomem, nostack));
    }
    r
}

/// `acc + Σ_i |x.byte_i − y.byte_i|` (unsigned bytes).
#[inline(always)]
pub fn usada8(x: u32, y: u32, acc: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic.
    unsafe {
        asm!("usada8 {r}, {x}, {y}, {a}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y,
             a = in(reg) acc, options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// The sum of the 64 bytes of `p`: one `USADA8` against zero per word.
#[inline(always)]
pub fn byte_sum(p: &[u8; 64]) -> u32 {
    p.chunks_exact(4).fold(0, |acc, b| {
        usada8(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), 0, acc)
    })
}

/// `lo`'s low half in the low half, `hi`'s low half in the high half.
#[inline(always)]
pub fn pkhbt(lo: u32, hi: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic.
    unsafe {
        asm!("pkhbt {r}, {l}, {h}, lsl #16", r = lateout(reg) r, l = in(reg) lo, h = in(reg) hi,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// The codes `x` (`4g` bytes) as `UXTB16` unpacks them, two words per
/// group of four: `out[2i] = x_4i | x_4i+2 << 16`,
/// `out[2i+1] = x_4i+1 | x_4i+3 << 16`. Fills the whole groups both hold.
#[inline(always)]
pub fn expand_codes(x: &[u8], out: &mut [u32]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(x.chunks_exact(4)) {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        pair[0] = uxtb16(v);
        pair[1] = uxtb16_ror8(v);
    }
}

/// Four weight rows expanded like the codes of [`expand_codes`],
/// `w[8i + 2r..8i + 2r + 2] = (c_r,4i | c_r,4i+2 << 16, c_r,4i+1 | c_r,4i+3 << 16)`
/// (`8` words per group of four inputs), with the token-loop state of
/// [`dot4_block`]'s generic path in front of them: that loop keeps twelve
/// operands in registers and reads the rest from `[w − 16]`.
#[repr(C, align(8))]
pub struct RowGroup<const WORDS: usize> {
    /// Address of the next [`TokenSums`].
    out: u32,
    /// Tokens still to do.
    tokens: u32,
    /// Groups of four inputs per token.
    groups: u32,
    _pad: u32,
    pub w: [u32; WORDS],
}

const _: () = assert!(core::mem::offset_of!(RowGroup<8>, w) == 16);

impl<const WORDS: usize> RowGroup<WORDS> {
    pub const fn new() -> Self {
        Self {
            out: 0,
            tokens: 0,
            groups: 0,
            _pad: 0,
            w: [0; WORDS],
        }
    }
}

impl<const WORDS: usize> Default for RowGroup<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

/// One token's four row sums, as [`dot4_block`] writes them, and its
/// `Σa·B` beside them (one 24-byte record, so an epilogue loop reaches both
/// from one pointer).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenSums {
    pub acc: [i32; 4],
    pub sb: i64,
}

impl TokenSums {
    pub const ZERO: Self = Self { acc: [0; 4], sb: 0 };
}

const _: () = assert!(core::mem::size_of::<TokenSums>() == 24);

/// `sums[t].acc[r] = Σ_i x_t,i·c_r,i` for the tokens `t < sums.len()` of `x`
/// (each `2·groups` words expanded by [`expand_codes`], one after the
/// other) and the four rows of `rows`: per group of four inputs one `LDRD`
/// of `x`, four of `w` and eight `SMLAD`. The network's two depths (15 and
/// 30 groups) run fully unrolled; any other runs a loop of two groups per
/// iteration. Does nothing unless `x` and `rows.w` hold every group of every
/// token.
#[inline(always)]
pub fn dot4_block<const WORDS: usize>(
    x: &[u32],
    rows: &mut RowGroup<WORDS>,
    groups: usize,
    sums: &mut [TokenSums],
) {
    let tokens = sums.len();
    let fits = tokens.checked_mul(2 * groups).is_some_and(|n| n <= x.len()) && 8 * groups <= WORDS;
    if tokens == 0 || !fits {
        return;
    }
    let out = sums.as_mut_ptr();
    match groups {
        // SAFETY (both arms): `x` holds 2·groups words per token and
        // `rows.w` 8·groups words (checked above); `out` has `tokens` records.
        15 => unsafe {
            dot4_unrolled!(x.as_ptr(), rows.w.as_ptr(), out, tokens;
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
        },
        30 => unsafe {
            dot4_unrolled!(x.as_ptr(), rows.w.as_ptr(), out, tokens;
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                21, 22, 23, 24, 25, 26, 27, 28, 29)
        },
        _ => dot4_loop(x, rows, groups, sums),
    }
}

/// One group of four inputs for [`dot4_block`]'s asm: one `LDRD` of `x`
/// (`{xp}`, post-incremented), then per row `r` one `LDRD` of its weight
/// pair and two multiply-accumulates into `{a_r}`. `start` begins the sums
/// with `SMUAD`, `add` adds to them; the weights are read at `post`
/// (`[{wp}], #8`, post-incremented) or at the immediate offset of group `q`
/// from `{wb}`.
macro_rules! dot4_group {
    ($op:ident, $at:tt) => {
        concat!(
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            dot4_group!(@row $op, $at, "a0", 0),
            dot4_group!(@row $op, $at, "a1", 8),
            dot4_group!(@row $op, $at, "a2", 16),
            dot4_group!(@row $op, $at, "a3", 24),
        )
    };
    (@row $op:ident, $at:tt, $a:literal, $r:literal) => {
        concat!(
            "ldrd {w0}, {w1}, ", dot4_group!(@at $at, $r), "\n",
            dot4_group!(@first $op, $a), "\n",
            "smlad {", $a, "}, {x1}, {w1}, {", $a, "}\n",
        )
    };
    (@at post, $r:literal) => { "[{wp}], #8" };
    (@at $q:literal, $r:literal) => { concat!("[{wb}, #(32*", $q, "+", $r, ")]") };
    (@first start, $a:literal) => { concat!("smuad {", $a, "}, {x0}, {w0}") };
    (@first add, $a:literal) => { concat!("smlad {", $a, "}, {x0}, {w0}, {", $a, "}") };
}
use dot4_group;

/// One token loop over a fixed number of groups, written out in full: the
/// first group starts the sums with `SMUAD`, each weight word is addressed
/// by its offset from the rows' base (`LDRD` reaches 1,020 bytes, 31
/// groups), and the loop keeps the output pointer and the token count in
/// registers, so a token costs its groups plus two `STRD`, `SUBS` and `BNE`.
/// `$q` lists the groups after the first.
macro_rules! dot4_unrolled {
    ($x:expr, $w:expr, $out:expr, $tokens:expr; $($q:literal),*) => {
        asm!(
            "2:",
            dot4_group!(start, 0),
            $(dot4_group!(add, $q),)*
            "strd {a0}, {a1}, [{out}], #8",
            "strd {a2}, {a3}, [{out}], #16",
            "subs {n}, {n}, #1",
            "bne 2b",
            xp = inout(reg) $x => _,
            wb = in(reg) $w,
            out = inout(reg) $out => _,
            n = inout(reg) $tokens => _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            w0 = out(reg) _,
            w1 = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            options(nostack),
        )
    };
}
use dot4_unrolled;

/// [`dot4_block`] for any group count: two groups per iteration (one before
/// the loop when their number is odd), with the token loop's state in
/// front of the rows. The caller has checked that `x` and `rows.w` hold
/// every group of every token and that there is at least one token.
#[inline(always)]
fn dot4_loop<const WORDS: usize>(
    x: &[u32],
    rows: &mut RowGroup<WORDS>,
    groups: usize,
    sums: &mut [TokenSums],
) {
    let tokens = sums.len();
    rows.out = sums.as_mut_ptr() as u32;
    rows.tokens = tokens as u32;
    rows.groups = groups as u32;
    // SAFETY: reads words 0..2·groups·tokens of `x` (checked above; the
    // tokens' words are consecutive) and per token words 0..8·groups of
    // `rows.w` (≤ WORDS, checked), both word-aligned as LDRD needs; reads
    // and writes the three state words before `rows.w` and writes the
    // `acc` of the `tokens` entries of `sums` through the state's pointer. LSRS puts bit
    // 0 of the group count in the carry and sets Z when no pair is left;
    // LDRD and SMLAD leave the flags alone.
    unsafe {
        asm!(
            "2:",
            "mov {wp}, {wb}",
            "ldr {n}, [{wb}, #-8]",
            "movs {a0}, #0",
            "movs {a1}, #0",
            "movs {a2}, #0",
            "movs {a3}, #0",
            "lsrs {n}, {n}, #1",
            "bcc 3f",
            dot4_group!(add, post),
            "3:",
            "beq 5f",
            "4:",
            dot4_group!(add, post),
            dot4_group!(add, post),
            "subs {n}, {n}, #1",
            "bne 4b",
            "5:",
            "ldrd {x0}, {x1}, [{wb}, #-16]",
            "strd {a0}, {a1}, [{x0}], #8",
            "strd {a2}, {a3}, [{x0}], #16",
            "subs {x1}, {x1}, #1",
            "strd {x0}, {x1}, [{wb}, #-16]",
            "bne 2b",
            xp = inout(reg) x.as_ptr() => _,
            wb = in(reg) (rows as *mut RowGroup<WORDS>).cast::<u32>().add(4),
            wp = out(reg) _,
            n = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            w0 = out(reg) _,
            w1 = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            options(nostack),
        );
    }
}

/// Two 64-bit dot products of 16-bit activation pairs `p`
/// (`p[2i] = a_4i | a_4i+2 << 16`, `p[2i+1] = a_4i+1 | a_4i+3 << 16`) with two
/// rows of int8 weights `w0`, `w1` (`4i..4i+4` per group): per group of four
/// taps one `LDRD`, two unaligned `LDR`, four `SXTB16` and four `SMLALD`.
/// Uses the whole groups all three hold.
#[inline(always)]
pub fn dot2_i16_i8(p: &[u32], w0: &[u8], w1: &[u8]) -> (i64, i64) {
    let groups = (p.len() / 2).min(w0.len() / 4).min(w1.len() / 4);
    let (mut l0, mut h0, mut l1, mut h1) = (0u32, 0u32, 0u32, 0u32);
    if groups > 0 {
        // SAFETY: reads 2·groups ≤ p.len() words of `p` (word-aligned as a
        // `[u32]`, as LDRD needs) and 4·groups ≤ len bytes of `w0` and `w1`
        // (unaligned LDR is allowed on the M4); writes registers and flags.
        unsafe {
            asm!(
                "2:",
                "ldrd {p0}, {p1}, [{pp}], #8",
                "ldr {w}, [{q0}], #4",
                "sxtb16 {we}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlald {l0}, {h0}, {p0}, {we}",
                "smlald {l0}, {h0}, {p1}, {w}",
                "ldr {w}, [{q1}], #4",
                "sxtb16 {we}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlald {l1}, {h1}, {p0}, {we}",
                "smlald {l1}, {h1}, {p1}, {w}",
                "subs {n}, {n}, #1",
                "bne 2b",
                pp = inout(reg) p.as_ptr() => _,
                q0 = inout(reg) w0.as_ptr() => _,
                q1 = inout(reg) w1.as_ptr() => _,
                n = inout(reg) groups => _,
                p0 = out(reg) _,
                p1 = out(reg) _,
                w = out(reg) _,
                we = out(reg) _,
                l0 = inout(reg) l0,
                h0 = inout(reg) h0,
                l1 = inout(reg) l1,
                h1 = inout(reg) h1,
                options(nostack, readonly),
            );
        }
    }
    (
        (i64::from(h0 as i32) << 32) | i64::from(l0),
        (i64::from(h1 as i32) << 32) | i64::from(l1),
    )
}

/// `acc[j] = Σ_d q_d·k_j,d` for 64 keys of one 10-code head, with `q` and
/// every key as five `lo | hi << 16` pairs: per key two `LDRD`, one `LDR`,
/// `SMUAD` + four `SMLAD` and one `STR`.
#[inline(always)]
pub fn dot5_keys(q: &[u32; 5], keys: &[[u32; 5]; 64], acc: &mut [i32; 64]) {
    // SAFETY: reads the 64·5 words of `keys` (word-aligned, as LDRD needs)
    // and writes the 64 words of `acc`; no other memory.
    unsafe {
        asm!(
            "2:",
            "ldrd {k0}, {k1}, [{kp}], #8",
            "smuad {a}, {q0}, {k0}",
            "smlad {a}, {q1}, {k1}, {a}",
            "ldrd {k0}, {k1}, [{kp}], #8",
            "smlad {a}, {q2}, {k0}, {a}",
            "smlad {a}, {q3}, {k1}, {a}",
            "ldr {k0}, [{kp}], #4",
            "smlad {a}, {q4}, {k0}, {a}",
            "str {a}, [{ap}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            kp = inout(reg) keys.as_ptr() => _,
            ap = inout(reg) acc.as_mut_ptr() => _,
            n = inout(reg) 64u32 => _,
            q0 = in(reg) q[0],
            q1 = in(reg) q[1],
            q2 = in(reg) q[2],
            q3 = in(reg) q[3],
            q4 = in(reg) q[4],
            k0 = out(reg) _,
            k1 = out(reg) _,
            a = out(reg) _,
            options(nostack),
        );
    }
}

/// Five `P·v` dot products over the 64 probabilities of one row:
/// `acc[d] += Σ_j p_j·v_j,d` for the five `d` whose pairs start at `v`,
/// with `v` laid out per group of four probabilities as 20 words (ten `d`
/// × `(v_4g | v_4g+2 << 16, v_4g+1 | v_4g+3 << 16)`) of which these five `d`
/// are the first ten words. Per group: one unaligned `LDR`, two `UXTB16`,
/// five `LDRD`, ten `SMLAD`.
#[inline(always)]
pub fn dot5_probs(p: &[u8; 64], v: &[u32], acc: &mut [i32; 5]) {
    let [mut a0, mut a1, mut a2, mut a3, mut a4] = *acc;
    if v.len() >= 15 * 20 + 10 {
        // SAFETY: reads the 64 bytes of `p` (unaligned LDR is allowed on the
        // M4) and, per group g < 16, words 20g..20g + 10 of `v` (checked
        // above; word-aligned as a `[u32]`); writes registers and flags.
        unsafe {
            asm!(
                "2:",
                "ldr {x}, [{pp}], #4",
                "uxtb16 {xe}, {x}",
                "uxtb16 {x}, {x}, ror #8",
                "ldrd {v0}, {v1}, [{vp}], #8",
                "smlad {a0}, {xe}, {v0}, {a0}",
                "smlad {a0}, {x}, {v1}, {a0}",
                "ldrd {v0}, {v1}, [{vp}], #8",
                "smlad {a1}, {xe}, {v0}, {a1}",
                "smlad {a1}, {x}, {v1}, {a1}",
                "ldrd {v0}, {v1}, [{vp}], #8",
                "smlad {a2}, {xe}, {v0}, {a2}",
                "smlad {a2}, {x}, {v1}, {a2}",
                "ldrd {v0}, {v1}, [{vp}], #8",
                "smlad {a3}, {xe}, {v0}, {a3}",
                "smlad {a3}, {x}, {v1}, {a3}",
                "ldrd {v0}, {v1}, [{vp}], #8",
                "smlad {a4}, {xe}, {v0}, {a4}",
                "smlad {a4}, {x}, {v1}, {a4}",
                "add {vp}, {vp}, #40",
                "subs {n}, {n}, #1",
                "bne 2b",
                pp = inout(reg) p.as_ptr() => _,
                vp = inout(reg) v.as_ptr() => _,
                n = inout(reg) 16u32 => _,
                x = out(reg) _,
                xe = out(reg) _,
                v0 = out(reg) _,
                v1 = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                a4 = inout(reg) a4,
                options(nostack, readonly),
            );
        }
    }
    *acc = [a0, a1, a2, a3, a4];
}
