//! One parity case per call: random (from the seeded [`Rng`]) or, for
//! `case < EDGES`, a hand-picked edge (extreme codes, odd lengths, the
//! largest shapes, invalid arguments). Each runs the DSP kernel and the core
//! oracle on the same inputs and compares results and errors with `==`.

use tdquant_core::int::attention::{AvCall, AvParams, QkParams, SoftmaxCall};
use tdquant_core::int::conv::{Conv, ConvWeights};
use tdquant_core::int::linear::{CodeAffine, LinearCall};
use tdquant_core::int::{IntKernels, LeI16, OpError, ScalarKernels, TOKENS};
use tdquant_core::packed::{pack_codes, PackedLayout, PackedMatrix};
use tdquant_core::BitWidth;

use super::Rng;
use crate::kernels::softmax_row::{exp2_row, RowBuffers};
use crate::kernels::DspKernels;

/// Hand-picked cases per kernel before the random ones.
pub const EDGES: u32 = 12;

/// Emitted `(index, channel, value)` triples of one run.
struct Emits {
    items: [(u32, u32, i64); 1024],
    n: usize,
}

impl Emits {
    fn new() -> Self {
        Emits {
            items: [(0, 0, 0); 1024],
            n: 0,
        }
    }
    fn push(&mut self, a: usize, b: usize, v: i64) {
        if let Some(slot) = self.items.get_mut(self.n) {
            *slot = (a as u32, b as u32, v);
        }
        self.n += 1;
    }
}

fn report_err(kernel: &str, case: u32, dsp: &Result<(), OpError>, oracle: &Result<(), OpError>) {
    defmt::error!(
        "MISMATCH kernel={=str} case={=u32}: result dsp={} oracle={}",
        kernel,
        case,
        defmt::Debug2Format(dsp),
        defmt::Debug2Format(oracle)
    );
}

/// Compares results and emitted sequences; reports the first difference.
fn same_emits(
    kernel: &str,
    case: u32,
    dsp: (&Result<(), OpError>, &Emits),
    oracle: (&Result<(), OpError>, &Emits),
) -> bool {
    if dsp.0 != oracle.0 {
        report_err(kernel, case, dsp.0, oracle.0);
        return false;
    }
    if dsp.1.n != oracle.1.n {
        defmt::error!(
            "MISMATCH kernel={=str} case={=u32}: {=usize} outputs, oracle {=usize}",
            kernel,
            case,
            dsp.1.n,
            oracle.1.n
        );
        return false;
    }
    let n = dsp.1.n.min(1024);
    for (i, (d, o)) in dsp.1.items[..n]
        .iter()
        .zip(&oracle.1.items[..n])
        .enumerate()
    {
        if d != o {
            defmt::error!(
                "MISMATCH kernel={=str} case={=u32} output #{=usize}: dsp ({=u32}, {=u32}, {=i64}) oracle ({=u32}, {=u32}, {=i64})",
                kernel, case, i, d.0, d.1, d.2, o.0, o.1, o.2
            );
            return false;
        }
    }
    true
}

/// Compares results and outputs; reports the first difference, the output
/// named by `item` and its index (`"byte #"` gives `byte #3`).
fn same_outputs<T: PartialEq + defmt::Format>(
    kernel: &str,
    item: &str,
    case: u32,
    dsp: (&Result<(), OpError>, &[T]),
    oracle: (&Result<(), OpError>, &[T]),
) -> bool {
    if dsp.0 != oracle.0 {
        report_err(kernel, case, dsp.0, oracle.0);
        return false;
    }
    for (i, (d, o)) in dsp.1.iter().zip(oracle.1).enumerate() {
        if d != o {
            defmt::error!(
                "MISMATCH kernel={=str} case={=u32} {=str}{=usize}: dsp {} oracle {}",
                kernel,
                case,
                item,
                i,
                d,
                o
            );
            return false;
        }
    }
    true
}

fn bits(rng: &mut Rng) -> BitWidth {
    [BitWidth::B2, BitWidth::B3, BitWidth::B4][rng.below(3)]
}

/// Packed linear layer with the correction terms, `emit` interface.
pub fn linear(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    linear_mode(dsp, rng, case, 0)
}

/// The linear layer producing codes (q, k, v).
pub fn linear_codes(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    linear_mode(dsp, rng, case, 1)
}

/// The linear layer added to the residual stream (proj, fc2).
pub fn linear_stream(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    linear_mode(dsp, rng, case, 2)
}

