//! Convolutions (core's `Conv::run`): `i16` patches × `i16` weights, per-tap
//! `i32` sums (exact for int8 weights) added in `i64`.

use tdquant_core::int::arith::clamp_i16;
use tdquant_core::int::conv::gather_patch;

use crate::cpu_backend::prepared::FastConv;

/// Output row `y` of `conv` on the `h × w` input, as core's `Conv::run`
/// emits it: `orow[x·cout + o]`.
#[inline(always)]
pub(crate) fn conv_row(
    conv: &FastConv,
    input: &[i32],
    h: usize,
    w: usize,
    y: usize,
    orow: &mut [i64],
) {
    let this = conv;
    let (cin, cout) = (this.cin, this.cout);
    let taps = 9 * cin;
    let mut patch = vec![0i16; taps];
    for x in 0..w {
        gather_patch(input, (h, w, cin), (y, x), &mut patch, |v| {
            clamp_i16(i64::from(v)) as i16
        });
        for (o, dst) in orow[x * cout..(x + 1) * cout].iter_mut().enumerate() {
            let wrow = &this.weights[o * taps..(o + 1) * taps];
            let acc = if this.small {
                patch
                    .chunks_exact(cin)
                    .zip(wrow.chunks_exact(cin))
                    .map(|(a, b)| i64::from(dot_i16(a, b)))
                    .sum::<i64>()
            } else {
                patch.iter().zip(wrow).fold(0i64, |acc, (&a, &b)| {
                    acc + i64::from(i32::from(a) * i32::from(b))
                })
            };
            *dst = this.output(o, acc);
        }
    }
}

/// `Σ a_i·b_i` in `i32` (callers keep it exact: see [`FastConv::small`]).
#[inline(always)]
pub(crate) fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| {
        acc.wrapping_add(i32::from(x) * i32::from(y))
    })
}
