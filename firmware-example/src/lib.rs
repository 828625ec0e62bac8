//! Support code of the Cortex-M4 firmware binaries: the DSP kernels of the
//! integer SwinIR-light ([`kernels::DspKernels`]), the instruction clock
//! ([`clock`]) and the per-operator profiler ([`profile`]).
#![no_std]

pub mod clock;
pub mod dsp;
pub mod kernels;
pub mod parity;
pub mod profile;

/// SHA-256 digest as lowercase hex.
pub fn hex(digest: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 15)];
    }
    out
}

/// `var == Some(value)`, usable in a `const` (build-time `option_env!` switches).
pub const fn env_is(var: Option<&str>, value: &str) -> bool {
    let Some(var) = var else {
        return false;
    };
    let (a, b) = (var.as_bytes(), value.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Decimal digits as a `usize`, in a `const` (build-time sizes from `env!`).
pub const fn parse_usize(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0usize;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    v
}