/// fc1 with the GELU-threshold quantizer.
pub fn linear_gelu(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    linear_mode(dsp, rng, case, 3)
}

/// A GELU threshold table (`4N` words) for outputs like `ts`: nested as a
/// real one (levels that always count, two-sided intervals, then
/// left-unbounded ones, growing), or arbitrary (not nested) values; bounds
/// are often outputs themselves (or ±1), so ties with `t` occur.
fn gelu_table(rng: &mut Rng, ts: &[i64], table: &mut [i32; 4 * 20]) -> usize {
    let n = [1usize, 3, 7, 15, 16, 17, 20][rng.below(7)];
    let pick = |rng: &mut Rng| -> i64 {
        if ts.is_empty() || rng.one_in(4) {
            rng.signed_bits(40)
        } else {
            ts[rng.below(ts.len())] + rng.range(-1, 1)
        }
    };
    let mut hl = [(0i64, 0i64); 20];
    if rng.one_in(4) {
        for p in hl[..n].iter_mut() {
            *p = (pick(rng), pick(rng));
        }
    } else {
        let always = rng.below(n + 1).min(rng.below(4));
        let one_sided = n - always - rng.below(n - always + 1);
        let (mut lo, mut hi) = (pick(rng), pick(rng));
        if lo > hi {
            core::mem::swap(&mut lo, &mut hi);
        }
        for (k, p) in hl[..n].iter_mut().enumerate() {
            if k < always {
                *p = (i64::MIN, i64::MIN);
                continue;
            }
            *p = (hi, if k >= one_sided { i64::MIN } else { lo });
            let (l2, h2) = (pick(rng), pick(rng));
            lo = lo.min(l2.min(h2));
            hi = hi.max(l2.max(h2));
        }
    }
    for (k, &(h, l)) in hl[..n].iter().enumerate() {
        table[4 * k] = h as u32 as i32;
        table[4 * k + 1] = (h >> 32) as i32;
        table[4 * k + 2] = l as u32 as i32;
        table[4 * k + 3] = (l >> 32) as i32;
    }
    4 * n
}

