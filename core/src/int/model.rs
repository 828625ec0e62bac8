//! [`IntModel`]: the integer SwinIR-light read zero-copy from a `.tdq` file,
//! with every section's presence, dtype, shape and every constant's bound
//! validated up front, so inference cannot fail on structure.
//!
//! # Sections (format 1)
//!
//! `b` = bit width (2, 3, 4), `N = 2^b − 1`, `s` = scale (2, 3, 4).
//!
//! | name | dtype | shape | content |
//! |---|---|---|---|
//! | `meta` | I32 | `[32]` | [`meta`] words |
//! | `conv_first.w` | I8 or I16 | `[60, 27]` | conv_first weights, `(ky, kx, c)` order |
//! | `conv_first.q` | I32 | `[60, 3]` | multiplier, shift, bias (stream units) |
//! | `pe_norm` | I32 | `[124]` | patch_embed.norm, [`ln`] layout, `y_frac = F` |
//! | `w_attn` | Packed(b) | `[24·240, 60]` | per block: q rows, k rows, v rows, proj rows (60 each) |
//! | `w_fc1` | Packed(b) | `[24·120, 60]` | per block: fc1 |
//! | `w_fc2` | Packed(b) | `[24·60, 120]` | per block: fc2 |
//! | `rpb` | I16 | `[24, 6, 225]` | relative-position bias, base-2 logit units ≫ rpb_shift |
//! | `blocks` | I32 | `[24, 738 + 6N]` | per-block constants, [`block`] layout |
//! | `rstb_conv.w` | I8 or I16 | `[4·60, 540]` | the 4 RSTB convs, stacked |
//! | `rstb_conv.q` | I32 | `[4·60, 3]` | their requantizers (stream units) |
//! | `norm` | I32 | `[124]` | final norm, `y_frac = F` |
//! | `conv_after_body.w` | I8 or I16 | `[60, 540]` | |
//! | `conv_after_body.q` | I32 | `[60, 3]` | stream units |
//! | `upsample.w` | I8 or I16 | `[3s², 540]` | |
//! | `upsample.q` | I32 | `[3s², 3]` | output in Q8 pixel units (`255·(x + mean)·2^8`) |
//!
//! Other sections are ignored (so a file may carry metadata). Every 64-bit
//! constant is two I32 words, low word first.

use core::fmt;

use crate::container::{Container, ContainerError, Dtype, Section};
use crate::packed::PackedMatrix;
use crate::quant::BitWidth;

use super::attention::{AvParams, QkParams};
use super::conv::{Conv, ConvWeights, QUANT_WORDS};
use super::layernorm::{FixedQuant, LnParams};
use super::linear::CodeAffine;
use super::section_layout::{SectionKind, SectionLayout};
use super::view::{I32Src, LeI16, LeI32};
use super::{OpError, BLOCKS, DEPTH, EMBED, HEADS, LAYERS, MLP, RPB_ROWS, WINDOW};

/// Format version in `meta[0]`.
pub const FORMAT: i32 = 1;
/// Gain of the input conversion: `X = 128·pixel − M_c`.
pub const INPUT_GAIN: i32 = 128;
/// Fractional bits of the upsampler output (pixel units).
pub const PIXEL_FRAC: u32 = 8;

/// Word offsets of the `meta` section.
pub mod meta {
    /// Length of `meta`.
    pub const LEN: usize = 32;
    /// [`super::FORMAT`].
    pub const FORMAT: usize = 0;
    /// Upscaling factor (2, 3, 4).
    pub const SCALE: usize = 1;
    /// Bit width of weights and activations (2, 3, 4).
    pub const BITS: usize = 2;
    /// Fractional bits `F` of the residual stream (4..=24).
    pub const STREAM_FRAC: usize = 3;
    /// Input shifts (stream → i16) of the four RSTB convs.
    pub const RSTB_SHIFT: usize = 4;
    /// Input shift of conv_after_body.
    pub const CAB_SHIFT: usize = 8;
    /// Input shift of the upsampler conv.
    pub const UP_SHIFT: usize = 9;
    /// `M_c = round(128·255·mean_c)`, c = R, G, B.
    pub const INPUT_OFFSET: usize = 10;
    /// 60, 4, 6, 6, 8, 120 (embed, layers, depth, heads, window, mlp), checked.
    pub const DIMS: usize = 13;
}

