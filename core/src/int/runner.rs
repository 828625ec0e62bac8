//! Whole-network integer execution with caller-provided scratch memory.
//!
//! # Data flow (stream = `i32` Q`F`, saturated to ±2^24)
//!
//! ```text
//! u8 RGB ─(mirror pad to ×8)─ X = 128·p − M_c (i32) ─ conv_first ─► F0 (stream) ─┐
//!   R = patch_norm(F0)                                                           │
//!   4 × RSTB:  R0 = R;  6 Swin blocks on R (in place);                           │
//!              R = clamp(conv(i16(R ≫ k_l)) + R0)                               │
//!   R = norm(R);  R = clamp(conv_after_body(i16(R ≫ k_cab)) + F0) ◄──────────────┘
//!   V = upsample(i16(R ≫ k_up))  (Q8 pixel units, 3s² channels)
//!   pixel = clamp(rshift_round(V, 8), 0, 255), pixel-shuffled, cropped
//! ```
//!
//! `i16(v ≫ k)` is `clamp(rshift_round(v, k), −32768, 32767)`. A Swin block:
//!
//! ```text
//! per 8×8 window (rolled by −4, −4 in odd blocks; tokens row-major in the window):
//!   LN1 → Y → three FixedQuant → q/k/v input codes
//!   q, k, v linears → AttnQ/AttnK/AttnV codes
//!   per head: softmax_codes → AttnProb codes; av_codes → ProjInput codes
//!   proj → R[token] = clamp_stream(R + clamp_stream(rshift_round(t, frac)))
//! per token:
//!   LN2 → FixedQuant → fc1 input codes → fc1 raw t → gelu_code → fc2 input codes
//!   fc2 → R[token] = clamp_stream(R + clamp_stream(rshift_round(t, frac)))
//! ```
//!
//! Windows are disjoint and tokens are independent in the MLP, so both run
//! in place; the results do not depend on the order in which windows,
//! tokens or heads are processed.
//!
//! # Scratch
//!
//! `words` holds two `Hp·Wp·60` stream maps (`Hp`, `Wp` = the region size
//! rounded up to a multiple of 8) and the `Hp·Wp·3` input `X`
//! ([`WORDS_PER_PIXEL`] words per padded pixel); `bytes` the per-window code
//! buffers ([`WORK_BYTES`]). [`scratch_len`] gives both. The two maps hold the
//! stream `R` and the RSTB skip `R0`; a 3×3 conv needs its whole input while
//! it writes, but each output reads only its own position of the skip, so an
//! RSTB conv reads `i16(R ≫ k)` built in place in `R` and adds its output into
//! `R0` in place, which becomes the stream (the two maps swap roles once per
//! RSTB). `F0`, needed only by conv_after_body, is recomputed from `X` into
//! the map the stream does not occupy instead of being kept.
//!
//! # Kernels
//!
//! The hot operators go through an [`IntKernels`] implementation:
//! [`upscale`] and [`upscale_tiled_with`] take a backend's own
//! ([`ScalarKernels`](super::kernels::ScalarKernels) is the oracle);
//! [`upscale_tiled`] runs the oracle's.
//!
//! # Tiling ([`upscale_tiled`])
//!
//! The image is cut into a grid of `tile × tile` **cores** (the last row and
//! column of cores may be smaller). Each core is processed as an independent
//! image: its **context** is the core grown by `halo` LR pixels on every side,
//! clipped to the image; the context is mirror-padded to a multiple of 8 (the
//! evaluation rule) and run through the network, and only the output pixels
//! of the core are written. Output pixel `(Y, X)` therefore comes from the
//! core containing LR pixel `(Y / s, X / s)`. With one core covering the image
//! (`tile ≥ max(h, w)`) the result equals [`upscale`] exactly; otherwise it
//! differs near core seams by at most what the halo fails to capture (the
//! network's receptive field is far larger than any practical halo), which is
//! deterministic, identical on every backend, and measured in the docs.
//!
//! # Index arithmetic
//!
//! Every index below is a pixel coordinate `< Hp` or `< Wp`, a token `< 64`,
//! a channel `< 120` or a product of those; `scratch_len` computed
//! `Hp·Wp·3·60` (and the image sizes `h·w·3·s²`) with checked arithmetic, so
//! none of these products can overflow, and every slice access is either
//! `get`-based or within a buffer of that checked size. Functions relying on
//! this carry `#[allow(clippy::arithmetic_side_effects)]` (and
//! `indexing_slicing` where they index those buffers).