fn linear_mode(dsp: &mut DspKernels, rng: &mut Rng, case: u32, mode: u32) -> bool {
    let bw = bits(rng);
    let levels = bw.levels();
    let k = match case {
        0 | 6 => 128,
        1 => 1,
        2 => 3,
        3 => 5,
        4 => 127,
        5 => 60,
        7 => 120,
        // A third of the random cases take the network's depths (and their
        // 1–3 input tails), which run dot4_block's unrolled paths.
        _ if rng.one_in(3) => [60, 120][rng.below(2)] + rng.below(4),
        _ => rng.range(1, 128) as usize,
    };
    let total_rows = rng.range(1, 12) as usize;
    let row0 = rng.below(total_rows);
    let rows = if case == 8 {
        0
    } else {
        rng.range(1, (total_rows - row0) as i64) as usize
    };
    let m = match case {
        0 | 6 => 70,
        5 => 65,
        7 => 64,
        9 => 0,
        _ => rng.range(1, 70) as usize,
    };
    let extreme = case == 0 || case == 6;
    let mut codes = [0u8; 12 * 128];
    for c in codes[..total_rows * k].iter_mut() {
        *c = if extreme {
            levels
        } else {
            (rng.u32() % (u32::from(levels) + 1)) as u8
        };
    }
    let layout = PackedLayout::new(bw, total_rows as u32, k as u32);
    let mut packed = [0u8; 12 * 128];
    let len = layout.byte_len().unwrap_or(0);
    if pack_codes(layout, &codes[..total_rows * k], &mut packed[..len]).is_err() {
        defmt::error!("linear case {=u32}: packing failed", case);
        return false;
    }
    let Ok(weights) = PackedMatrix::new(layout, &packed[..len]) else {
        defmt::error!("linear case {=u32}: packed matrix rejected", case);
        return false;
    };
    let mut input = [0u8; 70 * 128];
    let mut in_len = m * k;
    for x in input[..in_len].iter_mut() {
        *x = if extreme { 255 } else { rng.code(levels, 8) };
    }
    let mut affine = if rng.one_in(2) {
        CodeAffine {
            a: rng.signed_bits(38),
            b: rng.signed_bits(38),
            c_shift: rng.range(0, 29) as u32,
            frac: rng.range(0, 62) as u32,
        }
    } else {
        // Realistic scale: t/2^frac spans about [−L, 2L], so the rounding
        // (ties included) and both clamps are exercised.
        let frac = rng.range(20, 48) as u32;
        let unit = (1i64 << frac) / (k as i64 * i64::from(levels) + 1);
        let unit = unit.clamp(1, 1 << 38);
        CodeAffine {
            a: rng.range(-unit / 4, 2 * unit),
            b: rng.range(-unit / 8, unit / 8),
            c_shift: frac - 20,
            frac,
        }
    };
    let mut c = [0i32; 13];
    let c_span = i64::from(levels) << 20;
    for v in c.iter_mut() {
        *v = if affine.c_shift + 20 == affine.frac {
            rng.range(-c_span, c_span) as i32
        } else {
            rng.u32() as i32
        };
    }
    let mut c_len = rows;
    let mut k_arg = k;
    match case {
        10 => affine.a = (1 << 38) + 1,
        11 => k_arg = 129,
        _ if rng.one_in(60) => in_len += 1,
        _ if rng.one_in(60) => c_len += 1,
        _ => {}
    }
    let input = &input[..in_len.min(70 * 128)];
    let c = &c[..c_len];
    let w = &weights;
    let call = LinearCall::new(input, k_arg, w, row0 as u32, rows, &affine, c);
    match mode {
        0 => {
            let mut got = Emits::new();
            let mut want = Emits::new();
            let rd = dsp.linear(&call, |t, j, v| got.push(t, j, v));
            let ro = ScalarKernels.linear(&call, |t, j, v| want.push(t, j, v));
            same_emits("linear", case, (&rd, &got), (&ro, &want))
        }
        1 => {
            // Code outputs (q/k/v): frac ≥ 33 takes the high-word path.
            let mut got = [0xC3u8; 70 * 12 + 1];
            let mut want = [0xC3u8; 70 * 12 + 1];
            let tokens = input.len().checked_div(k_arg).unwrap_or(0);
            let o_len = (tokens * rows + usize::from(rng.one_in(60))).min(70 * 12 + 1);
            let lv = if rng.one_in(4) {
                rng.u32() as u8
            } else {
                levels
            };
            let (g, o) = (&mut got[..o_len], &mut want[..o_len]);
            let rd = dsp.linear_codes(&call, lv, g);
            let ro = ScalarKernels.linear_codes(&call, lv, o);
            same_outputs("linear_codes", "byte #", case, (&rd, &got), (&ro, &want))
        }
        3 => {
            // fc1 → GELU codes; the thresholds come from the outputs.
            let mut ts = Emits::new();
            let _ = ScalarKernels.linear(&call, |t, j, v| ts.push(t, j, v));
            let mut vals = [0i64; 64];
            let nv = ts.n.min(ts.items.len());
            for (dst, item) in vals
                .iter_mut()
                .zip(ts.items[..nv].iter().step_by(nv / 64 + 1))
            {
                *dst = item.2;
            }
            let nvals = nv.div_ceil(nv / 64 + 1).min(64);
            let mut table = [0i32; 4 * 20];
            let t_len = gelu_table(rng, &vals[..nvals], &mut table);
            let table = &table[..t_len];
            let mut got = [0xC3u8; 70 * 12 + 1];
            let mut want = [0xC3u8; 70 * 12 + 1];
            let tokens = input.len().checked_div(k_arg).unwrap_or(0);
            let o_len = (tokens * rows).saturating_sub(usize::from(rng.one_in(30)));
            let o_len = o_len.min(70 * 12 + 1);
            let (g, o) = (&mut got[..o_len], &mut want[..o_len]);
            let rd = dsp.linear_gelu(&call, table, g);
            let ro = ScalarKernels.linear_gelu(&call, table, o);
            same_outputs("linear_gelu", "byte #", case, (&rd, &got), (&ro, &want))
        }
        _ => {
            // Stream outputs (proj/fc2) at scattered token positions.
            let stride = rows + rng.below(4);
            let mut pos = [0usize; 70];
            for p in pos.iter_mut() {
                *p = rng.below(80);
            }
            let n_pos = rng.range(0, 70) as usize;
            let mut got = [0i32; 80 * 16];
            // The stream range, and now and then any i32 (saturating sums).
            let wide = rng.one_in(8);
            for v in got.iter_mut() {
                *v = if wide {
                    rng.u32() as i32
                } else {
                    rng.range(-(1 << 24), 1 << 24) as i32
                };
            }
            let mut want = got;
            let pos = &pos[..n_pos];
            let rd = dsp.linear_stream(&call, pos, stride, &mut got);
            let ro = ScalarKernels.linear_stream(&call, pos, stride, &mut want);
            same_outputs("linear_stream", "word #", case, (&rd, &got), (&ro, &want))
        }
    }
}