/// Word offsets of a LayerNorm's constants (`pe_norm`, `norm`, and inside a block).
pub mod ln {
    /// `g_frac`.
    pub const G_FRAC: usize = 0;
    /// `y_frac`.
    pub const Y_FRAC: usize = 1;
    /// The eps term `E` (i64).
    pub const EPS: usize = 2;
    /// `G_c`, 60 words.
    pub const GAMMA: usize = 4;
    /// `B_c`, 60 words.
    pub const BETA: usize = 64;
    /// Words in all.
    pub const WORDS: usize = 124;
}

/// Word offsets inside one block's row of the `blocks` section.
pub mod block {
    /// LayerNorm 1 ([`super::ln`] layout).
    pub const LN1: usize = 0;
    /// LayerNorm 2.
    pub const LN2: usize = 124;
    /// Fixed quantizers (5 words each: shift, offset i64, mult i64) for the
    /// q, k, v inputs (on LN1) and the fc1 input (on LN2).
    pub const FQ_Q: usize = 248;
    /// See [`FQ_Q`].
    pub const FQ_K: usize = 253;
    /// See [`FQ_Q`].
    pub const FQ_V: usize = 258;
    /// See [`FQ_Q`].
    pub const FQ_FC1: usize = 263;
    /// Words per fixed quantizer.
    pub const FQ_WORDS: usize = 5;
    /// Linear affines (6 words each: A i64, B i64, c_shift, frac) of q, k,
    /// v (codes), proj (stream), fc1 (raw), fc2 (stream).
    pub const AFF_Q: usize = 268;
    /// See [`AFF_Q`].
    pub const AFF_K: usize = 274;
    /// See [`AFF_Q`].
    pub const AFF_V: usize = 280;
    /// See [`AFF_Q`].
    pub const AFF_PROJ: usize = 286;
    /// See [`AFF_Q`].
    pub const AFF_FC1: usize = 292;
    /// See [`AFF_Q`].
    pub const AFF_FC2: usize = 298;
    /// Words per affine.
    pub const AFF_WORDS: usize = 6;
    /// Per-row constants `C_j`: q 60, k 60, v 60, proj 60, fc1 120, fc2 60.
    pub const ROWC: usize = 304;
    /// Offsets of each layer's `C_j` inside [`ROWC`].
    pub const ROWC_Q: usize = ROWC;
    /// See [`ROWC_Q`].
    pub const ROWC_K: usize = ROWC + 60;
    /// See [`ROWC_Q`].
    pub const ROWC_V: usize = ROWC + 120;
    /// See [`ROWC_Q`].
    pub const ROWC_PROJ: usize = ROWC + 180;
    /// See [`ROWC_Q`].
    pub const ROWC_FC1: usize = ROWC + 240;
    /// See [`ROWC_Q`].
    pub const ROWC_FC2: usize = ROWC + 360;
    /// Logit constants: A i64, B i64, rpb_shift.
    pub const QK: usize = 724;
    /// `P·v` constants: A, B, C, D (i64 each), frac.
    pub const AV: usize = 729;
    /// AttnProb levels `T_k` (i64 each), `2N` words.
    pub const PROB: usize = 738;
    /// Words of a block row for `N` levels.
    #[allow(clippy::arithmetic_side_effects)] // levels ≤ 255
    pub const fn words(levels: usize) -> usize {
        PROB + 6 * levels
    }
    /// Start of the GELU table (`4N` words: H_k i64, L_k i64).
    #[allow(clippy::arithmetic_side_effects)] // levels ≤ 255
    pub const fn gelu(levels: usize) -> usize {
        PROB + 2 * levels
    }
}

/// Why a `.tdq` file is not a valid integer SwinIR-light.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntModelError {
    /// The container itself is malformed.
    Container(ContainerError),
    /// A required section is absent.
    MissingSection {
        /// Its name.
        name: &'static str,
    },
    /// A section has the wrong dtype, width or shape.
    BadSection {
        /// Its name.
        name: &'static str,
        /// What the model needs (widths and shapes follow `meta`).
        expected: SectionLayout,
        /// What the file holds.
        found: SectionLayout,
    },
    /// A `meta` value is unsupported.
    BadMeta {
        /// Word index in `meta`.
        index: usize,
        /// The value found.
        value: i32,
    },
    /// A constant violates an operator's bound.
    BadConstant {
        /// Section.
        section: &'static str,
        /// Block index (or 0 for global sections).
        block: usize,
        /// The operator's complaint.
        error: OpError,
    },
}

