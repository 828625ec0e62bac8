//! A fast CPU path for the integer model: the same arithmetic as the scalar
//! oracle ([`tdquant_core::int::runner::upscale`]), byte for byte, with the
//! packed weights and little-endian constants decoded once into native
//! vectors and the work spread over threads (rayon).
//!
//! Only loops and data layout change; every value is the same integer
//! expression as in the oracle. Core's functions are called directly where
//! they are not hot (`normalize`, LayerNorm output, `FixedQuant::code`,
//! `av_codes`, requantizers, `CodeAffine::t`, `exp2_neg_q31`); the hot ones
//! are restated here on pre-decoded constants:
//!
//! * linears: weights transposed to `k × rows` `i16`, a token's accumulators
//!   built by contiguous multiply-adds (in `i16` when `max code² · k` fits,
//!   else `i32`; both exact) — then `CodeAffine::t` as in core;
//! * softmax: the relative-position bias pre-shifted per head, thresholds
//!   decoded to `i64`; GELU thresholds decoded to `(H, L)` pairs;
//! * convolutions: `i16` patches × `i16` weights, per-tap `i32` sums (exact
//!   for int8 weights) added in `i64`; output rows in parallel;
//! * attention: windows in parallel (disjoint), `proj` outputs buffered and
//!   added back pixel-parallel through the inverse window map;
//! * MLP: blocks of 64 tokens in parallel (tokens are independent);
//! * hot loops are compiled twice, with AVX2 enabled when the CPU has it
//!   (`is_x86_feature_detected!`), else the portable build.
//!
//! Where the CPU has AVX-512 (F, BW, DQ, VL, VNNI) and the model allows it
//! (weight, key and value codes `≤ 127`, i.e. up to 7 bits), attention, MLP
//! and convolutions run on explicit kernels instead (section "The AVX-512
//! path" below): `vpdpbusd`/`vpdpwssd` dot products of codes, an 8-lane
//! `exp2_neg_q31`, the AttnProb and GELU codes by 4-step binary searches on
//! sorted thresholds, LayerNorm with `x̂` in `i64` instead of `i128`, the
//! attention windows updating the stream in place (they partition the
//! pixels) and the large buffers kept between calls. Each kernel states why
//! it is exact; `set_simd(false)` selects the portable path.
//!
//! The tests in `host/tests/int_fast.rs` compare the outputs of both paths
//! with the oracle; the unit tests below compare each AVX-512 kernel with
//! core's scalar operator (proptest, `==`).

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use tdquant_core::int::arith::{
    ceil_shift_i128, clamp_code, clamp_i16, clamp_stream, fits_bits, rshift_round,
};
use tdquant_core::int::attention::{av_codes, rpb_index, MASK_Z, PROB_FRAC};
use tdquant_core::int::conv::Conv;
use tdquant_core::int::exp2::exp2_neg_q31;
use tdquant_core::int::layernorm::{normalize, FixedQuant, LnParams};
use tdquant_core::int::linear::{sum_codes, CodeAffine};
use tdquant_core::int::model::{BlockParams, INPUT_GAIN, PIXEL_FRAC};
use tdquant_core::int::runner::window_tokens;
use tdquant_core::int::{
    I32Src, IntModel, LeI32, BLOCKS, DEPTH, EMBED, HEADS, HEAD_DIM, LAYERS, MLP, RPB_ROWS, SHIFT,
    TOKENS, WINDOW,
};
use tdquant_core::packed::PackedMatrix;
use tdquant_core::requant::Requantizer;

/// A convolution with its weights and requantizers decoded.
struct FastConv {
    cin: usize,
    cout: usize,
    /// `cout × 9·cin` weights (int8 or int16 in the file; both fit `i16`).
    weights: Vec<i16>,
    /// All weights fit `i8`: a tap's `cin ≤ 64` products (`|·| ≤ 2^15·2^7`)
    /// sum exactly in `i32` (`< 2^28`).
    small: bool,
    requant: Vec<Requantizer>,
    bias: Vec<i64>,
    /// The weights for `vpdpwssd` (see [`ConvV`]), when allowed.
    v: Option<ConvV>,
}

impl FastConv {
    fn new(conv: &Conv<'_, LeI32<'_>>) -> Result<Self> {
        conv.validate()
            .map_err(|e| anyhow!("conv parameters: {e}"))?;
        let n = conv.cout * 9 * conv.cin;
        let weights = (0..n)
            .map(|i| i16::try_from(conv.weights.at(i)).map_err(|_| anyhow!("conv weight range")))
            .collect::<Result<Vec<_>>>()?;
        let small = weights.iter().all(|&w| i8::try_from(w).is_ok());
        let requant = (0..conv.cout)
            .map(|o| conv.requantizer(o).map_err(|e| anyhow!("conv: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let bias: Vec<i64> = (0..conv.cout).map(|o| conv.bias(o)).collect();
        let mut v = ConvV::new(&weights, conv.cin, conv.cout);
        if let Some(cv) = v.as_mut() {
            cv.epi = ConvEpi::new(&requant, &bias, cv.cout_pad);
        }
        Ok(Self {
            cin: conv.cin,
            cout: conv.cout,
            weights,
            small,
            requant,
            bias,
            v,
        })
    }

    /// `v[p·cout + o]` exactly as `Conv::run` emits it, rows in parallel.
    /// `padded`: scratch for the zero-bordered `i16` input.
    /// `simd`: allow the AVX-512 kernel.
    fn run(
        &self,
        input: &[i32],
        h: usize,
        w: usize,
        out: &mut [i64],
        padded: &mut Vec<i16>,
        simd: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(cv) = self.v.as_ref().filter(|_| simd && simd_available()) {
            let (cin, cp) = (self.cin, cv.cin_pad);
            let wp = w + 2;
            let padded = sized(padded, (h + 2) * wp * cp);
            padded
                .par_chunks_mut(wp * cp)
                .enumerate()
                .for_each(|(yy, prow)| {
                    // The zero border (the buffer is reused).
                    if yy == 0 || yy > h {
                        prow.fill(0);
                        return;
                    }
                    prow[..cp].fill(0);
                    prow[(w + 1) * cp..].fill(0);
                    let src = &input[(yy - 1) * w * cin..yy * w * cin];
                    for (dpx, spx) in prow[cp..(w + 1) * cp]
                        .chunks_exact_mut(cp)
                        .zip(src.chunks_exact(cin))
                    {
                        for (d, &v) in dpx.iter_mut().zip(spx) {
                            *d = clamp_i16(i64::from(v)) as i16;
                        }
                        dpx[cin..].fill(0);
                    }
                });
            out.par_chunks_mut(w * self.cout)
                .enumerate()
                .for_each(|(y, orow)| {
                    // SAFETY: `simd_available()` checked the CPU features.
                    unsafe { conv_row_v(self, cv, padded, w, y, orow) };
                });
            return;
        }
        out.par_chunks_mut(w * self.cout)
            .enumerate()
            .for_each(|(y, orow)| {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    unsafe { self.row_avx2(input, h, w, y, orow) };
                    return;
                }
                self.row(input, h, w, y, orow);
            });
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn row_avx2(&self, input: &[i32], h: usize, w: usize, y: usize, orow: &mut [i64]) {
        self.row(input, h, w, y, orow);
    }

    /// Output row `y`.
    #[inline(always)]
    fn row(&self, input: &[i32], h: usize, w: usize, y: usize, orow: &mut [i64]) {
        let (cin, cout) = (self.cin, self.cout);
        let taps = 9 * cin;
        let mut patch = vec![0i16; taps];
        for x in 0..w {
            for (tap, chunk) in patch.chunks_exact_mut(cin).enumerate() {
                let (yy, xx) = ((y + tap / 3).checked_sub(1), (x + tap % 3).checked_sub(1));
                match (yy, xx) {
                    (Some(yy), Some(xx)) if yy < h && xx < w => {
                        let start = (yy * w + xx) * cin;
                        for (dst, &src) in chunk.iter_mut().zip(&input[start..start + cin]) {
                            *dst = clamp_i16(i64::from(src)) as i16;
                        }
                    }
                    _ => chunk.fill(0),
                }
            }
            for (o, dst) in orow[x * cout..(x + 1) * cout].iter_mut().enumerate() {
                let wrow = &self.weights[o * taps..(o + 1) * taps];
                let acc = if self.small {
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
                *dst = self.requant[o].apply_i64(acc).saturating_add(self.bias[o]);
            }
        }
    }
}

/// `Σ a_i·b_i` in `i32` (callers keep it exact: see [`FastConv::small`]).
#[inline(always)]
fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| {
        acc.wrapping_add(i32::from(x) * i32::from(y))
    })
}

/// Per-block constants, decoded.
struct FastBlock<'a> {
    p: BlockParams<'a>,
    c_q: Vec<i32>,
    c_k: Vec<i32>,
    c_v: Vec<i32>,
    c_proj: Vec<i32>,
    c_fc1: Vec<i32>,
    c_fc2: Vec<i32>,
    /// The AttnProb decision levels `T_k` (`prob` as i64).
    levels_t: Vec<i64>,
    /// Per head, `R[h, rpi(i, j)] << rpb_shift` for the 64 × 64 pairs.
    bias: Vec<i64>,
    /// GELU thresholds `(H_k, L_k)`.
    gelu_hl: Vec<(i64, i64)>,
    lq: Lin,
    lk: Lin,
    lv: Lin,
    lproj: Lin,
    lfc1: Lin,
    lfc2: Lin,
    /// The same block for the AVX-512 path (`None` when a weight code or
    /// the activation width does not allow it).
    v: Option<VBlock>,
}

fn decode(v: &LeI32<'_>) -> Vec<i32> {
    (0..v.len()).map(|i| v.at(i)).collect()
}

/// The integer model with its weights decoded for fast execution.
pub struct FastIntModel<'a> {
    model: IntModel<'a>,
    /// Buffers of earlier calls, for reuse.
    pool: std::sync::Mutex<Vec<Buffers>>,
    /// Use the AVX-512 (VNNI) kernels for attention and MLP.
    simd: bool,
    /// Use them for the convolutions (each checks its own conditions).
    conv_simd: bool,
    blocks: Vec<FastBlock<'a>>,
    conv_first: FastConv,
    rstb_conv: Vec<FastConv>,
    conv_after_body: FastConv,
    upsample: FastConv,
}

fn unpack(m: &PackedMatrix<'_>) -> Result<Vec<u8>> {
    let n = (m.rows() as usize) * (m.cols() as usize);
    let mut out = vec![0u8; n];
    m.unpack_into(&mut out)
        .map_err(|e| anyhow!("unpacking weights: {e:?}"))?;
    Ok(out)
}

