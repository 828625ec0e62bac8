//! Full-precision SwinIR-light on candle (CPU), with quantization hooks.
//!
//! Architecture (2dquant.md §7): embed 60, depths `[6, 6, 6, 6]`, 6 heads of 10, window 8, MLP 120,
//! qkv bias, `q·10^-0.5`, patch norm, `1conv` RSTB tail, `pixelshuffledirect` upsampler,
//! img_range 1, RGB mean (0.4488, 0.4371, 0.4040). Odd blocks use the cyclic shift 4 and the
//! −100 region mask. Masks, partition orders and relative-position indices are computed for the
//! input size (cached per size), never read from the checkpoint; each block's relative-position
//! bias is gathered once at load into `[6, 64, 64]`.
//!
//! Every op used has a backward, so the forward pass can run inside candle autograd, e.g. with
//! quantizer bounds held as `Var`s in a [`SiteHook`]. The hot parts are fused CPU custom ops
//! with hand-written backward passes ([`kernels`]): LayerNorm (biased variance, eps 1e-5),
//! `softmax(q·kᵀ + bias + mask)`, exact GELU, linear with the bias folded into one GEMM,
//! batched attention matmuls, residual adds, and 3×3 convolutions as im2col + GEMM on token
//! maps. Token maps are `[B, H·W, C]` with row-major pixels throughout; the window partition
//! and the cyclic shift are one gather ([`geometry::partition_order`]).
//!
//! Results match PyTorch to ~1e-6 (see `tests/fp_golden.rs`).
//!
//! The 16 quantization sites of every Swin block are exposed through [`SiteHook`]: the fused
//! `qkv` linear is computed as three linears (rows 0–59 → q, 60–119 → k, 120–179 → v), each
//! with its own weight and input site, as the released 2DQuant code does. Per block the hook is
//! called in this order: QInput, QWeight, AttnQ, KInput, KWeight, AttnK, VInput, VWeight,
//! AttnProb, AttnV, ProjInput, ProjWeight, Fc1Input, Fc1Weight, Fc2Input, Fc2Weight; and
//! [`SiteHook::feature`] after each block, each RSTB's residual group and each RSTB.
//!
//! Threads: the fused kernels and GEMMs use the rayon global pool; candle's own element-wise ops
//! (only a few remain on the hot path) use candle's barrier pool, sized by
//! `CANDLE_NUM_THREADS` (default: the physical cores).

pub mod geometry;
pub mod hook;
pub mod kernels;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Result, Tensor};

pub use self::geometry::Geometry;
pub use self::hook::{FeatureRecorder, FeatureTap, FpHook, Site, SiteHook, SiteId, NUM_SITES};
use crate::image_io::RgbImageF32;
use crate::weights::{self, SwinIrWeights, WeightsError, DEPTH, EMBED_DIM, NUM_HEADS, NUM_LAYERS};
use geometry::WINDOW_TOKENS;

/// RGB mean subtracted from the input (and added back to the output).
pub const RGB_MEAN: [f32; 3] = [0.4488, 0.4371, 0.4040];
/// LayerNorm epsilon (PyTorch default).
pub const LN_EPS: f64 = 1e-5;
/// The geometry cache is emptied when it holds this many input sizes (a 256×256 entry is
/// about 1 MB).
pub const GEOMETRY_CACHE_SIZES: usize = 32;
/// Per-head dimension.
pub const HEAD_DIM: usize = EMBED_DIM / NUM_HEADS;

/// The attention scale `head_dim^-0.5` (as PyTorch computes it in f64, applied in f32).
pub fn attn_scale() -> f64 {
    (HEAD_DIM as f64).powf(-0.5)
}

/// LayerNorm over the last dimension (biased variance, eps 1e-5), differentiable: the fused
/// [`kernels::layer_norm`].
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    kernels::layer_norm(x, weight, bias)
}

/// `x·wᵀ + b` over the last dimension of `x` (`w` is `[out, in]`): the fused
/// [`kernels::linear`].
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    kernels::linear(x, w, b)
}

/// PyTorch `PixelShuffle(s)`: `[B, C·s², H, W] → [B, C, H·s, W·s]`.
pub fn pixel_shuffle(x: &Tensor, s: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let oc = c / (s * s);
    x.reshape((b, oc, s, s, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((b, oc, h * s, w * s))
}

/// [`pixel_shuffle`] of a token map `[B, H·W, C·s²]` → image `[B, C, H·s, W·s]`.
pub fn pixel_shuffle_tokens(x: &Tensor, h: usize, w: usize, s: usize) -> Result<Tensor> {
    let (b, _, cs) = x.dims3()?;
    let oc = cs / (s * s);
    x.reshape((b, h, w, oc, s, s))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, oc, h * s, w * s))
}