impl fmt::Display for IntModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntModelError::Container(e) => write!(f, "bad .tdq container: {e}"),
            IntModelError::MissingSection { name } => write!(f, "section {name} is missing"),
            IntModelError::BadSection {
                name,
                expected,
                found,
            } => write!(f, "section {name}: expected {expected}, found {found}"),
            IntModelError::BadMeta { index, value } => {
                write!(f, "meta[{index}] = {value} is not supported")
            }
            IntModelError::BadConstant {
                section,
                block,
                error,
            } => write!(f, "{section} (block {block}): {error}"),
        }
    }
}

impl core::error::Error for IntModelError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            IntModelError::Container(e) => Some(e),
            IntModelError::BadConstant { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<ContainerError> for IntModelError {
    fn from(e: ContainerError) -> Self {
        IntModelError::Container(e)
    }
}

/// The constants of one Swin block, as operator parameter structs.
#[derive(Clone, Copy, Debug)]
pub struct BlockParams<'a> {
    /// LayerNorm 1.
    pub ln1: LnParams<LeI32<'a>>,
    /// LayerNorm 2.
    pub ln2: LnParams<LeI32<'a>>,
    /// QInput quantizer on LN1's output.
    pub fq_q: FixedQuant,
    /// KInput quantizer on LN1's output.
    pub fq_k: FixedQuant,
    /// VInput quantizer on LN1's output.
    pub fq_v: FixedQuant,
    /// Fc1Input quantizer on LN2's output.
    pub fq_fc1: FixedQuant,
    /// q linear → AttnQ codes.
    pub aff_q: CodeAffine,
    /// k linear → AttnK codes.
    pub aff_k: CodeAffine,
    /// v linear → AttnV codes.
    pub aff_v: CodeAffine,
    /// proj → stream.
    pub aff_proj: CodeAffine,
    /// fc1 → raw (GELU thresholds).
    pub aff_fc1: CodeAffine,
    /// fc2 → stream.
    pub aff_fc2: CodeAffine,
    /// `C_j` of q.
    pub c_q: LeI32<'a>,
    /// `C_j` of k.
    pub c_k: LeI32<'a>,
    /// `C_j` of v.
    pub c_v: LeI32<'a>,
    /// `C_j` of proj.
    pub c_proj: LeI32<'a>,
    /// `C_j` of fc1.
    pub c_fc1: LeI32<'a>,
    /// `C_j` of fc2.
    pub c_fc2: LeI32<'a>,
    /// Logits.
    pub qk: QkParams,
    /// `P·v`.
    pub av: AvParams,
    /// AttnProb levels, `2N` words.
    pub prob: LeI32<'a>,
    /// GELU thresholds, `4N` words.
    pub gelu: LeI32<'a>,
    /// Bias table, `[6, 225]`.
    pub rpb: LeI16<'a>,
    /// True for odd blocks (cyclic shift 4 and the region mask).
    pub shifted: bool,
}

/// A validated integer SwinIR-light borrowing the bytes of a `.tdq` file.
#[derive(Clone, Copy, Debug)]
pub struct IntModel<'a> {
    bits: BitWidth,
    scale: usize,
    stream_frac: u32,
    rstb_shift: [u32; LAYERS],
    cab_shift: u32,
    up_shift: u32,
    input_offset: [i32; 3],
    conv_first: Conv<'a, LeI32<'a>>,
    pe_norm: LnParams<LeI32<'a>>,
    w_attn: PackedMatrix<'a>,
    w_fc1: PackedMatrix<'a>,
    w_fc2: PackedMatrix<'a>,
    rpb: LeI16<'a>,
    blocks: LeI32<'a>,
    block_words: usize,
    rstb_conv_w: ConvWeights<'a>,
    rstb_conv_q: LeI32<'a>,
    norm: LnParams<LeI32<'a>>,
    conv_after_body: Conv<'a, LeI32<'a>>,
    upsample: Conv<'a, LeI32<'a>>,
}