impl<'a> FastIntModel<'a> {
    /// Decodes `model` (a validated integer model).
    pub fn new(model: &IntModel<'a>) -> Result<Self> {
        let w_attn = unpack(model.w_attn())?;
        let w_fc1 = unpack(model.w_fc1())?;
        let w_fc2 = unpack(model.w_fc2())?;
        let levels = model.bits().levels();
        let blocks = (0..BLOCKS)
            .map(|i| {
                let p = model.block(i);
                // softmax_head relies on these (core's softmax_codes checks them per call).
                p.qk.validate().map_err(|e| anyhow!("block {i}: {e}"))?;
                if !p.prob.len().is_multiple_of(2)
                    || (0..p.prob.len() / 2).any(|k| !fits_bits(p.prob.at_i64(2 * k), 40))
                    || p.rpb.len() != HEADS * RPB_ROWS
                {
                    bail!("block {i}: attention constants out of range");
                }
                let attn = |m: usize| {
                    let row0 = (i * 4 + m) * EMBED;
                    &w_attn[row0 * EMBED..(row0 + EMBED) * EMBED]
                };
                let gelu_levels = u8::try_from(p.gelu.len() / 4).unwrap_or(u8::MAX);
                let v = VBlock::new(
                    &p,
                    |m| attn(m),
                    &w_fc1[i * MLP * EMBED..(i + 1) * MLP * EMBED],
                    &w_fc2[i * EMBED * MLP..(i + 1) * EMBED * MLP],
                    levels,
                );
                Ok(FastBlock {
                    v,
                    lq: Lin::new(attn(0), EMBED, EMBED, p.fq_q.levels),
                    lk: Lin::new(attn(1), EMBED, EMBED, p.fq_k.levels),
                    lv: Lin::new(attn(2), EMBED, EMBED, p.fq_v.levels),
                    lproj: Lin::new(attn(3), EMBED, EMBED, levels),
                    lfc1: Lin::new(
                        &w_fc1[i * MLP * EMBED..(i + 1) * MLP * EMBED],
                        EMBED,
                        MLP,
                        p.fq_fc1.levels,
                    ),
                    lfc2: Lin::new(
                        &w_fc2[i * EMBED * MLP..(i + 1) * EMBED * MLP],
                        MLP,
                        EMBED,
                        gelu_levels,
                    ),
                    c_q: decode(&p.c_q),
                    c_k: decode(&p.c_k),
                    c_v: decode(&p.c_v),
                    c_proj: decode(&p.c_proj),
                    c_fc1: decode(&p.c_fc1),
                    c_fc2: decode(&p.c_fc2),
                    levels_t: (0..p.prob.len() / 2)
                        .map(|k| p.prob.at_i64(2 * k))
                        .collect(),
                    bias: (0..HEADS * TOKENS * TOKENS)
                        .map(|n| {
                            let (h, i, j) =
                                (n / (TOKENS * TOKENS), n / TOKENS % TOKENS, n % TOKENS);
                            let rpb = p.rpb.sub(h * RPB_ROWS, RPB_ROWS);
                            i64::from(rpb.at(rpb_index(i, j))) << p.qk.rpb_shift
                        })
                        .collect(),
                    gelu_hl: (0..(p.gelu.len() / 4).min(255))
                        .map(|k| (p.gelu.at_i64(4 * k), p.gelu.at_i64(4 * k + 2)))
                        .collect(),
                    p,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let simd = simd_available() && blocks.iter().all(|b| b.v.is_some());
        Ok(Self {
            model: *model,
            pool: std::sync::Mutex::new(Vec::new()),
            simd,
            conv_simd: simd_available(),
            blocks,
            conv_first: FastConv::new(model.conv_first())?,
            rstb_conv: (0..LAYERS)
                .map(|l| FastConv::new(&model.rstb_conv(l)))
                .collect::<Result<_>>()?,
            conv_after_body: FastConv::new(model.conv_after_body())?,
            upsample: FastConv::new(model.upsample())?,
        })
    }

    /// Turns the AVX-512 kernels off (`false`) or back on where the CPU and
    /// the model allow them (`true`); both paths give the same bytes.
    pub fn set_simd(&mut self, on: bool) {
        self.simd = on && simd_available() && self.blocks.iter().all(|b| b.v.is_some());
        self.conv_simd = on && simd_available();
    }

    /// Whether the AVX-512 kernels are in use.
    pub fn simd(&self) -> bool {
        self.simd
    }

    /// Upscale factor.
    pub fn scale(&self) -> usize {
        self.model.scale()
    }

    /// Upscales an `h × w` RGB image exactly as
    /// [`tdquant_core::int::runner::upscale`] does; returns the
    /// `(s·h) × (s·w)` RGB bytes.
    pub fn upscale(&self, img: &[u8], h: usize, w: usize) -> Result<Vec<u8>> {
        if h == 0 || w == 0 {
            bail!("empty image");
        }
        if img.len() != h * w * 3 {
            bail!("input: expected {} bytes, got {}", h * w * 3, img.len());
        }
        let model = &self.model;
        let (hp, wp) = (pad8(h), pad8(w));
        let pixels = hp * wp;
        let map = pixels * EMBED;
        // Large buffers are kept between calls (fresh ones cost page faults).
        let mut bufs = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let Buffers {
            v,
            input,
            f0,
            r,
            r0,
            a,
            padded,
        } = &mut bufs;
        let v = sized(v, map.max(pixels * self.upsample.cout));

        // Input conversion and conv_first.
        let offsets = model.input_offset();
        let input = sized(input, pixels * 3);
        for (p, px) in input.chunks_exact_mut(3).enumerate() {
            let sy = mirror(p / wp, h);
            let sx = mirror(p % wp, w);
            let src = (sy * w + sx) * 3;
            for (c, d) in px.iter_mut().enumerate() {
                *d = INPUT_GAIN * i32::from(img[src + c]) - offsets[c];
            }
        }
        self.conv_first
            .run(input, hp, wp, &mut v[..map], padded, self.conv_simd);
        let f0 = sized(f0, map);
        f0.par_iter_mut()
            .zip(v[..map].par_iter())
            .for_each(|(d, &x)| *d = clamp_stream(x));
        let r = sized(r, map);
        r.copy_from_slice(f0);
        layer_norm_stream(model.pe_norm(), r)?;

        let a = sized(a, map);
        let r0 = sized(r0, map);
        // Every window writes all of its `proj` outputs: reused by every block.
        let mut deltas = if self.simd {
            Vec::new()
        } else {
            vec![0i64; map]
        };
        for l in 0..LAYERS {
            r0.par_chunks_mut(1 << 16)
                .zip(r.par_chunks(1 << 16))
                .for_each(|(d, s)| d.copy_from_slice(s));
            for b in 0..DEPTH {
                let index = l * DEPTH + b;
                self.attention(index, r, hp, wp, &mut deltas)?;
                self.mlp(index, r)?;
            }
            to_i16(r, a, model.rstb_shift(l));
            self.rstb_conv[l].run(a, hp, wp, &mut v[..map], padded, self.conv_simd);
            add_skip(r, &v[..map], r0);
        }
        layer_norm_stream(model.norm(), r)?;
        to_i16(r, a, model.cab_shift());
        self.conv_after_body
            .run(a, hp, wp, &mut v[..map], padded, self.conv_simd);
        add_skip(r, &v[..map], f0);
        to_i16(r, a, model.up_shift());

        let cout = self.upsample.cout;
        let up = &mut v[..pixels * cout];
        self.upsample.run(a, hp, wp, up, padded, self.conv_simd);
        let s = model.scale();
        let s2 = s * s;
        let out_w = w * s * 3;
        let mut out = vec![0u8; h * s * out_w];
        out.par_chunks_mut(s * out_w)
            .enumerate()
            .for_each(|(y, orows)| {
                for x in 0..w {
                    let p = y * wp + x;
                    for (o, &val) in up[p * cout..(p + 1) * cout].iter().enumerate() {
                        let (c, sub) = (o / s2, o % s2);
                        let (i, j) = (sub / s, sub % s);
                        let pixel = rshift_round(val, PIXEL_FRAC).clamp(0, 255) as u8;
                        orows[i * out_w + (x * s + j) * 3 + c] = pixel;
                    }
                }
            });
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(bufs);
        }
        Ok(out)
    }

    /// The attention branch of block `index`: windows in parallel, then the
    /// buffered `proj` outputs added to the stream.
    fn attention(
        &self,
        index: usize,
        r: &mut [i32],
        hp: usize,
        wp: usize,
        deltas: &mut [i64],
    ) -> Result<()> {
        let nwx = wp / WINDOW;
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(vb)) = (self.simd, &self.blocks[index].v) {
            let stream = SharedStream(r.as_mut_ptr(), r.len());
            (0..hp / WINDOW * nwx).into_par_iter().for_each_init(
                || Box::new(WinScratch::new()),
                |scratch, win| {
                    // SAFETY: `simd` is only set when the CPU has the features;
                    // the windows touch disjoint pixels (see `SharedStream`).
                    unsafe { self.window_v(index, vb, &stream, hp, wp, win, scratch) }
                },
            );
            return Ok(());
        }
        let rr: &[i32] = r;
        deltas
            .par_chunks_mut(TOKENS * EMBED)
            .enumerate()
            .try_for_each(|(win, delta)| {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { self.window_avx2(index, rr, hp, wp, win, delta) };
                }
                self.window(index, rr, hp, wp, win, delta)
            })?;
        // Every pixel is token `t` of exactly one window (`window_tokens`
        // reads pixel ((8wy + t/8 + shift) mod hp, (8wx + t%8 + shift) mod wp)):
        // invert that map and add its `proj` output.
        let shift = if self.blocks[index].p.shifted {
            SHIFT
        } else {
            0
        };
        r.par_chunks_mut(EMBED).enumerate().for_each(|(p, px)| {
            let (y, x) = (p / wp, p % wp);
            let (ry, rx) = ((y + hp - shift) % hp, (x + wp - shift) % wp);
            let win = ry / WINDOW * nwx + rx / WINDOW;
            let t = ry % WINDOW * WINDOW + rx % WINDOW;
            let at = (win * TOKENS + t) * EMBED;
            for (dst, &v) in px.iter_mut().zip(&deltas[at..at + EMBED]) {
                *dst = clamp_stream(i64::from(*dst) + i64::from(clamp_stream(v)));
            }
        });
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn window_avx2(
        &self,
        index: usize,
        r: &[i32],
        hp: usize,
        wp: usize,
        win: usize,
        delta: &mut [i64],
    ) -> Result<()> {
        self.window(index, r, hp, wp, win, delta)
    }

    /// One attention window of block `index`: writes the `proj` outputs
    /// (`rshift_round(t, frac)`) of its 64 tokens to `delta`.
    #[inline(always)]
    fn window(
        &self,
        index: usize,
        rr: &[i32],
        hp: usize,
        wp: usize,
        win: usize,
        delta: &mut [i64],
    ) -> Result<()> {
        let fb = &self.blocks[index];
        let bp = &fb.p;
        let levels = self.model.bits().levels();
        let nwx = wp / WINDOW;
        let (wy, wx) = (win / nwx, win % nwx);
        let mut pos = [0usize; TOKENS];
        let mut labels = [0u8; TOKENS];
        window_tokens(wy, wx, hp, wp, bp.shifted, &mut pos, &mut labels);
        let mut qin = [0u8; TOKENS * EMBED];
        let mut kin = [0u8; TOKENS * EMBED];
        let mut vin = [0u8; TOKENS * EMBED];
        let mut xhat = [0i32; EMBED];
        for (t, &p) in pos.iter().enumerate() {
            normalize(&rr[p * EMBED..(p + 1) * EMBED], bp.ln1.eps_t, &mut xhat)
                .map_err(|e| anyhow!("{e}"))?;
            for (c, &xh) in xhat.iter().enumerate() {
                let y = bp.ln1.output(c, xh);
                let at = t * EMBED + c;
                qin[at] = bp.fq_q.code(y);
                kin[at] = bp.fq_k.code(y);
                vin[at] = bp.fq_v.code(y);
            }
        }
        let mut qc = [0u8; TOKENS * EMBED];
        let mut kc = [0u8; TOKENS * EMBED];
        let mut vc = [0u8; TOKENS * EMBED];
        let mut oc = [0u8; TOKENS * EMBED];
        let mut probs = [0u8; TOKENS * TOKENS];
        linear_codes(&qin, &fb.lq, &bp.aff_q, &fb.c_q, levels, &mut qc);
        linear_codes(&kin, &fb.lk, &bp.aff_k, &fb.c_k, levels, &mut kc);
        linear_codes(&vin, &fb.lv, &bp.aff_v, &fb.c_v, levels, &mut vc);
        let mask = bp.shifted.then_some(&labels[..]);
        for h in 0..HEADS {
            let col = h * HEAD_DIM;
            softmax_head(&qc, &kc, col, fb, h, mask, &mut probs);
            av_codes(&probs, &vc, EMBED, col, &bp.av, levels, &mut oc, EMBED)
                .map_err(|e| anyhow!("{e}"))?;
        }
        let frac = bp.aff_proj.frac;
        linear(&oc, &fb.lproj, &bp.aff_proj, &fb.c_proj, |t, j, v| {
            delta[t * EMBED + j] = rshift_round(v, frac);
        });
        Ok(())
    }

    /// [`Self::window`] on the AVX-512 kernels.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    fn window_v(
        &self,
        index: usize,
        vb: &VBlock,
        stream: &SharedStream,
        hp: usize,
        wp: usize,
        win: usize,
        scratch: &mut WinScratch,
    ) {
        let fb = &self.blocks[index];
        let shifted = fb.p.shifted;
        let nwx = wp / WINDOW;
        let (wy, wx) = (win / nwx, win % nwx);
        let mut pos = [0usize; TOKENS];
        let mut labels = [0u8; TOKENS];
        window_tokens(wy, wx, hp, wp, shifted, &mut pos, &mut labels);
        let WinScratch {
            qin,
            kin,
            vin,
            qc,
            kc,
            vc,
            oc,
            probs,
        } = scratch;
        let mut y = [0i64; EMBED];
        assert!(hp * wp * EMBED <= stream.1);
        // SAFETY: pixel p < hp·wp belongs to this window only.
        let token =
            |p: usize| unsafe { core::slice::from_raw_parts(stream.0.add(p * EMBED), EMBED) };
        // All statistics first: the tokens' long dependency chains overlap.
        let mut stats = [LnStats::default(); TOKENS];
        for (st, &p) in stats.iter_mut().zip(&pos) {
            *st = ln_stats(token(p), vb.ln1.eps_t);
        }
        for (t, (&p, st)) in pos.iter().zip(&stats).enumerate() {
            ln_apply(token(p), st, &vb.ln1, &mut y);
            let at = t * EMBED..(t + 1) * EMBED;
            quant_token(&vb.fq_q, &y, &mut qin[at.clone()]);
            quant_token(&vb.fq_k, &y, &mut kin[at.clone()]);
            quant_token(&vb.fq_v, &y, &mut vin[at]);
        }
        let levels = vb.levels;
        for (input, lin, out) in [
            (&qin[..], &vb.lq, &mut qc[..]),
            (&kin[..], &vb.lk, &mut kc[..]),
            (&vin[..], &vb.lv, &mut vc[..]),
        ] {
            let frac = lin.frac;
            // SAFETY: the features are enabled on this function.
            unsafe {
                linear_v(input, lin, |t, tr| {
                    for (o, &x) in out[t * EMBED..(t + 1) * EMBED].iter_mut().zip(tr) {
                        *o = code_of(rsr(x, frac), levels);
                    }
                });
            }
        }
        let sm = SoftmaxV {
            a: vb.qk_a,
            b: vb.qk_b,
            levels_t: &fb.levels_t[..fb.levels_t.len().min(255)],
            search: vb.prob_search,
            th: core::array::from_fn(|k| fb.levels_t.get(k).map_or(0, |&t| t >> 20)),
            tl: core::array::from_fn(|k| fb.levels_t.get(k).map_or(0, |&t| t & 0xF_FFFF)),
        };
        let mask = shifted.then_some(&labels);
        for h in 0..HEADS {
            let col = h * HEAD_DIM;
            let bias = &fb.bias[h * TOKENS * TOKENS..(h + 1) * TOKENS * TOKENS];
            softmax_head_v(&qc[..], &kc[..], col, &sm, bias, mask, &mut probs[..]);
            av_head_v(&probs[..], &vc[..], col, &vb.av, levels, &mut oc[..]);
        }
        let frac = vb.lproj.frac;
        // SAFETY: the features are enabled on this function.
        unsafe {
            linear_v(&oc[..], &vb.lproj, |t, tr| {
                // SAFETY (of the enclosing block): pixel pos[t] < hp·wp
                // belongs to this window only.
                let px = core::slice::from_raw_parts_mut(stream.0.add(pos[t] * EMBED), EMBED);
                for (d, &x) in px.iter_mut().zip(tr) {
                    *d = clamp_stream(i64::from(*d) + i64::from(clamp_stream(rsr(x, frac))));
                }
            });
        }
    }

    /// The MLP branch of block `index`, 64 tokens per task.
    fn mlp(&self, index: usize, r: &mut [i32]) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(vb)) = (self.simd, &self.blocks[index].v) {
            r.par_chunks_mut(TOKENS * EMBED).for_each_init(
                || Box::new(([0u8; TOKENS * EMBED], [0u8; TOKENS * MLP])),
                |scratch, chunk| {
                    let (fc1in, hidden) = &mut **scratch;
                    // SAFETY: `simd` is only set when the CPU has the features.
                    unsafe { mlp_chunk_v(vb, chunk, fc1in, hidden) };
                },
            );
            return Ok(());
        }
        r.par_chunks_mut(TOKENS * EMBED).try_for_each(|chunk| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { self.mlp_chunk_avx2(index, chunk) };
            }
            self.mlp_chunk(index, chunk)
        })
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn mlp_chunk_avx2(&self, index: usize, chunk: &mut [i32]) -> Result<()> {
        self.mlp_chunk(index, chunk)
    }

    /// The MLP on up to 64 tokens of block `index`.
    #[inline(always)]
    fn mlp_chunk(&self, index: usize, chunk: &mut [i32]) -> Result<()> {
        let fb = &self.blocks[index];
        let bp = &fb.p;
        let frac = bp.aff_fc2.frac;
        let n = chunk.len() / EMBED;
        let mut fc1in = vec![0u8; n * EMBED];
        let mut xhat = [0i32; EMBED];
        for t in 0..n {
            normalize(&chunk[t * EMBED..(t + 1) * EMBED], bp.ln2.eps_t, &mut xhat)
                .map_err(|e| anyhow!("{e}"))?;
            for (c, &xh) in xhat.iter().enumerate() {
                fc1in[t * EMBED + c] = bp.fq_fc1.code(bp.ln2.output(c, xh));
            }
        }
        let mut hidden = vec![0u8; n * MLP];
        let gelu = &fb.gelu_hl[..];
        linear(&fc1in, &fb.lfc1, &bp.aff_fc1, &fb.c_fc1, |t, j, v| {
            hidden[t * MLP + j] = gelu_fast(v, gelu);
        });
        linear(&hidden, &fb.lfc2, &bp.aff_fc2, &fb.c_fc2, |t, j, v| {
            add_to_stream(chunk, t * EMBED + j, rshift_round(v, frac));
        });
        Ok(())
    }
}

