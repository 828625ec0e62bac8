//! Seeded random and edge cases for the kernel parity firmware
//! (`bin/kernel_parity.rs`): each `check_*` runs one case through the DSP
//! kernel and the core oracle and returns whether they agree, reporting
//! the first difference over defmt.

pub mod cases;

/// xorshift64*: deterministic, seedable, no allocation.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.u64() % span) as i64
    }

    /// Uniform in `0..n` (`n ≥ 1`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    /// `true` with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.u64().is_multiple_of(n)
    }

    /// A signed value with `|v| ≤ 2^bits`, biased towards the extremes and 0.
    pub fn signed_bits(&mut self, bits: u32) -> i64 {
        let max = 1i64 << bits;
        match self.below(8) {
            0 => max,
            1 => -max,
            2 => 0,
            3 => self.range(-16, 16),
            _ => self.range(-max, max),
        }
    }

    /// A code `0..=levels`, or (one time in `wild`) any byte.
    pub fn code(&mut self, levels: u8, wild: u64) -> u8 {
        if self.one_in(wild) {
            self.u32() as u8
        } else {
            (self.u32() % (u32::from(levels) + 1)) as u8
        }
    }
}
