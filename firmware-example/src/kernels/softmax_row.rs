//! The three per-row loops of the softmax ([`super::attention::softmax_codes`])
//! as Cortex-M4 assembly: the logits and their maximum, the exponentials,
//! and the codes. Each is one `asm!` loop that keeps every operand in a
//! register; LLVM's versions spilled a third of their instructions to the
//! stack for want of them.
//!
//! A row's buffers live in one [`RowBuffers`], 512-byte aligned: a pointer
//! stepping 8 bytes through `z` ends the row exactly when its low 9 bits
//! are zero, which is the loops' exit test (a counter would take one
//! register too many), and `z` sits 512 bytes after `keys`, so the logit
//! loop stores through the key pointer.

use core::arch::asm;

use tdquant_core::int::exp2::{EXP2_LUT, LN2_Q32};
use tdquant_core::int::{RPB_ROWS, TOKENS, WINDOW};

/// Bias entries the window's rows reach below `rpb_index(i, 0)`: key
/// `(y, x)` reads `base − 15·y − x`, at most `15·7 + 7`.
pub const BIAS_REACH: usize = (2 * WINDOW - 1) * (WINDOW - 1) + WINDOW - 1;

/// One row's keys and logits (then exponentials), see the [module docs](self).
#[repr(C, align(512))]
pub struct RowBuffers {
    /// `kb_j·B` plus the mask of the row's label, per key.
    pub keys: [i64; TOKENS],
    /// The logits `z_j`; after [`exp2_row`], `e_j` in each low word.
    pub z: [i64; TOKENS],
}

const _: () = assert!(core::mem::size_of::<[i64; TOKENS]>() == 512);
const _: () = assert!(core::mem::offset_of!(RowBuffers, z) == 512);
const _: () = assert!(BIAS_REACH == 112 && RPB_ROWS == 225);
// `⌊h/3⌋ = (171·h) ≫ 9` for the `h = ⌊v2·v/2^32⌋ ≤ 42` of exp2_row.
const _: () = {
    let mut h = 0u32;
    while h <= 42 {
        assert!((171 * h) >> 9 == h / 3);
        h += 1;
    }
};

impl RowBuffers {
    pub const fn new() -> Self {
        Self {
            keys: [0; TOKENS],
            z: [0; TOKENS],
        }
    }

    /// `e_j` as [`exp2_row`] left it.
    #[inline(always)]
    pub fn exp(&self, j: usize) -> u32 {
        self.z[j % TOKENS] as u32
    }
}

impl Default for RowBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// `z_j = acc_j·A + keys_j + bias[base − 15·y_j − x_j]` for the 64 keys,
/// returning `max_j z_j`; `window` is `bias[base − BIAS_REACH..=base]`.
/// Wrapping `i64` arithmetic: `acc_j ≥ 0`, so `acc_j·A` is one `UMULL` by
/// `A`'s low word and one `MLA` by its high word modulo `2^64`, and every
/// true partial sum is below `2^62` in magnitude (oracle bounds), so the
/// result is the oracle's.
#[inline(always)]
pub fn logits_row(
    acc: &[i32; TOKENS],
    row: &mut RowBuffers,
    window: &[i64; BIAS_REACH + 1],
    a: i64,
) -> i64 {
    let (mut m_lo, mut m_hi) = (0u32, 0x8000_0000u32); // i64::MIN
    macro_rules! key {
        () => {
            concat!(
                "ldr {a}, [{accp}], #4\n",
                "umull {zl}, {zh}, {a}, {alo}\n",
                "mla {zh}, {a}, {ahi}, {zh}\n",
                "ldrd {a}, {kh}, [{keyp}], #8\n",
                "adds {zl}, {zl}, {a}\n",
                "adc {zh}, {zh}, {kh}\n",
                "ldrd {a}, {kh}, [{bp}], #-8\n",
                "adds {zl}, {zl}, {a}\n",
                "adc {zh}, {zh}, {kh}\n",
                "strd {zl}, {zh}, [{keyp}, #504]\n",
                "cmp {ml}, {zl}\n",
                "sbcs {a}, {mh}, {zh}\n",
                "itt lt\n",
                "movlt {ml}, {zl}\n",
                "movlt {mh}, {zh}\n",
            )
        };
    }
    // SAFETY: reads the 64 words of `acc`, the 64 `keys` (and writes the 64
    // `z` 512 bytes after each), and per window row y the 8 entries
    // `window[112 − 15y − 7..=112 − 15y]` (≥ 0 for y ≤ 7), all 8-aligned
    // as LDRD/STRD need; registers and flags otherwise.
    unsafe {
        asm!(
            "2:",
            key!(), key!(), key!(), key!(), key!(), key!(), key!(), key!(),
            // From bias[top − 8] to the next window row's top, top − 15.
            "sub {bp}, {bp}, #56",
            "subs {n}, {n}, #1",
            "bne 2b",
            accp = inout(reg) acc.as_ptr() => _,
            keyp = inout(reg) row.keys.as_mut_ptr() => _,
            bp = inout(reg) window.as_ptr().add(BIAS_REACH) => _,
            n = inout(reg) WINDOW as u32 => _,
            alo = in(reg) a as u32,
            ahi = in(reg) (a >> 32) as u32,
            ml = inout(reg) m_lo,
            mh = inout(reg) m_hi,
            a = out(reg) _,
            zl = out(reg) _,
            zh = out(reg) _,
            kh = out(reg) _,
            options(nostack),
        );
    }
    (i64::from(m_hi as i32) << 32) | i64::from(m_lo)
}