fn section<'a>(c: &Container<'a>, name: &'static str) -> Result<Section<'a>, IntModelError> {
    c.get(name).ok_or(IntModelError::MissingSection { name })
}

fn bad_section(
    name: &'static str,
    kind: SectionKind,
    shape: &[u32],
    found: &Section<'_>,
) -> IntModelError {
    IntModelError::BadSection {
        name,
        expected: SectionLayout::new(kind, shape),
        found: SectionLayout::of(found),
    }
}

fn plain<'a>(
    c: &Container<'a>,
    name: &'static str,
    dtype: Dtype,
    shape: &[u32],
) -> Result<&'a [u8], IntModelError> {
    let s = section(c, name)?;
    if s.dtype() != dtype || s.shape() != shape {
        return Err(bad_section(name, SectionKind::Plain(dtype), shape, &s));
    }
    Ok(s.data())
}

fn conv_weights<'a>(
    c: &Container<'a>,
    name: &'static str,
    shape: &[u32],
) -> Result<ConvWeights<'a>, IntModelError> {
    let s = section(c, name)?;
    match (s.dtype(), s.shape() == shape) {
        (Dtype::I8, true) => Ok(ConvWeights::I8(s.data())),
        (Dtype::I16, true) => Ok(ConvWeights::I16(LeI16::new(s.data()))),
        _ => Err(bad_section(name, SectionKind::I8OrI16, shape, &s)),
    }
}

fn packed<'a>(
    c: &Container<'a>,
    name: &'static str,
    bits: BitWidth,
    shape: [u32; 2],
) -> Result<PackedMatrix<'a>, IntModelError> {
    let s = section(c, name)?;
    let wrong = || bad_section(name, SectionKind::Packed(bits), &shape, &s);
    if s.bit_width() != Some(bits) || s.shape() != shape {
        return Err(wrong());
    }
    s.as_packed().map_err(|_| wrong())
}

fn dim(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// LayerNorm constants at `base` of `words`.
pub fn ln_at<'a>(words: LeI32<'a>, base: usize) -> LnParams<LeI32<'a>> {
    LnParams {
        gamma: words.sub(base.saturating_add(ln::GAMMA), EMBED),
        beta: words.sub(base.saturating_add(ln::BETA), EMBED),
        g_frac: u32::try_from(words.at(base.saturating_add(ln::G_FRAC))).unwrap_or(u32::MAX),
        y_frac: u32::try_from(words.at(base.saturating_add(ln::Y_FRAC))).unwrap_or(u32::MAX),
        eps_t: words.at_i64(base.saturating_add(ln::EPS)),
    }
}

fn fq_at(words: &LeI32<'_>, base: usize, levels: u8) -> FixedQuant {
    FixedQuant {
        shift: u32::try_from(words.at(base)).unwrap_or(u32::MAX),
        offset: words.at_i64(base.saturating_add(1)),
        mult: words.at_i64(base.saturating_add(3)),
        levels,
    }
}

fn aff_at(words: &LeI32<'_>, base: usize) -> CodeAffine {
    CodeAffine {
        a: words.at_i64(base),
        b: words.at_i64(base.saturating_add(2)),
        c_shift: u32::try_from(words.at(base.saturating_add(4))).unwrap_or(u32::MAX),
        frac: u32::try_from(words.at(base.saturating_add(5))).unwrap_or(u32::MAX),
    }
}

