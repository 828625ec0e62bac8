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
//! The tests in `host/tests/int_fast.rs` compare the outputs with the oracle.

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use tdquant_core::int::arith::{
    ceil_shift_i128, clamp_code, clamp_i16, clamp_stream, fits_bits, rshift_round,
};
use tdquant_core::int::attention::{av_codes, rpb_index, MASK_Z, PROB_FRAC};
use tdquant_core::int::conv::Conv;
use tdquant_core::int::exp2::exp2_neg_q31;
use tdquant_core::int::layernorm::{normalize, LnParams};
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
        let bias = (0..conv.cout).map(|o| conv.bias(o)).collect();
        Ok(Self {
            cin: conv.cin,
            cout: conv.cout,
            weights,
            small,
            requant,
            bias,
        })
    }

    /// `v[p·cout + o]` exactly as `Conv::run` emits it, rows in parallel.
    fn run(&self, input: &[i32], h: usize, w: usize, out: &mut [i64]) {
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
}

fn decode(v: &LeI32<'_>) -> Vec<i32> {
    (0..v.len()).map(|i| v.at(i)).collect()
}

/// The integer model with its weights decoded for fast execution.
pub struct FastIntModel<'a> {
    model: IntModel<'a>,
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
                Ok(FastBlock {
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
        Ok(Self {
            model: *model,
            blocks,
            conv_first: FastConv::new(model.conv_first())?,
            rstb_conv: (0..LAYERS)
                .map(|l| FastConv::new(&model.rstb_conv(l)))
                .collect::<Result<_>>()?,
            conv_after_body: FastConv::new(model.conv_after_body())?,
            upsample: FastConv::new(model.upsample())?,
        })
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
        let mut v = vec![0i64; map.max(pixels * self.upsample.cout)];

        // Input conversion and conv_first.
        let offsets = model.input_offset();
        let mut input = vec![0i32; pixels * 3];
        for (p, px) in input.chunks_exact_mut(3).enumerate() {
            let sy = mirror(p / wp, h);
            let sx = mirror(p % wp, w);
            let src = (sy * w + sx) * 3;
            for (c, d) in px.iter_mut().enumerate() {
                *d = INPUT_GAIN * i32::from(img[src + c]) - offsets[c];
            }
        }
        self.conv_first.run(&input, hp, wp, &mut v[..map]);
        let f0: Vec<i32> = v[..map].par_iter().map(|&x| clamp_stream(x)).collect();
        let mut r = f0.clone();
        layer_norm_stream(model.pe_norm(), &mut r)?;

        let mut a = vec![0i32; map];
        for l in 0..LAYERS {
            let r0 = r.clone();
            for b in 0..DEPTH {
                let index = l * DEPTH + b;
                self.attention(index, &mut r, hp, wp)?;
                self.mlp(index, &mut r)?;
            }
            to_i16(&r, &mut a, model.rstb_shift(l));
            self.rstb_conv[l].run(&a, hp, wp, &mut v[..map]);
            add_skip(&mut r, &v[..map], &r0);
        }
        layer_norm_stream(model.norm(), &mut r)?;
        to_i16(&r, &mut a, model.cab_shift());
        self.conv_after_body.run(&a, hp, wp, &mut v[..map]);
        add_skip(&mut r, &v[..map], &f0);
        to_i16(&r, &mut a, model.up_shift());

        let cout = self.upsample.cout;
        let up = &mut v[..pixels * cout];
        self.upsample.run(&a, hp, wp, up);
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
        Ok(out)
    }

    /// The attention branch of block `index`: windows in parallel, then the
    /// buffered `proj` outputs added to the stream.
    fn attention(&self, index: usize, r: &mut [i32], hp: usize, wp: usize) -> Result<()> {
        let (nwy, nwx) = (hp / WINDOW, wp / WINDOW);
        let rr: &[i32] = r;
        let mut deltas = vec![0i64; nwy * nwx * TOKENS * EMBED];
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

    /// The MLP branch of block `index`, 64 tokens per task.
    fn mlp(&self, index: usize, r: &mut [i32]) -> Result<()> {
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
    r.par_chunks_mut(EMBED).try_for_each(|px| {
        let mut token = [0i32; EMBED];
        token.copy_from_slice(px);
        ln.apply_to_stream(&token, px)
            .map_err(|e| anyhow!("layer norm: {e}"))
    })
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