/// Core's `softmax_codes` for head `h` (same expressions, bias and
/// thresholds pre-decoded; the arguments were checked by the oracle's
/// function on head 0 of the window).
#[inline(always)]
fn softmax_head(
    q: &[u8],
    k: &[u8],
    col: usize,
    fb: &FastBlock<'_>,
    h: usize,
    labels: Option<&[u8]>,
    probs: &mut [u8],
) {
    let qk = &fb.p.qk;
    let mut keys = [[0u8; HEAD_DIM]; TOKENS];
    let mut kb = [0i64; TOKENS];
    for (j, (key, s)) in keys.iter_mut().zip(kb.iter_mut()).enumerate() {
        key.copy_from_slice(&k[j * EMBED + col..j * EMBED + col + HEAD_DIM]);
        *s = key.iter().map(|&b| i64::from(b)).sum();
    }
    // `kb_j·B`, the same i64 product for every query row.
    let kbb: [i64; TOKENS] = core::array::from_fn(|j| kb[j] * qk.b);
    let levels = fb.levels_t.len().min(255);
    let mut edges = [0i64; 255];
    let bias = &fb.bias[h * TOKENS * TOKENS..(h + 1) * TOKENS * TOKENS];
    for (i, row) in probs.chunks_exact_mut(TOKENS).enumerate() {
        let query = &q[i * EMBED + col..i * EMBED + col + HEAD_DIM];
        let brow = &bias[i * TOKENS..(i + 1) * TOKENS];
        let mut z = [0i64; TOKENS];
        for (j, zj) in z.iter_mut().enumerate() {
            // 10 products of codes < 2^8: the i32 sum is exact (< 2^20).
            let acc: i32 = query
                .iter()
                .zip(&keys[j])
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            let masked = labels.is_some_and(|l| l[i] != l[j]);
            *zj = i64::from(acc) * qk.a + kbb[j] + brow[j] + if masked { MASK_Z } else { 0 };
        }
        let m = z.iter().copied().max().unwrap_or(0);
        let mut e = [0i64; TOKENS];
        let mut sum = 0u64;
        for (ej, &zj) in e.iter_mut().zip(z.iter()) {
            let v = exp2_neg_q31((m - zj) as u64);
            sum += u64::from(v);
            *ej = i64::from(v);
        }
        for (edge, &level) in edges.iter_mut().zip(&fb.levels_t[..levels]) {
            *edge = ceil_shift_i128(i128::from(sum) * i128::from(level), PROB_FRAC) as i64;
        }
        let edges = &edges[..levels];
        for (out, &ej) in row.iter_mut().zip(e.iter()) {
            let count = edges.iter().filter(|&&edge| ej >= edge).count();
            *out = count.min(255) as u8;
        }
    }
}

/// A linear layer's weight codes, transposed (`k × rows`) and widened to
/// `i16`, so that a token's accumulators are built with contiguous
/// multiply-adds over the rows.
struct Lin {
    wt: Vec<i16>,
    k: usize,
    rows: usize,
    /// Every accumulator fits `i16` exactly: `max weight code · max input
    /// code · k ≤ 32767`.
    narrow: bool,
}

impl Lin {
    /// `w`: `rows × k` codes, row-major; `levels`: the largest input code.
    fn new(w: &[u8], k: usize, rows: usize, levels: u8) -> Self {
        let mut wt = vec![0i16; k * rows];
        for (j, row) in w.chunks_exact(k).take(rows).enumerate() {
            for (i, &c) in row.iter().enumerate() {
                wt[i * rows + j] = i16::from(c);
            }
        }
        let wmax = w.iter().copied().max().map_or(0, usize::from);
        let narrow = wmax * usize::from(levels) * k <= i16::MAX as usize;
        Self {
            wt,
            k,
            rows,
            narrow,
        }
    }
}

/// Core's `gelu_code` on the decoded thresholds: `#{k : t ≥ H_k or t ≤ L_k}`.
#[inline(always)]
fn gelu_fast(t: i64, hl: &[(i64, i64)]) -> u8 {
    hl.iter()
        .map(|&(hi, lo)| u8::from(t >= hi || t <= lo))
        .fold(0u8, u8::saturating_add)
}

/// `t` of every (token, row) as core's `linear` computes it
/// (`CodeAffine::t` of the exact integer `Σ a_i c_ji` and `Σ a_i`).
#[inline(always)]
fn linear<F: FnMut(usize, usize, i64)>(
    input: &[u8],
    lin: &Lin,
    affine: &CodeAffine,
    c: &[i32],
    mut emit: F,
) {
    let (k, rows) = (lin.k, lin.rows);
    let mut acc16 = [0i16; MLP];
    let mut acc32 = [0i32; MLP];
    for (t, x) in input.chunks_exact(k).enumerate() {
        let s = sum_codes(x);
        if lin.narrow {
            let acc = &mut acc16[..rows];
            acc.fill(0);
            for (&xi, wcol) in x.iter().zip(lin.wt.chunks_exact(rows)) {
                let xi = i16::from(xi);
                for (a, &w) in acc.iter_mut().zip(wcol) {
                    *a = a.wrapping_add(xi.wrapping_mul(w));
                }
            }
            for (j, (&a, &cj)) in acc.iter().zip(c).enumerate() {
                emit(t, j, affine.t(i32::from(a), s, cj));
            }
        } else {
            let acc = &mut acc32[..rows];
            acc.fill(0);
            for (&xi, wcol) in x.iter().zip(lin.wt.chunks_exact(rows)) {
                let xi = i32::from(xi);
                for (a, &w) in acc.iter_mut().zip(wcol) {
                    *a = a.wrapping_add(xi.wrapping_mul(i32::from(w)));
                }
            }
            for (j, (&a, &cj)) in acc.iter().zip(c).enumerate() {
                emit(t, j, affine.t(a, s, cj));
            }
        }
    }
}

/// Core's `linear_codes` on decoded weights.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn linear_codes(
    input: &[u8],
    lin: &Lin,
    affine: &CodeAffine,
    c: &[i32],
    levels: u8,
    out: &mut [u8],
) {
    let frac = affine.frac;
    let rows = lin.rows;
    linear(input, lin, affine, c, |t, j, v| {
        out[t * rows + j] = clamp_code(rshift_round(v, frac), levels);
    });
}

/// `r[at] = clamp_stream(r[at] + clamp_stream(y))`.
#[inline]
fn add_to_stream(r: &mut [i32], at: usize, y: i64) {
    let dst = &mut r[at];
    *dst = clamp_stream(i64::from(*dst) + i64::from(clamp_stream(y)));
}

/// `r = clamp_stream(clamp_stream(v) + skip)`.
fn add_skip(r: &mut [i32], v: &[i64], skip: &[i32]) {
    r.par_iter_mut()
        .zip(v.par_iter().zip(skip.par_iter()))
        .for_each(|(dst, (&v, &s))| {
            *dst = clamp_stream(i64::from(clamp_stream(v)) + i64::from(s));
        });
}

/// `a = i16(r ≫ k)`.
fn to_i16(r: &[i32], a: &mut [i32], k: u32) {
    a.par_iter_mut()
        .zip(r.par_iter())
        .for_each(|(dst, &v)| *dst = clamp_i16(rshift_round(i64::from(v), k)));
}

/// A stream LayerNorm, tokens in parallel.
fn layer_norm_stream(ln: &LnParams<LeI32<'_>>, r: &mut [i32]) -> Result<()> {
    // `apply_to_stream` validates, then computes `clamp_stream(Y_c)`.
    ln.validate(EMBED).map_err(|e| anyhow!("layer norm: {e}"))?;
    if let Some(fast) = LnFast::new(ln) {
        r.par_chunks_mut(EMBED).for_each(|px| {
            let mut y = [0i64; EMBED];
            ln_token(px, &fast, &mut y);
            for (d, &v) in px.iter_mut().zip(&y) {
                *d = clamp_stream(v);
            }
        });
        return Ok(());
    }
    r.par_chunks_mut(EMBED).try_for_each(|px| {
        let mut token = [0i32; EMBED];
        token.copy_from_slice(px);
        ln.apply_to_stream(&token, px)
            .map_err(|e| anyhow!("layer norm: {e}"))
    })
}

/// The large per-call buffers of [`FastIntModel::upscale`].
#[derive(Default)]
struct Buffers {
    v: Vec<i64>,
    input: Vec<i32>,
    f0: Vec<i32>,
    r: Vec<i32>,
    r0: Vec<i32>,
    a: Vec<i32>,
    padded: Vec<i16>,
}

/// `buf` with length `n`, keeping its allocation; the contents are left as
/// they are (zeros where it grows): every caller overwrites all of it.
fn sized<T: Copy + Default>(buf: &mut Vec<T>, n: usize) -> &mut [T] {
    buf.resize(n, T::default());
    buf
}

fn pad8(n: usize) -> usize {
    n.div_ceil(WINDOW) * WINDOW
}

/// The runner's edge-repeating mirror.
fn mirror(i: usize, n: usize) -> usize {
    let period = 2 * n;
    let m = i % period;
    if m < n {
        m
    } else {
        period - 1 - m
    }
}

// ---------------------------------------------------------------------------
// The AVX-512 (VNNI) path.
//
// Products of codes are formed with `vpdpbusd` (four `u8 × i8` products
// added to an `i32` lane, no saturation): the unsigned operand is always an
// activation/probability code (any `u8`), the signed one a weight, key or
// value code, which is why the path requires those to be `≤ 127` (`VBlock`
// is `None` otherwise and the portable path runs). Every `i32` sum is the
// exact integer core computes (`< 2^23`, see core's bounds); everything
// after it is the same `i64` expression as in core, evaluated lane-wise.
// Sums of `i64` terms may be regrouped: core's bounds keep every partial sum
// in range, and wrapping addition is associative anyway.
// ---------------------------------------------------------------------------

/// The residual stream shared by the attention windows of one block, which
/// read and update it in place. Sound because the windows partition the
/// pixels: `window_tokens` sends (window, token) to pixel
/// `((8wy + t/8 + s) mod hp, (8wx + t%8 + s) mod wp)`, a bijection, so each
/// pixel's 60 values are touched by one task only (core's runner updates
/// the stream in place window by window for the same reason).
struct SharedStream(*mut i32, usize);

// SAFETY: see the type's docs: tasks access disjoint pixels.
unsafe impl Sync for SharedStream {}

/// One attention window's code planes (reused across the windows of a task).
struct WinScratch {
    qin: [u8; TOKENS * EMBED],
    kin: [u8; TOKENS * EMBED],
    vin: [u8; TOKENS * EMBED],
    qc: [u8; TOKENS * EMBED],
    kc: [u8; TOKENS * EMBED],
    vc: [u8; TOKENS * EMBED],
    oc: [u8; TOKENS * EMBED],
    probs: [u8; TOKENS * TOKENS],
}

impl WinScratch {
    fn new() -> Self {
        Self {
            qin: [0; TOKENS * EMBED],
            kin: [0; TOKENS * EMBED],
            vin: [0; TOKENS * EMBED],
            qc: [0; TOKENS * EMBED],
            kc: [0; TOKENS * EMBED],
            vc: [0; TOKENS * EMBED],
            oc: [0; TOKENS * EMBED],
            probs: [0; TOKENS * TOKENS],
        }
    }
}

