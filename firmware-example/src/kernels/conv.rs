//! 3×3 convolutions with int8 weights (`tdquant_core::int::conv::Conv::run`,
//! same checks, same `emit` order; int16 weights run the oracle itself).
//!
//! Per output pixel the 3×3 neighbourhood is gathered once, clamped to
//! `i16` and packed into pairs laid out as `SXTB16` unpacks four weights
//! (`a0 | a2 << 16`, `a1 | a3 << 16`); each group of four taps of two output
//! channels is then two word loads, four `SXTB16` and four `SMLALD`. The
//! accumulator is 64-bit, as in the oracle, so it is exact for any weights;
//! a sum that fits `i32` (nearly all) is requantized by the 64-bit
//! `apply_i32`, which returns exactly what the oracle's `i128` `apply_i64` does.

use tdquant_core::int::conv::{gather_patch, Conv, ConvWeights, MAX_CIN};
use tdquant_core::int::{I32Src, OpError};
use tdquant_core::requant::Requantizer;

use crate::dsp::dot2_i16_i8;

/// Most taps (`9·MAX_CIN`).
const MAX_TAPS: usize = 9 * MAX_CIN;

#[inline(always)]
fn clamp_i16(v: i32) -> i32 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// The scalar remainder (`taps mod 4`) of one weight row.
#[inline(always)]
fn tail(patch: &[i32], w: &[u8]) -> i64 {
    patch
        .iter()
        .zip(w)
        .fold(0i64, |a, (&x, &wb)| a + i64::from(x * i32::from(wb as i8)))
}

/// `requant.apply_i64(acc)`, by the 64-bit `apply_i32` (which returns
/// exactly that) when the sum fits `i32`, as it nearly always does.
#[inline(always)]
fn requantized(requant: &Requantizer, acc: i64) -> i64 {
    match i32::try_from(acc) {
        Ok(acc) => requant.apply_i32(acc),
        Err(_) => requant.apply_i64(acc),
    }
}

/// See the [module docs](self).
pub fn run<W: I32Src, F: FnMut(usize, usize, i64)>(
    conv: &Conv<'_, W>,
    input: &[i32],
    h: usize,
    w: usize,
    mut emit: F,
) -> Result<(), OpError> {
    let bytes = match conv.weights {
        ConvWeights::I8(bytes) => bytes,
        ConvWeights::I16(_) => return conv.run(input, h, w, emit),
    };
    conv.check(input.len(), h, w)?;
    let (requant, bias) = conv.channel_constants()?;
    let cin = conv.cin;
    let taps = 9 * cin;
    let t4 = taps / 4 * 4;
    let mut patch = [0i32; MAX_TAPS];
    let mut pairs = [0u32; MAX_TAPS / 2];
    for y in 0..h {
        for x in 0..w {
            gather_patch(input, (h, w, cin), (y, x), &mut patch, clamp_i16);
            for (pq, aq) in pairs[..t4 / 2]
                .chunks_exact_mut(2)
                .zip(patch[..t4].chunks_exact(4))
            {
                pq[0] = (aq[0] as u32 & 0xFFFF) | (aq[2] as u32) << 16;
                pq[1] = (aq[1] as u32 & 0xFFFF) | (aq[3] as u32) << 16;
            }
            let pixel = y * w + x;
            let pairs = &pairs[..t4 / 2];
            let mut o = 0;
            while o < conv.cout {
                let row0 = &bytes[o * taps..(o + 1) * taps];
                let row1 = if o + 1 < conv.cout {
                    &bytes[(o + 1) * taps..(o + 2) * taps]
                } else {
                    row0
                };
                let (mut a0, mut a1) = dot2_i16_i8(pairs, &row0[..t4], &row1[..t4]);
                a0 += tail(&patch[t4..taps], &row0[t4..]);
                a1 += tail(&patch[t4..taps], &row1[t4..]);
                emit(
                    pixel,
                    o,
                    requantized(&requant[o], a0).saturating_add(bias[o]),
                );
                if o + 1 < conv.cout {
                    let v = requantized(&requant[o + 1], a1);
                    emit(pixel, o + 1, v.saturating_add(bias[o + 1]));
                }
                o += 2;
            }
        }
    }
    Ok(())
}