/// `q·kᵀ` + bias + mask → softmax → AttnProb codes.
pub fn softmax(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    let levels = [3u8, 7, 15][rng.below(3)];
    let stride = match case {
        0 => 10,
        1 => 64,
        _ => rng.range(10, 64) as usize,
    };
    let mut col = rng.range(0, (stride - 10) as i64) as usize;
    let mut q = [0u8; 64 * 64];
    let mut k = [0u8; 64 * 64];
    let wild = if case == 2 { 1 } else { 20 };
    for (a, b) in q[..64 * stride].iter_mut().zip(k[..64 * stride].iter_mut()) {
        *a = rng.code(levels, wild);
        *b = rng.code(levels, wild);
    }
    let scale = rng.range(16, 40) as u32;
    let mut qk = QkParams {
        a: if case == 3 {
            1 << 40
        } else {
            rng.range(-(1 << scale), 1 << scale)
        },
        b: if case == 3 {
            -(1 << 40)
        } else {
            rng.signed_bits(scale)
        },
        rpb_shift: if case == 3 {
            40
        } else {
            rng.range(0, 40) as u32
        },
    };
    let mut rpb = [0u8; 450];
    for b in rpb.iter_mut() {
        *b = rng.u32() as u8;
    }
    let mut labels = [0u8; TOKENS];
    for l in labels.iter_mut() {
        *l = if case == 4 { 3 } else { rng.below(9) as u8 };
    }
    if case == 5 {
        // The runner's labels: the corner window of a shifted 16×16 map
        // (four regions, each a run of consecutive tokens within a row).
        let mut pos = [0usize; TOKENS];
        tdquant_core::int::runner::window_tokens(1, 1, 16, 16, true, &mut pos, &mut labels);
    }
    let masked = case == 4 || case == 5 || rng.one_in(2);
    let n = match case {
        6 => 1,
        7 => 15,
        8 => 0,
        _ => [1usize, 3, 7, 15, 20][rng.below(5)],
    };
    // Room for 20 levels and the odd extra word of case 11.
    let mut thresholds = [0i32; 41];
    let sorted = !rng.one_in(4);
    let (l, s) = (rng.range(-(1 << 28), 1 << 28), rng.range(1, 1 << 27));
    for (kk, pair) in thresholds[..2 * n].chunks_exact_mut(2).enumerate() {
        let t = if sorted {
            l + (2 * kk as i64 + 1) * s / 2
        } else {
            rng.signed_bits(40)
        };
        pair[0] = t as u32 as i32;
        pair[1] = (t >> 32) as i32;
    }
    let mut t_len = 2 * n;
    match case {
        9 => qk.a = (1 << 40) + 1,
        10 => col = stride - 9,
        11 => t_len += 1,
        _ => {}
    }
    let mask = masked.then_some(&labels[..]);
    let th = &thresholds[..t_len];
    let mut got = [0xA5u8; 64 * 64];
    let mut want = [0xA5u8; 64 * 64];
    let rpb = LeI16::new(&rpb);
    let (q, k) = (&q[..64 * stride], &k[..64 * stride]);
    let call = SoftmaxCall {
        q,
        k,
        stride,
        col,
        qk: &qk,
        rpb,
        labels: mask,
        thresholds: th,
    };
    let rd = dsp.softmax_codes(&call, &mut got);
    let ro = ScalarKernels.softmax_codes(&call, &mut want);
    same_outputs("softmax", "byte #", case, (&rd, &got), (&ro, &want))
}