/// The CPU features the AVX-512 kernels are compiled for.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Core's `rshift_round`.
#[inline(always)]
fn rsr(v: i64, k: u32) -> i64 {
    if k == 0 {
        v
    } else if k >= 64 {
        0
    } else {
        (v >> k).wrapping_add((v >> (k - 1)) & 1)
    }
}

/// Core's `clamp_code`.
#[inline(always)]
fn code_of(v: i64, levels: u8) -> u8 {
    v.clamp(0, i64::from(levels)) as u8
}

/// A LayerNorm's constants for [`ln_token`].
struct LnFast {
    gamma: [i64; EMBED],
    beta: [i64; EMBED],
    shift: u32,
    eps_t: i64,
}

impl LnFast {
    fn new(ln: &LnParams<LeI32<'_>>) -> Option<Self> {
        if !(1..=tdquant_core::int::layernorm::MAX_EPS_T).contains(&ln.eps_t)
            || ln.gamma.len() != EMBED
            || ln.beta.len() != EMBED
        {
            return None;
        }
        Some(Self {
            gamma: core::array::from_fn(|c| i64::from(ln.gamma.at(c))),
            beta: core::array::from_fn(|c| i64::from(ln.beta.at(c))),
            shift: ln.shift(),
            eps_t: ln.eps_t,
        })
    }
}

/// Core's `normalize` then `LnParams::output` for one 60-channel token:
/// `y[c]` (Q`y_frac`).
///
/// `x̂ = rshift_round_i128(num·ρ, 37)` is evaluated in `i64`: with
/// `ρ = ρ_h·2^32 + ρ_l` (`ρ ≤ 2^61`, so `ρ_h ≤ 2^29`, `ρ_l < 2^32`) and
/// `|num| = |60·d − e| ≤ 60·2^25 + 30 < 2^31`: `X = num·ρ_l + 2^36`
/// (`|X| < 2^63`) and `num·ρ + 2^36 = (num·ρ_h + ⌊X/2^32⌋)·2^32 + (X mod 2^32)`,
/// so `⌊(num·ρ + 2^36)/2^37⌋ = ⌊(num·ρ_h + ⌊X/2^32⌋)/2^5⌋` (the low part
/// `< 2^32` never carries into a multiple of `2^37`).
#[inline(always)]
fn ln_token(x: &[i32], ln: &LnFast, y: &mut [i64; EMBED]) {
    let st = ln_stats(x, ln.eps_t);
    ln_apply(x, &st, ln, y);
}

/// A token's LayerNorm statistics for [`ln_apply`] (see [`ln_token`]).
#[derive(Clone, Copy, Default)]
struct LnStats {
    mu: i64,
    e: i64,
    rho_h: i64,
    rho_l: i64,
}

#[inline(always)]
fn ln_stats(x: &[i32], eps_t: i64) -> LnStats {
    let n = EMBED as i64;
    let (mut s1, mut s2) = (0i64, 0i64);
    for &v in &x[..EMBED] {
        let v = i64::from(clamp_stream(i64::from(v)));
        s1 += v;
        s2 += v * v;
    }
    // Core's Q = n·Σ(x − μ)² − e² equals n·Σx² − S1² (expand e = S1 − nμ);
    // |x| ≤ 2^24: Σx² < 2^54, n·Σx² < 2^60, S1² < 2^62. One pass instead of
    // two dependent ones.
    let mu = (2 * s1 + n).div_euclid(2 * n);
    let e = s1 - n * mu;
    let q = (n * s2 - s1 * s1).max(0);
    let t = (q + eps_t).max(1) as u128;
    let rho = rho_of(t);
    LnStats {
        mu,
        e,
        rho_h: (rho >> 32) as i64,
        rho_l: (rho & 0xFFFF_FFFF) as i64,
    }
}

#[inline(always)]
fn ln_apply(x: &[i32], st: &LnStats, ln: &LnFast, y: &mut [i64; EMBED]) {
    let n = EMBED as i64;
    for (c, (out, &v)) in y.iter_mut().zip(x).enumerate() {
        let v = i64::from(clamp_stream(i64::from(v)));
        let num = n * (v - st.mu) - st.e;
        let xx = num * st.rho_l + (1 << 36);
        let xhat = (num * st.rho_h + (xx >> 32)) >> 5;
        *out = rsr(xhat * ln.gamma[c], ln.shift) + ln.beta[c];
    }
}

/// `ρ = ⌊√⌊2^122/T⌋⌋` (`1 ≤ T < 2^63`) as core computes it: the largest
/// `s` with `s² ≤ ⌊2^122/T⌋`, i.e. with `s²·T ≤ 2^122` (`s²` is an
/// integer). An `f64` estimate is corrected with that exact test; when the
/// estimate is large (`≥ 2^50`, where its error may exceed a few units) core's
/// expression is used as is.
#[inline(always)]
fn rho_of(t: u128) -> u64 {
    // t < 2^63: the u64 → f64 conversion is a single instruction.
    let est = (2f64.powi(61) / (t as u64 as f64).sqrt()) as u64;
    if est >= 1 << 50 {
        return ((1u128 << 122) / t).isqrt() as u64;
    }
    let ok = |s: u64| {
        let s = u128::from(s);
        (s * s).checked_mul(t).is_some_and(|p| p <= 1 << 122)
    };
    let mut s = est;
    while !ok(s) {
        s -= 1;
    }
    while ok(s + 1) {
        s += 1;
    }
    s
}

/// Core's `FixedQuant::code` on a token's LayerNorm outputs
/// (`|y − L| < 2^61`: the subtraction never saturates).
#[inline(always)]
fn quant_token(q: &FixedQuant, y: &[i64; EMBED], out: &mut [u8]) {
    let lim = tdquant_core::int::layernorm::FIXED_QUANT_CLAMP;
    for (o, &y) in out.iter_mut().zip(y) {
        let diff = (y - q.offset).clamp(-lim, lim);
        *o = code_of(rsr(diff * q.mult, q.shift), q.levels);
    }
}

/// A linear layer for `vpdpbusd`: input group `g` (4 inputs) of row `j` is
/// the `i32` at `w[g·rows_pad + j]` (four `i8` weight codes, rows padded
/// with zeros to a multiple of 16).
struct LinV {
    w: Vec<i32>,
    k: usize,
    rows_pad: usize,
    /// `C_j << c_shift` (zero in the padding).
    cs: Vec<i64>,
    a: i64,
    b: i64,
    frac: u32,
}

