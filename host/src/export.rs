//! Export: FP SwinIR-light weights + 2DQuant bounds → the integer-only `.tdq`
//! model that `tdquant_core::int::IntModel` runs.
//!
//! Every real-valued constant of the integer contract
//! (`docs/integer-semantics.md`) is computed here, in `f64`, from the `f32`
//! weights and bounds, and rounded once to the integer the contract names.
//! The quantizer steps are `core::quant::QuantParams::step()`, i.e. the `f32`
//! `(u − l)/N` torch computes; weight codes are `QuantParams::encode`, bit-exact
//! with the fake-quant model.
//!
//! Fixed-point formats are chosen per layer as the largest fractional bit
//! counts that keep every constant inside the bound its operator validates
//! (see each `choose_*` helper); the residual stream's fractional bits `F` and
//! the conv input shifts come from an FP pass over a calibration batch
//! ([`calib_stats`]).
//!
//! Section names and layouts: `tdquant_core::int::model`.

use std::cell::RefCell;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{Device, Tensor};
use tdquant_core::int::model::{block, ln, meta, FORMAT, INPUT_GAIN, PIXEL_FRAC};
use tdquant_core::int::{BLOCKS, DEPTH, EMBED, HEADS, LAYERS, MLP, RPB_ROWS};
use tdquant_core::{BitWidth, ContainerWriter, Dtype, QuantParams, Requantizer, SectionSpec};

use crate::calib::bounds_file::{load_bounds, BoundsExpect, CALIBRATION_BATCH};
use crate::model::hook::{FeatureTap, Site, SiteHook, SiteId};
use crate::model::{attn_scale, SwinIR, LN_EPS, RGB_MEAN};
use crate::weights::SwinIrWeights;

/// Largest fractional bit count used for linear / attention affines.
const MAX_FRAC: i32 = 48;
/// Stream headroom: calibrated `max |x|·2^F ≤ 2^24 / STREAM_MARGIN`.
pub const STREAM_MARGIN: f64 = 4.0;
/// Conv-input headroom: calibrated `max |x|` maps to at most `32767 / CONV_MARGIN`.
pub const CONV_MARGIN: f64 = 2.0;

/// Weight precision of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBits {
    /// int8, per output channel.
    I8,
    /// int16, per output channel.
    I16,
}

/// Export choices.
#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    /// conv_first weights.
    pub conv_first: ConvBits,
    /// The four RSTB convs.
    pub rstb_conv: ConvBits,
    /// conv_after_body.
    pub conv_after_body: ConvBits,
    /// The upsampler conv.
    pub upsample: ConvBits,
}

impl Default for ExportOptions {
    /// int8 everywhere: measured within 0.01 dB of the fake-quant PSNR on
    /// Set5 (`docs/integer-semantics.md` §Convolutions), and the only choice
    /// that keeps W2A2 above 7× compression.
    fn default() -> Self {
        Self {
            conv_first: ConvBits::I8,
            rstb_conv: ConvBits::I8,
            conv_after_body: ConvBits::I8,
            upsample: ConvBits::I8,
        }
    }
}

/// Calibrated magnitudes (max |x| over the calibration batch, FP model).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CalibStats {
    /// Every residual-stream tensor (conv_first out, patch norm, block
    /// outputs, RSTB outputs, norm, conv_after_body + conv_first).
    pub stream: f32,
    /// Input of RSTB `l`'s conv (the residual group output).
    pub rstb_in: [f32; LAYERS],
    /// Input of conv_after_body (the final norm's output).
    pub cab_in: f32,
    /// Input of the upsampler (conv_after_body + conv_first).
    pub up_in: f32,
}

struct StatsHook {
    stats: RefCell<CalibStats>,
    conv_first: RefCell<Option<Tensor>>,
}