/// `P·v` → ProjInput codes.
pub fn av(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    // Half the random cases at a realistic scale, where the codes are not
    // saturated and the rounding and the clamp both matter.
    let realistic = case > 4 && rng.one_in(2);
    let levels = match case {
        0 => 255,
        1 => 1,
        _ if realistic => [3u8, 7, 15, 255][rng.below(4)],
        _ => rng.range(1, 255) as u8,
    };
    let stride = rng.range(10, 64) as usize;
    let mut col = rng.range(0, (stride - 10) as i64) as usize;
    let out_stride = rng.range((col + 10) as i64, 64) as usize;
    let mut probs = [0u8; 64 * 64];
    let mut v = [0u8; 64 * 64];
    let extreme = case == 0 || case == 2;
    for p in probs.iter_mut() {
        *p = if extreme { 255 } else { rng.code(15, 10) };
    }
    for x in v[..64 * stride].iter_mut() {
        *x = if extreme { 255 } else { rng.code(15, 10) };
    }
    let mut av = if realistic {
        // acc ≤ 64·15·15 = 14,400: t/2^frac spans about [−N/2, 2N].
        let frac = rng.range(20, 48) as u32;
        let full = i64::from(levels) << frac;
        let unit = (full / 14_400).clamp(1, 1 << 37);
        AvParams {
            a: rng.range(-unit / 4, 2 * unit),
            b: rng.range(-unit / 16, unit / 16),
            c: rng.range(-unit / 16, unit / 16),
            d: rng.range(-full / 2, full / 2),
            frac,
        }
    } else {
        AvParams {
            a: rng.signed_bits(38),
            b: rng.signed_bits(44),
            c: rng.signed_bits(44),
            d: rng.signed_bits(60),
            frac: rng.range(0, 62) as u32,
        }
    };
    match case {
        3 => av.d = (1 << 60) + 1,
        4 => col = stride - 9,
        _ => {}
    }
    let mut got = [0x5Au8; 64 * 64];
    let mut want = [0x5Au8; 64 * 64];
    let o_len = 64 * out_stride;
    let vv = &v[..64 * stride];
    let call = AvCall {
        probs: &probs,
        v: vv,
        stride,
        col,
        av: &av,
        levels,
        out_stride,
    };
    let rd = dsp.av_codes(&call, &mut got[..o_len]);
    let ro = ScalarKernels.av_codes(&call, &mut want[..o_len]);
    same_outputs("av", "byte #", case, (&rd, &got), (&ro, &want))
}

/// 3×3 convolution, int8 weights, 64-bit accumulation, requantization.
pub fn conv(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    let cin = match case {
        0 | 1 => 64,
        2 => 3,
        3 => 1,
        _ => rng.range(1, 64) as usize,
    };
    let cout = match case {
        0 | 1 => 64,
        4 => 1,
        5 => 63,
        _ => rng.range(1, 64) as usize,
    };
    let (h, w) = match case {
        0 => (3, 2),
        6 => (1, 1),
        7 => (1, 7),
        _ => {
            let h = rng.range(1, 4) as usize;
            (h, rng.range(1, (8 / h) as i64) as usize)
        }
    };
    let mut weights = [0u8; 64 * 9 * 64];
    let wl = cout * 9 * cin;
    for (i, b) in weights[..wl].iter_mut().enumerate() {
        *b = match case {
            0 => 0x80,
            1 => 0x7F + (i as u8 & 1),
            _ => rng.u32() as u8,
        };
    }
    let mut quant = [0i32; 64 * 3];
    for q in quant[..cout * 3].chunks_exact_mut(3) {
        q[0] = rng.range(1 << 30, (1 << 31) - 1) as i32;
        q[1] = if rng.one_in(10) {
            [-63, 95][rng.below(2)]
        } else {
            rng.range(-20, 40) as i32
        };
        q[2] = rng.u32() as i32;
    }
    let mut input = [0i32; 8 * 64];
    let mut in_len = h * w * cin;
    for x in input[..in_len].iter_mut() {
        *x = match case {
            0 => i32::MIN,
            1 => 32767,
            _ if rng.one_in(10) => rng.u32() as i32,
            _ => rng.range(-32768, 32767) as i32,
        };
    }
    if case == 8 {
        in_len -= 1;
    }
    if case == 9 {
        quant[0] = 5; // multiplier not normalised: the requantizer is refused
    }
    let conv = Conv {
        cin,
        cout,
        weights: ConvWeights::I8(&weights[..wl]),
        quant: &quant[..cout * 3],
    };
    let mut got = Emits::new();
    let mut want = Emits::new();
    let input = &input[..in_len];
    let rd = dsp.conv(&conv, input, h, w, |p, o, v| got.push(p, o, v));
    let ro = ScalarKernels.conv(&conv, input, h, w, |p, o, v| want.push(p, o, v));
    same_emits("conv", case, (&rd, &got), (&ro, &want))
}

