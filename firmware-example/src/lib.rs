//! Support code of the Cortex-M4 firmware binaries: the DSP kernels of the
//! integer SwinIR-light ([`kernels::DspKernels`]), the instruction clock
//! ([`clock`]) and the per-operator profiler ([`profile`]).
#![no_std]

pub mod clock;
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
