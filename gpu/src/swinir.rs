//! The integer SwinIR-light forward pass on the kernels of
//! `gpu/kernels/tdq_swinir.cu`: the parameter structs shared with CUDA, the
//! conversion of a parsed `.tdq` model into them, and the launch sequence.
//!
//! The sequence ([`run`]) is written once, against the crate-private
//! [`KernelRunner`] trait, and executed by two runners: the emulated launch of
//! the host-compiled kernels (`ffi::host`, which CI checks against
//! `core::int::upscale` byte for byte) and `cust` (`ffi::cuda`). It follows
//! `core::int::runner::run_region` step by step for one region covering the
//! whole image (the GPU needs no tiling):
//!
//! ```text
//! input → conv_first → F0;  R = pe_norm(F0)
//! 4 × { R0 = R; 6 × block(R); R = conv(i16(R ≫ k)) + R0 }
//! R = norm(R); R = conv_after_body(i16(R ≫ k)) + F0; pixels = upsample(i16(R ≫ k))
//! block: attn_in → q, k, v linears → softmax → P·v (or fused) → proj (+= R)
//!        mlp_in → fc1 + GELU codes → fc2 (+= R)   (or one fused MLP kernel)
//! ```
//!
//! Every struct here is `#[repr(C)]` with explicit reserved fields instead of
//! implicit padding, and its size is pinned by a `const` assertion here and a
//! `static_assert` in the header (and compared through FFI by a test).

use tdquant_core::int::{
    conv::Conv,
    layernorm::{FixedQuant, LnParams},
    linear::CodeAffine,
    model::IntModel,
    I32Src, LeI32, RunError, BLOCKS, DEPTH, EMBED, HEADS, LAYERS, MLP, RPB_ROWS,
};
use tdquant_core::PackedMatrix;

use crate::ffi::{pod_bytes, Pod};
use crate::GpuError;

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

/// What a forward pass needs from a device: memory and launches.
///
/// Crate-private: `launch` hands raw device addresses to kernels, so only the
/// launch sequence in this module (which sizes every buffer itself) calls it.
pub(crate) trait KernelRunner {
    /// Zeroed device memory of `bytes` bytes (at least 16-byte aligned),
    /// valid until the runner is dropped.
    fn alloc(&mut self, bytes: usize) -> Result<u64, GpuError>;
    /// Copies `src` to device address `dst` (inside one allocation).
    fn upload(&mut self, dst: u64, src: &[u8]) -> Result<(), GpuError>;
    /// Copies from device address `src` (inside one allocation) to `dst`.
    fn download(&mut self, src: u64, dst: &mut [u8]) -> Result<(), GpuError>;
    /// Launches `kernel` over `items` work items with the argument struct
    /// `args` (its bytes); `bytes` is the least memory traffic the launch
    /// needs (read once + written once), for bandwidth figures.
    fn launch(
        &mut self,
        kernel: Kernel,
        items: u64,
        args: &[u8],
        bytes: u64,
    ) -> Result<(), GpuError>;
    /// Waits for every launch to finish.
    fn synchronize(&mut self) -> Result<(), GpuError>;
}

/// Allocates and uploads `data`.
fn upload_new<R: KernelRunner, T: Pod>(r: &mut R, data: &[T]) -> Result<u64, GpuError> {
    let bytes = pod_bytes(data);
    let ptr = r.alloc(bytes.len().max(1))?;
    r.upload(ptr, bytes)?;
    Ok(ptr)
}

