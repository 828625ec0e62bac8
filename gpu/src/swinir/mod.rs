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
//! Every struct of [`params`] is `#[repr(C)]` with explicit reserved fields
//! instead of implicit padding, and its size is pinned by a `const` assertion and a
//! `static_assert` in the header (and compared through FFI by a test).

mod params;

pub use params::*;

use tdquant_core::int::{
    conv::Conv, model::IntModel, I32Src, LeI32, RunError, BLOCKS, DEPTH, EMBED, HEADS, LAYERS, MLP,
};
use tdquant_core::PackedMatrix;

use crate::ffi::{pod_bytes, Pod};
use crate::GpuError;
use tdquant_core::backend::UpscaleArgs;

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
    /// Launches a kernel.
    fn launch(&mut self, launch: Launch<'_>) -> Result<(), GpuError>;
    /// Waits for every launch to finish.
    fn synchronize(&mut self) -> Result<(), GpuError>;
}

/// One kernel launch, as [`run`] hands it to a [`KernelRunner`].
pub(crate) struct Launch<'a> {
    /// The entry point.
    pub kernel: Kernel,
    /// Work items, one thread each (the kernels are grid-stride loops).
    pub items: u64,
    /// The kernel's argument struct, as bytes.
    pub args: &'a [u8],
    /// The least memory traffic the launch needs (read once + written
    /// once), for the CUDA runner's bandwidth figures.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub bytes: u64,
}

/// Allocates and uploads `data`.
fn upload_new<R: KernelRunner, T: Pod>(r: &mut R, data: &[T]) -> Result<u64, GpuError> {
    let bytes = pod_bytes(data);
    let ptr = r.alloc(bytes.len().max(1))?;
    r.upload(ptr, bytes)?;
    Ok(ptr)
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

/// The input checks of `core::int::upscale` ([`UpscaleArgs::check_io`], same
/// errors), plus the size limit of the kernels' index arithmetic.
fn check_io(args: &UpscaleArgs<'_>) -> Result<(), GpuError> {
    args.check_io()?;
    // The kernels index with u32 pixel coordinates and u64 offsets.
    if args.h > 1 << 20 || args.w > 1 << 20 {
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
    r.launch(Launch {
        kernel,
        items,
        args: pod_bytes(core::slice::from_ref(args)),
        bytes,
    })
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
    args: UpscaleArgs<'_>,
    path: KernelPath,
) -> Result<(), GpuError> {
    check_io(&args)?;
    let UpscaleArgs {
        model,
        img,
        h,
        w,
        out,
    } = args;
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
    // LayerNorm of the stream in place.
    let ln_stream = |r: &mut R, ln: u64| {
        let args = LnStreamArgs { r: rr, ln, pixels };
        launch(r, Kernel::LnStream, pixels, &args, n_map * 8)
    };
    ln_stream(r, dm.pe_norm)?;
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
    ln_stream(r, dm.norm)?;
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
    for layer in [LinearLayer::Q, LinearLayer::K, LinearLayer::V] {
        linear(r, ba, dm.w_attn, layer, e, 2 * codes)?;
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
    linear(r, ba, dm.w_attn, LinearLayer::Proj, e, codes + 2 * stream)?;
    match path {
        KernelPath::PerOperator => {
            launch(r, Kernel::MlpIn, pixels, ba, stream + codes)?;
            linear(r, ba, dm.w_fc1, LinearLayer::Fc1, m, codes + pixels * m)?;
            linear(
                r,
                ba,
                dm.w_fc2,
                LinearLayer::Fc2,
                e,
                pixels * m + 2 * stream,
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

/// The linear kernel of `layer` with weights `w` (`outputs` rows) over every
/// pixel; `io_bytes` is its activation traffic, the weights' is added.
fn linear<R: KernelRunner>(
    r: &mut R,
    ba: &mut BlockArgs,
    w: PackedMatrixC,
    layer: LinearLayer,
    outputs: u64,
    io_bytes: u64,
) -> Result<(), GpuError> {
    ba.w = w;
    ba.layer = layer as u32;
    let pixels = u64::from(ba.hp) * u64::from(ba.wp);
    let bytes = io_bytes + packed_bytes(&w, outputs);
    launch(r, Kernel::Linear, pixels * outputs, ba, bytes)
}
