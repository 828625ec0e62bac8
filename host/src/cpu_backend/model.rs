//! [`FastIntModel`]: the integer forward pass of core's runner, stage by
//! stage, on the kernels of one instruction-set level ([`Kernels`], chosen
//! once when the model is built) and rayon's threads.

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use tdquant_core::int::arith::{clamp_stream, fits_bits, rshift_round};
use tdquant_core::int::attention::rpb_index;
use tdquant_core::int::model::{INPUT_GAIN, PIXEL_FRAC};
use tdquant_core::int::{
    I32Src, IntModel, BLOCKS, DEPTH, EMBED, HEADS, LAYERS, MLP, RPB_ROWS, SHIFT, TOKENS, WINDOW,
};

use super::dispatch::Kernels;
use super::prepared::{decode, unpack, FastBlock, FastConv, Lin};
use super::prepared_vnni::VBlock;
use super::scalar::layernorm::layer_norm_stream;
#[cfg(target_arch = "x86_64")]
use super::scalar::stream::pad_i16;
use super::scalar::stream::{add_skip, mirror, pad8, sized, to_i16};
use crate::cpu_features::Isa;

/// The integer model with its weights decoded for fast execution.
pub struct FastIntModel<'a> {
    pub(crate) model: IntModel<'a>,
    /// Buffers of earlier calls, for reuse.
    pool: std::sync::Mutex<Vec<Buffers>>,
    /// The kernels of the instruction-set level in use.
    kernels: &'static Kernels,
    /// Attention and MLP run the explicit kernels: the table has them and
    /// every block has their layout (the convolutions each check their own).
    explicit_blocks: bool,
    pub(crate) blocks: Vec<FastBlock<'a>>,
    conv_first: FastConv,
    rstb_conv: Vec<FastConv>,
    conv_after_body: FastConv,
    upsample: FastConv,
}

impl<'a> FastIntModel<'a> {
    /// Decodes `model` (a validated integer model) for the best
    /// instruction-set level of this CPU.
    pub fn new(model: &IntModel<'a>) -> Result<Self> {
        Self::with_isa(model, Isa::best())
    }

    /// Decodes `model` for the kernels of `isa`; an error if this CPU lacks
    /// it. Every level gives the same bytes.
    pub fn with_isa(model: &IntModel<'a>, isa: Isa) -> Result<Self> {
        let kernels = Kernels::for_isa(isa)
            .ok_or_else(|| anyhow!("this CPU cannot run the {} kernels", isa.name()))?;
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
        let explicit_blocks = kernels.has_block_kernels() && blocks.iter().all(|b| b.v.is_some());
        Ok(Self {
            model: *model,
            pool: std::sync::Mutex::new(Vec::new()),
            kernels,
            explicit_blocks,
            blocks,
            conv_first: FastConv::new(model.conv_first())?,
            rstb_conv: (0..LAYERS)
                .map(|l| FastConv::new(&model.rstb_conv(l)))
                .collect::<Result<_>>()?,
            conv_after_body: FastConv::new(model.conv_after_body())?,
            upsample: FastConv::new(model.upsample())?,
        })
    }

    /// The instruction-set level of the kernels.
    pub fn isa(&self) -> Isa {
        self.kernels.isa
    }

    /// Whether attention and MLP run the explicit kernels of the level
    /// (AVX2 or AVX-512 VNNI: the level has them and the model allows them,
    /// codes of at most 7 bits).
    pub fn explicit_kernels_in_use(&self) -> bool {
        self.explicit_blocks
    }

    /// Upscale factor.
    pub fn scale(&self) -> usize {
        self.model.scale()
    }

    /// Upscales an `h × w` RGB image exactly as
    /// [`tdquant_core::int::runner::upscale`] does; returns the
    /// `(s·h) × (s·w)` RGB bytes.
    pub fn upscale(&self, img: &[u8], h: usize, w: usize) -> Result<Vec<u8>> {
        let s = self.scale();
        let mut out = vec![0u8; h.saturating_mul(w).saturating_mul(3 * s * s)];
        self.upscale_into(img, h, w, &mut out)?;
        Ok(out)
    }