use core::fmt;

use super::arith::{clamp_i16, clamp_stream, rshift_round};
use super::attention::{AvCall, SoftmaxCall};
use super::kernels::IntKernels;
use super::layernorm::LnParams;
use super::linear::LinearCall;
use super::ln_codes::LnQuantizer;
use super::model::{BlockParams, IntModel, INPUT_GAIN, PIXEL_FRAC};
use super::tiling::ImageOut;
pub use super::tiling::{upscale_tiled, upscale_tiled_with, PixelSink, Tiling};
use super::view::{I32Src, LeI32};
use super::{OpError, DEPTH, EMBED, HEADS, HEAD_DIM, LAYERS, MLP, RPB_ROWS, SHIFT, TOKENS, WINDOW};

/// Bytes of per-window work space: 4 code maps of `64 × 60` and one `64 × 64`
/// (the q/k/v input codes, whose maps the q/k/v/P·v output codes reuse, and
/// the attention probabilities).
pub const WORK_BYTES: usize = 4 * TOKENS * EMBED + TOKENS * TOKENS;

/// Scratch sizes for one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScratchLen {
    /// `i32` words.
    pub words: usize,
    /// Bytes.
    pub bytes: usize,
}

/// Why a run was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RunError {
    /// Zero or overflowing dimensions, or a zero tile.
    BadSize,
    /// `img` does not hold `h·w·3` bytes.
    InputLength {
        /// Required.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// `out` does not hold `(s·h)·(s·w)·3` bytes.
    OutputLength {
        /// Required.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// The scratch is too small.
    ScratchTooSmall {
        /// Required.
        needed: ScratchLen,
        /// Given.
        given: ScratchLen,
    },
    /// An operator refused its arguments (cannot happen with a validated
    /// model and correctly sized buffers).
    Op(OpError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::BadSize => f.write_str("image or tile size is zero or too large"),
            RunError::InputLength { expected, actual } => {
                write!(f, "input image: expected {expected} bytes, got {actual}")
            }
            RunError::OutputLength { expected, actual } => {
                write!(f, "output image: expected {expected} bytes, got {actual}")
            }
            RunError::ScratchTooSmall { needed, given } => write!(
                f,
                "scratch too small: need {} words + {} bytes, got {} + {}",
                needed.words, needed.bytes, given.words, given.bytes
            ),
            RunError::Op(e) => write!(f, "integer operator: {e}"),
        }
    }
}

impl core::error::Error for RunError {}

impl From<OpError> for RunError {
    fn from(e: OpError) -> Self {
        RunError::Op(e)
    }
}

/// `n` rounded up to a multiple of 8 (`None` on overflow).
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
fn pad8(n: usize) -> Option<usize> {
    n.checked_add(WINDOW - 1).map(|v| v / WINDOW * WINDOW)
}

/// Stream maps of a region's scratch: `R` and `R0` (module docs, Scratch).
pub const MAPS: usize = 2;

/// Scratch words per padded pixel: the [`MAPS`] stream maps and the input `X`.
pub const WORDS_PER_PIXEL: usize = MAPS * EMBED + 3;

/// Scratch needed to process an `h × w` region.
pub fn scratch_len(h: usize, w: usize) -> Option<ScratchLen> {
    if h == 0 || w == 0 {
        return None;
    }
    let pixels = pad8(h)?.checked_mul(pad8(w)?)?;
    Some(ScratchLen {
        words: pixels.checked_mul(WORDS_PER_PIXEL)?,
        bytes: WORK_BYTES,
    })
}

