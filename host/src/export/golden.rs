//! The integer models of the tests, `bench int` and the GPU checks: the
//! stand-in model exported with the golden released-DOBI bounds.

use std::path::Path;

use anyhow::{Context, Result};

use crate::calib::bounds_file::BoundsExpect;
use crate::input_file::PathContext;
use crate::model::SwinIR;
use crate::weights::SwinIrWeights;

use super::{
    calib_stats, export, load_export_bounds, CalibStats, ExportOptions, Exported,
    LoadedExportBounds,
};

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
        let weights = crate::weights::load(model_path).path_context("loading model", model_path)?;
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
        Ok(self.export_with_bounds(bits)?.1)
    }

    /// [`Self::export`], with the golden bounds file it exported from (the
    /// bounds and the calibration batch).
    pub fn export_with_bounds(&mut self, bits: u8) -> Result<(LoadedExportBounds, Exported)> {
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
        let exported = export(
            &self.weights,
            &loaded.bounds,
            bits,
            &stats,
            &ExportOptions::default(),
        )?;
        Ok((loaded, exported))
    }
}