    /// [`Self::upscale`] into `out` (`(s·h)·(s·w)·3` bytes), which is only
    /// written once every stage has succeeded.
    pub fn upscale_into(&self, img: &[u8], h: usize, w: usize, out: &mut [u8]) -> Result<()> {
        tdquant_core::int::check_io(&self.model, img.len(), h, w, out.len())
            .map_err(|e| anyhow!("integer upscale: {e}"))?;
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
        run_conv(
            self.kernels,
            &self.conv_first,
            input,
            hp,
            wp,
            &mut v[..map],
            padded,
        );
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
        let mut deltas = if self.explicit_blocks {
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
            run_conv(
                self.kernels,
                &self.rstb_conv[l],
                a,
                hp,
                wp,
                &mut v[..map],
                padded,
            );
            add_skip(r, &v[..map], r0);
        }
        layer_norm_stream(model.norm(), r)?;
        to_i16(r, a, model.cab_shift());
        run_conv(
            self.kernels,
            &self.conv_after_body,
            a,
            hp,
            wp,
            &mut v[..map],
            padded,
        );
        add_skip(r, &v[..map], f0);
        to_i16(r, a, model.up_shift());

        let cout = self.upsample.cout;
        let up = &mut v[..pixels * cout];
        run_conv(self.kernels, &self.upsample, a, hp, wp, up, padded);
        let s = model.scale();
        let s2 = s * s;
        let out_w = w * s * 3;
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
        Ok(())
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
        if let (true, Some(bk), Some(vb)) = (
            self.explicit_blocks,
            self.kernels.block_kernels(),
            &self.blocks[index].v,
        ) {
            // SAFETY: as in `conv`; the windows partition the pixels.
            unsafe { (bk.attention)(self, index, vb, r, hp, wp) };
            return Ok(());
        }
        let rr: &[i32] = r;
        let window = self.kernels.window;
        deltas
            .par_chunks_mut(TOKENS * EMBED)
            .enumerate()
            // SAFETY: as in `conv`.
            .try_for_each(|(win, delta)| unsafe { window(self, index, rr, hp, wp, win, delta) })?;
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

    /// The MLP branch of block `index`, 64 tokens per task.
    fn mlp(&self, index: usize, r: &mut [i32]) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(bk), Some(vb)) = (
            self.explicit_blocks,
            self.kernels.block_kernels(),
            &self.blocks[index].v,
        ) {
            let mlp_chunk = bk.mlp_chunk;
            r.par_chunks_mut(TOKENS * EMBED).for_each_init(
                || Box::new(([0u8; TOKENS * EMBED], [0u8; TOKENS * MLP])),
                |scratch, chunk| {
                    let (fc1in, hidden) = &mut **scratch;
                    // SAFETY: as in `conv`.
                    unsafe { mlp_chunk(vb, chunk, fc1in, hidden) };
                },
            );
            return Ok(());
        }
        let mlp_chunk = self.kernels.mlp_chunk;
        r.par_chunks_mut(TOKENS * EMBED)
            // SAFETY: as in `conv`.
            .try_for_each(|chunk| unsafe { mlp_chunk(self, index, chunk) })
    }
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

/// `v[p·cout + o]` of `conv` exactly as `Conv::run` emits it, rows in
/// parallel. `padded`: scratch for the explicit kernels' zero-bordered input.
pub(crate) fn run_conv(
    kernels: &Kernels,
    conv: &FastConv,
    input: &[i32],
    h: usize,
    w: usize,
    out: &mut [i64],
    padded: &mut Vec<i16>,
) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(bk), Some(cv)) = (kernels.block_kernels(), conv.v.as_ref()) {
        let padded: &[i16] = pad_i16(input, h, w, conv.cin, cv.cin_pad, padded);
        let row = bk.conv_row;
        out.par_chunks_mut(w * conv.cout)
            .enumerate()
            // SAFETY: `Kernels::for_isa` installs explicit entries only when
            // the CPU has the features.
            .for_each(|(y, orow)| unsafe { row(conv, cv, padded, w, y, orow) });
        return;
    }
    let row = kernels.conv_row;
    out.par_chunks_mut(w * conv.cout)
        .enumerate()
        // SAFETY: `Kernels::for_isa` installs an ISA's entries only when
        // the CPU has it.
        .for_each(|(y, orow)| unsafe { row(conv, input, h, w, y, orow) });
}