/// The evaluation padding: source index of position `i` of a side of
/// length `n` padded by repeating the mirror (`0 1 … n−1 n−1 … 0 0 1 …`).
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
fn mirror(i: usize, n: usize) -> usize {
    let period = 2 * n;
    let m = i % period;
    if m < n {
        m
    } else {
        period - 1 - m
    }
}

/// A rectangle of LR pixels: rows `y..y + h`, columns `x..x + w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) y: usize,
    pub(crate) x: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

/// The argument checks of [`upscale`] and [`upscale_tiled`] (before any
/// scratch check), for backends that must refuse the same inputs with the
/// same errors: `h, w ≥ 1`, `img_len = h·w·3`, `out_len = (s·h)·(s·w)·3`.
pub fn check_io(
    model: &IntModel<'_>,
    img_len: usize,
    h: usize,
    w: usize,
    out_len: usize,
) -> Result<(), RunError> {
    let expected = check_input(img_len, h, w)?;
    let s = model.scale();
    let expected_out = expected
        .checked_mul(s)
        .and_then(|v| v.checked_mul(s))
        .ok_or(RunError::BadSize)?;
    if out_len != expected_out {
        return Err(RunError::OutputLength {
            expected: expected_out,
            actual: out_len,
        });
    }
    Ok(())
}

/// Upscales an `h × w` RGB image (`img`: `h·w·3` bytes, row-major,
/// interleaved) into `out` (`(s·h)·(s·w)·3` bytes) as one region with the
/// operators of `kernels` (the oracle's:
/// [`ScalarKernels`](super::kernels::ScalarKernels)): pads to a multiple of
/// 8 with the edge-repeating mirror, runs the integer network, crops.
/// Scratch: [`scratch_len`]`(h, w)`.
#[allow(clippy::too_many_arguments)]
pub fn upscale<K: IntKernels>(
    kernels: &mut K,
    model: &IntModel<'_>,
    img: &[u8],
    h: usize,
    w: usize,
    out: &mut [u8],
    words: &mut [i32],
    bytes: &mut [u8],
) -> Result<(), RunError> {
    check_io(model, img.len(), h, w, out.len())?;
    let all = Rect { y: 0, x: 0, h, w };
    let mut sink = ImageOut::new(out, w, model.scale());
    run_region(kernels, model, img, w, all, all, &mut sink, words, bytes)
}

/// The input checks of [`check_io`]; returns `h·w·3`.
pub(crate) fn check_input(img_len: usize, h: usize, w: usize) -> Result<usize, RunError> {
    if h == 0 || w == 0 {
        return Err(RunError::BadSize);
    }
    let expected = h
        .checked_mul(w)
        .and_then(|p| p.checked_mul(3))
        .ok_or(RunError::BadSize)?;
    if img_len != expected {
        return Err(RunError::InputLength {
            expected,
            actual: img_len,
        });
    }
    Ok(expected)
}

/// `dst[p·3 + c] = 128·pixel − M_c` over the mirror-padded `hp × wp` context.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
fn fill_input(
    model: &IntModel<'_>,
    img: &[u8],
    img_w: usize,
    context: Rect,
    wp: usize,
    dst: &mut [i32],
) {
    let offsets = model.input_offset();
    for (p, px) in dst.chunks_exact_mut(3).enumerate() {
        let sy = context.y + mirror(p / wp, context.h);
        let sx = context.x + mirror(p % wp, context.w);
        let src = (sy * img_w + sx) * 3;
        for (c, v) in px.iter_mut().enumerate() {
            let pixel = i32::from(img.get(src + c).copied().unwrap_or(0));
            *v = INPUT_GAIN * pixel - offsets[c];
        }
    }
}

