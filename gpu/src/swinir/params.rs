//! The parameter structs shared with CUDA (`#[repr(C)]` mirrors of
//! `gpu/kernels/tdq_swinir.cuh`, sizes pinned on both sides), the kernel
//! enumeration, and the conversion of a parsed `.tdq` block into them.

use tdquant_core::int::{
    attention::{AvParams, QkParams},
    layernorm::{FixedQuant, LnParams},
    linear::CodeAffine,
    model::IntModel,
    I32Src, LeI32, EMBED, HEADS, MLP, RPB_ROWS,
};

/// `TDQ_MAX_LEVELS`: the most quantizer levels of a `.tdq` model (b ≤ 4).
pub const MAX_LEVELS: usize = 15;
/// Threads per block of every launch.
pub const BLOCK_THREADS: u32 = 256;

/// `tdq_ln_params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct LnParamsC {
    /// `E`.
    pub eps_t: i64,
    /// `g_frac`.
    pub g_frac: u32,
    /// `y_frac`.
    pub y_frac: u32,
    /// `G_c`.
    pub gamma: [i32; EMBED],
    /// `B_c`.
    pub beta: [i32; EMBED],
}

/// `tdq_fixed_quant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct FixedQuantC {
    /// `L`.
    pub offset: i64,
    /// `M`.
    pub mult: i64,
    /// `S`.
    pub shift: u32,
    /// `N`.
    pub levels: u32,
}

/// `tdq_code_affine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct CodeAffineC {
    /// `A`.
    pub a: i64,
    /// `B`.
    pub b: i64,
    /// Shift of `C_j`.
    pub c_shift: u32,
    /// Fractional bits of `t`.
    pub frac: u32,
}

/// `tdq_qk_params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct QkParamsC {
    /// `A`.
    pub a: i64,
    /// `B`.
    pub b: i64,
    /// Shift of the bias table.
    pub rpb_shift: u32,
    /// Zero.
    pub reserved: u32,
}

/// `tdq_av_params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct AvParamsC {
    /// `A`.
    pub a: i64,
    /// `B`.
    pub b: i64,
    /// `C`.
    pub c: i64,
    /// `D`.
    pub d: i64,
    /// Fractional bits.
    pub frac: u32,
    /// Zero.
    pub reserved: u32,
}

/// `tdq_block_params`: one Swin block's constants, decoded from the `.tdq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockParamsC {
    /// LayerNorm 1.
    pub ln1: LnParamsC,
    /// LayerNorm 2.
    pub ln2: LnParamsC,
    /// q input quantizer.
    pub fq_q: FixedQuantC,
    /// k input quantizer.
    pub fq_k: FixedQuantC,
    /// v input quantizer.
    pub fq_v: FixedQuantC,
    /// fc1 input quantizer.
    pub fq_fc1: FixedQuantC,
    /// q linear.
    pub aff_q: CodeAffineC,
    /// k linear.
    pub aff_k: CodeAffineC,
    /// v linear.
    pub aff_v: CodeAffineC,
    /// proj linear.
    pub aff_proj: CodeAffineC,
    /// fc1 linear.
    pub aff_fc1: CodeAffineC,
    /// fc2 linear.
    pub aff_fc2: CodeAffineC,
    /// Logit constants.
    pub qk: QkParamsC,
    /// `P·v` constants.
    pub av: AvParamsC,
    /// AttnProb levels `T_k`.
    pub prob_t: [i64; MAX_LEVELS],
    /// GELU `H_k`.
    pub gelu_hi: [i64; MAX_LEVELS],
    /// GELU `L_k`.
    pub gelu_lo: [i64; MAX_LEVELS],
    /// q row constants.
    pub c_q: [i32; EMBED],
    /// k row constants.
    pub c_k: [i32; EMBED],
    /// v row constants.
    pub c_v: [i32; EMBED],
    /// proj row constants.
    pub c_proj: [i32; EMBED],
    /// fc1 row constants.
    pub c_fc1: [i32; MLP],
    /// fc2 row constants.
    pub c_fc2: [i32; EMBED],
    /// Relative-position bias, `[heads, 225]`.
    pub rpb: [i16; HEADS * RPB_ROWS],
    /// `N`.
    pub levels: u32,
    /// 1 in odd (shifted-window) blocks.
    pub shifted: u32,
    /// Zero.
    pub reserved: u32,
}