fn ln_c(ln: &LnParams<LeI32<'_>>) -> LnParamsC {
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

fn fq_c(fq: &FixedQuant) -> FixedQuantC {
    FixedQuantC {
        offset: fq.offset,
        mult: fq.mult,
        shift: fq.shift,
        levels: u32::from(fq.levels),
    }
}

fn aff_c(a: &CodeAffine) -> CodeAffineC {
    CodeAffineC {
        a: a.a,
        b: a.b,
        c_shift: a.c_shift,
        frac: a.frac,
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
        fq_q: fq_c(&bp.fq_q),
        fq_k: fq_c(&bp.fq_k),
        fq_v: fq_c(&bp.fq_v),
        fq_fc1: fq_c(&bp.fq_fc1),
        aff_q: aff_c(&bp.aff_q),
        aff_k: aff_c(&bp.aff_k),
        aff_v: aff_c(&bp.aff_v),
        aff_proj: aff_c(&bp.aff_proj),
        aff_fc1: aff_c(&bp.aff_fc1),
        aff_fc2: aff_c(&bp.aff_fc2),
        qk: QkParamsC {
            a: bp.qk.a,
            b: bp.qk.b,
            rpb_shift: bp.qk.rpb_shift,
            reserved: 0,
        },
        av: AvParamsC {
            a: bp.av.a,
            b: bp.av.b,
            c: bp.av.c,
            d: bp.av.d,
            frac: bp.av.frac,
            reserved: 0,
        },
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

/// A convolution in device memory.
#[derive(Clone, Copy, Debug)]
struct DeviceConv {
    weights: u64,
    quant: u64,
    cin: u32,
    cout: u32,
}

fn upload_conv<R: KernelRunner>(
    r: &mut R,
    conv: &Conv<'_, LeI32<'_>>,
) -> Result<DeviceConv, GpuError> {
    // int8 weights widen to i16 exactly; the kernel reads one format.
    // (`at` returns an i8 or i16 value, so the cast is exact.)
    let weights: Vec<i16> = (0..conv.weights.len())
        .map(|i| conv.weights.at(i) as i16)
        .collect();
    let quant: Vec<i32> = (0..conv.quant.len()).map(|i| conv.quant.at(i)).collect();
    Ok(DeviceConv {
        weights: upload_new(r, &weights)?,
        quant: upload_new(r, &quant)?,
        cin: conv.cin as u32,
        cout: conv.cout as u32,
    })
}

fn upload_packed<R: KernelRunner>(
    r: &mut R,
    m: &PackedMatrix<'_>,
) -> Result<PackedMatrixC, GpuError> {
    let words: Vec<u32> = m
        .as_bytes()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let layout = m.layout();
    Ok(PackedMatrixC {
        words: upload_new(r, &words)?,
        bits: u32::from(m.bits().bits()),
        rows: m.rows(),
        cols: m.cols(),
        words_per_row: layout.words_per_row(),
    })
}

/// Bytes of a convolution's weights (as the kernels read them, i16).
fn conv_weight_bytes(c: &DeviceConv) -> u64 {
    u64::from(c.cout) * 9 * u64::from(c.cin) * 2
}

/// The model in device memory.
struct DeviceModel {
    blocks: u64,
    pe_norm: u64,
    norm: u64,
    conv_first: DeviceConv,
    rstb: [DeviceConv; LAYERS],
    cab: DeviceConv,
    upsample: DeviceConv,
    w_attn: PackedMatrixC,
    w_fc1: PackedMatrixC,
    w_fc2: PackedMatrixC,
}

impl DeviceModel {
    fn upload<R: KernelRunner>(r: &mut R, model: &IntModel<'_>) -> Result<Self, GpuError> {
        if model.levels() > MAX_LEVELS {
            return Err(GpuError::Unsupported(
                "quantizer levels above 15 (the kernels hold 4-bit codes at most)",
            ));
        }
        let blocks: Vec<BlockParamsC> = (0..BLOCKS).map(|i| block_params(model, i)).collect();
        let mut rstb = [DeviceConv {
            weights: 0,
            quant: 0,
            cin: 0,
            cout: 0,
        }; LAYERS];
        for (l, slot) in rstb.iter_mut().enumerate() {
            *slot = upload_conv(r, &model.rstb_conv(l))?;
        }
        Ok(Self {
            blocks: upload_new(r, &blocks)?,
            pe_norm: upload_new(r, &[ln_c(model.pe_norm())])?,
            norm: upload_new(r, &[ln_c(model.norm())])?,
            conv_first: upload_conv(r, model.conv_first())?,
            rstb,
            cab: upload_conv(r, model.conv_after_body())?,
            upsample: upload_conv(r, model.upsample())?,
            w_attn: upload_packed(r, model.w_attn())?,
            w_fc1: upload_packed(r, model.w_fc1())?,
            w_fc2: upload_packed(r, model.w_fc2())?,
        })
    }

    fn block(&self, i: usize) -> u64 {
        self.blocks + (i * core::mem::size_of::<BlockParamsC>()) as u64
    }
}

/// The input checks of `core::int::upscale` ([`tdquant_core::int::check_io`],
/// same errors), plus the size limit of the kernels' index arithmetic.
pub(crate) fn check_io(
    model: &IntModel<'_>,
    img_len: usize,
    h: usize,
    w: usize,
    out_len: usize,
) -> Result<(), GpuError> {
    tdquant_core::int::check_io(model, img_len, h, w, out_len)?;
    // The kernels index with u32 pixel coordinates and u64 offsets.
    if h > 1 << 20 || w > 1 << 20 {
        return Err(RunError::BadSize.into());
    }
    Ok(())
}

fn launch<R: KernelRunner, A: Pod>(
    r: &mut R,
    kernel: Kernel,
    items: u64,
    args: &A,
    bytes: u64,
) -> Result<(), GpuError> {
    r.launch(kernel, items, pod_bytes(core::slice::from_ref(args)), bytes)
}

/// Bytes of a packed `rows × cols` b-bit matrix slice.
fn packed_bytes(m: &PackedMatrixC, rows: u64) -> u64 {
    rows * u64::from(m.words_per_row) * 4
}

/// The whole forward pass (module docs): `img` (`h·w·3` RGB bytes) → `out`
/// (`(s·h)·(s·w)·3`), identical to `core::int::upscale`; on error `out` is
/// left untouched.
pub(crate) fn run<R: KernelRunner>(
    r: &mut R,
    model: &IntModel<'_>,
    img: &[u8],
    h: usize,
    w: usize,
    out: &mut [u8],
    path: KernelPath,
) -> Result<(), GpuError> {
    check_io(model, img.len(), h, w, out.len())?;
    let dm = DeviceModel::upload(r, model)?;
    let hp = h.div_ceil(8) * 8;
    let wp = w.div_ceil(8) * 8;
    let pixels = (hp * wp) as u64;
    let map_bytes = hp * wp * EMBED * 4;
    let codes = hp * wp * EMBED;

    let img_d = upload_new(r, img)?;
    let rr = r.alloc(map_bytes)?;
    let r0 = r.alloc(map_bytes)?;
    let f0 = r.alloc(map_bytes)?;
    let a = r.alloc(map_bytes)?;
    let mut ba = BlockArgs {
        r: rr,
        hp: hp as u32,
        wp: wp as u32,
        ..BlockArgs::default()
    };
    for slot in [
        &mut ba.qin,
        &mut ba.kin,
        &mut ba.vin,
        &mut ba.qc,
        &mut ba.kc,
        &mut ba.vc,
        &mut ba.oc,
        &mut ba.fc1in,
    ] {
        *slot = r.alloc(codes)?;
    }
    ba.hidden = r.alloc(hp * wp * MLP)?;
    if path == KernelPath::PerOperator {
        ba.probs = r.alloc(hp * wp * HEADS * 64)?;
    }
    let pixels_d = r.alloc(out.len())?;

    let offset = model.input_offset();
    launch(
        r,
        Kernel::Input,
        pixels,
        &InputArgs {
            img: img_d,
            out: a,
            h: h as u32,
            w: w as u32,
            hp: hp as u32,
            wp: wp as u32,
            offset,
            reserved: 0,
        },
        img.len() as u64 + pixels * 12,
    )?;
    let conv = |c: &DeviceConv, input: u64, mode: ConvMode, skip: u64, out: u64| ConvArgs {
        input,
        weights: c.weights,
        quant: c.quant,
        skip,
        out,
        pixels: pixels_d,
        hp: hp as u32,
        wp: wp as u32,
        cin: c.cin,
        cout: c.cout,
        mode: mode as u32,
        h: h as u32,
        w: w as u32,
        scale: model.scale() as u32,
    };
    let n_map = pixels * EMBED as u64;
    launch(
        r,
        Kernel::Conv3x3,
        pixels * u64::from(dm.conv_first.cout),
        &conv(&dm.conv_first, a, ConvMode::Stream, 0, f0),
        pixels * 12 + conv_weight_bytes(&dm.conv_first) + n_map * 4,
    )?;
    launch(
        r,
        Kernel::Copy,
        n_map,
        &CopyArgs {
            src: f0,
            dst: rr,
            n: n_map,
        },
        n_map * 8,
    )?;
    launch(
        r,
        Kernel::LnStream,
        pixels,
        &LnStreamArgs {
            r: rr,
            ln: dm.pe_norm,
            pixels,
        },
        n_map * 8,
    )?;
    let to_i16 = |k: u32| ToI16Args {
        r: rr,
        a,
        n: n_map,
        k,
        reserved: 0,
    };
    for l in 0..LAYERS {
        launch(
            r,
            Kernel::Copy,
            n_map,
            &CopyArgs {
                src: rr,
                dst: r0,
                n: n_map,
            },
            n_map * 8,
        )?;
        for b in 0..DEPTH {
            swin_block(r, &dm, &mut ba, l * DEPTH + b, path)?;
        }
        launch(
            r,
            Kernel::ToI16,
            n_map,
            &to_i16(model.rstb_shift(l)),
            n_map * 8,
        )?;
        launch(
            r,
            Kernel::Conv3x3,
            n_map,
            &conv(&dm.rstb[l], a, ConvMode::StreamSkip, r0, rr),
            n_map * 12 + conv_weight_bytes(&dm.rstb[l]),
        )?;
    }
    launch(
        r,
        Kernel::LnStream,
        pixels,
        &LnStreamArgs {
            r: rr,
            ln: dm.norm,
            pixels,
        },
        n_map * 8,
    )?;
    launch(
        r,
        Kernel::ToI16,
        n_map,
        &to_i16(model.cab_shift()),
        n_map * 8,
    )?;
    launch(
        r,
        Kernel::Conv3x3,
        n_map,
        &conv(&dm.cab, a, ConvMode::StreamSkip, f0, rr),
        n_map * 12 + conv_weight_bytes(&dm.cab),
    )?;
    launch(
        r,
        Kernel::ToI16,
        n_map,
        &to_i16(model.up_shift()),
        n_map * 8,
    )?;
    launch(
        r,
        Kernel::Conv3x3,
        pixels * u64::from(dm.upsample.cout),
        &conv(&dm.upsample, a, ConvMode::Pixels, 0, 0),
        n_map * 4 + conv_weight_bytes(&dm.upsample) + out.len() as u64,
    )?;
    r.synchronize()?;
    // Into a host buffer first, so `out` is untouched unless the whole pass,
    // copy included, succeeded.
    let mut result = vec![0u8; out.len()];
    r.download(pixels_d, &mut result)?;
    out.copy_from_slice(&result);
    Ok(())
}

fn swin_block<R: KernelRunner>(
    r: &mut R,
    dm: &DeviceModel,
    ba: &mut BlockArgs,
    index: usize,
    path: KernelPath,
) -> Result<(), GpuError> {
    let pixels = u64::from(ba.hp) * u64::from(ba.wp);
    ba.blk = dm.block(index);
    ba.block = index as u32;
    let e = EMBED as u64;
    let m = MLP as u64;
    let stream = pixels * e * 4;
    let codes = pixels * e;
    launch(r, Kernel::AttnIn, pixels, ba, stream + 3 * codes)?;
    ba.w = dm.w_attn;
    for layer in [LinearLayer::Q, LinearLayer::K, LinearLayer::V] {
        ba.layer = layer as u32;
        launch(
            r,
            Kernel::Linear,
            pixels * e,
            ba,
            2 * codes + packed_bytes(&ba.w, e),
        )?;
    }
    let rows = pixels * HEADS as u64;
    let probs = rows * 64;
    match path {
        KernelPath::PerOperator => {
            launch(r, Kernel::Softmax, rows, ba, 2 * codes + probs)?;
            launch(r, Kernel::Av, rows, ba, probs + 2 * codes)?;
        }
        KernelPath::Fused => launch(r, Kernel::AttnFused, rows, ba, 4 * codes)?,
    }
    ba.layer = LinearLayer::Proj as u32;
    launch(
        r,
        Kernel::Linear,
        pixels * e,
        ba,
        codes + 2 * stream + packed_bytes(&ba.w, e),
    )?;
    match path {
        KernelPath::PerOperator => {
            launch(r, Kernel::MlpIn, pixels, ba, stream + codes)?;
            ba.w = dm.w_fc1;
            ba.layer = LinearLayer::Fc1 as u32;
            launch(
                r,
                Kernel::Linear,
                pixels * m,
                ba,
                codes + pixels * m + packed_bytes(&ba.w, m),
            )?;
            ba.w = dm.w_fc2;
            ba.layer = LinearLayer::Fc2 as u32;
            launch(
                r,
                Kernel::Linear,
                pixels * e,
                ba,
                pixels * m + 2 * stream + packed_bytes(&ba.w, e),
            )?;
        }
        KernelPath::Fused => launch(
            r,
            Kernel::MlpFused,
            pixels,
            &MlpArgs {
                r: ba.r,
                blk: ba.blk,
                w1: dm.w_fc1,
                w2: dm.w_fc2,
                pixels,
                block: index as u32,
                reserved: 0,
            },
            2 * stream + packed_bytes(&dm.w_fc1, m) + packed_bytes(&dm.w_fc2, e),
        )?,
    }
    Ok(())
}
