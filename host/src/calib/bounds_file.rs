//! Bounds files: the 768 quantizer bounds of a calibrated SwinIR-light.
//!
//! # Format
//!
//! A safetensors file with one `[1]` f32 tensor per bound, named exactly as
//! in the released 2DQuant checkpoints (and the golden files):
//! `<SiteId::checkpoint_prefix()>.lower_bound` / `.upper_bound`, e.g.
//! `layers.0.residual_group.blocks.0.attn.qkv.q.weight_quantizer.lower_bound`
//! or `layers.3.residual_group.blocks.5.attn.mymodule_a.upper_bound`.
//!
//! The metadata ([`BoundsMeta`]: method, bits, scale, seed, DOBI mode, preset,
//! SHA-256 of the FP weights file, per-site kind and initializer, the
//! calibration configuration) is stored as compact JSON under the single
//! safetensors `__metadata__` key `"tdquant"` (one key, so the header bytes
//! are deterministic), and also written pretty-printed to a JSON sidecar
//! next to the file ([`sidecar_path`]: same name, extension `.json`) for
//! people to read.
//!
//! # Loading
//!
//! [`load_bounds`] reads the metadata from `__metadata__`, else from the
//! sidecar, else treats the file as metadata-less (the golden
//! `dobi_released_w*.safetensors`): then the bit width must come from the
//! caller. It checks, each with an error naming the offending value:
//! the bit width (supported, and equal to the requested one), the SHA-256 of
//! the weights (bounds calibrated for another model), a missing or unknown
//! tensor name, a bound that is not a finite `[1]` f32 or has `l ≥ u`.
//! Tolerated extra tensors: `calibration_batch` (golden files) and
//! `*.n_bit` (released checkpoints; its value must equal the bit width).
//! Files are read with a size cap ([`MAX_BOUNDS_FILE_BYTES`], [`MAX_SIDECAR_BYTES`]) and
//! special files (devices, FIFOs) are refused before any byte is read; the safetensors
//! header and every tensor's byte range are checked by the `safetensors` crate.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::quantmodel::check_bits;
use crate::input_file::read_regular;
use crate::model::hook::{SiteId, NUM_SITES};
use crate::output::write_atomic;

/// Value of [`BoundsMeta::format`].
pub const BOUNDS_FORMAT: &str = "tdquant-bounds-v1";
/// The `__metadata__` key holding the JSON metadata.
pub const META_KEY: &str = "tdquant";
/// Largest bounds file read (one is 60 KB; a golden file with its calibration batch 0.5 MB).
pub const MAX_BOUNDS_FILE_BYTES: u64 = 64 << 20;
/// Largest metadata sidecar read.
pub const MAX_SIDECAR_BYTES: u64 = 16 << 20;
/// Extra tensor the golden files carry.
pub const CALIBRATION_BATCH: &str = "calibration_batch";

/// Errors of [`load_bounds`] / [`save_bounds`].
#[derive(Debug, thiserror::Error)]
pub enum BoundsError {
    /// Reading or writing failed.
    // The cause (with its context chain, `{:#}`) is part of the message and deliberately not a
    // `source()`, so that error chains print it once.
    #[error("{path}: {cause:#}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: anyhow::Error,
    },
    /// Not a readable safetensors file or bad metadata JSON.
    #[error("{path}: not a valid bounds file: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A bound tensor is missing.
    #[error("{path}: bound {key:?} is missing")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing tensor name.
        key: String,
    },
    /// A tensor with an unknown name.
    #[error("{path}: unexpected tensor {key:?} (not a SwinIR-light 2DQuant bound)")]
    ExtraKey {
        /// The file.
        path: PathBuf,
        /// The unknown tensor name.
        key: String,
    },
    /// A bound with the wrong shape, dtype or value.
    #[error("{path}: bound {key:?}: {what}")]
    BadBound {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// The file's bit width differs from the requested one.
    #[error("{path}: bounds were calibrated for W{file}A{file}, but W{requested}A{requested} was requested")]
    BitsMismatch {
        /// The file.
        path: PathBuf,
        /// Bits in the file's metadata.
        file: u8,
        /// Bits the caller asked for.
        requested: u8,
    },
    /// No metadata and no bit width from the caller.
    #[error("{path}: the file has no tdquant metadata (e.g. a golden file); give the bit width explicitly (--bits)")]
    BitsRequired {
        /// The file.
        path: PathBuf,
    },
    /// Unsupported bit width.
    #[error("{path}: {source}")]
    Bits {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: super::quantmodel::BitsError,
    },
    /// Bounds for another model.
    #[error("{path}: bounds were calibrated for the weights with SHA-256 {file}, but the model has SHA-256 {model} (bounds for another model)")]
    ShaMismatch {
        /// The file.
        path: PathBuf,
        /// SHA-256 in the metadata.
        file: String,
        /// SHA-256 of the model being used.
        model: String,
    },
    /// The bounds were calibrated for another upscaling factor.
    #[error("{path}: bounds were calibrated for a x{file} model, but the model is x{model}")]
    ScaleMismatch {
        /// The file.
        path: PathBuf,
        /// Scale in the metadata.
        file: usize,
        /// Scale of the model.
        model: usize,
    },
}