impl<'a> IntModel<'a> {
    /// Parses and validates a `.tdq` integer SwinIR-light.
    // Shape arithmetic on the small fixed dimensions (≤ 24·240) and scale ≤ 4.
    #[allow(clippy::arithmetic_side_effects)]
    pub fn parse(bytes: &'a [u8]) -> Result<IntModel<'a>, IntModelError> {
        let c = Container::parse(bytes)?;
        let meta_words = LeI32::new(plain(&c, "meta", Dtype::I32, &[dim(meta::LEN)])?);
        let bad_meta = |index: usize| IntModelError::BadMeta {
            index,
            value: meta_words.at(index),
        };
        if meta_words.at(meta::FORMAT) != FORMAT {
            return Err(bad_meta(meta::FORMAT));
        }
        let scale = match meta_words.at(meta::SCALE) {
            s @ 2..=4 => s as usize,
            _ => return Err(bad_meta(meta::SCALE)),
        };
        let bits = match meta_words.at(meta::BITS) {
            2 => BitWidth::B2,
            3 => BitWidth::B3,
            4 => BitWidth::B4,
            _ => return Err(bad_meta(meta::BITS)),
        };
        let stream_frac = match meta_words.at(meta::STREAM_FRAC) {
            f @ 4..=24 => f as u32,
            _ => return Err(bad_meta(meta::STREAM_FRAC)),
        };
        let shift_at = |index: usize| -> Result<u32, IntModelError> {
            match meta_words.at(index) {
                k @ 0..=30 => Ok(k as u32),
                _ => Err(bad_meta(index)),
            }
        };
        let mut rstb_shift = [0u32; LAYERS];
        for (l, k) in rstb_shift.iter_mut().enumerate() {
            *k = shift_at(meta::RSTB_SHIFT.saturating_add(l))?;
        }
        let cab_shift = shift_at(meta::CAB_SHIFT)?;
        let up_shift = shift_at(meta::UP_SHIFT)?;
        let mut input_offset = [0i32; 3];
        for (ch, m) in input_offset.iter_mut().enumerate() {
            let index = meta::INPUT_OFFSET.saturating_add(ch);
            *m = meta_words.at(index);
            if !(0..=INPUT_GAIN.saturating_mul(255)).contains(m) {
                return Err(bad_meta(index));
            }
        }
        let dims = [EMBED, LAYERS, DEPTH, HEADS, WINDOW, MLP];
        for (i, &d) in dims.iter().enumerate() {
            let index = meta::DIMS.saturating_add(i);
            if usize::try_from(meta_words.at(index)).ok() != Some(d) {
                return Err(bad_meta(index));
            }
        }
        for index in meta::DIMS.saturating_add(dims.len())..meta::LEN {
            if meta_words.at(index) != 0 {
                return Err(bad_meta(index));
            }
        }

        let taps = dim(9 * EMBED);
        let e = dim(EMBED);
        let up_out = 3 * scale * scale;
        let conv_first = Conv {
            cin: 3,
            cout: EMBED,
            weights: conv_weights(&c, "conv_first.w", &[e, 27])?,
            quant: LeI32::new(plain(&c, "conv_first.q", Dtype::I32, &[e, 3])?),
        };
        let pe_norm = ln_at(
            LeI32::new(plain(&c, "pe_norm", Dtype::I32, &[dim(ln::WORDS)])?),
            0,
        );
        let nb = dim(BLOCKS);
        let w_attn = packed(&c, "w_attn", bits, [nb * 4 * e, e])?;
        let w_fc1 = packed(&c, "w_fc1", bits, [nb * dim(MLP), e])?;
        let w_fc2 = packed(&c, "w_fc2", bits, [nb * e, dim(MLP)])?;
        let rpb = LeI16::new(plain(
            &c,
            "rpb",
            Dtype::I16,
            &[nb, dim(HEADS), dim(RPB_ROWS)],
        )?);
        let levels = usize::from(bits.levels());
        let block_words = block::words(levels);
        let blocks = LeI32::new(plain(&c, "blocks", Dtype::I32, &[nb, dim(block_words)])?);
        let rstb_conv_w = conv_weights(&c, "rstb_conv.w", &[dim(LAYERS) * e, taps])?;
        let rstb_conv_q = LeI32::new(plain(&c, "rstb_conv.q", Dtype::I32, &[dim(LAYERS) * e, 3])?);
        let norm = ln_at(
            LeI32::new(plain(&c, "norm", Dtype::I32, &[dim(ln::WORDS)])?),
            0,
        );
        let conv_after_body = Conv {
            cin: EMBED,
            cout: EMBED,
            weights: conv_weights(&c, "conv_after_body.w", &[e, taps])?,
            quant: LeI32::new(plain(&c, "conv_after_body.q", Dtype::I32, &[e, 3])?),
        };
        let upsample = Conv {
            cin: EMBED,
            cout: up_out,
            weights: conv_weights(&c, "upsample.w", &[dim(up_out), taps])?,
            quant: LeI32::new(plain(&c, "upsample.q", Dtype::I32, &[dim(up_out), 3])?),
        };

        let model = IntModel {
            bits,
            scale,
            stream_frac,
            rstb_shift,
            cab_shift,
            up_shift,
            input_offset,
            conv_first,
            pe_norm,
            w_attn,
            w_fc1,
            w_fc2,
            rpb,
            blocks,
            block_words,
            rstb_conv_w,
            rstb_conv_q,
            norm,
            conv_after_body,
            upsample,
        };
        model.validate_constants()?;
        Ok(model)
    }

    fn validate_constants(&self) -> Result<(), IntModelError> {
        let global = |section: &'static str| {
            move |error: OpError| IntModelError::BadConstant {
                section,
                block: 0,
                error,
            }
        };
        self.conv_first.validate().map_err(global("conv_first"))?;
        for (name, ln) in [("pe_norm", &self.pe_norm), ("norm", &self.norm)] {
            ln.validate(EMBED).map_err(global(name))?;
            if ln.y_frac != self.stream_frac {
                return Err(IntModelError::BadConstant {
                    section: name,
                    block: 0,
                    error: OpError::Param {
                        what: "layernorm y_frac (must equal the stream's)",
                    },
                });
            }
        }
        for l in 0..LAYERS {
            self.rstb_conv(l)
                .validate()
                .map_err(|error| IntModelError::BadConstant {
                    section: "rstb_conv",
                    block: l,
                    error,
                })?;
        }
        self.conv_after_body
            .validate()
            .map_err(global("conv_after_body"))?;
        self.upsample.validate().map_err(global("upsample"))?;
        for i in 0..BLOCKS {
            let err = |error: OpError| IntModelError::BadConstant {
                section: "blocks",
                block: i,
                error,
            };
            let b = self.block(i);
            b.ln1.validate(EMBED).map_err(err)?;
            b.ln2.validate(EMBED).map_err(err)?;
            for fq in [b.fq_q, b.fq_k, b.fq_v, b.fq_fc1] {
                fq.validate().map_err(err)?;
            }
            for aff in [b.aff_q, b.aff_k, b.aff_v, b.aff_proj, b.aff_fc1, b.aff_fc2] {
                aff.validate().map_err(err)?;
            }
            b.qk.validate().map_err(err)?;
            b.av.validate().map_err(err)?;
            for k in 0..self.levels() {
                let t = b.prob.at_i64(k.saturating_mul(2));
                if !super::arith::fits_bits(t, 40) {
                    return Err(err(OpError::Param {
                        what: "attention threshold",
                    }));
                }
            }
        }
        Ok(())
    }