impl LinV {
    /// `w`: `rows × k` codes; `None` unless every code is `≤ 127` and
    /// `k` is a multiple of 4.
    fn new(w: &[u8], k: usize, rows: usize, aff: &CodeAffine, c: &LeI32<'_>) -> Option<Self> {
        if !k.is_multiple_of(4) || w.len() < k * rows || c.len() != rows {
            return None;
        }
        if w[..k * rows].iter().any(|&x| x > 127) || aff.validate().is_err() {
            return None;
        }
        let rows_pad = rows.div_ceil(16) * 16;
        let mut wv = vec![0i32; k / 4 * rows_pad];
        for j in 0..rows {
            for g in 0..k / 4 {
                let b = &w[j * k + 4 * g..j * k + 4 * g + 4];
                wv[g * rows_pad + j] = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        let mut cs = vec![0i64; rows_pad];
        for (j, dst) in cs.iter_mut().take(rows).enumerate() {
            *dst = i64::from(c.at(j)) << aff.c_shift;
        }
        Some(Self {
            w: wv,
            k,
            rows_pad,
            cs,
            a: aff.a,
            b: aff.b,
            frac: aff.frac,
        })
    }
}

/// A block's constants for the AVX-512 path.
struct VBlock {
    ln1: LnFast,
    ln2: LnFast,
    fq_q: FixedQuant,
    fq_k: FixedQuant,
    fq_v: FixedQuant,
    fq_fc1: FixedQuant,
    lq: LinV,
    lk: LinV,
    lv: LinV,
    lproj: LinV,
    lfc1: LinV,
    lfc2: LinV,
    /// Code range of q, k, v and the `P·v` output.
    levels: u8,
    qk_a: i64,
    qk_b: i64,
    av: tdquant_core::int::attention::AvParams,
    /// The AttnProb levels are at most 15 and non-decreasing (so are the
    /// row edges `E_k`, `S > 0`): codes by a 4-step binary search.
    prob_search: bool,
    /// The GELU code as two sorted searches (see [`GeluSearch`]).
    gelu_search: Option<GeluSearch>,
    /// GELU thresholds `H_k`, `L_k`.
    gelu_h: Vec<i64>,
    gelu_l: Vec<i64>,
}

impl VBlock {
    fn new<'w>(
        p: &BlockParams<'_>,
        attn: impl Fn(usize) -> &'w [u8],
        w_fc1: &[u8],
        w_fc2: &[u8],
        levels: u8,
    ) -> Option<Self> {
        // The quantizers' validity bounds `|Y − L| < 2^61` (so `-` equals core's
        // `saturating_sub`) and the products below 2^63.
        let quants_ok = [p.fq_q, p.fq_k, p.fq_v, p.fq_fc1]
            .iter()
            .all(|q| q.validate().is_ok());
        if levels > 127 || !quants_ok || p.qk.validate().is_err() || p.av.validate().is_err() {
            return None;
        }
        let gelu_n = (p.gelu.len() / 4).min(255);
        Some(Self {
            ln1: LnFast::new(&p.ln1)?,
            ln2: LnFast::new(&p.ln2)?,
            fq_q: p.fq_q,
            fq_k: p.fq_k,
            fq_v: p.fq_v,
            fq_fc1: p.fq_fc1,
            lq: LinV::new(attn(0), EMBED, EMBED, &p.aff_q, &p.c_q)?,
            lk: LinV::new(attn(1), EMBED, EMBED, &p.aff_k, &p.c_k)?,
            lv: LinV::new(attn(2), EMBED, EMBED, &p.aff_v, &p.c_v)?,
            lproj: LinV::new(attn(3), EMBED, EMBED, &p.aff_proj, &p.c_proj)?,
            lfc1: LinV::new(w_fc1, EMBED, MLP, &p.aff_fc1, &p.c_fc1)?,
            lfc2: LinV::new(w_fc2, MLP, EMBED, &p.aff_fc2, &p.c_fc2)?,
            levels,
            qk_a: p.qk.a,
            qk_b: p.qk.b,
            av: p.av,
            prob_search: {
                let n = p.prob.len() / 2;
                let t: Vec<i64> = (0..n).map(|k| p.prob.at_i64(2 * k)).collect();
                n <= 15 && t.windows(2).all(|w| w[0] <= w[1])
            },
            gelu_search: GeluSearch::new(
                &(0..gelu_n)
                    .map(|k| p.gelu.at_i64(4 * k))
                    .collect::<Vec<_>>(),
                &(0..gelu_n)
                    .map(|k| p.gelu.at_i64(4 * k + 2))
                    .collect::<Vec<_>>(),
            ),
            gelu_h: (0..gelu_n).map(|k| p.gelu.at_i64(4 * k)).collect(),
            gelu_l: (0..gelu_n).map(|k| p.gelu.at_i64(4 * k + 2)).collect(),
        })
    }
}

/// Core's `gelu_code` as `#{k : t ≥ H_k} + #{k : t ≤ L_k}`: equal when no
/// `k` has both (`L_k < H_k`, or `L_k = i64::MIN`, never reached since
/// `|t| < 2^62`). Counting ignores the order of the `k`, so `H` is sorted
/// ascending and `L` descending, each padded to 16 with a value no `t`
/// reaches, and each count is a 4-step binary search.
struct GeluSearch {
    h: [i64; 16],
    l: [i64; 16],
    /// `h`, `l` shifted by 3 and 1 entries (the search's steps 4 and 2).
    h_shift: [[i64; 16]; 2],
    l_shift: [[i64; 16]; 2],
    /// The same searches on `i32` (16 lanes), when the thresholds other than
    /// `i64::MIN`/`i64::MAX` span at most `2^30`: with `lo`/`hi` their
    /// extremes, `t' = clamp(t, lo − 1, hi + 1) − lo` and `x' = x − lo`
    /// (`i64::MIN`/`MAX` → `i32::MIN`/`MAX`) keep every comparison
    /// `t ≥ x`, `t ≤ x` (a clamped `t` lies beyond every such threshold;
    /// `|t| < 2^62`, so the MIN/MAX outcomes are fixed and preserved).
    narrow: Option<GeluNarrow>,
}

/// [`GeluSearch::narrow`]: for each table, the entry the binary search's
/// steps 8, 4, 2, 1 compare with at lane value `c` (`c + step − 1`; step 8
/// always starts from `c = 0`).
struct GeluNarrow {
    lo: i64,
    hi: i64,
    h: [[i32; 16]; 4],
    l: [[i32; 16]; 4],
}

impl GeluNarrow {
    fn new(h: &[i64; 16], l: &[i64; 16]) -> Option<Self> {
        let finite = || {
            h.iter()
                .chain(l)
                .copied()
                .filter(|&x| x != i64::MIN && x != i64::MAX)
        };
        let (lo, hi) = (finite().min().unwrap_or(0), finite().max().unwrap_or(0));
        if hi.checked_sub(lo).is_none_or(|span| span > 1 << 30) {
            return None;
        }
        let map = |x: i64| match x {
            i64::MIN => i32::MIN,
            i64::MAX => i32::MAX,
            x => (x - lo) as i32,
        };
        // Step 8 starts from c = 0 in every lane: its table is E[7] broadcast.
        let shifted = |t: &[i64; 16]| -> [[i32; 16]; 4] {
            [
                [map(t[7]); 16],
                core::array::from_fn(|c| map(t[(c + 3).min(15)])),
                core::array::from_fn(|c| map(t[(c + 1).min(15)])),
                core::array::from_fn(|c| map(t[c])),
            ]
        };
        Some(Self {
            lo,
            hi,
            h: shifted(h),
            l: shifted(l),
        })
    }
}

impl GeluSearch {
    fn new(h: &[i64], l: &[i64]) -> Option<Self> {
        if h.len() > 15 || h.len() != l.len() {
            return None;
        }
        if h.iter().zip(l).any(|(&h, &l)| l >= h && l != i64::MIN) {
            return None;
        }
        let mut hs = [i64::MAX; 16];
        hs[..h.len()].copy_from_slice(h);
        hs[..h.len()].sort_unstable();
        let mut ls = [i64::MIN; 16];
        ls[..l.len()].copy_from_slice(l);
        ls[..l.len()].sort_unstable_by(|a, b| b.cmp(a));
        let shift = |t: &[i64; 16], s: usize| core::array::from_fn(|c| t[(c + s).min(15)]);
        Some(Self {
            h: hs,
            l: ls,
            h_shift: [shift(&hs, 3), shift(&hs, 1)],
            l_shift: [shift(&ls, 3), shift(&ls, 1)],
            narrow: GeluNarrow::new(&hs, &ls),
        })
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `out[j]` = core's `gelu_code(t[j])` for `t.len()` a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
fn gelu_search_v(t: &[i64], gs: &GeluSearch, out: &mut [u8]) {
    assert!(t.len().is_multiple_of(8) && out.len() >= t.len());
    if let Some(nw) = &gs.narrow {
        // SAFETY: a 64-byte load of a 16-entry i32 table.
        let load = |a: &[i32; 16]| unsafe { _mm512_loadu_si512(a.as_ptr().cast()) };
        let (h, l) = (nw.h.map(|a| load(&a)), nw.l.map(|a| load(&a)));
        let (lo, lo1, hi1) = (
            _mm512_set1_epi64(nw.lo),
            _mm512_set1_epi64(nw.lo - 1),
            _mm512_set1_epi64(nw.hi + 1),
        );
        let narrow = |chunk: &[i64]| {
            // SAFETY: 8 i64 of the chunk.
            let x = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
            let x = _mm512_sub_epi64(_mm512_min_epi64(_mm512_max_epi64(x, lo1), hi1), lo);
            _mm512_cvtepi64_epi32(x)
        };
        for (p, pair) in t.chunks(16).enumerate() {
            let a = narrow(&pair[..8]);
            let b = if pair.len() == 16 {
                narrow(&pair[8..])
            } else {
                a
            };
            let x = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
            // #{k : H_k ≤ t'} and #{k : L_k ≥ t'}, 4-step searches.
            let eight = _mm512_set1_epi32(8);
            let mut ch = _mm512_maskz_mov_epi32(_mm512_cmpge_epi32_mask(x, h[0]), eight);
            let mut cl = _mm512_maskz_mov_epi32(_mm512_cmple_epi32_mask(x, l[0]), eight);
            for (s, step) in [(1, 4), (2, 2), (3, 1)] {
                let sv = _mm512_set1_epi32(step);
                let mh = _mm512_cmpge_epi32_mask(x, _mm512_permutexvar_epi32(ch, h[s]));
                ch = _mm512_mask_add_epi32(ch, mh, ch, sv);
                let ml = _mm512_cmple_epi32_mask(x, _mm512_permutexvar_epi32(cl, l[s]));
                cl = _mm512_mask_add_epi32(cl, ml, cl, sv);
            }
            let codes = _mm512_cvtepi32_epi8(_mm512_add_epi32(ch, cl));
            let mask = if pair.len() == 16 { 0xFFFF } else { 0x00FF };
            // SAFETY: pair.len() bytes at 16p inside out (asserted).
            unsafe { _mm_mask_storeu_epi8(out.as_mut_ptr().add(16 * p).cast(), mask, codes) };
        }
        return;
    }
    // The tables shifted for steps 4, 2, 1 (entry c is table[c + s − 1]; the
    // step-8 comparison is with table[7] in every lane, c = 0).
    let halves = |v: &[i64; 16]| -> (__m512i, __m512i) {
        // SAFETY: 8 i64 inside the 16-entry array.
        unsafe {
            (
                _mm512_loadu_si512(v.as_ptr().cast()),
                _mm512_loadu_si512(v.as_ptr().add(8).cast()),
            )
        }
    };
    let (h7, l7) = (_mm512_set1_epi64(gs.h[7]), _mm512_set1_epi64(gs.l[7]));
    let ht = [
        halves(&gs.h_shift[0]),
        halves(&gs.h_shift[1]),
        halves(&gs.h),
    ];
    let lt = [
        halves(&gs.l_shift[0]),
        halves(&gs.l_shift[1]),
        halves(&gs.l),
    ];
    let eight = _mm512_set1_epi64(8);
    for (v, chunk) in t.chunks_exact(8).enumerate() {
        // SAFETY: 8 i64 of the chunk.
        let x = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
        let mut ch = _mm512_maskz_mov_epi64(_mm512_cmpge_epi64_mask(x, h7), eight);
        let mut cl = _mm512_maskz_mov_epi64(_mm512_cmple_epi64_mask(x, l7), eight);
        for (k, step) in [4i64, 2, 1].into_iter().enumerate() {
            let sv = _mm512_set1_epi64(step);
            let hv = _mm512_permutex2var_epi64(ht[k].0, ch, ht[k].1);
            ch = _mm512_mask_add_epi64(ch, _mm512_cmpge_epi64_mask(x, hv), ch, sv);
            let lv = _mm512_permutex2var_epi64(lt[k].0, cl, lt[k].1);
            cl = _mm512_mask_add_epi64(cl, _mm512_cmple_epi64_mask(x, lv), cl, sv);
        }
        let codes = _mm512_cvtepi64_epi8(_mm512_add_epi64(ch, cl));
        // SAFETY: 8 bytes inside out (asserted).
        unsafe { _mm_storel_epi64(out.as_mut_ptr().add(8 * v).cast(), codes) };
    }
}

/// `acc[t·rows_pad + j] = Σ_i x[t·k + i]·w_ji` for `T` tokens (`NV·16 = rows_pad`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)] // a[t][v] pairs two index spaces
unsafe fn lin_dot<const NV: usize, const T: usize>(x: &[u8], lin: &LinV, acc: &mut [i32]) {
    let k = lin.k;
    assert!(x.len() >= T * k && acc.len() >= T * NV * 16 && lin.w.len() >= k / 4 * NV * 16);
    let (xp, wp) = (x.as_ptr(), lin.w.as_ptr());
    let mut a = [[_mm512_setzero_si512(); NV]; T];
    for g in 0..k / 4 {
        let mut xb = [_mm512_setzero_si512(); T];
        for (t, xb) in xb.iter_mut().enumerate() {
            // SAFETY: t·k + 4g + 4 ≤ T·k ≤ x.len() (asserted).
            let word = unsafe { xp.add(t * k + 4 * g).cast::<i32>().read_unaligned() };
            *xb = _mm512_set1_epi32(word);
        }
        for v in 0..NV {
            // SAFETY: (g·NV + v)·16 + 16 ≤ k/4·NV·16 ≤ w.len() (asserted).
            let wv = unsafe { _mm512_loadu_si512(wp.add((g * NV + v) * 16).cast()) };
            for t in 0..T {
                a[t][v] = _mm512_dpbusd_epi32(a[t][v], xb[t], wv);
            }
        }
    }
    for (t, at) in a.iter().enumerate() {
        for (v, &av) in at.iter().enumerate() {
            // SAFETY: in bounds of acc (asserted).
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add((t * NV + v) * 16).cast(), av) };
        }
    }
}

/// Core's `linear` on `n` tokens: `emit(token, t)` with `t[j]` for the
/// `rows_pad` rows (the padding rows are garbage-free zeros·A + Σa·B).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
unsafe fn linear_v<F: FnMut(usize, &[i64])>(input: &[u8], lin: &LinV, mut emit: F) {
    let k = lin.k;
    let n = input.len() / k;
    let mut acc = [0i32; 4 * 128];
    let mut trow = [0i64; 128];
    let rp = lin.rows_pad;
    let group = if rp <= 64 { 4 } else { 2 };
    let mut t0 = 0;
    while t0 < n {
        let m = if n - t0 >= group { group } else { 1 };
        let x = &input[t0 * k..(t0 + m) * k];
        // SAFETY: the features are enabled on this function.
        unsafe {
            match (rp, m) {
                (64, 4) => lin_dot::<4, 4>(x, lin, &mut acc),
                (64, _) => lin_dot::<4, 1>(x, lin, &mut acc),
                (128, 2) => lin_dot::<8, 2>(x, lin, &mut acc),
                (128, _) => lin_dot::<8, 1>(x, lin, &mut acc),
                _ => unreachable!("rows_pad is 64 or 128"),
            }
        }
        for t in 0..m {
            let xs = &x[t * k..(t + 1) * k];
            let s = i64::from(xs.iter().map(|&v| u32::from(v)).sum::<u32>());
            let sb = s * lin.b;
            let ar = &acc[t * rp..(t + 1) * rp];
            let tr = &mut trow[..rp];
            for ((d, &a), &c) in tr.iter_mut().zip(ar).zip(&lin.cs) {
                *d = i64::from(a) * lin.a + sb + c;
            }
            emit(t0 + t, tr);
        }
        t0 += m;
    }
}

/// `2^31·2^(−d/2^32)` in eight `u64` lanes, exactly [`exp2_neg_q31`]
/// (see its docs; each `_mm512_mul_epu32` operand is `< 2^32`: `r < 2^24`,
/// `LN2_Q32 < 2^32`, `v < 2^24`, `v2 < 2^15`, `y < 2^7`;
/// `⌊x/(3·2^32)⌋ = ⌊⌊x/2^32⌋/3⌋` and `⌊y/3⌋ = (171·y) >> 9` for `y < 2^7`;
/// `lut·p + 2^31 < 2^64` as in core, so `vpmullq`'s low 64 bits are exact).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
fn exp2_v(d: __m512i) -> __m512i {
    use tdquant_core::int::exp2::{EXP2_LUT, LN2_Q32};
    let n = _mm512_srli_epi64::<32>(d);
    let i = _mm512_and_si512(_mm512_srli_epi64::<24>(d), _mm512_set1_epi64(0xFF));
    let r = _mm512_and_si512(d, _mm512_set1_epi64(0x00FF_FFFF));
    let v = _mm512_srli_epi64::<32>(_mm512_add_epi64(
        _mm512_mul_epu32(r, _mm512_set1_epi64(LN2_Q32 as i64)),
        _mm512_set1_epi64(1 << 31),
    ));
    let v2 = _mm512_srli_epi64::<33>(_mm512_mul_epu32(v, v));
    let y = _mm512_srli_epi64::<32>(_mm512_mul_epu32(v2, v));
    let v3 = _mm512_srli_epi64::<9>(_mm512_mul_epu32(y, _mm512_set1_epi64(171)));
    let p = _mm512_sub_epi64(
        _mm512_add_epi64(_mm512_sub_epi64(_mm512_set1_epi64(1 << 32), v), v2),
        v3,
    );
    // SAFETY: every index is `< 256` (masked with 0xFF), the table has 256 entries.
    let lut32 = unsafe { _mm512_i64gather_epi32::<4>(i, EXP2_LUT.as_ptr().cast()) };
    let lut = _mm512_cvtepu32_epi64(lut32);
    // The low 64 bits of lut·p, which is below 2^64 − 2^31.
    let g = _mm512_srli_epi64::<32>(_mm512_add_epi64(
        _mm512_mullo_epi64(lut, p),
        _mm512_set1_epi64(1 << 31),
    ));
    let rnd = _mm512_srli_epi64::<1>(_mm512_sllv_epi64(_mm512_set1_epi64(1), n));
    let live = _mm512_cmplt_epu64_mask(n, _mm512_set1_epi64(32));
    _mm512_maskz_srlv_epi64(live, _mm512_add_epi64(g, rnd), n)
}

/// [`rsr`] in eight `i64` lanes (`k ≤ 63`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
fn rsr_v(v: __m512i, k: u32) -> __m512i {
    if k == 0 {
        return v;
    }
    let hi = _mm512_sra_epi64(v, _mm_cvtsi64_si128(i64::from(k)));
    let half = _mm512_sra_epi64(v, _mm_cvtsi64_si128(i64::from(k - 1)));
    _mm512_add_epi64(hi, _mm512_and_si512(half, _mm512_set1_epi64(1)))
}

/// The softmax constants of one block.
struct SoftmaxV<'b> {
    a: i64,
    b: i64,
    /// `T_k` (at most 255).
    levels_t: &'b [i64],
    /// At most 15 levels, non-decreasing.
    search: bool,
    /// With `search`: `T_k >> 20` and `T_k & (2^20 − 1)` (16 lanes; the
    /// unused ones are replaced by `i32::MAX` edges).
    th: [i64; 16],
    tl: [i64; 16],
}

/// Core's `softmax_codes` for one head (`D = 10` columns at `col` of the
/// 60-wide `q`, `k`): `bias_h` is `R[h, rpi(i, j)] << rpb_shift` (64 × 64).
/// Requires `k` codes `≤ 127`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
fn softmax_head_v(
    q: &[u8],
    k: &[u8],
    col: usize,
    sm: &SoftmaxV<'_>,
    bias_h: &[i64],
    labels: Option<&[u8; TOKENS]>,
    probs: &mut [u8],
) {
    match labels {
        Some(l) => softmax_head_impl::<true>(q, k, col, sm, bias_h, l, probs),
        None => softmax_head_impl::<false>(q, k, col, sm, bias_h, &[0; TOKENS], probs),
    }
}