/// `[B, C, H, W] → [B, H·W, C]`.
pub fn to_tokens(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.transpose(1, 2)?.contiguous()
}

/// `[B, H·W, C] → [B, C, H, W]`.
pub fn from_tokens(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, _, c) = x.dims3()?;
    x.transpose(1, 2)?.reshape((b, c, h, w))
}

/// A 3×3, padding-1 convolution applied to token maps as im2col + one matmul.
#[derive(Debug, Clone)]
struct Conv3 {
    /// `[C_out, 9·C_in]`, columns in `(ky, kx, c_in)` order.
    wmat: Tensor,
    /// `[C_out]`.
    bias: Tensor,
}

impl Conv3 {
    fn new(w: &SwinIrWeights, name: &str) -> std::result::Result<Self, WeightsError> {
        let weight = w.get(&format!("{name}.weight"))?;
        let (cout, cin, _, _) = weight.dims4()?;
        let wmat = weight
            .permute((0, 2, 3, 1))?
            .reshape((cout, 9 * cin))?
            .contiguous()?;
        let bias = w.get(&format!("{name}.bias"))?.clone();
        Ok(Conv3 { wmat, bias })
    }

    /// `x`: `[B, h·w, C_in]` → `[B, h·w, C_out]`.
    fn forward(&self, x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        kernels::linear(&kernels::im2col3x3(x, h, w)?, &self.wmat, &self.bias)
    }
}

#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(w: &SwinIrWeights, name: &str) -> std::result::Result<Self, WeightsError> {
        Ok(Norm {
            weight: w.get(&format!("{name}.weight"))?.clone(),
            bias: w.get(&format!("{name}.bias"))?.clone(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias)
    }
}

#[derive(Debug, Clone)]
struct SwinBlock {
    layer: u8,
    block: u8,
    shifted: bool,
    norm1: Norm,
    /// q, k, v weights `[60, 60]` and biases `[60]`.
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    bq: Tensor,
    bk: Tensor,
    bv: Tensor,
    proj_w: Tensor,
    proj_b: Tensor,
    /// Relative-position bias `[6, 64, 64]`, flattened.
    rpb: Arc<Vec<f32>>,
    norm2: Norm,
    fc1_w: Tensor,
    fc1_b: Tensor,
    fc2_w: Tensor,
    fc2_b: Tensor,
}

impl SwinBlock {
    fn new(
        w: &SwinIrWeights,
        layer: usize,
        block: usize,
        rpi: &Tensor,
    ) -> std::result::Result<Self, WeightsError> {
        let p = format!("layers.{layer}.residual_group.blocks.{block}.");
        let g = |k: &str| -> std::result::Result<Tensor, WeightsError> {
            Ok(w.get(&format!("{p}{k}"))?.clone())
        };
        let c = EMBED_DIM;
        let qkv_w = g("attn.qkv.weight")?;
        let qkv_b = g("attn.qkv.bias")?;
        let rows = |t: &Tensor, i: usize| t.narrow(0, i * c, c).and_then(|t| t.contiguous());
        let table = g("attn.relative_position_bias_table")?; // [225, 6]
        let rpb = table
            .index_select(rpi, 0)? // [4096, 6]
            .t()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(SwinBlock {
            layer: layer as u8,
            block: block as u8,
            shifted: block % 2 == 1,
            norm1: Norm::new(w, &format!("{p}norm1"))?,
            wq: rows(&qkv_w, 0)?,
            wk: rows(&qkv_w, 1)?,
            wv: rows(&qkv_w, 2)?,
            bq: rows(&qkv_b, 0)?,
            bk: rows(&qkv_b, 1)?,
            bv: rows(&qkv_b, 2)?,
            proj_w: g("attn.proj.weight")?,
            proj_b: g("attn.proj.bias")?,
            rpb: Arc::new(rpb),
            norm2: Norm::new(w, &format!("{p}norm2"))?,
            fc1_w: g("mlp.fc1.weight")?,
            fc1_b: g("mlp.fc1.bias")?,
            fc2_w: g("mlp.fc2.weight")?,
            fc2_b: g("mlp.fc2.bias")?,
        })
    }

    fn sid(&self, site: Site) -> SiteId {
        SiteId {
            layer: self.layer,
            block: self.block,
            site,
        }
    }