    /// Bit width of weights and activations.
    pub const fn bits(&self) -> BitWidth {
        self.bits
    }

    /// `N = 2^b − 1`.
    pub fn levels(&self) -> usize {
        usize::from(self.bits.levels())
    }

    /// Upscaling factor.
    pub const fn scale(&self) -> usize {
        self.scale
    }

    /// Fractional bits `F` of the residual stream.
    pub const fn stream_frac(&self) -> u32 {
        self.stream_frac
    }

    /// Input shift (stream → i16) of RSTB `l`'s conv.
    pub fn rstb_shift(&self, l: usize) -> u32 {
        self.rstb_shift.get(l).copied().unwrap_or(0)
    }

    /// Input shift of conv_after_body.
    pub const fn cab_shift(&self) -> u32 {
        self.cab_shift
    }

    /// Input shift of the upsampler.
    pub const fn up_shift(&self) -> u32 {
        self.up_shift
    }

    /// `M_c` of the input conversion `X = 128·p − M_c`.
    pub const fn input_offset(&self) -> [i32; 3] {
        self.input_offset
    }

    /// conv_first.
    pub const fn conv_first(&self) -> &Conv<'a, LeI32<'a>> {
        &self.conv_first
    }

    /// patch_embed.norm.
    pub const fn pe_norm(&self) -> &LnParams<LeI32<'a>> {
        &self.pe_norm
    }

    /// The final norm.
    pub const fn norm(&self) -> &LnParams<LeI32<'a>> {
        &self.norm
    }

    /// conv_after_body.
    pub const fn conv_after_body(&self) -> &Conv<'a, LeI32<'a>> {
        &self.conv_after_body
    }

    /// The upsampler conv (`3s²` outputs in Q8 pixel units).
    pub const fn upsample(&self) -> &Conv<'a, LeI32<'a>> {
        &self.upsample
    }

    /// RSTB `l`'s conv.
    pub fn rstb_conv(&self, l: usize) -> Conv<'a, LeI32<'a>> {
        let rows = l.saturating_mul(EMBED);
        let taps = 9 * EMBED;
        let weights = match self.rstb_conv_w {
            ConvWeights::I8(bytes) => {
                let start = rows.saturating_mul(taps).min(bytes.len());
                let end = start.saturating_add(EMBED * taps).min(bytes.len());
                ConvWeights::I8(bytes.get(start..end).unwrap_or(&[]))
            }
            ConvWeights::I16(v) => ConvWeights::I16(v.sub(rows.saturating_mul(taps), EMBED * taps)),
        };
        Conv {
            cin: EMBED,
            cout: EMBED,
            weights,
            quant: self
                .rstb_conv_q
                .sub(rows.saturating_mul(QUANT_WORDS), EMBED * QUANT_WORDS),
        }
    }

    /// Packed q|k|v|proj weights of all blocks (`[24·240, 60]`).
    pub const fn w_attn(&self) -> &PackedMatrix<'a> {
        &self.w_attn
    }

    /// Packed fc1 weights of all blocks (`[24·120, 60]`).
    pub const fn w_fc1(&self) -> &PackedMatrix<'a> {
        &self.w_fc1
    }

    /// Packed fc2 weights of all blocks (`[24·60, 120]`).
    pub const fn w_fc2(&self) -> &PackedMatrix<'a> {
        &self.w_fc2
    }

    /// The constants of block `i` (0..24, `i = layer·6 + block`).
    pub fn block(&self, i: usize) -> BlockParams<'a> {
        let words = self
            .blocks
            .sub(i.saturating_mul(self.block_words), self.block_words);
        let levels = self.bits.levels();
        let n = usize::from(levels);
        BlockParams {
            ln1: ln_at(words, block::LN1),
            ln2: ln_at(words, block::LN2),
            fq_q: fq_at(&words, block::FQ_Q, levels),
            fq_k: fq_at(&words, block::FQ_K, levels),
            fq_v: fq_at(&words, block::FQ_V, levels),
            fq_fc1: fq_at(&words, block::FQ_FC1, levels),
            aff_q: aff_at(&words, block::AFF_Q),
            aff_k: aff_at(&words, block::AFF_K),
            aff_v: aff_at(&words, block::AFF_V),
            aff_proj: aff_at(&words, block::AFF_PROJ),
            aff_fc1: aff_at(&words, block::AFF_FC1),
            aff_fc2: aff_at(&words, block::AFF_FC2),
            c_q: words.sub(block::ROWC_Q, EMBED),
            c_k: words.sub(block::ROWC_K, EMBED),
            c_v: words.sub(block::ROWC_V, EMBED),
            c_proj: words.sub(block::ROWC_PROJ, EMBED),
            c_fc1: words.sub(block::ROWC_FC1, MLP),
            c_fc2: words.sub(block::ROWC_FC2, EMBED),
            qk: QkParams {
                a: words.at_i64(block::QK),
                b: words.at_i64(block::QK + 2),
                rpb_shift: u32::try_from(words.at(block::QK + 4)).unwrap_or(u32::MAX),
            },
            av: AvParams {
                a: words.at_i64(block::AV),
                b: words.at_i64(block::AV + 2),
                c: words.at_i64(block::AV + 4),
                d: words.at_i64(block::AV + 6),
                frac: u32::try_from(words.at(block::AV + 8)).unwrap_or(u32::MAX),
            },
            prob: words.sub(block::PROB, 2 * n),
            gelu: words.sub(block::gelu(n), 4 * n),
            rpb: self
                .rpb
                .sub(i.saturating_mul(HEADS * RPB_ROWS), HEADS * RPB_ROWS),
            shifted: i % 2 == 1,
        }
    }
}