fn max_abs(x: &Tensor) -> candle_core::Result<f32> {
    x.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

impl SiteHook for StatsHook {
    fn weight(&self, _: SiteId, w: &Tensor) -> candle_core::Result<Tensor> {
        Ok(w.clone())
    }
    fn act(&self, _: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
    fn feature(&self, tap: FeatureTap, x: &Tensor) -> candle_core::Result<()> {
        let m = max_abs(x)?;
        let mut s = self.stats.borrow_mut();
        match tap {
            FeatureTap::ConvFirst => {
                *self.conv_first.borrow_mut() = Some(x.clone());
                s.stream = s.stream.max(m);
            }
            FeatureTap::ResidualGroup(l) => {
                if let Some(v) = s.rstb_in.get_mut(usize::from(l)) {
                    *v = v.max(m);
                }
                s.stream = s.stream.max(m);
            }
            FeatureTap::Norm => {
                s.cab_in = s.cab_in.max(m);
                s.stream = s.stream.max(m);
            }
            FeatureTap::ConvAfterBody => {
                if let Some(f0) = self.conv_first.borrow().as_ref() {
                    let up = max_abs(&(x + f0)?)?;
                    s.up_in = s.up_in.max(up);
                    s.stream = s.stream.max(up);
                }
                s.stream = s.stream.max(m);
            }
            FeatureTap::Upsample => {}
            _ => s.stream = s.stream.max(m),
        }
        Ok(())
    }
}

/// Magnitudes of the FP model's stream and conv inputs on `batch`
/// (`[B, 3, H, W]`, H and W multiples of 8).
pub fn calib_stats(model: &SwinIR, batch: &Tensor) -> Result<CalibStats> {
    let hook = StatsHook {
        stats: RefCell::new(CalibStats::default()),
        conv_first: RefCell::new(None),
    };
    model
        .forward_with(batch, &hook)
        .context("FP calibration pass")?;
    let stats = *hook.stats.borrow();
    Ok(stats)
}

/// A bounds file with its calibration batch (the golden DOBI files carry one).
pub struct LoadedExportBounds {
    /// `(l, u)` of the 384 sites in `SiteId::all` order.
    pub bounds: Vec<(f32, f32)>,
    /// Bit width.
    pub bits: u8,
    /// `calibration_batch`, if the file has one.
    pub calibration_batch: Option<Tensor>,
    /// Whether the file carries tdquant metadata (then model identity,
    /// scale and bit width were checked).
    pub has_meta: bool,
}

/// Loads a bounds file (golden or calibrated), checked against `expect`.
pub fn load_export_bounds(path: &Path, expect: &BoundsExpect<'_>) -> Result<LoadedExportBounds> {
    let loaded = load_bounds(path, expect)?;
    Ok(LoadedExportBounds {
        has_meta: loaded.meta.is_some(),
        bits: loaded.bits,
        calibration_batch: loaded.extra.get(CALIBRATION_BATCH).cloned(),
        bounds: loaded.bounds,
    })
}

/// What [`export`] made.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The `.tdq` bytes.
    pub bytes: Vec<u8>,
    /// FP32 bytes of the model's learnable parameters (`4 ·` count).
    pub fp32_bytes: usize,
    /// Residual-stream fractional bits chosen.
    pub stream_frac: u32,
}

impl Exported {
    /// `fp32_bytes / file size`.
    pub fn ratio(&self) -> f64 {
        self.fp32_bytes as f64 / self.bytes.len().max(1) as f64
    }
}

/// The stand-in ×4 model exported with the golden released-DOBI bounds
/// (`golden/dobi_released_w{b}.safetensors` and their calibration batch): the
/// integer models of the tests, `bench int` and the GPU checks. Loads the FP
/// weights once; the stream/conv statistics (the same batch in every golden
/// file) are computed on the first export and reused.
pub struct GoldenExport {
    root: std::path::PathBuf,
    weights: SwinIrWeights,
    model: SwinIR,
    stats: Option<CalibStats>,
}

impl GoldenExport {
    /// Loads the default model under `root` ([`crate::data_root::default_model`]).
    pub fn new(root: &Path) -> Result<Self> {
        Self::with_model(root, &crate::data_root::default_model(root))
    }

    /// Loads the FP weights at `model_path` (golden bounds from `root`).
    pub fn with_model(root: &Path, model_path: &Path) -> Result<Self> {
        let weights = crate::weights::load(model_path)
            .with_context(|| format!("loading model {}", model_path.display()))?;
        let model = SwinIR::from_weights(&weights)?;
        Ok(Self {
            root: root.to_path_buf(),
            weights,
            model,
            stats: None,
        })
    }

    /// The FP model.
    pub fn model(&self) -> &SwinIR {
        &self.model
    }

    /// The FP weights.
    pub fn weights(&self) -> &SwinIrWeights {
        &self.weights
    }

    /// The calibration statistics, once an export computed them.
    pub fn stats(&self) -> Option<&CalibStats> {
        self.stats.as_ref()
    }

    /// Exports the model at `bits` ∈ {2, 3, 4}.
    pub fn export(&mut self, bits: u8) -> Result<Exported> {
        let path = self
            .root
            .join(format!("golden/dobi_released_w{bits}.safetensors"));
        let loaded = load_export_bounds(
            &path,
            &BoundsExpect {
                bits: Some(bits),
                weights_sha256: self.model.weights_sha256(),
                scale: Some(self.weights.scale),
            },
        )?;
        let stats = match self.stats {
            Some(s) => s,
            None => {
                let batch = loaded
                    .calibration_batch
                    .as_ref()
                    .with_context(|| format!("{} has no calibration batch", path.display()))?;
                *self.stats.insert(calib_stats(&self.model, batch)?)
            }
        };
        export(
            &self.weights,
            &loaded.bounds,
            bits,
            &stats,
            &ExportOptions::default(),
        )
    }
}

// ---------------------------------------------------------------------------
// Small numeric helpers (host side, f64).

fn to_i64(x: f64, what: &str) -> Result<i64> {
    let r = x.round();
    ensure!(
        r.is_finite() && r.abs() < 4.0e18,
        "export: {what} = {x} does not fit an i64"
    );
    Ok(r as i64)
}

fn to_i32(x: f64, what: &str) -> Result<i32> {
    let r = x.round();
    ensure!(
        r.is_finite() && r.abs() <= f64::from(i32::MAX),
        "export: {what} = {x} does not fit an i32"
    );
    Ok(r as i32)
}

fn push_i64(words: &mut Vec<i32>, v: i64) {
    words.push(v as u32 as i32);
    words.push((v >> 32) as i32);
}

/// `⌊bits − log2(max_abs)⌋` (large when `max_abs` is 0).
fn frac_for(max_abs: f64, bits: i32) -> i32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        (f64::from(bits) - max_abs.log2()).floor() as i32
    } else {
        1000
    }
}