    /// `x`: `[B, HW, 60]`.
    fn forward(&self, x: &Tensor, geo: &Geometry, hook: &dyn SiteHook) -> Result<Tensor> {
        let (b, l, c) = x.dims3()?;
        let bw = b * geo.n_windows;
        let n = WINDOW_TOKENS;
        let (order, inverse) = if self.shifted {
            (&geo.order_shifted, &geo.inverse_shifted)
        } else {
            (&geo.order, &geo.inverse)
        };

        // ---- attention branch ----
        let h = self.norm1.forward(x)?;
        let xw = h.index_select(order, 1)?.reshape((bw, n, c))?;
        let heads = |t: Tensor| {
            t.reshape((bw, n, NUM_HEADS, HEAD_DIM))?
                .transpose(1, 2)?
                .contiguous()
        };

        let xq = hook.act(self.sid(Site::QInput), &xw)?;
        let wq = hook.weight(self.sid(Site::QWeight), &self.wq)?;
        let q = heads(kernels::linear_scaled(&xq, &wq, &self.bq, attn_scale())?)?; // [bw,6,64,10]
        let q = hook.act(self.sid(Site::AttnQ), &q)?;

        let xk = hook.act(self.sid(Site::KInput), &xw)?;
        let wk = hook.weight(self.sid(Site::KWeight), &self.wk)?;
        let k = heads(kernels::linear(&xk, &wk, &self.bk)?)?;
        let k = hook.act(self.sid(Site::AttnK), &k)?;

        let xv = hook.act(self.sid(Site::VInput), &xw)?;
        let wv = hook.weight(self.sid(Site::VWeight), &self.wv)?;
        let v = heads(kernels::linear(&xv, &wv, &self.bv)?)?;

        // softmax(q·kᵀ + bias + mask), [bw,6,64,64]
        let terms = kernels::WindowTerms {
            bias: self.rpb.clone(),
            mask: self.shifted.then(|| geo.mask.clone()),
            heads: NUM_HEADS,
            n_windows: geo.n_windows,
        };
        let attn = kernels::attention_probs(&q, &k, &terms)?;
        let attn = hook.act(self.sid(Site::AttnProb), &attn)?;
        let v = hook.act(self.sid(Site::AttnV), &v)?;
        let o = kernels::bmm(&attn, &v)?
            .transpose(1, 2)?
            .reshape((bw, n, c))?;
        let o = hook.act(self.sid(Site::ProjInput), &o)?;
        let pw = hook.weight(self.sid(Site::ProjWeight), &self.proj_w)?;
        let o = kernels::linear(&o, &pw, &self.proj_b)?.reshape((b, l, c))?;
        let x = kernels::window_reverse_add(x, &o, order, inverse)?;
        hook.feature(
            FeatureTap::AttnResidual {
                layer: self.layer,
                block: self.block,
            },
            &x,
        )?;

        // ---- MLP branch ----
        let h = self.norm2.forward(&x)?;
        let h = hook.act(self.sid(Site::Fc1Input), &h)?;
        let w1 = hook.weight(self.sid(Site::Fc1Weight), &self.fc1_w)?;
        let h = kernels::gelu_erf(&kernels::linear(&h, &w1, &self.fc1_b)?)?;
        let h = hook.act(self.sid(Site::Fc2Input), &h)?;
        let w2 = hook.weight(self.sid(Site::Fc2Weight), &self.fc2_w)?;
        let h = kernels::linear(&h, &w2, &self.fc2_b)?;
        kernels::add(&x, &h)
    }
}

#[derive(Debug, Clone)]
struct Rstb {
    blocks: Vec<SwinBlock>,
    conv: Conv3,
}

/// SwinIR-light, full precision, with [`SiteHook`] sites.
#[derive(Debug)]
pub struct SwinIR {
    scale: usize,
    device: Device,
    conv_first: Conv3,
    patch_norm: Norm,
    layers: Vec<Rstb>,
    norm: Norm,
    conv_after_body: Conv3,
    upsample: Conv3,
    /// `[1, 3, 1, 1]`.
    mean: Tensor,
    sha256: Option<String>,
    geometry: Mutex<HashMap<(usize, usize), Arc<Geometry>>>,
}

impl SwinIR {
    /// Loads a `.pth` (zip, `"params"`) or `.safetensors` SwinIR-light checkpoint (see
    /// [`weights::load`]).
    pub fn load(path: impl AsRef<Path>) -> std::result::Result<SwinIR, WeightsError> {
        SwinIR::load_on(path, &Device::Cpu)
    }