/// `e_j = exp2_neg_q31(m − z_j)` of the oracle (`m ≥ z_j`) into the low
/// word of each `z_j`, on 32-bit halves: with `d = m − z = hi·2^32 + lo`,
/// `e = 0` for `hi ≥ 32`, else with `i = lo ≫ 24`, `r = lo mod 2^24`:
///
/// * `v = (r·LN2 + 2^31) ≫ 32` = the `UMULL` high word + the low word's top bit;
/// * `v2 = (v·v) ≫ 33`, `v3 = ⌊⌊v2·v/2^32⌋ / 3⌋` (`(171·h) ≫ 9`, `h ≤ 42`);
/// * `q = v − v2 + v3 = 2^32 − p`, and `⌊(lut·p + 2^31)/2^32⌋ = lut −
///   ⌈(lut·q − 2^31)/2^32⌉ = lut − hi(lut·q) − [lo(lut·q) > 2^31]`, the
///   borrow of `RSBS`/`SBC`;
/// * `e = (g + (2^hi ≫ 1)) ≫ hi`.
#[inline(always)]
pub fn exp2_row(row: &mut RowBuffers, m: i64) {
    // SAFETY: reads and writes the 64 `z` (8-aligned for LDRD; the loop
    // ends when the pointer reaches the 512-aligned end) and reads
    // `EXP2_LUT[lo ≫ 24]` (< 256 entries); registers and flags otherwise.
    unsafe {
        asm!(
            "2:",
            "ldrd {dl}, {dh}, [{zp}], #8",
            "subs {dl}, {ml}, {dl}",
            "sbc {dh}, {mh}, {dh}",
            "cmp {dh}, #32",
            "bhs 3f",
            "bic {a}, {dl}, #0xFF000000",
            "umull {b}, {c}, {a}, {ln2}",
            "add {a}, {c}, {b}, lsr #31",
            "umull {b}, {c}, {a}, {a}",
            "lsr {c}, {c}, #1",
            "umull {b}, {d}, {c}, {a}",
            "sub {a}, {a}, {c}",
            "mul {d}, {d}, {k171}",
            "add {a}, {a}, {d}, lsr #9",
            "lsr {b}, {dl}, #24",
            "ldr {b}, [{lut}, {b}, lsl #2]",
            "umull {c}, {d}, {b}, {a}",
            "rsbs {c}, {c}, #0x80000000",
            "sbc {b}, {b}, {d}",
            "movs {c}, #1",
            "lsl {c}, {c}, {dh}",
            "add {b}, {b}, {c}, lsr #1",
            "lsr {b}, {b}, {dh}",
            "str {b}, [{zp}, #-8]",
            "lsls {c}, {zp}, #23",
            "bne 2b",
            "b 4f",
            "3:",
            "movs {b}, #0",
            "str {b}, [{zp}, #-8]",
            "lsls {c}, {zp}, #23",
            "bne 2b",
            "4:",
            zp = inout(reg) row.z.as_mut_ptr() => _,
            ml = in(reg) m as u32,
            mh = in(reg) (m >> 32) as u32,
            lut = in(reg) EXP2_LUT.as_ptr(),
            ln2 = in(reg) LN2_Q32 as u32,
            k171 = in(reg) 171u32,
            dl = out(reg) _,
            dh = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            d = out(reg) _,
            options(nostack),
        );
    }
}

/// `out[j] = zeros` where `e_j < first`, else `#{edges ≤ e_j}` by descending
/// the breadth-first tree `tree` (`tree[i]` for `1 ≤ i < 2^steps`, every
/// `e_j ≤ 2^31` below its padding): `CMP` sets the carry exactly when
/// `e ≥ tree[i]`, so `i ← 2i + [e ≥ tree[i]]` is one `ADC`.
macro_rules! codes_row {
    ($name:ident, $steps:literal, $($level:literal)*) => {
        #[inline(always)]
        pub fn $name(row: &RowBuffers, tree: &[u32; 256], first: u32, zeros: u8, out: &mut [u8; TOKENS]) {
            // SAFETY: reads the low words of the 64 `z` (the loop ends at
            // the 512-aligned end), `tree[1..2^steps]` (< 256) and writes
            // the 64 bytes of `out`; registers and flags otherwise.
            unsafe {
                asm!(
                    "2:",
                    "ldr {e}, [{zp}], #8",
                    "cmp {e}, {first}",
                    "bhs 3f",
                    "strb {zeros}, [{op}], #1",
                    "lsls {t}, {zp}, #23",
                    "bne 2b",
                    "b 5f",
                    "3:",
                    "mov {i}, #2",
                    "cmp {e}, {t1}",
                    "adc {i}, {i}, #0",
                    $(
                        concat!("ldr {t}, [{tree}, {i}, lsl #2] @ level ", $level, "\n",
                                "cmp {e}, {t}\n",
                                "adc {i}, {i}, {i}"),
                    )*
                    "sub {i}, {i}, #{full}",
                    "strb {i}, [{op}], #1",
                    "lsls {t}, {zp}, #23",
                    "bne 2b",
                    "5:",
                    zp = inout(reg) row.z.as_ptr() => _,
                    op = inout(reg) out.as_mut_ptr() => _,
                    tree = in(reg) tree.as_ptr(),
                    t1 = in(reg) tree[1],
                    first = in(reg) first,
                    zeros = in(reg) u32::from(zeros),
                    full = const 1u32 << $steps,
                    e = out(reg) _,
                    i = out(reg) _,
                    t = out(reg) _,
                    options(nostack),
                );
            }
        }
    };
}

codes_row!(codes_row_2, 2, "2");
codes_row!(codes_row_3, 3, "2" "3");
codes_row!(codes_row_4, 4, "2" "3" "4");