/// LayerNorm `x̂` (Q24).
pub fn normalize(dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    let n = match case {
        0 | 1 => 64,
        2 => 1,
        3 => 60,
        4 => 2,
        _ => rng.range(1, 64) as usize,
    };
    let mut x = [0i32; 64];
    let spread = rng.range(0, 24) as u32;
    let centre = rng.range(-(1 << 24), 1 << 24);
    for v in x[..n].iter_mut() {
        *v = match case {
            0 => [i32::MAX, i32::MIN][rng.below(2)],
            1 => [1 << 24, -(1 << 24)][rng.below(2)],
            5 => 12345,
            _ if rng.one_in(50) => rng.u32() as i32,
            _ => (centre + rng.range(-(1 << spread), 1 << spread)) as i32,
        };
    }
    let mut eps = match case {
        6 => 1,
        7 => 1 << 40,
        _ => {
            let top = rng.range(0, 40);
            rng.range(1, 1 << top)
        }
    };
    let (mut n_arg, mut out_len) = (n, n);
    match case {
        8 => eps = 0,
        9 => eps = (1 << 40) + 1,
        10 => out_len = n - 1,
        11 => {
            n_arg = 0;
            out_len = 0;
        }
        _ => {}
    }
    let mut got = [0x1234_5678i32; 64];
    let mut want = [0x1234_5678i32; 64];
    let rd = dsp.normalize(&x[..n_arg], eps, &mut got[..out_len]);
    let ro = ScalarKernels.normalize(&x[..n_arg], eps, &mut want[..out_len]);
    same_outputs("normalize", "channel ", case, (&rd, &got), (&ro, &want))
}

/// A row of softmax exponentials (the assembly on 32-bit halves) against
/// the oracle's `u64` `exp2_neg_q31(m − z_j)`. Edge cases put one
/// hand-picked `d = m − z` in every key (cycling through the list); random
/// ones draw each `d` at a random scale.
pub fn exp2(_dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    const PICKED: [u64; 10] = [
        0,
        0xFFFF_FFFF,
        1 << 32,
        (31 << 32) | 0xFFFF_FFFF,
        32 << 32,
        (1 << 62) - 1,
        0x00FF_FFFF,
        0x0100_0000,
        (5 << 32) | 0x8000_0000,
        (5 << 32) | 0x8000_0001,
    ];
    let m = match case {
        0 => 0,
        1 => (1 << 61) - 1,
        2 => -(1 << 61),
        _ => rng.range(-(1 << 61), 1 << 61),
    };
    let mut d = [0u64; TOKENS];
    for (j, dj) in d.iter_mut().enumerate() {
        *dj = if case < EDGES {
            PICKED[(j + case as usize) % PICKED.len()]
        } else {
            rng.u64() >> rng.range(2, 63)
        };
    }
    let mut row = RowBuffers::new();
    for (z, &dj) in row.z.iter_mut().zip(&d) {
        // |m| ≤ 2^61 and d < 2^62: no overflow.
        *z = m - dj as i64;
    }
    exp2_row(&mut row, m);
    let mut got = [0u32; TOKENS];
    let mut want = [0u32; TOKENS];
    for (j, (g, w)) in got.iter_mut().zip(want.iter_mut()).enumerate() {
        *g = row.exp(j);
        *w = tdquant_core::int::exp2::exp2_neg_q31(d[j]);
    }
    same_outputs("exp2", "key ", case, (&Ok(()), &got), (&Ok(()), &want))
}

/// The LayerNorm reciprocal square root against `isqrt(⌊2^122/T⌋)`.
pub fn rho(_dsp: &mut DspKernels, rng: &mut Rng, case: u32) -> bool {
    let t: u64 = match case {
        0 => 1,
        1 => 2,
        2 => 3,
        3 => 4,
        4 => (1 << 63) - 1,
        5 => 1 << 62,
        6 => (1 << 62) - 1,
        7 => 1 << 40,
        8 => (1 << 40) + 1,
        9 => 12345 * 12345,
        10 => 12345 * 12345 - 1,
        11 => 33_554_432,
        _ => (rng.u64() >> rng.range(1, 63)).max(1),
    };
    let got = crate::kernels::layernorm::rho(t);
    let want = tdquant_core::int::arith::isqrt_u128((1u128 << 122) / u128::from(t)) as u64;
    if got != want {
        defmt::error!(
            "MISMATCH kernel=rho case={=u32} T={=u64}: dsp {=u64} oracle {=u64}",
            case,
            t,
            got,
            want
        );
    }
    got == want
}