    /// Loads a checkpoint as [`SwinIR::load`] does, with every weight on `device`.
    pub fn load_on(
        path: impl AsRef<Path>,
        device: &Device,
    ) -> std::result::Result<SwinIR, WeightsError> {
        let mut w = weights::load(path)?;
        if !device.is_cpu() {
            for t in w.tensors.values_mut() {
                *t = t.to_device(device)?;
            }
        }
        SwinIR::from_weights(&w)
    }

    /// Builds the model from an in-memory state dict (validated like a file).
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
    ) -> std::result::Result<SwinIR, WeightsError> {
        SwinIR::from_weights(&weights::from_tensors(tensors)?)
    }

    /// Builds the model from the variables of a `VarMap` (named as in the state dict). The
    /// model holds the variables' tensors, so gradients reach them in autograd.
    pub fn from_varmap(varmap: &candle_nn::VarMap) -> std::result::Result<SwinIR, WeightsError> {
        let data = varmap.data().lock().expect("VarMap lock poisoned");
        let tensors = data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        drop(data);
        SwinIR::from_tensors(tensors)
    }

    /// Builds the model from validated weights.
    pub fn from_weights(w: &SwinIrWeights) -> std::result::Result<SwinIR, WeightsError> {
        let device = w.get("conv_first.weight")?.device().clone();
        let rpi = Tensor::from_vec(
            geometry::relative_position_index(),
            WINDOW_TOKENS * WINDOW_TOKENS,
            &device,
        )?;
        let mut layers = Vec::with_capacity(NUM_LAYERS);
        for l in 0..NUM_LAYERS {
            let blocks = (0..DEPTH)
                .map(|b| SwinBlock::new(w, l, b, &rpi))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            layers.push(Rstb {
                blocks,
                conv: Conv3::new(w, &format!("layers.{l}.conv"))?,
            });
        }
        Ok(SwinIR {
            scale: w.scale,
            conv_first: Conv3::new(w, "conv_first")?,
            patch_norm: Norm::new(w, "patch_embed.norm")?,
            layers,
            norm: Norm::new(w, "norm")?,
            conv_after_body: Conv3::new(w, "conv_after_body")?,
            upsample: Conv3::new(w, "upsample.0")?,
            mean: Tensor::from_vec(RGB_MEAN.to_vec(), (1, 3, 1, 1), &device)?,
            sha256: match &w.sha256 {
                Some(_) => Some(weights_content_sha256(w)?),
                None => None,
            },
            device,
            geometry: Mutex::new(HashMap::new()),
        })
    }

    /// The upscaling factor (2, 3 or 4).
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights' identity, when loaded from a file: SHA-256 (hex) of the
    /// tensors' contents ([`weights_content_sha256`]), so a `.pth` and a
    /// `.safetensors` holding the same tensors have the same identity.
    pub fn weights_sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// The (cached) tables for an `h × w` input (see [`GEOMETRY_CACHE_SIZES`]).
    pub fn geometry(&self, h: usize, w: usize) -> Result<Arc<Geometry>> {
        let mut cache = self.geometry.lock().expect("geometry cache poisoned");
        if let Some(g) = cache.get(&(h, w)) {
            return Ok(g.clone());
        }
        let g = Arc::new(Geometry::new(h, w, &self.device)?);
        if cache.len() >= GEOMETRY_CACHE_SIZES {
            cache.clear();
        }
        cache.insert((h, w), g.clone());
        Ok(g)
    }

    /// Full-precision forward of `x` (`[B, 3, H, W]`, RGB in [0, 1], H and W multiples of 8, no
    /// padding) → `[B, 3, sH, sW]`, not clamped.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &FpHook)
    }

    /// Forward with a hook at every quantization site and feature tap.
    pub fn forward_with(&self, x: &Tensor, hook: &dyn SiteHook) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 {
            candle_core::bail!("expected 3 input channels, got {c}");
        }
        let geo = self.geometry(h, w)?;
        let x = x.to_dtype(DType::F32)?.broadcast_sub(&self.mean)?;
        let f0 = self.conv_first.forward(&to_tokens(&x)?, h, w)?;
        hook.feature(FeatureTap::ConvFirst, &from_tokens(&f0, h, w)?)?;
        let mut t = self.patch_norm.forward(&f0)?;
        hook.feature(FeatureTap::PatchEmbed, &t)?;
        for (li, layer) in self.layers.iter().enumerate() {
            let mut y = t.clone();
            for blk in &layer.blocks {
                y = blk.forward(&y, &geo, hook)?;
                hook.feature(
                    FeatureTap::Block {
                        layer: blk.layer,
                        block: blk.block,
                    },
                    &y,
                )?;
            }
            hook.feature(FeatureTap::ResidualGroup(li as u8), &y)?;
            t = kernels::add(&layer.conv.forward(&y, h, w)?, &t)?;
            hook.feature(FeatureTap::Layer(li as u8), &t)?;
        }
        let t = self.norm.forward(&t)?;
        hook.feature(FeatureTap::Norm, &t)?;
        let body = self.conv_after_body.forward(&t, h, w)?;
        hook.feature(FeatureTap::ConvAfterBody, &from_tokens(&body, h, w)?)?;
        let x = kernels::add(&body, &f0)?;
        let x = pixel_shuffle_tokens(&self.upsample.forward(&x, h, w)?, h, w, self.scale)?;
        hook.feature(FeatureTap::Upsample, &x)?;
        x.broadcast_add(&self.mean)
    }

    /// Evaluation-protocol inference: pads `x` (`[B, 3, h, w]`) bottom/right to multiples of 8
    /// with the edge-repeating mirror ([`geometry::pad_to_window`]), runs [`SwinIR::forward`],
    /// crops the output back to `[B, 3, s·h, s·w]`. Not clamped.
    pub fn upscale(&self, x: &Tensor) -> Result<Tensor> {
        self.upscale_with(x, &FpHook)
    }

    /// [`SwinIR::upscale`] with a hook (the hook sees padded-size tensors).
    pub fn upscale_with(&self, x: &Tensor, hook: &dyn SiteHook) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let xp = geometry::pad_to_window(x)?;
        let y = self.forward_with(&xp, hook)?;
        let s = self.scale;
        if xp.dims() == x.dims() {
            Ok(y)
        } else {
            y.narrow(2, 0, h * s)?.narrow(3, 0, w * s)
        }
    }
}