/// `tdq_packed_matrix`: a packed b-bit matrix in device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct PackedMatrixC {
    /// Device address of the words.
    pub words: u64,
    /// Bit width.
    pub bits: u32,
    /// Rows.
    pub rows: u32,
    /// Columns (codes per row).
    pub cols: u32,
    /// Words per row.
    pub words_per_row: u32,
}

/// `tdq_input_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct InputArgs {
    pub img: u64,
    pub out: u64,
    pub h: u32,
    pub w: u32,
    pub hp: u32,
    pub wp: u32,
    pub offset: [i32; 3],
    pub reserved: u32,
}

/// `tdq_conv_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct ConvArgs {
    pub input: u64,
    pub weights: u64,
    pub quant: u64,
    pub skip: u64,
    pub out: u64,
    pub pixels: u64,
    pub hp: u32,
    pub wp: u32,
    pub cin: u32,
    pub cout: u32,
    pub mode: u32,
    pub h: u32,
    pub w: u32,
    pub scale: u32,
}

/// `tdq_ln_stream_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct LnStreamArgs {
    pub r: u64,
    pub ln: u64,
    pub pixels: u64,
}

/// `tdq_to_i16_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct ToI16Args {
    pub r: u64,
    pub a: u64,
    pub n: u64,
    pub k: u32,
    pub reserved: u32,
}

/// `tdq_copy_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct CopyArgs {
    pub src: u64,
    pub dst: u64,
    pub n: u64,
}

/// `tdq_block_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct BlockArgs {
    pub r: u64,
    pub blk: u64,
    pub qin: u64,
    pub kin: u64,
    pub vin: u64,
    pub qc: u64,
    pub kc: u64,
    pub vc: u64,
    pub probs: u64,
    pub oc: u64,
    pub fc1in: u64,
    pub hidden: u64,
    pub w: PackedMatrixC,
    pub hp: u32,
    pub wp: u32,
    pub block: u32,
    pub layer: u32,
}

/// `tdq_mlp_args`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct MlpArgs {
    pub r: u64,
    pub blk: u64,
    pub w1: PackedMatrixC,
    pub w2: PackedMatrixC,
    pub pixels: u64,
    pub block: u32,
    pub reserved: u32,
}

// Sizes pinned on both sides (tdq_swinir.cuh / tdq_swinir.cu static_asserts).
const _: () = assert!(core::mem::size_of::<LnParamsC>() == 496);
const _: () = assert!(core::mem::size_of::<FixedQuantC>() == 24);
const _: () = assert!(core::mem::size_of::<CodeAffineC>() == 24);
const _: () = assert!(core::mem::size_of::<QkParamsC>() == 24);
const _: () = assert!(core::mem::size_of::<AvParamsC>() == 40);
const _: () = assert!(core::mem::size_of::<BlockParamsC>() == 6048);
const _: () = assert!(core::mem::size_of::<PackedMatrixC>() == 24);
const _: () = assert!(core::mem::size_of::<InputArgs>() == 48);
const _: () = assert!(core::mem::size_of::<ConvArgs>() == 80);
const _: () = assert!(core::mem::size_of::<LnStreamArgs>() == 24);
const _: () = assert!(core::mem::size_of::<ToI16Args>() == 32);
const _: () = assert!(core::mem::size_of::<CopyArgs>() == 24);
const _: () = assert!(core::mem::size_of::<BlockArgs>() == 136);
const _: () = assert!(core::mem::size_of::<MlpArgs>() == 80);