/// [`softmax_head_v`], compiled with and without the shift mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)] // ktv[g][v] and z[2v + h] pair index spaces
fn softmax_head_impl<const MASKED: bool>(
    q: &[u8],
    k: &[u8],
    col: usize,
    sm: &SoftmaxV<'_>,
    bias_h: &[i64],
    labels: &[u8; TOKENS],
    probs: &mut [u8],
) {
    assert!(
        q.len() >= TOKENS * EMBED
            && k.len() >= TOKENS * EMBED
            && col + HEAD_DIM <= EMBED
            && bias_h.len() >= TOKENS * TOKENS
            && probs.len() >= TOKENS * TOKENS
    );
    // Keys by groups of four dimensions (10 padded to 12): ktv[g][v] holds
    // the four codes of group g of keys 16v..16v + 16 (gathered: bytes
    // j·60 + col + 4g.., the last group read at +6 and shifted down so that
    // dimensions 10, 11 are zero and no byte past the window is read).
    let kp = k.as_ptr().cast::<i32>();
    let iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let ktv: [[__m512i; 4]; 3] = core::array::from_fn(|g| {
        core::array::from_fn(|v| {
            let rows = _mm512_mullo_epi32(
                _mm512_add_epi32(iota, _mm512_set1_epi32(16 * v as i32)),
                _mm512_set1_epi32(EMBED as i32),
            );
            let off = (col + if g == 2 { 6 } else { 4 * g }) as i32;
            // SAFETY: every index + 4 ≤ 63·60 + col + 10 ≤ k.len() (asserted).
            let words = unsafe {
                _mm512_i32gather_epi32::<1>(_mm512_add_epi32(rows, _mm512_set1_epi32(off)), kp)
            };
            if g == 2 {
                _mm512_srli_epi32::<16>(words)
            } else {
                words
            }
        })
    });
    // kb_j·B: Σ of the 12 (10 non-zero) codes via one `vpdpbusd` per group.
    let ones = _mm512_set1_epi8(1);
    let kbbv: [__m512i; 8] = core::array::from_fn(|h| {
        let v = h / 2;
        let mut kb = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, ktv[0][v]);
        kb = _mm512_dpbusd_epi32(kb, ones, ktv[1][v]);
        kb = _mm512_dpbusd_epi32(kb, ones, ktv[2][v]);
        let half = if h % 2 == 0 {
            _mm512_castsi512_si256(kb)
        } else {
            _mm512_extracti64x4_epi64::<1>(kb)
        };
        _mm512_mullo_epi64(_mm512_cvtepi32_epi64(half), _mm512_set1_epi64(sm.b))
    });
    // SAFETY: 64 bytes of labels.
    let labv = unsafe { _mm512_loadu_si512(labels.as_ptr().cast()) };
    let av = _mm512_set1_epi64(sm.a);
    let maskz = _mm512_set1_epi64(MASK_Z);
    let levels = sm.levels_t.len().min(255);
    let mut edges = [0i32; 255];
    let one = _mm512_set1_epi32(-1);
    // Four rows at a time, stage by stage: each row's horizontal reductions
    // (max, sum) overlap with the other row's vector work.
    const ROWS: usize = 4;
    for i0 in (0..TOKENS).step_by(ROWS) {
        let mut zr = [[_mm512_setzero_si512(); 8]; ROWS];
        let mut mvr = [_mm512_setzero_si512(); ROWS];
        for (r, (z, mv)) in zr.iter_mut().zip(mvr.iter_mut()).enumerate() {
            let i = i0 + r;
            let mut qb = [0u8; 12];
            qb[..HEAD_DIM].copy_from_slice(&q[i * EMBED + col..i * EMBED + col + HEAD_DIM]);
            let qg: [__m512i; 3] = core::array::from_fn(|g| {
                _mm512_set1_epi32(i32::from_le_bytes([
                    qb[4 * g],
                    qb[4 * g + 1],
                    qb[4 * g + 2],
                    qb[4 * g + 3],
                ]))
            });
            let mbits: u64 = if MASKED {
                _mm512_cmpneq_epi8_mask(labv, _mm512_set1_epi8(labels[i] as i8))
            } else {
                0
            };
            let brow = &bias_h[i * TOKENS..(i + 1) * TOKENS];
            for v in 0..4 {
                let mut acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qg[0], ktv[0][v]);
                acc = _mm512_dpbusd_epi32(acc, qg[1], ktv[1][v]);
                acc = _mm512_dpbusd_epi32(acc, qg[2], ktv[2][v]);
                let halves = [
                    _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)),
                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(acc)),
                ];
                for (hh, part) in halves.into_iter().enumerate() {
                    let idx = 2 * v + hh;
                    // SAFETY: 8 i64 inside brow (64 entries).
                    let bv = unsafe { _mm512_loadu_si512(brow.as_ptr().add(8 * idx).cast()) };
                    let zz = _mm512_add_epi64(
                        _mm512_add_epi64(_mm512_mullo_epi64(part, av), kbbv[idx]),
                        bv,
                    );
                    z[idx] = if MASKED {
                        _mm512_mask_add_epi64(zz, (mbits >> (8 * idx)) as u8, zz, maskz)
                    } else {
                        zz
                    };
                }
            }
            let mut mx = z[0];
            for &zz in &z[1..] {
                mx = _mm512_max_epi64(mx, zz);
            }
            *mv = _mm512_set1_epi64(_mm512_reduce_max_epi64(mx));
        }
        let mut er = [[_mm512_setzero_si512(); 8]; ROWS];
        let mut sums = [0i64; ROWS];
        for (((e, sum), z), mv) in er.iter_mut().zip(sums.iter_mut()).zip(&zr).zip(&mvr) {
            let mut sumv = _mm512_setzero_si512();
            for (ev, &zz) in e.iter_mut().zip(z) {
                *ev = exp2_v(_mm512_sub_epi64(*mv, zz));
                sumv = _mm512_add_epi64(sumv, *ev);
            }
            *sum = _mm512_reduce_add_epi64(sumv);
        }
        for (r, (e, &sum)) in er.iter().zip(&sums).enumerate() {
            let i = i0 + r;
            // E_k = ⌈S·T_k/2^30⌉ clamped to [0, 2^31 + 1] (e ∈ [0, 2^31], so the
            // comparisons keep their outcome), then moved to i32 by flipping the
            // sign bit (an order-preserving map of [0, 2^32)).
            let search_table = if sm.search {
                // ⌈S·T/2^30⌉ in i64 lanes: T = T_h·2^20 + T_l, A = S·T_h, B = S·T_l
                // (|A|, B < 2^58 for S ≤ 2^37, |T| ≤ 2^40), and
                // S·T = ⌊A/2^10⌋·2^30 + ((A mod 2^10)·2^20 + B), the last term in
                // [0, 2^59): E = ⌊A/2^10⌋ + ⌊(that + 2^30 − 1)/2^30⌋.
                let sv = _mm512_set1_epi64(sum);
                let half = |h: usize| {
                    // SAFETY: 8 i64 inside th / tl.
                    let (th, tl) = unsafe {
                        (
                            _mm512_loadu_si512(sm.th.as_ptr().add(8 * h).cast()),
                            _mm512_loadu_si512(sm.tl.as_ptr().add(8 * h).cast()),
                        )
                    };
                    let a = _mm512_mullo_epi64(sv, th);
                    let b = _mm512_mullo_epi64(sv, tl);
                    let low = _mm512_add_epi64(
                        _mm512_add_epi64(
                            _mm512_slli_epi64::<20>(_mm512_and_si512(a, _mm512_set1_epi64(1023))),
                            b,
                        ),
                        _mm512_set1_epi64((1 << 30) - 1),
                    );
                    let e =
                        _mm512_add_epi64(_mm512_srai_epi64::<10>(a), _mm512_srli_epi64::<30>(low));
                    let e = _mm512_min_epi64(
                        _mm512_max_epi64(e, _mm512_setzero_si512()),
                        _mm512_set1_epi64((1 << 31) + 1),
                    );
                    _mm256_xor_si256(_mm512_cvtepi64_epi32(e), _mm256_set1_epi32(i32::MIN))
                };
                let table = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(half(0)), half(1));
                // Lanes ≥ levels: i32::MAX, above every e'.
                let unused = !((1u32 << levels) - 1) as u16;
                _mm512_mask_mov_epi32(table, unused, _mm512_set1_epi32(i32::MAX))
            } else {
                for (edge, &level) in edges.iter_mut().zip(&sm.levels_t[..levels]) {
                    let needed =
                        ceil_shift_i128(i128::from(sum) * i128::from(level), PROB_FRAC) as i64;
                    *edge = (needed.clamp(0, (1 << 31) + 1) as u32 ^ 0x8000_0000) as i32;
                }
                _mm512_setzero_si512()
            };
            let flip = _mm512_set1_epi32(i32::MIN);
            let ev: [__m512i; 4] = core::array::from_fn(|v| {
                let lo = _mm512_cvtepi64_epi32(e[2 * v]);
                let hi = _mm512_cvtepi64_epi32(e[2 * v + 1]);
                _mm512_xor_si512(
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi),
                    flip,
                )
            });
            let mut cnt = [_mm512_setzero_si512(); 4];
            if sm.search {
                // code = #{k : E'_k ≤ e'} = the largest c ≤ 15 with E'_{c−1} ≤ e'
                // (E' sorted; entry 15 and unused ones are i32::MAX, above every e').
                // Step s compares with E'[c + s − 1]: tables shifted by s − 1
                // (`shifted[c] = table[c + s − 1]`; the lanes that wrap are
                // never indexed: c is a multiple of 2s below 16 − s).
                let table = search_table;
                let iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
                let t7 = _mm512_permutexvar_epi32(_mm512_set1_epi32(7), table);
                let t3 =
                    _mm512_permutexvar_epi32(_mm512_add_epi32(iota, _mm512_set1_epi32(3)), table);
                let t1 =
                    _mm512_permutexvar_epi32(_mm512_add_epi32(iota, _mm512_set1_epi32(1)), table);
                for (c, &x) in cnt.iter_mut().zip(&ev) {
                    *c = _mm512_maskz_mov_epi32(
                        _mm512_cmpge_epi32_mask(x, t7),
                        _mm512_set1_epi32(8),
                    );
                    for (step, t) in [(4, t3), (2, t1), (1, table)] {
                        let m = _mm512_cmpge_epi32_mask(x, _mm512_permutexvar_epi32(*c, t));
                        *c = _mm512_mask_add_epi32(*c, m, *c, _mm512_set1_epi32(step));
                    }
                }
            } else {
                for &edge in &edges[..levels] {
                    let eb = _mm512_set1_epi32(edge);
                    for (c, &x) in cnt.iter_mut().zip(&ev) {
                        let m = _mm512_cmpge_epi32_mask(x, eb);
                        *c = _mm512_mask_sub_epi32(*c, m, *c, one);
                    }
                }
            }
            for (v, &c) in cnt.iter().enumerate() {
                // SAFETY: 16 bytes inside probs' row i.
                unsafe {
                    _mm_storeu_si128(
                        probs.as_mut_ptr().add(i * TOKENS + 16 * v).cast(),
                        _mm512_cvtepi32_epi8(c),
                    )
                };
            }
        }
    }
}

/// Core's `av_codes` for one head (60-wide `v` and `out`). Requires `v`
/// codes `≤ 127`. Lane 10 of the value groups holds ones, so that it
/// accumulates `cs_i = Σ_j c_ij`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
fn av_head_v(
    probs: &[u8],
    v: &[u8],
    col: usize,
    av: &tdquant_core::int::attention::AvParams,
    levels: u8,
    out: &mut [u8],
) {
    assert!(
        probs.len() >= TOKENS * TOKENS
            && v.len() >= TOKENS * EMBED
            && out.len() >= TOKENS * EMBED
            && col + HEAD_DIM <= EMBED
    );
    let mut vb = [[0i32; 16]; 16];
    let mut vs = [0i64; 16];
    for (g, lanes) in vb.iter_mut().enumerate() {
        for (d, lane) in lanes.iter_mut().enumerate().take(HEAD_DIM) {
            let b: [u8; 4] = core::array::from_fn(|s| v[(4 * g + s) * EMBED + col + d]);
            vs[d] += b.iter().map(|&x| i64::from(x)).sum::<i64>();
            *lane = i32::from_le_bytes(b);
        }
        lanes[HEAD_DIM] = 0x0101_0101;
    }
    let vsc: [i64; 16] = core::array::from_fn(|d| vs[d] * av.c + av.d);
    // SAFETY: 64 bytes inside vb[g].
    let vbv: [__m512i; 16] =
        core::array::from_fn(|g| unsafe { _mm512_loadu_si512(vb[g].as_ptr().cast()) });
    let pp = probs.as_ptr();
    let mut accs = [[0i32; 16]; 4];
    let av_a = _mm512_set1_epi64(av.a);
    let (zero, lev) = (_mm512_setzero_si512(), _mm512_set1_epi64(i64::from(levels)));
    // SAFETY: 8 i64 inside vsc.
    let (vsc_lo, vsc_hi) = unsafe {
        (
            _mm512_loadu_si512(vsc.as_ptr().cast()),
            _mm512_loadu_si512(vsc.as_ptr().add(8).cast()),
        )
    };
    for i0 in (0..TOKENS).step_by(4) {
        let mut acc = [_mm512_setzero_si512(); 4];
        for (g, &vg) in vbv.iter().enumerate() {
            for (u, a) in acc.iter_mut().enumerate() {
                // SAFETY: (i0 + u)·64 + 4g + 4 ≤ 4096 ≤ probs.len().
                let word = unsafe {
                    pp.add((i0 + u) * TOKENS + 4 * g)
                        .cast::<i32>()
                        .read_unaligned()
                };
                *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(word), vg);
            }
        }
        for (dst, &a) in accs.iter_mut().zip(&acc) {
            // SAFETY: 64 bytes into dst.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), a) };
        }
        for (u, (arr, &a)) in accs.iter().zip(&acc).enumerate() {
            let csb = _mm512_set1_epi64(i64::from(arr[HEAD_DIM]) * av.b);
            let t = |part: __m256i, vs: __m512i| {
                let t = _mm512_add_epi64(
                    _mm512_add_epi64(_mm512_mullo_epi64(_mm512_cvtepi32_epi64(part), av_a), csb),
                    vs,
                );
                let c = _mm512_min_epi64(_mm512_max_epi64(rsr_v(t, av.frac), zero), lev);
                _mm512_cvtepi64_epi8(c)
            };
            let lo = t(_mm512_castsi512_si256(a), vsc_lo);
            let hi = t(_mm512_extracti64x4_epi64::<1>(a), vsc_hi);
            let row = &mut out[(i0 + u) * EMBED + col..(i0 + u) * EMBED + col + HEAD_DIM];
            // SAFETY: 10 bytes (mask 0x3FF) inside `row`.
            unsafe {
                _mm_mask_storeu_epi8(row.as_mut_ptr().cast(), 0x3FF, _mm_unpacklo_epi64(lo, hi))
            };
        }
    }
}

