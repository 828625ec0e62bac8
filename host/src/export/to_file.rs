//! `tdquant export`: a bounds file and FP weights in, a `.tdq` file out.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use crate::calib::bounds_file::{load_bounds, BoundsExpect, CALIBRATION_BATCH};
use crate::input_file::PathContext;
use crate::model::SwinIR;

use super::{calib_stats, export, ExportOptions, Exported};

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
    let weights = crate::weights::load(model_path).path_context("loading model", model_path)?;
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
    .path_context("loading bounds", bounds_path)?;
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