/// `sizeof` of each shared struct, in the order of `tdq_host_struct_size`.
pub const STRUCT_SIZES: [(&str, usize); 14] = [
    ("tdq_ln_params", core::mem::size_of::<LnParamsC>()),
    ("tdq_fixed_quant", core::mem::size_of::<FixedQuantC>()),
    ("tdq_code_affine", core::mem::size_of::<CodeAffineC>()),
    ("tdq_qk_params", core::mem::size_of::<QkParamsC>()),
    ("tdq_av_params", core::mem::size_of::<AvParamsC>()),
    ("tdq_block_params", core::mem::size_of::<BlockParamsC>()),
    ("tdq_packed_matrix", core::mem::size_of::<PackedMatrixC>()),
    ("tdq_input_args", core::mem::size_of::<InputArgs>()),
    ("tdq_conv_args", core::mem::size_of::<ConvArgs>()),
    ("tdq_ln_stream_args", core::mem::size_of::<LnStreamArgs>()),
    ("tdq_to_i16_args", core::mem::size_of::<ToI16Args>()),
    ("tdq_copy_args", core::mem::size_of::<CopyArgs>()),
    ("tdq_block_args", core::mem::size_of::<BlockArgs>()),
    ("tdq_mlp_args", core::mem::size_of::<MlpArgs>()),
];

/// The kernels of `tdq_swinir.cu`; the discriminant is the index the host
/// shim's `tdq_emu_swinir` dispatches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kernel {
    /// `tdq_k_input`.
    Input = 0,
    /// `tdq_k_conv3x3`.
    Conv3x3 = 1,
    /// `tdq_k_ln_stream`.
    LnStream = 2,
    /// `tdq_k_to_i16`.
    ToI16 = 3,
    /// `tdq_k_copy`.
    Copy = 4,
    /// `tdq_k_attn_in`.
    AttnIn = 5,
    /// `tdq_k_linear`.
    Linear = 6,
    /// `tdq_k_softmax`.
    Softmax = 7,
    /// `tdq_k_av`.
    Av = 8,
    /// `tdq_k_attn_fused`.
    AttnFused = 9,
    /// `tdq_k_mlp_in`.
    MlpIn = 10,
    /// `tdq_k_mlp_fused`.
    MlpFused = 11,
}

impl Kernel {
    /// Every kernel, in discriminant order.
    pub const ALL: [Kernel; 12] = [
        Kernel::Input,
        Kernel::Conv3x3,
        Kernel::LnStream,
        Kernel::ToI16,
        Kernel::Copy,
        Kernel::AttnIn,
        Kernel::Linear,
        Kernel::Softmax,
        Kernel::Av,
        Kernel::AttnFused,
        Kernel::MlpIn,
        Kernel::MlpFused,
    ];

    /// The `extern "C"` entry point name in the PTX.
    pub const fn entry(self) -> &'static str {
        match self {
            Kernel::Input => "tdq_k_input",
            Kernel::Conv3x3 => "tdq_k_conv3x3",
            Kernel::LnStream => "tdq_k_ln_stream",
            Kernel::ToI16 => "tdq_k_to_i16",
            Kernel::Copy => "tdq_k_copy",
            Kernel::AttnIn => "tdq_k_attn_in",
            Kernel::Linear => "tdq_k_linear",
            Kernel::Softmax => "tdq_k_softmax",
            Kernel::Av => "tdq_k_av",
            Kernel::AttnFused => "tdq_k_attn_fused",
            Kernel::MlpIn => "tdq_k_mlp_in",
            Kernel::MlpFused => "tdq_k_mlp_fused",
        }
    }
}

/// Which attention/MLP kernels the forward pass uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelPath {
    /// One kernel per operator (softmax and P·v separate; MLP as LN2 → fc1 →
    /// fc2 launches), every intermediate in global memory.
    PerOperator,
    /// The fused attention-row and whole-MLP kernels.
    #[default]
    Fused,
}

/// `TDQ_LIN_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum LinearLayer {
    Q = 0,
    K = 1,
    V = 2,
    Proj = 3,
    Fc1 = 4,
    Fc2 = 5,
}