/// `F0 = conv_first(X)` into `f0` (the input `X` is built in `x`, `hp·wp·3` words).
#[allow(clippy::too_many_arguments)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
fn conv_first<K: IntKernels>(
    kernels: &mut K,
    model: &IntModel<'_>,
    img: &[u8],
    img_w: usize,
    context: Rect,
    (hp, wp): (usize, usize),
    x: &mut [i32],
    f0: &mut [i32],
) -> Result<(), RunError> {
    let input = x.get_mut(..hp * wp * 3).ok_or(RunError::BadSize)?;
    fill_input(model, img, img_w, context, wp, input);
    kernels.conv(model.conv_first(), input, hp, wp, |p, o, v| {
        if let Some(dst) = f0.get_mut(p * EMBED + o) {
            *dst = clamp_stream(v);
        }
    })?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
pub(crate) fn run_region<K: IntKernels, S: PixelSink>(
    kernels: &mut K,
    model: &IntModel<'_>,
    img: &[u8],
    img_w: usize,
    context: Rect,
    core_rect: Rect,
    sink: &mut S,
    words: &mut [i32],
    bytes: &mut [u8],
) -> Result<(), RunError> {
    let needed = scratch_len(context.h, context.w).ok_or(RunError::BadSize)?;
    if words.len() < needed.words || bytes.len() < needed.bytes {
        return Err(RunError::ScratchTooSmall {
            needed,
            given: ScratchLen {
                words: words.len(),
                bytes: bytes.len(),
            },
        });
    }
    let hp = pad8(context.h).ok_or(RunError::BadSize)?;
    let wp = pad8(context.w).ok_or(RunError::BadSize)?;
    let map = hp * wp * EMBED;
    let (mut r, rest) = words.split_at_mut(map);
    let (mut r0, rest) = rest.split_at_mut(map);
    let x = rest.get_mut(..hp * wp * 3).ok_or(RunError::BadSize)?;
    let work = bytes.get_mut(..WORK_BYTES).ok_or(RunError::BadSize)?;

    // Input conversion, conv_first, patch norm.
    conv_first(kernels, model, img, img_w, context, (hp, wp), x, r)?;
    layer_norm_stream(kernels, model.pe_norm(), r)?;

    for l in 0..LAYERS {
        r0.copy_from_slice(r);
        for b in 0..DEPTH {
            let index = l * DEPTH + b;
            let block = SwinBlock {
                model,
                index,
                params: model.block(index),
            };
            block.attention(kernels, r, hp, wp, work)?;
            block.mlp(kernels, r, hp * wp, work)?;
        }
        to_i16(r, model.rstb_shift(l));
        let skip = &mut *r0;
        kernels.conv(&model.rstb_conv(l), r, hp, wp, |p, o, v| {
            if let Some(dst) = skip.get_mut(p * EMBED + o) {
                *dst = clamp_stream(i64::from(clamp_stream(v)) + i64::from(*dst));
            }
        })?;
        core::mem::swap(&mut r, &mut r0);
    }

    layer_norm_stream(kernels, model.norm(), r)?;
    to_i16(r, model.cab_shift());
    // F0 is recomputed into the free map rather than kept for the whole run.
    conv_first(kernels, model, img, img_w, context, (hp, wp), x, r0)?;
    {
        let f0 = &mut *r0;
        kernels.conv(model.conv_after_body(), r, hp, wp, |p, o, v| {
            if let Some(dst) = f0.get_mut(p * EMBED + o) {
                *dst = clamp_stream(i64::from(clamp_stream(v)) + i64::from(*dst));
            }
        })?;
    }
    let a = r0;
    to_i16(a, model.up_shift());

    let s = model.scale();
    let s2 = s * s;
    kernels.conv(model.upsample(), a, hp, wp, |p, o, v| {
        let (y, x) = (p / wp, p % wp);
        // Region-local → image coordinates; keep only the core.
        let (gy, gx) = (context.y + y, context.x + x);
        if y >= context.h
            || x >= context.w
            || gy < core_rect.y
            || gy >= core_rect.y + core_rect.h
            || gx < core_rect.x
            || gx >= core_rect.x + core_rect.w
        {
            return;
        }
        let (c, sub) = (o / s2, o % s2);
        let (i, j) = (sub / s, sub % s);
        let pixel = rshift_round(v, PIXEL_FRAC).clamp(0, 255) as u8;
        sink.put(gy * s + i, gx * s + j, c, pixel);
    })?;
    Ok(())
}

/// `r = i16(r ≫ k)`, in place (the stream becomes a conv input).
fn to_i16(r: &mut [i32], k: u32) {
    for v in r.iter_mut() {
        *v = clamp_i16(rshift_round(i64::from(*v), k));
    }
}

/// A block LayerNorm's constants copied out of the model bytes once per
/// block (its outputs are evaluated for every token).
fn decode_ln(ln: &LnParams<LeI32<'_>>) -> LnParams<[i32; EMBED]> {
    let mut gamma = [0i32; EMBED];
    let mut beta = [0i32; EMBED];
    for (c, (g, b)) in gamma.iter_mut().zip(beta.iter_mut()).enumerate() {
        *g = ln.gamma.at(c);
        *b = ln.beta.at(c);
    }
    LnParams {
        gamma,
        beta,
        g_frac: ln.g_frac,
        y_frac: ln.y_frac,
        eps_t: ln.eps_t,
    }
}

/// The normalised `x̂` of pixel `p` of the stream (the block LayerNorms'
/// outputs are only ever quantized: [`LnQuantizer`] takes it from there).
fn normalize_pixel<K: IntKernels>(
    kernels: &mut K,
    eps_t: i64,
    r: &[i32],
    p: usize,
    xhat: &mut [i32; EMBED],
) -> Result<(), RunError> {
    let start = p.checked_mul(EMBED).ok_or(RunError::BadSize)?;
    let token: &[i32; EMBED] = r
        .get(start..)
        .and_then(|rest| rest.first_chunk())
        .ok_or(RunError::BadSize)?;
    kernels.normalize(token, eps_t, xhat)?;
    Ok(())
}

/// The `EMBED` codes of one token in a work plane.
fn token_codes(
    plane: &mut [u8],
    token: core::ops::Range<usize>,
) -> Result<&mut [u8; EMBED], RunError> {
    plane
        .get_mut(token)
        .and_then(|codes| codes.try_into().ok())
        .ok_or(RunError::BadSize)
}

/// A LayerNorm whose output stays in the stream, token by token, in place
/// (`LnParams::apply_to_stream` with the kernels' `normalize`).
fn layer_norm_stream<K: IntKernels>(
    kernels: &mut K,
    ln: &LnParams<LeI32<'_>>,
    r: &mut [i32],
) -> Result<(), OpError> {
    ln.validate(EMBED)?;
    let mut token = [0i32; EMBED];
    let mut xhat = [0i32; EMBED];
    for px in r.chunks_exact_mut(EMBED) {
        token.copy_from_slice(px);
        kernels.normalize(&token, ln.eps_t, &mut xhat)?;
        for (c, (o, &xh)) in px.iter_mut().zip(xhat.iter()).enumerate() {
            *o = clamp_stream(ln.output(c, xh));
        }
    }
    Ok(())
}

/// Region label (0, 1, 2) of rolled coordinate `i` of a side of length `n`:
/// `[0, n−8)`, `[n−8, n−4)`, `[n−4, n)`.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
fn region(i: usize, n: usize) -> u8 {
    if i + WINDOW < n {
        0
    } else if i + SHIFT < n {
        1
    } else {
        2
    }
}

/// The 64 tokens of window `(wy, wx)` of an `hp × wp` map (multiples of 8):
/// `pos[t]` is the pixel (`y·wp + x`) token `t` reads and writes, and
/// `labels[t]` its shifted-window region label (`3·row_region + col_region`
/// in the rolled frame; used only when `shifted`). Tokens are row-major in
/// the window; with `shifted` the map is rolled by (−4, −4) first, so token
/// `(r, c)` of the window reads pixel `((8wy + r + 4) mod hp, (8wx + c + 4) mod wp)`.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
pub fn window_tokens(
    wy: usize,
    wx: usize,
    hp: usize,
    wp: usize,
    shifted: bool,
    pos: &mut [usize; TOKENS],
    labels: &mut [u8; TOKENS],
) {
    let shift = if shifted { SHIFT } else { 0 };
    let (hp, wp) = (hp.max(1), wp.max(1));
    for (t, (p, label)) in pos.iter_mut().zip(labels.iter_mut()).enumerate() {
        let ry = wy.saturating_mul(WINDOW).saturating_add(t / WINDOW);
        let rx = wx.saturating_mul(WINDOW).saturating_add(t % WINDOW);
        *p = (ry.saturating_add(shift) % hp)
            .saturating_mul(wp)
            .saturating_add(rx.saturating_add(shift) % wp);
        *label = 3 * region(ry, hp) + region(rx, wp);
    }
}

/// One Swin block of the model: its attention branch and then its MLP
/// branch update the stream `r` (`hp × wp × 60`) in place.
struct SwinBlock<'m, 'a> {
    model: &'m IntModel<'a>,
    /// Block number (`layer · DEPTH + block`), which selects its weight rows.
    index: usize,
    params: BlockParams<'a>,
}

#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
impl SwinBlock<'_, '_> {
    /// The attention branch of a block, window by window.
    ///
    /// Work planes: the q, k, v input codes in planes 0, 1, 2; the q codes go to
    /// plane 3, then the k codes overwrite the spent q inputs (plane 0), the v
    /// codes the k inputs (plane 1), and the P·v codes the v inputs (plane 2).
    fn attention<K: IntKernels>(
        &self,
        kernels: &mut K,
        r: &mut [i32],
        hp: usize,
        wp: usize,
        work: &mut [u8],
    ) -> Result<(), RunError> {
        let bp = &self.params;
        let levels = self.model.bits().levels();
        let plane = TOKENS * EMBED;
        let (p0, rest) = work.split_at_mut(plane);
        let (p1, rest) = rest.split_at_mut(plane);
        let (p2, rest) = rest.split_at_mut(plane);
        let (p3, rest) = rest.split_at_mut(plane);
        let probs = rest.get_mut(..TOKENS * TOKENS).ok_or(RunError::BadSize)?;
        let row0 = u32::try_from(self.index * 4 * EMBED).map_err(|_| RunError::BadSize)?;
        let e32 = EMBED as u32;
        let mut xhat = [0i32; EMBED];
        let mut pos = [0usize; TOKENS];
        let mut labels = [0u8; TOKENS];
        let w = self.model.w_attn();
        let ln1 = decode_ln(&bp.ln1);
        // One at a time: each is a 4 KiB table, and a temporary array of three
        // results would sit beside the three on a firmware's stack.
        let quant_q = LnQuantizer::new(&ln1, &bp.fq_q)?;
        let quant_k = LnQuantizer::new(&ln1, &bp.fq_k)?;
        let quant_v = LnQuantizer::new(&ln1, &bp.fq_v)?;
        for wy in 0..hp / WINDOW {
            for wx in 0..wp / WINDOW {
                window_tokens(wy, wx, hp, wp, bp.shifted, &mut pos, &mut labels);
                for (t, &p) in pos.iter().enumerate() {
                    normalize_pixel(kernels, ln1.eps_t, r, p, &mut xhat)?;
                    let token = t * EMBED..(t + 1) * EMBED;
                    quant_q.codes(&xhat, token_codes(p0, token.clone())?);
                    quant_k.codes(&xhat, token_codes(p1, token.clone())?);
                    quant_v.codes(&xhat, token_codes(p2, token)?);
                }
                let q = LinearCall::new(p0, EMBED, w, row0, EMBED, &bp.aff_q, &bp.c_q);
                kernels.linear_codes(&q, levels, p3)?;
                let (qc, kin, vin) = (&*p3, &*p1, &*p2);
                let (k0, v0) = (row0 + e32, row0 + 2 * e32);
                let k = LinearCall::new(kin, EMBED, w, k0, EMBED, &bp.aff_k, &bp.c_k);
                kernels.linear_codes(&k, levels, p0)?;
                let v = LinearCall::new(vin, EMBED, w, v0, EMBED, &bp.aff_v, &bp.c_v);
                kernels.linear_codes(&v, levels, p1)?;
                let (kc, vc, oc) = (&*p0, &*p1, &mut *p2);
                let mask = bp.shifted.then_some(&labels[..]);
                for h in 0..HEADS {
                    let col = h * HEAD_DIM;
                    let softmax = SoftmaxCall {
                        q: qc,
                        k: kc,
                        stride: EMBED,
                        col,
                        qk: &bp.qk,
                        rpb: bp.rpb.sub(h * RPB_ROWS, RPB_ROWS),
                        labels: mask,
                        thresholds: &bp.prob,
                    };
                    kernels.softmax_codes(&softmax, probs)?;
                    let av = AvCall {
                        probs,
                        v: vc,
                        stride: EMBED,
                        col,
                        av: &bp.av,
                        levels,
                        out_stride: EMBED,
                    };
                    kernels.av_codes(&av, oc)?;
                }
                let proj_row0 = row0 + 3 * e32;
                let proj =
                    LinearCall::new(oc, EMBED, w, proj_row0, EMBED, &bp.aff_proj, &bp.c_proj);
                kernels.linear_stream(&proj, &pos, EMBED, r)?;
            }
        }
        Ok(())
    }

    /// The MLP branch of a block, 64 tokens at a time.
    fn mlp<K: IntKernels>(
        &self,
        kernels: &mut K,
        r: &mut [i32],
        pixels: usize,
        work: &mut [u8],
    ) -> Result<(), RunError> {
        let bp = &self.params;
        let (fc1in, rest) = work.split_at_mut(TOKENS * EMBED);
        let hidden = rest.get_mut(..TOKENS * MLP).ok_or(RunError::BadSize)?;
        let row1 = u32::try_from(self.index * MLP).map_err(|_| RunError::BadSize)?;
        let row2 = u32::try_from(self.index * EMBED).map_err(|_| RunError::BadSize)?;
        let mut xhat = [0i32; EMBED];
        let ln2 = decode_ln(&bp.ln2);
        let quant_fc1 = LnQuantizer::new(&ln2, &bp.fq_fc1)?;
        let mut p0 = 0;
        while p0 < pixels {
            let n = TOKENS.min(pixels - p0);
            for t in 0..n {
                normalize_pixel(kernels, ln2.eps_t, r, p0 + t, &mut xhat)?;
                quant_fc1.codes(&xhat, token_codes(fc1in, t * EMBED..(t + 1) * EMBED)?);
            }
            let (x1, w1) = (&fc1in[..n * EMBED], self.model.w_fc1());
            let fc1 = LinearCall::new(x1, EMBED, w1, row1, MLP, &bp.aff_fc1, &bp.c_fc1);
            kernels.linear_gelu(&fc1, &bp.gelu, hidden)?;
            let mut pos = [0usize; TOKENS];
            for (t, p) in pos.iter_mut().enumerate() {
                *p = p0 + t;
            }
            let (x2, w2) = (&hidden[..n * MLP], self.model.w_fc2());
            let fc2 = LinearCall::new(x2, MLP, w2, row2, EMBED, &bp.aff_fc2, &bp.c_fc2);
            kernels.linear_stream(&fc2, &pos[..n], EMBED, r)?;
            p0 += n;
        }
        Ok(())
    }
}