/// The MLP on a chunk of tokens, AVX-512 path.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
fn mlp_chunk_v(
    vb: &VBlock,
    chunk: &mut [i32],
    fc1in: &mut [u8; TOKENS * EMBED],
    hidden: &mut [u8; TOKENS * MLP],
) {
    let n = chunk.len() / EMBED;
    let mut y = [0i64; EMBED];
    let mut t0 = 0;
    while t0 < n {
        let m = (n - t0).min(TOKENS);
        let block = &mut chunk[t0 * EMBED..(t0 + m) * EMBED];
        let mut stats = [LnStats::default(); TOKENS];
        for (st, x) in stats.iter_mut().zip(block.chunks_exact(EMBED)) {
            *st = ln_stats(x, vb.ln2.eps_t);
        }
        for (t, (x, st)) in block.chunks_exact(EMBED).zip(&stats).enumerate() {
            ln_apply(x, st, &vb.ln2, &mut y);
            quant_token(&vb.fq_fc1, &y, &mut fc1in[t * EMBED..(t + 1) * EMBED]);
        }
        let (gh, gl) = (&vb.gelu_h[..], &vb.gelu_l[..]);
        // SAFETY: the features are enabled on this function.
        unsafe {
            linear_v(&fc1in[..m * EMBED], &vb.lfc1, |t, tr| {
                if let Some(gs) = &vb.gelu_search {
                    gelu_search_v(&tr[..MLP], gs, &mut hidden[t * MLP..(t + 1) * MLP]);
                    return;
                }
                let mut cnt = [0u8; MLP];
                let tr = &tr[..MLP];
                for (&h, &l) in gh.iter().zip(gl) {
                    for (c, &x) in cnt.iter_mut().zip(tr) {
                        *c += u8::from(x >= h || x <= l);
                    }
                }
                hidden[t * MLP..(t + 1) * MLP].copy_from_slice(&cnt);
            });
            let frac = vb.lfc2.frac;
            linear_v(&hidden[..m * MLP], &vb.lfc2, |t, tr| {
                let dst = &mut block[t * EMBED..(t + 1) * EMBED];
                for (d, &x) in dst.iter_mut().zip(&tr[..EMBED]) {
                    *d = clamp_stream(i64::from(*d) + i64::from(clamp_stream(rsr(x, frac))));
                }
            });
        }
        t0 += m;
    }
}

/// A convolution's weights for `vpdpwssd`: for tap `s` (of 9) and input
/// channel pair `c`, output `o`'s two `i16` weights as one `i32` at
/// `w[(s·cin/2 + c)·cout_pad + o]` (outputs padded with zeros to a multiple
/// of 16).
///
/// Exactness: every partial sum of an output's `9·cin` products is bounded
/// by `Σ|a_i|·|w_oi| ≤ 2^15·Σ_i |w_oi|`; the path is only built when
/// `Σ_i |w_oi| < 2^16` for every output, so all `i32` partial sums are
/// below `2^31` and the `i32` total equals core's `i64` sum.
struct ConvV {
    w: Vec<i32>,
    /// The epilogue in `i64` lanes, when every requantizer rounds half up
    /// with a right shift `k ∈ 1..=62` and every `|bias| ≤ 2^61`: then
    /// `apply_i64(acc)` for `|acc| < 2^31` is core's `apply_parts_i32`,
    /// `(acc·M + 2^(k−1)) >> k` (`|acc·M| < 2^62`: no overflow), and adding
    /// the bias cannot saturate (`|·| < 2^61 + 2^61`).
    epi: Option<ConvEpi>,
    cout_pad: usize,
    /// `cin` rounded up to even (the extra channel is zero).
    cin_pad: usize,
}

impl ConvV {
    fn new(weights: &[i16], cin: usize, cout: usize) -> Option<Self> {
        let taps = 9 * cin;
        if cout == 0 || cout > 64 || weights.len() != cout * taps {
            return None;
        }
        let l1_ok = weights
            .chunks_exact(taps)
            .all(|row| row.iter().map(|&x| i64::from(x).abs()).sum::<i64>() < 1 << 16);
        if !l1_ok {
            return None;
        }
        let cout_pad = cout.div_ceil(16) * 16;
        let cin_pad = cin.div_ceil(2) * 2;
        let pairs = cin_pad / 2;
        let mut w = vec![0i32; 9 * pairs * cout_pad];
        for o in 0..cout {
            for s in 0..9 {
                let wt = |c: usize| {
                    if c < cin {
                        weights[o * taps + s * cin + c] as u16
                    } else {
                        0
                    }
                };
                for c in 0..pairs {
                    let (lo, hi) = (wt(2 * c), wt(2 * c + 1));
                    w[(s * pairs + c) * cout_pad + o] =
                        (u32::from(lo) | (u32::from(hi) << 16)) as i32;
                }
            }
        }
        Some(Self {
            w,
            epi: None,
            cout_pad,
            cin_pad,
        })
    }
}

/// A convolution's requantization and bias as lane vectors (see
/// [`ConvV::epi`]); padded with `M = 0`, `k = 1`.
struct ConvEpi {
    mult: Vec<i64>,
    round: Vec<i64>,
    shift: Vec<i64>,
    bias: Vec<i64>,
}

impl ConvEpi {
    fn new(requant: &[Requantizer], bias: &[i64], cout_pad: usize) -> Option<Self> {
        use tdquant_core::RoundingMode;
        let ok = requant
            .iter()
            .all(|r| r.rounding() == RoundingMode::HalfUp && (1..=62).contains(&r.total_shift()))
            && bias.iter().all(|&b| b.unsigned_abs() <= 1 << 61);
        if !ok || requant.len() != bias.len() || requant.len() > cout_pad {
            return None;
        }
        let lane = |f: &dyn Fn(usize) -> i64, pad: i64| -> Vec<i64> {
            (0..cout_pad)
                .map(|o| if o < requant.len() { f(o) } else { pad })
                .collect()
        };
        Some(Self {
            mult: lane(&|o| i64::from(requant[o].multiplier()), 0),
            round: lane(&|o| 1i64 << (requant[o].total_shift() - 1), 0),
            shift: lane(&|o| i64::from(requant[o].total_shift()), 1),
            bias: lane(&|o| bias[o], 0),
        })
    }
}

/// `out[o] = requant_o.apply_i64(acc[o]) + bias_o` for `o < out.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
fn conv_epilogue_v(acc: &[i32], epi: &ConvEpi, out: &mut [i64]) {
    let n = out.len();
    assert!(acc.len() >= n.div_ceil(8) * 8 && epi.mult.len() >= n.div_ceil(8) * 8);
    for c in 0..n.div_ceil(8) {
        let at = 8 * c;
        // SAFETY: 8 lanes inside acc and the epilogue vectors (asserted);
        // the store is masked to the lanes below n.
        unsafe {
            let a = _mm512_cvtepi32_epi64(_mm256_loadu_si256(acc.as_ptr().add(at).cast()));
            let m = _mm512_loadu_si512(epi.mult.as_ptr().add(at).cast());
            let r = _mm512_loadu_si512(epi.round.as_ptr().add(at).cast());
            let k = _mm512_loadu_si512(epi.shift.as_ptr().add(at).cast());
            let b = _mm512_loadu_si512(epi.bias.as_ptr().add(at).cast());
            let v = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mullo_epi64(a, m), r), k);
            let lanes = if n - at >= 8 {
                0xFF
            } else {
                (1u8 << (n - at)) - 1
            };
            _mm512_mask_storeu_epi64(
                out.as_mut_ptr().add(at).cast(),
                lanes,
                _mm512_add_epi64(v, b),
            );
        }
    }
}

/// `PX` output pixels from `x0` of row `y`: `acc[p·cout_pad + o]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
unsafe fn conv_px<const NV: usize, const PX: usize>(
    cv: &ConvV,
    cin: usize,
    padded: &[i16],
    w: usize,
    y: usize,
    x0: usize,
    acc: &mut [i32],
) {
    let wp = w + 2;
    let pairs = cin / 2;
    assert!(
        cv.cout_pad == NV * 16
            && cv.w.len() >= 9 * pairs * NV * 16
            && acc.len() >= PX * NV * 16
            && x0 + PX <= w
            && padded.len() >= (y + 3) * wp * cin
    );
    let (pp, wv) = (padded.as_ptr(), cv.w.as_ptr());
    let mut a = [[_mm512_setzero_si512(); NV]; PX];
    for s in 0..9 {
        let (dy, dx) = (s / 3, s % 3);
        let base = ((y + dy) * wp + x0 + dx) * cin;
        for c in 0..pairs {
            let wts: [__m512i; NV] = core::array::from_fn(|v| {
                // SAFETY: inside cv.w (asserted).
                unsafe { _mm512_loadu_si512(wv.add(((s * pairs + c) * NV + v) * 16).cast()) }
            });
            for (p, ap) in a.iter_mut().enumerate() {
                // SAFETY: pixel (y + dy, x0 + p + dx) of the padded image, channels 2c, 2c + 1.
                let word = unsafe {
                    pp.add(base + p * cin + 2 * c)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let xb = _mm512_set1_epi32(word);
                for (av, &wt) in ap.iter_mut().zip(&wts) {
                    *av = _mm512_dpwssd_epi32(*av, xb, wt);
                }
            }
        }
    }
    for (p, ap) in a.iter().enumerate() {
        for (v, &av) in ap.iter().enumerate() {
            // SAFETY: inside acc (asserted).
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add((p * NV + v) * 16).cast(), av) };
        }
    }
}

/// Output row `y` of `conv` on the zero-bordered `i16` input (AVX-512).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn conv_row_v(
    conv: &FastConv,
    cv: &ConvV,
    padded: &[i16],
    w: usize,
    y: usize,
    orow: &mut [i64],
) {
    const PX: usize = 4;
    let (cin, cout, cp) = (cv.cin_pad, conv.cout, cv.cout_pad);
    let mut acc = [0i32; PX * 64];
    let mut x0 = 0;
    while x0 < w {
        let m = if w - x0 >= PX { PX } else { 1 };
        // SAFETY: the features are enabled on this function.
        unsafe {
            match (cp, m) {
                (16, PX) => conv_px::<1, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (16, _) => conv_px::<1, 1>(cv, cin, padded, w, y, x0, &mut acc),
                (32, PX) => conv_px::<2, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (32, _) => conv_px::<2, 1>(cv, cin, padded, w, y, x0, &mut acc),
                (48, PX) => conv_px::<3, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (48, _) => conv_px::<3, 1>(cv, cin, padded, w, y, x0, &mut acc),
                (64, PX) => conv_px::<4, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (64, _) => conv_px::<4, 1>(cv, cin, padded, w, y, x0, &mut acc),
                _ => unreachable!("cout_pad is 16, 32, 48 or 64"),
            }
        }
        for p in 0..m {
            let dst = &mut orow[(x0 + p) * cout..(x0 + p + 1) * cout];
            if let Some(epi) = &cv.epi {
                conv_epilogue_v(&acc[p * cp..(p + 1) * cp], epi, dst);
                continue;
            }
            for (o, d) in dst.iter_mut().enumerate() {
                let a = i64::from(acc[p * cp + o]);
                *d = conv.requant[o].apply_i64(a).saturating_add(conv.bias[o]);
            }
        }
        x0 += m;
    }
}