/// `TDQ_CONV_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ConvMode {
    Stream = 0,
    StreamSkip = 1,
    Pixels = 2,
}

pub(super) fn ln_c(ln: &LnParams<LeI32<'_>>) -> LnParamsC {
    let mut c = LnParamsC {
        eps_t: ln.eps_t,
        g_frac: ln.g_frac,
        y_frac: ln.y_frac,
        gamma: [0; EMBED],
        beta: [0; EMBED],
    };
    for i in 0..EMBED {
        c.gamma[i] = ln.gamma.at(i);
        c.beta[i] = ln.beta.at(i);
    }
    c
}

impl From<&FixedQuant> for FixedQuantC {
    fn from(fq: &FixedQuant) -> Self {
        Self {
            offset: fq.offset,
            mult: fq.mult,
            shift: fq.shift,
            levels: u32::from(fq.levels),
        }
    }
}

impl From<&CodeAffine> for CodeAffineC {
    fn from(a: &CodeAffine) -> Self {
        Self {
            a: a.a,
            b: a.b,
            c_shift: a.c_shift,
            frac: a.frac,
        }
    }
}

impl From<&QkParams> for QkParamsC {
    fn from(p: &QkParams) -> Self {
        Self {
            a: p.a,
            b: p.b,
            rpb_shift: p.rpb_shift,
            reserved: 0,
        }
    }
}

impl From<&AvParams> for AvParamsC {
    fn from(p: &AvParams) -> Self {
        Self {
            a: p.a,
            b: p.b,
            c: p.c,
            d: p.d,
            frac: p.frac,
            reserved: 0,
        }
    }
}

fn copy_words<const N: usize>(src: &LeI32<'_>) -> [i32; N] {
    let mut out = [0; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = src.at(i);
    }
    out
}

/// Block `index`'s constants as the kernels read them.
pub fn block_params(model: &IntModel<'_>, index: usize) -> BlockParamsC {
    let bp = model.block(index);
    let levels = model.levels().min(MAX_LEVELS);
    let mut prob_t = [0i64; MAX_LEVELS];
    let mut gelu_hi = [0i64; MAX_LEVELS];
    let mut gelu_lo = [0i64; MAX_LEVELS];
    for k in 0..levels {
        prob_t[k] = bp.prob.at_i64(2 * k);
        gelu_hi[k] = bp.gelu.at_i64(4 * k);
        gelu_lo[k] = bp.gelu.at_i64(4 * k + 2);
    }
    let mut rpb = [0i16; HEADS * RPB_ROWS];
    for (i, r) in rpb.iter_mut().enumerate() {
        *r = bp.rpb.at(i);
    }
    BlockParamsC {
        ln1: ln_c(&bp.ln1),
        ln2: ln_c(&bp.ln2),
        fq_q: FixedQuantC::from(&bp.fq_q),
        fq_k: FixedQuantC::from(&bp.fq_k),
        fq_v: FixedQuantC::from(&bp.fq_v),
        fq_fc1: FixedQuantC::from(&bp.fq_fc1),
        aff_q: CodeAffineC::from(&bp.aff_q),
        aff_k: CodeAffineC::from(&bp.aff_k),
        aff_v: CodeAffineC::from(&bp.aff_v),
        aff_proj: CodeAffineC::from(&bp.aff_proj),
        aff_fc1: CodeAffineC::from(&bp.aff_fc1),
        aff_fc2: CodeAffineC::from(&bp.aff_fc2),
        qk: QkParamsC::from(&bp.qk),
        av: AvParamsC::from(&bp.av),
        prob_t,
        gelu_hi,
        gelu_lo,
        c_q: copy_words(&bp.c_q),
        c_k: copy_words(&bp.c_k),
        c_v: copy_words(&bp.c_v),
        c_proj: copy_words(&bp.c_proj),
        c_fc1: copy_words(&bp.c_fc1),
        c_fc2: copy_words(&bp.c_fc2),
        rpb,
        levels: levels as u32,
        shifted: u32::from(bp.shifted),
        reserved: 0,
    }
}