/// Metadata of one site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteMeta {
    /// Checkpoint prefix (e.g. `layers.0.residual_group.blocks.0.attn.mymodule_a`).
    pub name: String,
    /// Site kind ([`super::quantmodel::site_kind_name`], e.g. `AttnProb`).
    pub kind: String,
    /// The initializer used there (e.g. `dobi one-sided paper K=100`).
    pub init: String,
}

/// Metadata stored with the bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundsMeta {
    /// [`BOUNDS_FORMAT`].
    pub format: String,
    /// `minmax`, `percentile`, `dobi` or `2dquant`.
    pub method: String,
    /// Bit width (W = A).
    pub bits: u8,
    /// Upscaling factor of the model.
    pub scale: usize,
    /// RNG seed of the calibration data.
    pub seed: u64,
    /// DOBI mode (`paper` / `released`; for minmax/percentile the field
    /// records the mode the run was configured with, unused).
    pub dobi_mode: String,
    /// Preset name (`quick`, `paper`, `custom`).
    pub preset: String,
    /// SHA-256 (hex) of the FP weights file.
    pub weights_sha256: String,
    /// File name of the FP weights (informational).
    pub model_file: String,
    /// Calibration configuration (data, DOBI batch, DQC hyper-parameters).
    pub config: serde_json::Value,
    /// Per-site kind and initializer, in [`SiteId::all`] order.
    pub sites: Vec<SiteMeta>,
}

/// A loaded bounds file.
#[derive(Debug)]
pub struct LoadedBounds {
    /// `(l, u)` for the 384 sites in [`SiteId::all`] order.
    pub bounds: Vec<(f32, f32)>,
    /// Bit width (from the metadata or the caller).
    pub bits: u8,
    /// The metadata, if the file has any.
    pub meta: Option<BoundsMeta>,
    /// Extra tensors (`calibration_batch` in the golden files).
    pub extra: HashMap<String, Tensor>,
}

/// What the caller expects of a bounds file.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoundsExpect<'a> {
    /// Requested bit width (required for files without metadata).
    pub bits: Option<u8>,
    /// SHA-256 of the model's weights file, checked against the metadata.
    pub weights_sha256: Option<&'a str>,
    /// Upscaling factor of the model, checked against the metadata.
    pub scale: Option<usize>,
}

/// Tensor names of the bounds of `site`: `(lower, upper)`.
pub fn bound_keys(site: SiteId) -> (String, String) {
    let p = site.checkpoint_prefix();
    (format!("{p}.lower_bound"), format!("{p}.upper_bound"))
}

/// The JSON sidecar of a bounds file (`x.safetensors` → `x.json`).
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// Serialized bounds file (deterministic bytes).
pub fn bounds_bytes(bounds: &[(f32, f32)], meta: &BoundsMeta) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        bounds.len() == NUM_SITES,
        "expected {NUM_SITES} bound pairs, got {}",
        bounds.len()
    );
    let mut bytes: BTreeMap<String, [u8; 4]> = BTreeMap::new();
    for (site, &(l, u)) in SiteId::all().zip(bounds) {
        let (kl, ku) = bound_keys(site);
        bytes.insert(kl, l.to_le_bytes());
        bytes.insert(ku, u.to_le_bytes());
    }
    let views = bytes
        .iter()
        .map(|(k, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], b)?;
            Ok((k.clone(), v))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let mut md = HashMap::new();
    md.insert(META_KEY.to_string(), serde_json::to_string(meta)?);
    Ok(safetensors::tensor::serialize(views, Some(md))?)
}

/// Write `bounds` and `meta` to `path` (atomically) and the pretty JSON
/// sidecar next to it.
pub fn save_bounds(
    path: &Path,
    bounds: &[(f32, f32)],
    meta: &BoundsMeta,
) -> Result<(), BoundsError> {
    let io = |cause| BoundsError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let bytes = bounds_bytes(bounds, meta).map_err(io)?;
    write_atomic(path, &bytes).map_err(io)?;
    let side = sidecar_path(path);
    let json = serde_json::to_string_pretty(meta).map_err(|e| io(e.into()))?;
    write_atomic(&side, json.as_bytes()).map_err(io)?;
    Ok(())
}