/// The AVX-512 kernels against core's scalar operators, `==` on every
/// output (skipped where the CPU lacks the features).
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tdquant_core::int::attention::{softmax_codes, AvParams, QkParams};
    use tdquant_core::int::gelu::gelu_code;
    use tdquant_core::int::linear::dot_codes;
    use tdquant_core::int::LeI16;

    /// Whether the AVX-512 kernels can run here; prints why not (the
    /// portable path is still checked by tests/int_fast.rs).
    fn simd_or_skip() -> bool {
        let ok = simd_available();
        if !ok {
            println!(
                "SKIPPED: intfast AVX-512 kernel test: this CPU lacks AVX-512 F/BW/DQ/VL/VNNI"
            );
        }
        ok
    }

    fn words_bytes(words: &[i32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn i64_words(v: &[i64]) -> Vec<i32> {
        v.iter()
            .flat_map(|&x| [x as u32 as i32, (x >> 32) as i32])
            .collect()
    }

    #[test]
    fn exp2_v_matches_core_dense() {
        if !simd_or_skip() {
            return;
        }
        let mut ds: Vec<u64> = (0..40u64)
            .flat_map(|n| {
                [0u64, 1, 0xFF_FFFF, 0x100_0000, 0x8000_0000, 0xFFFF_FFFF].map(|f| (n << 32) | f)
            })
            .collect();
        ds.extend((0..4096u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 26));
        ds.extend([(1u64 << 62) - 1, 32 << 32, (32 << 32) - 1]);
        for chunk in ds.chunks(8) {
            let mut lanes = [0u64; 8];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let got = exp2_lanes(lanes);
            for (&d, &g) in lanes.iter().zip(&got) {
                assert_eq!(g, u64::from(exp2_neg_q31(d)), "d = {d:#x}");
            }
        }
    }

    fn exp2_lanes(d: [u64; 8]) -> [u64; 8] {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
        fn run(d: [u64; 8]) -> [u64; 8] {
            let mut out = [0u64; 8];
            // SAFETY: 64-byte loads/stores of the arrays.
            unsafe {
                let v = exp2_v(_mm512_loadu_si512(d.as_ptr().cast()));
                _mm512_storeu_si512(out.as_mut_ptr().cast(), v);
            }
            out
        }
        // SAFETY: callers checked simd_or_skip().
        unsafe { run(d) }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn exp2_v_matches_core(d in proptest::array::uniform8(0u64..(1 << 62))) {
            if simd_or_skip() {
                let got = exp2_lanes(d);
                for (&d, &g) in d.iter().zip(&got) {
                    prop_assert_eq!(g, u64::from(exp2_neg_q31(d)));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn softmax_head_v_matches_core(
            levels in prop_oneof![Just(3u8), Just(15u8), Just(127u8)],
            seed in any::<u64>(),
            a in -(1i64 << 40)..=(1i64 << 40),
            b in -(1i64 << 40)..=(1i64 << 40),
            rpb_shift in 0u32..=40,
            head in 0usize..HEADS,
            masked in any::<bool>(),
            sorted in any::<bool>(),
            nlev in 1usize..=20,
            tlev in proptest::collection::vec(-(1i64 << 40)..=(1i64 << 40), 20),
        ) {
            if !simd_or_skip() {
                return Ok(());
            }
            let mut rng = Rng(seed);
            let q: Vec<u8> = (0..TOKENS * EMBED).map(|_| rng.code(levels)).collect();
            let k: Vec<u8> = (0..TOKENS * EMBED).map(|_| rng.code(levels)).collect();
            let rpb: Vec<i16> = (0..RPB_ROWS).map(|_| rng.next() as i16).collect();
            let labels: [u8; TOKENS] = core::array::from_fn(|_| (rng.next() % 3) as u8);
            let mut t = tlev[..nlev].to_vec();
            if sorted {
                t.sort_unstable();
            }
            let qk = QkParams { a, b, rpb_shift };
            let rpb_bytes: Vec<u8> = rpb.iter().flat_map(|v| v.to_le_bytes()).collect();
            let thresholds = i64_words(&t);
            let col = head * HEAD_DIM;
            let mut want = vec![0u8; TOKENS * TOKENS];
            softmax_codes(
                &q, &k, EMBED, col, &qk, LeI16::new(&rpb_bytes),
                masked.then_some(&labels[..]), &thresholds[..], &mut want,
            ).unwrap();
            let bias: Vec<i64> = (0..TOKENS * TOKENS)
                .map(|n| i64::from(rpb[rpb_index(n / TOKENS, n % TOKENS)]) << rpb_shift)
                .collect();
            let sm = SoftmaxV {
                a,
                b,
                levels_t: &t,
                search: t.len() <= 15 && t.windows(2).all(|w| w[0] <= w[1]),
                th: core::array::from_fn(|i| t.get(i).map_or(0, |&x| x >> 20)),
                tl: core::array::from_fn(|i| t.get(i).map_or(0, |&x| x & 0xF_FFFF)),
            };
            let mut got = vec![0u8; TOKENS * TOKENS];
            // SAFETY: simd_or_skip() checked above.
            unsafe {
                softmax_head_v(&q, &k, col, &sm, &bias, masked.then_some(&labels), &mut got)
            };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn av_head_v_matches_core(
            levels in prop_oneof![Just(3u8), Just(15u8), Just(127u8)],
            seed in any::<u64>(),
            a in -(1i64 << 38)..=(1i64 << 38),
            b in -(1i64 << 44)..=(1i64 << 44),
            c in -(1i64 << 44)..=(1i64 << 44),
            d in -(1i64 << 60)..=(1i64 << 60),
            frac in 0u32..=62,
            head in 0usize..HEADS,
        ) {
            if !simd_or_skip() {
                return Ok(());
            }
            let mut rng = Rng(seed);
            let probs: Vec<u8> = (0..TOKENS * TOKENS).map(|_| rng.code(255)).collect();
            let v: Vec<u8> = (0..TOKENS * EMBED).map(|_| rng.code(levels)).collect();
            let av = AvParams { a, b, c, d, frac };
            let col = head * HEAD_DIM;
            let mut want = vec![0u8; TOKENS * EMBED];
            av_codes(&probs, &v, EMBED, col, &av, levels, &mut want, EMBED).unwrap();
            let mut got = vec![0u8; TOKENS * EMBED];
            // SAFETY: simd_or_skip() checked above.
            unsafe { av_head_v(&probs, &v, col, &av, levels, &mut got) };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn linear_v_matches_core(
            shape in prop_oneof![Just((EMBED, EMBED)), Just((EMBED, MLP)), Just((MLP, EMBED))],
            n in prop_oneof![Just(TOKENS), 1usize..TOKENS],
            wlev in prop_oneof![Just(15u8), Just(127u8)],
            seed in any::<u64>(),
            a in -(1i64 << 38)..=(1i64 << 38),
            b in -(1i64 << 38)..=(1i64 << 38),
            c_shift in 0u32..=29,
        ) {
            if !simd_or_skip() {
                return Ok(());
            }
            let (k, rows) = shape;
            let mut rng = Rng(seed);
            let w: Vec<u8> = (0..k * rows).map(|_| rng.code(wlev)).collect();
            let x: Vec<u8> = (0..n * k).map(|_| rng.code(255)).collect();
            let c: Vec<i32> = (0..rows).map(|_| rng.next() as i32).collect();
            let c_bytes = words_bytes(&c);
            let aff = CodeAffine { a, b, c_shift, frac: 0 };
            let lin = LinV::new(&w, k, rows, &aff, &LeI32::new(&c_bytes)).unwrap();
            let mut got = vec![0i64; n * rows];
            // SAFETY: simd_or_skip() checked above.
            unsafe {
                linear_v(&x, &lin, |t, tr| {
                    got[t * rows..(t + 1) * rows].copy_from_slice(&tr[..rows]);
                })
            };
            for t in 0..n {
                let xt = &x[t * k..(t + 1) * k];
                for j in 0..rows {
                    let want = aff.t(dot_codes(xt, &w[j * k..(j + 1) * k]), sum_codes(xt), c[j]);
                    prop_assert_eq!(got[t * rows + j], want);
                }
            }
        }

        #[test]
        fn ln_and_quant_match_core(
            x in proptest::collection::vec(
                prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(0), -(1i32 << 25)..(1 << 25)],
                EMBED,
            ),
            flat in any::<bool>(),
            eps_t in prop_oneof![Just(1i64), Just(1i64 << 40), 1i64..=(1 << 40)],
            gamma in proptest::collection::vec(any::<i32>(), EMBED),
            beta in proptest::collection::vec(any::<i32>(), EMBED),
            g_frac in 0u32..=40,
            y_sub in 0u32..=64,
            offset in -(1i64 << 60)..=(1i64 << 60),
            shift in 1u32..=62,
            mult_seed in any::<u64>(),
            levels in prop_oneof![Just(3u8), Just(15u8), Just(255u8)],
        ) {
            if !simd_or_skip() {
                return Ok(());
            }
            // Constant tokens give Q = 0 (ρ from eps alone, core's isqrt branch).
            let x: Vec<i32> = if flat { vec![x[0]; EMBED] } else { x };
            let y_frac = (24 + g_frac).min(40).saturating_sub(y_sub % 41);
            let (gb, bb) = (words_bytes(&gamma), words_bytes(&beta));
            let ln = LnParams {
                gamma: LeI32::new(&gb),
                beta: LeI32::new(&bb),
                g_frac,
                y_frac,
                eps_t,
            };
            ln.validate(EMBED).unwrap();
            // 2^32·M ≥ N·2^S, M < 2^31.
            let min_mult = ((i128::from(levels) << shift) >> 32).max(1);
            prop_assume!(min_mult < (1 << 31));
            let mult = (min_mult + i128::from(mult_seed) % ((1i128 << 31) - min_mult)) as i64;
            let fq = FixedQuant { offset, mult, shift, levels };
            fq.validate().unwrap();
            let mut xhat = [0i32; EMBED];
            normalize(&x, eps_t, &mut xhat).unwrap();
            let fast = LnFast::new(&ln).unwrap();
            let mut y = [0i64; EMBED];
            // SAFETY (none needed): portable code.
            ln_token(&x, &fast, &mut y);
            let mut codes = [0u8; EMBED];
            quant_token(&fq, &y, &mut codes);
            for c in 0..EMBED {
                let want = ln.output(c, xhat[c]);
                prop_assert_eq!(y[c], want);
                prop_assert_eq!(codes[c], fq.code(want));
            }
        }

        #[test]
        fn gelu_search_v_matches_core(
            n in 1usize..=15,
            always in 0usize..=4,
            left in 0usize..=8,
            base in -(1i64 << 40)..(1i64 << 40),
            gaps in proptest::collection::vec(0i64..(1 << 20), 30),
            wide in any::<bool>(),
            t_seed in any::<u64>(),
        ) {
            if !simd_or_skip() {
                return Ok(());
            }
            // GELU's shape: the first `always` levels have H = MIN; then H
            // increases while the left branch L (for `left` levels) decreases
            // below H; L = MIN elsewhere.
            let mut h = Vec::new();
            let mut l = Vec::new();
            let (mut hv, mut lv) = (base, base - 1);
            for i in 0..n {
                if i < always {
                    h.push(i64::MIN);
                    l.push(i64::MIN);
                    continue;
                }
                let scale = if wide { 1 << 12 } else { 1 };
                hv += gaps[i] * scale;
                lv -= gaps[15 + i] * scale;
                h.push(hv);
                l.push(if i < always + left { lv } else { i64::MIN });
            }
            let table = i64_words(
                &h.iter().zip(&l).flat_map(|(&h, &l)| [h, l]).collect::<Vec<_>>(),
            );
            // (`wide` spans mostly exceed 2^30: the i64 search.)
            let gs = GeluSearch::new(&h, &l).unwrap();
            let mut rng = Rng(t_seed);
            let t: Vec<i64> = (0..MLP)
                .map(|j| match j % 4 {
                    0 => h[rng.next() as usize % n].saturating_add(rng.next() as i64 % 3),
                    1 => l[rng.next() as usize % n].saturating_add(rng.next() as i64 % 3),
                    2 => base + (rng.next() as i64 >> 24),
                    _ => (rng.next() as i64) >> 2,
                })
                .map(|v: i64| v.clamp(-(1 << 62) + 1, (1 << 62) - 1))
                .collect();
            let mut got = [0u8; MLP];
            // SAFETY: simd_or_skip() checked above.
            unsafe { gelu_search_v(&t, &gs, &mut got) };
            for (j, &tj) in t.iter().enumerate() {
                prop_assert_eq!(got[j], gelu_code(tj, &table[..]));
            }
        }

        #[test]
        fn conv_v_matches_portable(
            shape in prop_oneof![Just((3usize, 60usize)), Just((60, 60)), Just((60, 48)), Just((5, 20))],
            h in 1usize..6,
            w in 1usize..11,
            wmax in prop_oneof![Just(1i16), Just(20i16), Just(127i16)],
            seed in any::<u64>(),
        ) {
            if !simd_or_skip() {
                return Ok(());
            }
            let (cin, cout) = shape;
            let mut rng = Rng(seed);
            let weights: Vec<i16> = (0..cout * 9 * cin)
                .map(|_| (rng.next() % (2 * wmax as u64 + 1)) as i16 - wmax)
                .collect();
            let input: Vec<i32> = (0..h * w * cin)
                .map(|i| match i % 5 {
                    0 => i32::from(i16::MIN) - 7,
                    1 => i32::from(i16::MAX),
                    _ => (rng.next() as i32) >> 15,
                })
                .collect();
            let Some(v) = ConvV::new(&weights, cin, cout) else {
                return Ok(());
            };
            let mut conv = FastConv {
                cin,
                cout,
                small: weights.iter().all(|&x| i8::try_from(x).is_ok()),
                weights,
                requant: (0..cout)
                    .map(|o| Requantizer::from_scale(1.0 / (1.5 + o as f64)).unwrap())
                    .collect(),
                bias: (0..cout).map(|o| o as i64 * 1000 - 7).collect(),
                v: None,
            };
            let mut want = vec![0i64; h * w * cout];
            conv.run(&input, h, w, &mut want, &mut Vec::new(), true);
            let cout_pad = v.cout_pad;
            conv.v = Some(v);
            let mut got = vec![0i64; h * w * cout];
            conv.run(&input, h, w, &mut got, &mut Vec::new(), true);
            prop_assert_eq!(&got, &want);
            // With the vector epilogue.
            let epi = ConvEpi::new(&conv.requant, &conv.bias, cout_pad);
            prop_assert!(epi.is_some());
            if let Some(cv) = conv.v.as_mut() {
                cv.epi = epi;
            }
            conv.run(&input, h, w, &mut got, &mut Vec::new(), true);
            prop_assert_eq!(&got, &want);
        }
    }

    /// xorshift64.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut s = self.0 | 1;
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            self.0 = s;
            s
        }

        /// A code in `0..=levels`, the extremes one time in four.
        fn code(&mut self, levels: u8) -> u8 {
            match self.next() % 8 {
                0 => 0,
                1 => levels,
                _ => (self.next() % (u64::from(levels) + 1)) as u8,
            }
        }
    }
}