/// Times [`SwinIR::upscale`] on a deterministic `[1, 3, h, w]` image: one warm-up run, then the
/// median of `iters` runs (at least 1).
pub fn bench_fp_forward(model: &SwinIR, h: usize, w: usize, iters: usize) -> Result<Duration> {
    let n = 3 * h * w;
    let data: Vec<f32> = (0..n)
        .map(|i| {
            let v = (i as u64).wrapping_mul(2_654_435_761) % 1000;
            v as f32 / 1000.0
        })
        .collect();
    let x = Tensor::from_vec(data, (1, 3, h, w), model.device())?;
    let _ = model.upscale(&x)?;
    model.device().synchronize()?;
    let mut times = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let t0 = Instant::now();
        let y = model.upscale(&x)?;
        // A GPU runs the launches asynchronously: time their completion.
        model.device().synchronize()?;
        drop(y);
        times.push(t0.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// SHA-256 (hex) of a state dict's contents, independent of the file format:
/// for each tensor of [`weights::expected_shapes`], in that order, its name,
/// a NUL, its dims as u64 LE, then its f32 values LE.
pub fn weights_content_sha256(w: &SwinIrWeights) -> std::result::Result<String, WeightsError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (key, _) in weights::expected_shapes(w.scale) {
        let t = w.get(&key)?;
        h.update(key.as_bytes());
        h.update([0u8]);
        for &d in t.dims() {
            h.update((d as u64).to_le_bytes());
        }
        for v in t.flatten_all()?.to_vec1::<f32>()? {
            h.update(v.to_le_bytes());
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

impl SwinIR {
    /// [`SwinIR::upscale_with`] on one LR image (CHW f32): what every evaluation and comparison
    /// runs, for the FP model (`hook` = [`FpHook`]) and the fake-quant ones.
    pub fn upscale_image(
        &self,
        lr: &RgbImageF32,
        hook: &dyn SiteHook,
    ) -> anyhow::Result<RgbImageF32> {
        let x = image_to_tensor(lr, self.device())?;
        tensor_to_image(&self.upscale_with(&x, hook)?)
    }
}

/// Converts an LR image (CHW f32) into a `[1, 3, h, w]` tensor.
pub fn image_to_tensor(img: &RgbImageF32, device: &Device) -> anyhow::Result<Tensor> {
    Ok(Tensor::from_slice(&img.data, (1, 3, img.h, img.w), device)?)
}

/// Converts a `[1, 3, H, W]` model output back into a CHW image.
pub fn tensor_to_image(t: &Tensor) -> anyhow::Result<RgbImageF32> {
    let (b, c, h, w) = t.dims4()?;
    if b != 1 || c != 3 {
        anyhow::bail!("expected a [1, 3, H, W] output, got {:?}", t.dims());
    }
    let data = t.flatten_all()?.to_vec1::<f32>()?;
    RgbImageF32::new(h, w, data)
}