fn max_abs_f64(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn vec_f32(w: &SwinIrWeights, key: &str) -> Result<Vec<f32>> {
    Ok(w.get(key)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A quantizer's grid as the integer path sees it.
#[derive(Clone, Copy, Debug)]
struct Grid {
    params: QuantParams,
    l: f64,
    s: f64,
    n: u8,
}

fn grid(bounds: &[(f32, f32)], site: SiteId, bits: BitWidth) -> Result<Grid> {
    let (l, u) = *bounds
        .get(site.index())
        .with_context(|| format!("no bounds for {site}"))?;
    let params =
        QuantParams::new(l, u, bits).map_err(|e| anyhow::anyhow!("bounds of {site}: {e}"))?;
    Ok(Grid {
        params,
        l: f64::from(l),
        s: f64::from(params.step()),
        n: bits.levels(),
    })
}

// ---------------------------------------------------------------------------
// Per-operator constants.

/// LayerNorm words ([`ln`] layout) for output precision `y_frac`.
fn ln_words(gamma: &[f32], beta: &[f32], y_frac: i32, eps_t: i64) -> Result<Vec<i32>> {
    let g_frac = frac_for(max_abs_f64(gamma.iter().map(|&g| f64::from(g))), 30).clamp(0, 40);
    ensure!(
        (0..=24 + g_frac).contains(&y_frac) && y_frac <= 40,
        "export: layernorm y_frac {y_frac} out of range"
    );
    let mut w = vec![g_frac, y_frac];
    push_i64(&mut w, eps_t);
    for &g in gamma {
        w.push(to_i32(f64::from(g) * 2f64.powi(g_frac), "layernorm gamma")?);
    }
    for &b in beta {
        w.push(to_i32(f64::from(b) * 2f64.powi(y_frac), "layernorm beta")?);
    }
    ensure!(w.len() == ln::WORDS);
    Ok(w)
}

/// `E = round(n²·eps·2^(2F))`.
fn eps_term(stream_frac: u32) -> Result<i64> {
    let n = EMBED as f64;
    let e = to_i64(
        n * n * LN_EPS * 2f64.powi(2 * stream_frac as i32),
        "layernorm eps",
    )?;
    ensure!(
        (1..=1i64 << 40).contains(&e),
        "export: layernorm eps term {e} out of range"
    );
    Ok(e)
}

/// `y_frac` for a LayerNorm feeding the quantizers `grids`.
fn ln_y_frac(gamma: &[f32], beta: &[f32], grids: &[Grid]) -> i32 {
    let g_frac = frac_for(max_abs_f64(gamma.iter().map(|&g| f64::from(g))), 30).clamp(0, 40);
    let mut y = 28.min(24 + g_frac);
    y = y.min(frac_for(
        max_abs_f64(beta.iter().map(|&b| f64::from(b))),
        30,
    ));
    for g in grids {
        // s·2^y ≤ 2^32/N (the FixedQuant clamp condition), with a factor 2 to spare.
        y = y.min(frac_for(g.s * f64::from(g.n), 31));
    }
    y.max(0)
}

/// Fixed quantizer words: shift S, offset L (i64), multiplier M (i64).
fn fq_words(g: &Grid, y_frac: i32) -> Result<Vec<i32>> {
    let s_shift = y_frac + g.s.log2().floor() as i32 + 30;
    ensure!(
        (1..=62).contains(&s_shift),
        "export: fixed quantizer shift {s_shift} out of range (step {})",
        g.s
    );
    let mult = to_i64(
        2f64.powi(s_shift - y_frac) / g.s,
        "fixed quantizer multiplier",
    )?;
    let offset = to_i64(g.l * 2f64.powi(y_frac), "fixed quantizer offset")?;
    let mut w = vec![s_shift];
    push_i64(&mut w, offset);
    push_i64(&mut w, mult);
    Ok(w)
}

/// Affine words (A, B, c_shift, frac) and the per-row `C_j`.
fn affine_words(a: f64, b: f64, c: &[f64]) -> Result<(Vec<i32>, Vec<i32>)> {
    let mut frac = MAX_FRAC.min(frac_for(a.abs().max(b.abs()), 37));
    let c_room = frac_for(max_abs_f64(c.iter().copied()), 30);
    ensure!(c_room >= 0, "export: linear constant too large ({c:?})");
    let mut c_shift = (frac - c_room).max(0);
    if c_shift > 29 {
        frac -= c_shift - 29;
        c_shift = 29;
    }
    ensure!(frac >= 0, "export: linear scale too large (A {a}, B {b})");
    let mut w = Vec::with_capacity(6);
    push_i64(&mut w, to_i64(a * 2f64.powi(frac), "linear A")?);
    push_i64(&mut w, to_i64(b * 2f64.powi(frac), "linear B")?);
    w.push(c_shift);
    w.push(frac);
    let rows = c
        .iter()
        .map(|&cj| to_i32(cj * 2f64.powi(frac - c_shift), "linear C"))
        .collect::<Result<Vec<_>>>()?;
    Ok((w, rows))
}

/// The linear layer `y_j = Σ x_i w_ji + b_j` folded for an output in units
/// `1/out_scale` offset by `out_offset`: `t ≈ (σ·y_j − out_offset)·out_scale`.
struct LinearFold<'a> {
    input: Grid,
    weight: Grid,
    codes: &'a [u8],
    k: usize,
    bias: &'a [f32],
    sigma: f64,
    out_offset: f64,
    out_scale: f64,
}

impl LinearFold<'_> {
    fn fold(&self) -> Result<(Vec<i32>, Vec<i32>)> {
        let (la, sa, lw, sw) = (self.input.l, self.input.s, self.weight.l, self.weight.s);
        let k = self.k as f64;
        let a = self.sigma * sa * sw * self.out_scale;
        let b = self.sigma * sa * lw * self.out_scale;
        let c: Vec<f64> = self
            .codes
            .chunks_exact(self.k)
            .zip(self.bias)
            .map(|(row, &bj)| {
                let rowsum: f64 = row.iter().map(|&c| f64::from(c)).sum();
                (self.sigma * (la * sw * rowsum + k * la * lw + f64::from(bj)) - self.out_offset)
                    * self.out_scale
            })
            .collect();
        affine_words(a, b, &c)
    }
}

/// Exact GELU, `y·Φ(y)`.
pub fn gelu_f64(y: f64) -> f64 {
    0.5 * y * (1.0 + libm::erf(y / std::f64::consts::SQRT_2))
}

/// `(y*, gelu(y*))`: the minimum of GELU.
pub fn gelu_min() -> (f64, f64) {
    // gelu'(y) = Φ(y) + y·φ(y): negative at −2, positive at 0.
    let d = |y: f64| {
        0.5 * (1.0 + libm::erf(y / std::f64::consts::SQRT_2))
            + y * (-0.5 * y * y).exp() / (2.0 * std::f64::consts::PI).sqrt()
    };
    let (mut lo, mut hi) = (-2.0f64, 0.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if d(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let y = 0.5 * (lo + hi);
    (y, gelu_f64(y))
}

/// Bisection for `gelu(y) = level` on `[lo, hi]` where `gelu` is monotone
/// with `increasing` direction.
fn gelu_root(level: f64, mut lo: f64, mut hi: f64, increasing: bool) -> f64 {
    for _ in 0..300 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        let above = gelu_f64(mid) >= level;
        if above == increasing {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The GELU → quantizer thresholds `(H_k, L_k)` of `docs/integer-semantics.md`
/// for the fc2-input grid `(l, s, N)`, in units of `2^−frac` (real fc1 output).
pub fn gelu_thresholds(l: f64, s: f64, levels: u8, frac: i32) -> Vec<(i64, i64)> {
    let (ystar, gmin) = gelu_min();
    let scale = 2f64.powi(frac);
    let limit = (1i64 << 62) as f64;
    let fixed = |v: f64, ceil: bool| -> i64 {
        let x = v * scale;
        let x = if ceil { x.ceil() } else { x.floor() };
        x.clamp(-limit, limit) as i64
    };
    (1..=levels)
        .map(|k| {
            let level = l + (f64::from(k) - 0.5) * s;
            if level <= gmin {
                (i64::MIN, i64::MIN)
            } else {
                let right = gelu_root(level, ystar, level.max(0.0) + 2.0, true);
                let hi = fixed(right, true);
                let lo = if level < 0.0 {
                    fixed(gelu_root(level, -60.0, ystar, false), false)
                } else {
                    i64::MIN
                };
                (hi, lo)
            }
        })
        .collect()
}

/// Conv weights in `(ky, kx, c_in)` order and the `[cout, 3]` requantizer words.
///
/// `scale_of(delta)` is the requantization scale for a weight step `delta`,
/// `bias_of(o)` the bias of output `o` in output units.
fn conv_section(
    w: &[f32],
    cout: usize,
    cin: usize,
    bits: ConvBits,
    scale_of: impl Fn(f64) -> f64,
    bias_of: impl Fn(usize) -> f64,
) -> Result<(Dtype, Vec<u8>, Vec<i32>)> {
    ensure!(w.len() == cout * cin * 9, "conv weight size");
    let qmax = match bits {
        ConvBits::I8 => 127.0,
        ConvBits::I16 => 32767.0,
    };
    let mut data = Vec::new();
    let mut q = Vec::with_capacity(cout * 3);
    for o in 0..cout {
        let row = &w[o * cin * 9..(o + 1) * cin * 9];
        let m = max_abs_f64(row.iter().map(|&x| f64::from(x)));
        let delta = if m > 0.0 { m / qmax } else { 1.0 };
        for ky in 0..3 {
            for kx in 0..3 {
                for c in 0..cin {
                    let v = (f64::from(row[c * 9 + ky * 3 + kx]) / delta).round();
                    match bits {
                        ConvBits::I8 => data.push((v as i8) as u8),
                        ConvBits::I16 => data.extend_from_slice(&(v as i16).to_le_bytes()),
                    }
                }
            }
        }
        let r = Requantizer::from_scale(scale_of(delta))
            .map_err(|e| anyhow::anyhow!("conv requantizer: {e}"))?;
        q.push(r.multiplier());
        q.push(i32::from(r.shift()));
        q.push(to_i32(bias_of(o), "conv bias")?);
    }
    let dtype = match bits {
        ConvBits::I8 => Dtype::I8,
        ConvBits::I16 => Dtype::I16,
    };
    Ok((dtype, data, q))
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Input shift `k` so that `max·2^F·CONV_MARGIN / 2^k ≤ 32767`.
fn conv_shift(max: f32, stream_frac: u32) -> i32 {
    let need = f64::from(max) * 2f64.powi(stream_frac as i32) * CONV_MARGIN / 32767.0;
    if need <= 1.0 {
        0
    } else {
        need.log2().ceil() as i32
    }
}

/// Stream fractional bits from the calibrated maximum.
pub fn stream_frac_for(max: f32) -> u32 {
    frac_for(f64::from(max) * STREAM_MARGIN, 24).clamp(4, 24) as u32
}

/// Builds the `.tdq` bytes.
///
/// * `w`: the FP weights;
/// * `bounds`: `(l, u)` of the 384 sites in `SiteId::all` order;
/// * `bits`: 2, 3 or 4;
/// * `stats`: [`calib_stats`] of the same model.
pub fn export(
    w: &SwinIrWeights,
    bounds: &[(f32, f32)],
    bits: u8,
    stats: &CalibStats,
    opts: &ExportOptions,
) -> Result<Exported> {
    let width = match bits {
        2 => BitWidth::B2,
        3 => BitWidth::B3,
        4 => BitWidth::B4,
        _ => bail!("export: unsupported bit width {bits} (2, 3 or 4)"),
    };
    ensure!(
        bounds.len() == BLOCKS * 16,
        "export: expected 384 bound pairs"
    );
    let n = usize::from(width.levels());
    let scale = w.scale;
    let f = stream_frac_for(stats.stream);
    let fi = f as i32;
    let two_f = 2f64.powi(fi);
    let eps_t = eps_term(f)?;
    let log2e = std::f64::consts::LOG2_E;
    let sigma = f64::from(attn_scale() as f32);

    // ---- meta ----
    let mut meta_words = vec![0i32; meta::LEN];
    meta_words[meta::FORMAT] = FORMAT;
    meta_words[meta::SCALE] = scale as i32;
    meta_words[meta::BITS] = i32::from(bits);
    meta_words[meta::STREAM_FRAC] = fi;
    for l in 0..LAYERS {
        meta_words[meta::RSTB_SHIFT + l] = conv_shift(stats.rstb_in[l], f);
    }
    meta_words[meta::CAB_SHIFT] = conv_shift(stats.cab_in, f);
    meta_words[meta::UP_SHIFT] = conv_shift(stats.up_in, f);
    let gain = f64::from(INPUT_GAIN) * 255.0;
    for c in 0..3 {
        meta_words[meta::INPUT_OFFSET + c] = to_i32(gain * f64::from(RGB_MEAN[c]), "input offset")?;
    }
    for (i, d) in [EMBED, LAYERS, DEPTH, HEADS, 8, MLP].iter().enumerate() {
        meta_words[meta::DIMS + i] = *d as i32;
    }

    // ---- convs ----
    let (cf_dtype, cf_w, cf_q) = conv_section(
        &vec_f32(w, "conv_first.weight")?,
        EMBED,
        3,
        opts.conv_first,
        |delta| delta * two_f / gain,
        {
            let b = vec_f32(w, "conv_first.bias")?;
            move |o| f64::from(b[o]) * two_f
        },
    )?;
    let mut rc_w = Vec::new();
    let mut rc_q = Vec::new();
    let mut rc_dtype = Dtype::I8;
    for l in 0..LAYERS {
        let k = meta_words[meta::RSTB_SHIFT + l];
        let b = vec_f32(w, &format!("layers.{l}.conv.bias"))?;
        let (dt, data, q) = conv_section(
            &vec_f32(w, &format!("layers.{l}.conv.weight"))?,
            EMBED,
            EMBED,
            opts.rstb_conv,
            |delta| delta * 2f64.powi(k),
            |o| f64::from(b[o]) * two_f,
        )?;
        rc_dtype = dt;
        rc_w.extend(data);
        rc_q.extend(q);
    }
    let cab_k = meta_words[meta::CAB_SHIFT];
    let cab_b = vec_f32(w, "conv_after_body.bias")?;
    let (cab_dtype, cab_w, cab_q) = conv_section(
        &vec_f32(w, "conv_after_body.weight")?,
        EMBED,
        EMBED,
        opts.conv_after_body,
        |delta| delta * 2f64.powi(cab_k),
        |o| f64::from(cab_b[o]) * two_f,
    )?;
    let up_k = meta_words[meta::UP_SHIFT];
    let up_out = 3 * scale * scale;
    let up_b = vec_f32(w, "upsample.0.bias")?;
    let pix = 255.0 * 2f64.powi(PIXEL_FRAC as i32);
    let (up_dtype, up_w, up_q) = conv_section(
        &vec_f32(w, "upsample.0.weight")?,
        up_out,
        EMBED,
        opts.upsample,
        |delta| delta * 2f64.powi(up_k - fi) * pix,
        |o| (f64::from(up_b[o]) + f64::from(RGB_MEAN[o / (scale * scale)])) * pix,
    )?;

    // ---- norms ----
    let pe = ln_words(
        &vec_f32(w, "patch_embed.norm.weight")?,
        &vec_f32(w, "patch_embed.norm.bias")?,
        fi,
        eps_t,
    )?;
    let norm = ln_words(
        &vec_f32(w, "norm.weight")?,
        &vec_f32(w, "norm.bias")?,
        fi,
        eps_t,
    )?;

    // ---- blocks ----
    let e = EMBED;
    let mut w_attn = Vec::with_capacity(BLOCKS * 4 * e * e);
    let mut w_fc1 = Vec::with_capacity(BLOCKS * MLP * e);
    let mut w_fc2 = Vec::with_capacity(BLOCKS * MLP * e);
    let mut rpb = Vec::with_capacity(BLOCKS * HEADS * RPB_ROWS * 2);
    let mut blocks = Vec::with_capacity(BLOCKS * block::words(n));
    for i in 0..BLOCKS {
        let (layer, blk) = ((i / DEPTH) as u8, (i % DEPTH) as u8);
        let sid = |site| SiteId {
            layer,
            block: blk,
            site,
        };
        let g = |site| grid(bounds, sid(site), width);
        let p = format!("layers.{layer}.residual_group.blocks.{blk}.");
        let get = |k: &str| vec_f32(w, &format!("{p}{k}"));
        let qkv_w = get("attn.qkv.weight")?;
        let qkv_b = get("attn.qkv.bias")?;
        let proj_w = get("attn.proj.weight")?;
        let proj_b = get("attn.proj.bias")?;
        let fc1_w = get("mlp.fc1.weight")?;
        let fc1_b = get("mlp.fc1.bias")?;
        let fc2_w = get("mlp.fc2.weight")?;
        let fc2_b = get("mlp.fc2.bias")?;
        let encode = |grid: &Grid, v: &[f32]| -> Vec<u8> {
            v.iter().map(|&x| grid.params.encode(x)).collect()
        };
        let (gqw, gkw, gvw) = (g(Site::QWeight)?, g(Site::KWeight)?, g(Site::VWeight)?);
        let (gpw, gf1w, gf2w) = (
            g(Site::ProjWeight)?,
            g(Site::Fc1Weight)?,
            g(Site::Fc2Weight)?,
        );
        let cq = encode(&gqw, &qkv_w[..e * e]);
        let ck = encode(&gkw, &qkv_w[e * e..2 * e * e]);
        let cv = encode(&gvw, &qkv_w[2 * e * e..]);
        let cp = encode(&gpw, &proj_w);
        let c1 = encode(&gf1w, &fc1_w);
        let c2 = encode(&gf2w, &fc2_w);
        for c in [&cq, &ck, &cv, &cp] {
            w_attn.extend_from_slice(c);
        }
        w_fc1.extend_from_slice(&c1);
        w_fc2.extend_from_slice(&c2);

        let (gqi, gki, gvi) = (g(Site::QInput)?, g(Site::KInput)?, g(Site::VInput)?);
        let (gpi, gf1i, gf2i) = (g(Site::ProjInput)?, g(Site::Fc1Input)?, g(Site::Fc2Input)?);
        let (gaq, gak, gav, gap) = (
            g(Site::AttnQ)?,
            g(Site::AttnK)?,
            g(Site::AttnV)?,
            g(Site::AttnProb)?,
        );

        let n1w = get("norm1.weight")?;
        let n1b = get("norm1.bias")?;
        let n2w = get("norm2.weight")?;
        let n2b = get("norm2.bias")?;
        let y1 = ln_y_frac(&n1w, &n1b, &[gqi, gki, gvi]);
        let y2 = ln_y_frac(&n2w, &n2b, &[gf1i]);
        let mut words = Vec::with_capacity(block::words(n));
        words.extend(ln_words(&n1w, &n1b, y1, eps_t)?);
        words.extend(ln_words(&n2w, &n2b, y2, eps_t)?);
        for gq in [&gqi, &gki, &gvi] {
            words.extend(fq_words(gq, y1)?);
        }
        words.extend(fq_words(&gf1i, y2)?);
        ensure!(words.len() == block::AFF_Q);

        let code_out =
            |input: Grid, weight: Grid, codes: &[u8], bias: &[f32], sigma: f64, out: Grid| {
                LinearFold {
                    input,
                    weight,
                    codes,
                    k: e,
                    bias,
                    sigma,
                    out_offset: out.l,
                    out_scale: 1.0 / out.s,
                }
                .fold()
            };
        let (aq, rq) = code_out(gqi, gqw, &cq, &qkv_b[..e], sigma, gaq)?;
        let (ak, rk) = code_out(gki, gkw, &ck, &qkv_b[e..2 * e], 1.0, gak)?;
        let (av, rv) = code_out(gvi, gvw, &cv, &qkv_b[2 * e..], 1.0, gav)?;
        let (ap, rp) = LinearFold {
            input: gpi,
            weight: gpw,
            codes: &cp,
            k: e,
            bias: &proj_b,
            sigma: 1.0,
            out_offset: 0.0,
            out_scale: two_f,
        }
        .fold()?;
        let (a1, r1) = LinearFold {
            input: gf1i,
            weight: gf1w,
            codes: &c1,
            k: e,
            bias: &fc1_b,
            sigma: 1.0,
            out_offset: 0.0,
            out_scale: 1.0,
        }
        .fold()?;
        let (a2, r2) = LinearFold {
            input: gf2i,
            weight: gf2w,
            codes: &c2,
            k: MLP,
            bias: &fc2_b,
            sigma: 1.0,
            out_offset: 0.0,
            out_scale: two_f,
        }
        .fold()?;
        for a in [&aq, &ak, &av, &ap, &a1, &a2] {
            words.extend_from_slice(a);
        }
        ensure!(words.len() == block::ROWC);
        for r in [&rq, &rk, &rv, &rp, &r1, &r2] {
            words.extend_from_slice(r);
        }
        ensure!(words.len() == block::QK);

        // Logits.
        let (lq, sq, sk) = (gaq.l, gaq.s, gak.s);
        let qa = to_i64(sq * sk * log2e * 2f64.powi(32), "qk A")?;
        let qb = to_i64(lq * sk * log2e * 2f64.powi(32), "qk B")?;
        let table = get("attn.relative_position_bias_table")?; // [225, 6]
        let tmax = max_abs_f64(table.iter().map(|&v| f64::from(v) * log2e));
        let r_frac = frac_for(tmax, 15).min(32);
        let rpb_shift = 32 - r_frac;
        ensure!(
            (0..=40).contains(&rpb_shift),
            "export: relative-position bias too large"
        );
        for h in 0..HEADS {
            for row in 0..RPB_ROWS {
                let v = (f64::from(table[row * HEADS + h]) * log2e * 2f64.powi(r_frac)).round();
                ensure!(v.abs() <= 32767.0, "export: rpb does not fit i16");
                rpb.extend_from_slice(&(v as i16).to_le_bytes());
            }
        }
        push_i64(&mut words, qa);
        push_i64(&mut words, qb);
        words.push(rpb_shift);
        ensure!(words.len() == block::AV);

        // P·v.
        let (lp, sp, lv, sv, lo, so) = (gap.l, gap.s, gav.l, gav.s, gpi.l, gpi.s);
        let (xa, xb, xc, xd) = (
            sp * sv / so,
            sp * lv / so,
            lp * sv / so,
            (64.0 * lp * lv - lo) / so,
        );
        let av_frac = MAX_FRAC
            .min(frac_for(xa.abs(), 37))
            .min(frac_for(xb.abs().max(xc.abs()), 43))
            .min(frac_for(xd.abs(), 59));
        ensure!(av_frac >= 0, "export: P·v constants too large");
        let sc = 2f64.powi(av_frac);
        push_i64(&mut words, to_i64(xa * sc, "av A")?);
        push_i64(&mut words, to_i64(xb * sc, "av B")?);
        push_i64(&mut words, to_i64(xc * sc, "av C")?);
        push_i64(&mut words, to_i64(xd * sc, "av D")?);
        words.push(av_frac);
        ensure!(words.len() == block::PROB);

        // AttnProb levels.
        for k in 1..=n {
            let level = (lp + (k as f64 - 0.5) * sp) * 2f64.powi(30);
            push_i64(
                &mut words,
                to_i64(level.clamp(-1.0e12, 1.0e12), "prob level")?,
            );
        }
        // GELU thresholds in the fc1 output's units.
        let fc1_frac = a1[5];
        for (hi, lo) in gelu_thresholds(gf2i.l, gf2i.s, gf2i.n, fc1_frac) {
            push_i64(&mut words, hi);
            push_i64(&mut words, lo);
        }
        ensure!(words.len() == block::words(n));
        blocks.extend(words);
    }

    // ---- pack and write ----
    let pack = |codes: &[u8], rows: usize, cols: usize| -> Result<Vec<u8>> {
        let layout = tdquant_core::PackedLayout::new(width, rows as u32, cols as u32);
        let mut out = vec![0u8; layout.byte_len()?];
        tdquant_core::pack_codes(layout, codes, &mut out)?;
        Ok(out)
    };
    let p_attn = pack(&w_attn, BLOCKS * 4 * e, e)?;
    let p_fc1 = pack(&w_fc1, BLOCKS * MLP, e)?;
    let p_fc2 = pack(&w_fc2, BLOCKS * e, MLP)?;

    let meta_b = i32_bytes(&meta_words);
    let cf_qb = i32_bytes(&cf_q);
    let pe_b = i32_bytes(&pe);
    let blocks_b = i32_bytes(&blocks);
    let rc_qb = i32_bytes(&rc_q);
    let norm_b = i32_bytes(&norm);
    let cab_qb = i32_bytes(&cab_q);
    let up_qb = i32_bytes(&up_q);
    let d = |v: usize| v as u32;
    let s_meta = [d(meta::LEN)];
    let s_cfw = [d(e), 27];
    let s_cfq = [d(e), 3];
    let s_ln = [d(ln::WORDS)];
    let s_attn = [d(BLOCKS * 4 * e), d(e)];
    let s_fc1 = [d(BLOCKS * MLP), d(e)];
    let s_fc2 = [d(BLOCKS * e), d(MLP)];
    let s_rpb = [d(BLOCKS), d(HEADS), d(RPB_ROWS)];
    let s_blocks = [d(BLOCKS), d(block::words(n))];
    let s_rcw = [d(LAYERS * e), d(9 * e)];
    let s_rcq = [d(LAYERS * e), 3];
    let s_cabw = [d(e), d(9 * e)];
    let s_cabq = [d(e), 3];
    let s_upw = [d(up_out), d(9 * e)];
    let s_upq = [d(up_out), 3];
    let specs = [
        SectionSpec::new("meta", Dtype::I32, &s_meta, &meta_b),
        SectionSpec::new("conv_first.w", cf_dtype, &s_cfw, &cf_w),
        SectionSpec::new("conv_first.q", Dtype::I32, &s_cfq, &cf_qb),
        SectionSpec::new("pe_norm", Dtype::I32, &s_ln, &pe_b),
        SectionSpec::packed("w_attn", width, &s_attn, &p_attn),
        SectionSpec::packed("w_fc1", width, &s_fc1, &p_fc1),
        SectionSpec::packed("w_fc2", width, &s_fc2, &p_fc2),
        SectionSpec::new("rpb", Dtype::I16, &s_rpb, &rpb),
        SectionSpec::new("blocks", Dtype::I32, &s_blocks, &blocks_b),
        SectionSpec::new("rstb_conv.w", rc_dtype, &s_rcw, &rc_w),
        SectionSpec::new("rstb_conv.q", Dtype::I32, &s_rcq, &rc_qb),
        SectionSpec::new("norm", Dtype::I32, &s_ln, &norm_b),
        SectionSpec::new("conv_after_body.w", cab_dtype, &s_cabw, &cab_w),
        SectionSpec::new("conv_after_body.q", Dtype::I32, &s_cabq, &cab_qb),
        SectionSpec::new("upsample.w", up_dtype, &s_upw, &up_w),
        SectionSpec::new("upsample.q", Dtype::I32, &s_upq, &up_qb),
    ];
    let len = ContainerWriter::required_len(&specs)?;
    let mut bytes = vec![0u8; len];
    ContainerWriter::write(&specs, &mut bytes)?;
    // The exporter never writes a model the runner would refuse.
    tdquant_core::int::IntModel::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("export produced an invalid model: {e}"))?;
    Ok(Exported {
        bytes,
        fp32_bytes: w.num_params() * 4,
        stream_frac: f,
    })
}

/// The calibration batch for `tdquant export`: the `calibration_batch`
/// tensor of `calib` if given (a safetensors file), else the bounds file's,
/// else 8 seeded 64×64 LR patches from the calibration pool `<data>/calib`
/// (seed 0, the calibration pipeline's sampler).
pub fn export_calibration_batch(
    calib: Option<&Path>,
    from_bounds: Option<Tensor>,
    data_root: &Path,
    scale: usize,
) -> Result<Tensor> {
    if let Some(path) = calib {
        let mut t = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        return match t.remove(CALIBRATION_BATCH) {
            Some(b) => Ok(b),
            None if t.len() == 1 => Ok(t.into_values().next().expect("one tensor")),
            None => bail!("{} has no `{CALIBRATION_BATCH}` tensor", path.display()),
        };
    }
    if let Some(b) = from_bounds {
        return Ok(b);
    }
    let pool = crate::calib::data::CalibPool::open(&data_root.join("calib"), scale, 64)
        .context("opening the calibration pool for the stream/conv scales")?;
    pool.sample_batch(
        &mut crate::calib::data::SplitMix64::new(0),
        8,
        64,
        &Device::Cpu,
    )
}

/// `tdquant export`: writes the `.tdq` to `output` and prints its size and
/// the ratio to the FP32 parameter bytes.
pub fn cli_export(
    model_path: &Path,
    bounds_path: &Path,
    bits: Option<u8>,
    calib: Option<&Path>,
    data_root: &Path,
    output: &Path,
) -> Result<Exported> {
    crate::output::check_output_path(output, &["tdq"], &[model_path, bounds_path])?;
    if let Some(b) = bits {
        crate::calib::check_bits(b)?;
    }
    let weights = crate::weights::load(model_path)
        .with_context(|| format!("loading {}", model_path.display()))?;
    let model = SwinIR::from_weights(&weights)?;
    // The same checks as `eval --bounds`: bounds calibrated for other
    // weights, another scale or another bit width are refused.
    let loaded = load_export_bounds(
        bounds_path,
        &BoundsExpect {
            bits,
            weights_sha256: model.weights_sha256(),
            scale: Some(weights.scale),
        },
    )
    .with_context(|| format!("loading bounds {}", bounds_path.display()))?;
    if !loaded.has_meta {
        eprintln!(
            "note: {} has no tdquant metadata; using W{b}A{b} as given, model identity not checked",
            bounds_path.display(),
            b = loaded.bits
        );
    }
    let batch = export_calibration_batch(
        calib,
        loaded.calibration_batch.clone(),
        data_root,
        weights.scale,
    )?;
    let stats = calib_stats(&model, &batch)?;
    let out = export(
        &weights,
        &loaded.bounds,
        loaded.bits,
        &stats,
        &ExportOptions::default(),
    )?;
    crate::output::write_atomic(output, &out.bytes)?;
    println!(
        "wrote {}: W{b}A{b} ×{s}, {} bytes; FP32 parameters {} bytes; ratio {:.2}× (stream Q{})",
        output.display(),
        out.bytes.len(),
        out.fp32_bytes,
        out.ratio(),
        out.stream_frac,
        b = loaded.bits,
        s = weights.scale,
    );
    Ok(out)
}