/// Read a bounds file (see the module docs for what is checked).
pub fn load_bounds(path: &Path, expect: &BoundsExpect) -> Result<LoadedBounds, BoundsError> {
    let p = || path.to_path_buf();
    let data = read_regular(path, MAX_BOUNDS_FILE_BYTES).map_err(|e| BoundsError::Io {
        path: p(),
        cause: anyhow::Error::new(e).context("reading bounds file"),
    })?;
    let fmt_err = |what: String| BoundsError::Format { path: p(), what };
    let (_, header) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| fmt_err(format!("safetensors header: {e}")))?;
    let mut meta: Option<BoundsMeta> = None;
    if let Some(md) = header.metadata() {
        if let Some(js) = md.get(META_KEY) {
            meta =
                Some(serde_json::from_str(js).map_err(|e| fmt_err(format!("metadata JSON: {e}")))?);
        }
    }
    if meta.is_none() {
        let side = sidecar_path(path);
        if side.is_file() {
            let js = read_regular(&side, MAX_SIDECAR_BYTES).map_err(|e| BoundsError::Io {
                path: side.clone(),
                cause: anyhow::Error::new(e).context("reading the metadata sidecar"),
            })?;
            meta = Some(
                serde_json::from_slice(&js).map_err(|e| BoundsError::Format {
                    path: side.clone(),
                    what: format!("metadata JSON: {e}"),
                })?,
            );
        }
    }
    // Bit width.
    let bits = match (&meta, expect.bits) {
        (Some(m), Some(b)) if m.bits != b => {
            return Err(BoundsError::BitsMismatch {
                path: p(),
                file: m.bits,
                requested: b,
            })
        }
        (Some(m), _) => m.bits,
        (None, Some(b)) => b,
        (None, None) => return Err(BoundsError::BitsRequired { path: p() }),
    };
    check_bits(bits).map_err(|source| BoundsError::Bits { path: p(), source })?;
    if let Some(m) = &meta {
        if m.format != BOUNDS_FORMAT {
            return Err(fmt_err(format!(
                "metadata format {:?}, expected {BOUNDS_FORMAT:?}",
                m.format
            )));
        }
        if let Some(sha) = expect.weights_sha256 {
            if !m.weights_sha256.eq_ignore_ascii_case(sha) {
                return Err(BoundsError::ShaMismatch {
                    path: p(),
                    file: m.weights_sha256.clone(),
                    model: sha.to_string(),
                });
            }
        }
        if let Some(s) = expect.scale {
            if m.scale != s {
                return Err(BoundsError::ScaleMismatch {
                    path: p(),
                    file: m.scale,
                    model: s,
                });
            }
        }
    }
    let mut tensors = candle_core::safetensors::load_buffer(&data, &Device::Cpu)
        .map_err(|e| fmt_err(e.to_string()))?;
    let mut bounds = Vec::with_capacity(NUM_SITES);
    for site in SiteId::all() {
        let (kl, ku) = bound_keys(site);
        let mut get = |k: &str| -> Result<f32, BoundsError> {
            let t = tensors.remove(k).ok_or_else(|| BoundsError::MissingKey {
                path: p(),
                key: k.to_string(),
            })?;
            let bad = |what: String| BoundsError::BadBound {
                path: p(),
                key: k.to_string(),
                what,
            };
            if t.dims() != [1] || t.dtype() != DType::F32 {
                return Err(bad(format!(
                    "expected a [1] f32 tensor, got {:?} {:?}",
                    t.dims(),
                    t.dtype()
                )));
            }
            let v = t.to_vec1::<f32>().map_err(|e| bad(e.to_string()))?[0];
            if !v.is_finite() {
                return Err(bad(format!("non-finite value {v}")));
            }
            Ok(v)
        };
        let l = get(&kl)?;
        let u = get(&ku)?;
        if l >= u {
            return Err(BoundsError::BadBound {
                path: p(),
                key: kl,
                what: format!("lower bound {l} is not below the upper bound {u}"),
            });
        }
        bounds.push((l, u));
    }
    let mut extra = HashMap::new();
    let mut rest: Vec<(String, Tensor)> = tensors.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, t) in rest {
        if k == CALIBRATION_BATCH {
            extra.insert(k, t);
        } else if let Some(prefix) = k.strip_suffix(".n_bit") {
            let known = SiteId::all().any(|s| s.checkpoint_prefix() == prefix);
            if !known {
                return Err(BoundsError::ExtraKey { path: p(), key: k });
            }
            let v = t
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| fmt_err(e.to_string()))?;
            if v.len() != 1 || v[0] != f32::from(bits) {
                return Err(BoundsError::BadBound {
                    path: p(),
                    key: k,
                    what: format!("n_bit is {v:?}, expected {bits}"),
                });
            }
        } else {
            return Err(BoundsError::ExtraKey { path: p(), key: k });
        }
    }
    Ok(LoadedBounds {
        bounds,
        bits,
        meta,
        extra,
    })
}
