//! Loading SwinIR-light weights, with no Python.
//!
//! Two file formats are read (detected by content, not by extension):
//! - the official zip-format PyTorch checkpoint (`.pth`), whose top-level dict holds the state dict
//!   under `"params"` (BasicSR / SwinIR releases). The state dict is taken from `"params"` if that
//!   key exists, else from `"params_ema"`, else the top-level dict itself is taken as the state dict
//!   (what SwinIR's `main_test_swinir.py` does with `param_key_g = 'params'`; the official files
//!   and the local stand-in have only `"params"`). The zip container is read by the `zip`
//!   submodule, the pickle decoded by [`pickle`] and turned into tensors by [`torch`]: all three
//!   bounded by construction (no recursion, memory linear in the bytes present, every length
//!   and offset checked), so no file can crash the process or make it allocate without bound;
//! - `.safetensors`.
//!
//! Files are read by [`crate::input_file::read_regular`]: devices, FIFOs and files over
//! [`MAX_WEIGHTS_FILE_BYTES`] are refused before any byte is read.
//!
//! The state dict is then validated strictly against the SwinIR-light key set and shapes
//! ([`expected_shapes`]): every expected key must be present with its exact shape, and no other
//! key may be present, except the buffers `….attn.relative_position_index` and `….attn_mask`,
//! which are dropped (the model recomputes them for every input size). The upscaling factor is
//! inferred from `upsample.0.weight`, shaped `[3·s², 60, 3, 3]` with `s ∈ {2, 3, 4}`.
//!
//! Every failure is a typed [`WeightsError`]; garbage input never panics.
//! [`SwinIrWeights::sha256`] is the SHA-256 of the file bytes, recorded by the calibration output.

pub mod pickle;
pub mod torch;
mod zip;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use self::torch::RecordError;
use self::zip::StoredZip;

/// Largest weights file read (SwinIR-light is 3.7 MB; the largest SwinIR about 140 MB).
pub const MAX_WEIGHTS_FILE_BYTES: u64 = 1 << 30;

/// Embedding dimension of SwinIR-light.
pub const EMBED_DIM: usize = 60;
/// Number of RSTBs (residual Swin transformer blocks).
pub const NUM_LAYERS: usize = 4;
/// Swin blocks per RSTB.
pub const DEPTH: usize = 6;
/// Attention heads per block.
pub const NUM_HEADS: usize = 6;
/// Window side.
pub const WINDOW: usize = 8;
/// MLP hidden width (`mlp_ratio` 2).
pub const MLP_HIDDEN: usize = 120;
/// Rows of a relative-position bias table, `(2·8 − 1)²`.
pub const RPB_ROWS: usize = (2 * WINDOW - 1) * (2 * WINDOW - 1);

/// Why weights could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read.
    // The cause is part of the message and deliberately not a `source()`, so that error chains
    // print it once.
    #[error("cannot read weights file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (`InvalidInput` for a special file, `FileTooLarge` past the cap).
        cause: std::io::Error,
    },
    /// The file is neither a zip PyTorch checkpoint nor a safetensors file.
    #[error(
        "{origin}: not a weights file (neither a zip-format PyTorch checkpoint nor safetensors; \
         legacy non-zip torch.save files are not supported)"
    )]
    NotAZipOrPickle {
        /// The file (or a description of the buffer).
        origin: String,
    },
    /// The file looks like a checkpoint but is truncated or corrupt.
    #[error("{origin}: corrupt or truncated weights file: {reason}")]
    Corrupt {
        /// The file (or a description of the buffer).
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// A PyTorch checkpoint whose top-level object holds no state dict.
    #[error("{origin}: no state dict found (no \"params\"/\"params_ema\" dict and no tensors at the top level)")]
    NoStateDict {
        /// The file (or a description of the buffer).
        origin: String,
    },
    /// An expected SwinIR-light key is absent.
    #[error("not a SwinIR-light state dict: missing key `{key}`{}",
        .unexpected.as_ref().map(|u| format!(" (unexpected key `{u}` present)")).unwrap_or_default())]
    MissingKey {
        /// The first missing key, in [`expected_shapes`] order.
        key: String,
        /// The first unexpected key (in sorted order), if any: often the renamed one.
        unexpected: Option<String>,
    },
    /// A key that SwinIR-light does not have.
    #[error("not a SwinIR-light state dict: unexpected key `{key}`")]
    UnexpectedKey {
        /// The first unexpected key, in sorted order.
        key: String,
    },
    /// A tensor with the wrong shape.
    #[error("shape mismatch for `{key}`: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// The key.
        key: String,
        /// The SwinIR-light shape.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// `upsample.0.weight` does not give a supported scale.
    #[error(
        "cannot infer the scale: `upsample.0.weight` has shape {found:?}, expected [3·s², 60, 3, 3] \
         with s in {{2, 3, 4}}"
    )]
    BadScale {
        /// The shape of `upsample.0.weight`.
        found: Vec<usize>,
    },
    /// A tensor whose dtype is not a float type (or a storage type candle cannot read).
    #[error("tensor `{key}` has unsupported dtype {dtype}")]
    DtypeUnsupported {
        /// The key.
        key: String,
        /// The dtype (or the reason it could not be read).
        dtype: String,
    },
    /// A tensor operation failed while building the model from valid weights.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Which format a weights file was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// Zip-format PyTorch checkpoint.
    Pth,
    /// safetensors.
    Safetensors,
    /// Built in memory (no file).
    InMemory,
}

/// A validated SwinIR-light state dict.
#[derive(Debug, Clone)]
pub struct SwinIrWeights {
    /// Upscaling factor, 2, 3 or 4.
    pub scale: usize,
    /// The learnable tensors, exactly the keys of [`expected_shapes`], all `f32` on the CPU.
    pub tensors: HashMap<String, Tensor>,
    /// Lower-case hex SHA-256 of the file bytes (`None` when built in memory).
    pub sha256: Option<String>,
    /// The file format.
    pub format: WeightsFormat,
}

impl SwinIrWeights {
    /// The tensor under `key` (a key of [`expected_shapes`]).
    pub fn get(&self, key: &str) -> Result<&Tensor, WeightsError> {
        self.tensors
            .get(key)
            .ok_or_else(|| WeightsError::MissingKey {
                key: key.to_string(),
                unexpected: None,
            })
    }

    /// Number of learnable parameters (929,628 for ×4).
    pub fn num_params(&self) -> usize {
        self.tensors.values().map(|t| t.elem_count()).sum()
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 of the file at `path`.
pub fn file_sha256(path: impl AsRef<Path>) -> Result<String, WeightsError> {
    Ok(sha256_hex(&read_file(path.as_ref())?))
}

/// The SwinIR-light learnable tensors for scale `scale`, in a fixed order (the order in which
/// missing keys are reported): `conv_first`, `patch_embed.norm`, then per RSTB its 6 blocks and its
/// conv, then `norm`, `conv_after_body`, `upsample.0`.
pub fn expected_shapes(scale: usize) -> Vec<(String, Vec<usize>)> {
    let c = EMBED_DIM;
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("conv_first.weight".into(), vec![c, 3, 3, 3]),
        ("conv_first.bias".into(), vec![c]),
        ("patch_embed.norm.weight".into(), vec![c]),
        ("patch_embed.norm.bias".into(), vec![c]),
    ];
    for l in 0..NUM_LAYERS {
        for b in 0..DEPTH {
            let p = format!("layers.{l}.residual_group.blocks.{b}.");
            let mut push = |k: &str, s: Vec<usize>| v.push((format!("{p}{k}"), s));
            push("norm1.weight", vec![c]);
            push("norm1.bias", vec![c]);
            push(
                "attn.relative_position_bias_table",
                vec![RPB_ROWS, NUM_HEADS],
            );
            push("attn.qkv.weight", vec![3 * c, c]);
            push("attn.qkv.bias", vec![3 * c]);
            push("attn.proj.weight", vec![c, c]);
            push("attn.proj.bias", vec![c]);
            push("norm2.weight", vec![c]);
            push("norm2.bias", vec![c]);
            push("mlp.fc1.weight", vec![MLP_HIDDEN, c]);
            push("mlp.fc1.bias", vec![MLP_HIDDEN]);
            push("mlp.fc2.weight", vec![c, MLP_HIDDEN]);
            push("mlp.fc2.bias", vec![c]);
        }
        v.push((format!("layers.{l}.conv.weight"), vec![c, c, 3, 3]));
        v.push((format!("layers.{l}.conv.bias"), vec![c]));
    }
    let up = 3 * scale * scale;
    v.extend([
        ("norm.weight".into(), vec![c]),
        ("norm.bias".into(), vec![c]),
        ("conv_after_body.weight".into(), vec![c, c, 3, 3]),
        ("conv_after_body.bias".into(), vec![c]),
        ("upsample.0.weight".into(), vec![up, c, 3, 3]),
        ("upsample.0.bias".into(), vec![up]),
    ]);
    v
}

/// True for the buffers that are dropped on load (recomputed by the model).
pub fn is_ignored_buffer(key: &str) -> bool {
    key.ends_with(".attn.relative_position_index") || key.ends_with(".attn_mask")
}

/// The scale from the shape of `upsample.0.weight` (`[3·s², 60, 3, 3]`, `s ∈ {2,3,4}`).
pub fn scale_from_upsample_shape(shape: &[usize]) -> Result<usize, WeightsError> {
    let bad = || WeightsError::BadScale {
        found: shape.to_vec(),
    };
    if shape.len() != 4 || shape[1] != EMBED_DIM || shape[2] != 3 || shape[3] != 3 {
        return Err(bad());
    }
    (2..=4).find(|s| 3 * s * s == shape[0]).ok_or_else(bad)
}

/// Validates a raw state dict (as read from a file): drops the ignored buffers, infers the
/// scale, checks the key set and every shape, converts float tensors to `f32`.
pub fn validate(
    raw: HashMap<String, Tensor>,
) -> Result<(usize, HashMap<String, Tensor>), WeightsError> {
    let tensors: BTreeMap<String, Tensor> = raw
        .into_iter()
        .filter(|(k, _)| !is_ignored_buffer(k))
        .collect();
    let up = tensors
        .get("upsample.0.weight")
        .ok_or_else(|| WeightsError::MissingKey {
            key: "upsample.0.weight".into(),
            unexpected: None,
        })?;
    let scale = scale_from_upsample_shape(up.dims())?;
    let expected = expected_shapes(scale);
    let expected_keys: std::collections::HashSet<&str> =
        expected.iter().map(|(k, _)| k.as_str()).collect();
    let first_unexpected = tensors
        .keys()
        .find(|k| !expected_keys.contains(k.as_str()))
        .cloned();
    for (key, _) in &expected {
        if !tensors.contains_key(key) {
            return Err(WeightsError::MissingKey {
                key: key.clone(),
                unexpected: first_unexpected,
            });
        }
    }
    if let Some(key) = first_unexpected {
        return Err(WeightsError::UnexpectedKey { key });
    }
    let mut out = HashMap::with_capacity(expected.len());
    let mut tensors = tensors;
    for (key, shape) in expected {
        let t = tensors.remove(&key).expect("checked above");
        if t.dims() != shape.as_slice() {
            return Err(WeightsError::ShapeMismatch {
                key,
                expected: shape,
                found: t.dims().to_vec(),
            });
        }
        let t = match t.dtype() {
            DType::F32 => t,
            DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(DType::F32)?,
            other => {
                return Err(WeightsError::DtypeUnsupported {
                    key,
                    dtype: format!("{other:?}"),
                })
            }
        };
        out.insert(key, t);
    }
    Ok((scale, out))
}

/// Builds validated weights from an in-memory state dict (e.g. tensors of a `VarMap`).
pub fn from_tensors(raw: HashMap<String, Tensor>) -> Result<SwinIrWeights, WeightsError> {
    let (scale, tensors) = validate(raw)?;
    Ok(SwinIrWeights {
        scale,
        tensors,
        sha256: None,
        format: WeightsFormat::InMemory,
    })
}

/// Loads and validates a SwinIR-light weights file (`.pth` zip checkpoint or `.safetensors`,
/// detected by content).
pub fn load(path: impl AsRef<Path>) -> Result<SwinIrWeights, WeightsError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    load_bytes(&bytes, &path.display().to_string())
}

/// The bytes of a weights file: a regular file of at most [`MAX_WEIGHTS_FILE_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>, WeightsError> {
    crate::input_file::read_regular(path, MAX_WEIGHTS_FILE_BYTES).map_err(|cause| {
        WeightsError::Io {
            path: path.to_path_buf(),
            cause,
        }
    })
}

/// Like [`load`], from the bytes of a file; `origin` names it in error messages.
pub fn load_bytes(bytes: &[u8], origin: &str) -> Result<SwinIrWeights, WeightsError> {
    let sha256 = Some(sha256_hex(bytes));
    let (format, raw) = read_raw(bytes, origin)?;
    let (scale, tensors) = validate(raw)?;
    Ok(SwinIrWeights {
        scale,
        tensors,
        sha256,
        format,
    })
}

/// Reads every tensor of a `.pth` or `.safetensors` file without validating it against
/// SwinIR-light (the quantizer-bound files, the golden files, …).
pub fn read_raw(
    bytes: &[u8],
    origin: &str,
) -> Result<(WeightsFormat, HashMap<String, Tensor>), WeightsError> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        read_pth(bytes, origin).map(|m| (WeightsFormat::Pth, m))
    } else if looks_like_safetensors(bytes) {
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| WeightsError::Corrupt {
                origin: origin.to_string(),
                reason: e.to_string(),
            })
            .map(|m| (WeightsFormat::Safetensors, m))
    } else {
        Err(WeightsError::NotAZipOrPickle {
            origin: origin.to_string(),
        })
    }
}

/// safetensors: 8-byte little-endian header length, then a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    if bytes.len() < 10 {
        return false;
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    n >= 2 && bytes[8] == b'{'
}

fn read_pth(bytes: &[u8], origin: &str) -> Result<HashMap<String, Tensor>, WeightsError> {
    let corrupt = |reason: String| WeightsError::Corrupt {
        origin: origin.to_string(),
        reason,
    };
    let zip = StoredZip::parse(bytes).map_err(|e| corrupt(format!("zip: {e}")))?;
    let pkl = zip
        .names()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| corrupt("no data.pkl in the zip archive".into()))?
        .to_string();
    let archive = &pkl[..pkl.len() - "data.pkl".len()];
    if let Ok(order) = zip.entry(&format!("{archive}byteorder")) {
        if order != b"little" {
            return Err(corrupt(format!(
                "byteorder {:?}: only little-endian checkpoints are supported",
                String::from_utf8_lossy(order)
            )));
        }
    }
    let pkl_bytes = zip.entry(&pkl).map_err(corrupt)?;
    let p = pickle::decode(pkl_bytes).map_err(|e| corrupt(format!("{pkl}: {e}")))?;
    let no_state = || WeightsError::NoStateDict {
        origin: origin.to_string(),
    };
    let top = p.dict(p.root()).ok_or_else(no_state)?;
    let state = match torch::select_state_dict(&p, top) {
        Some(d) => p.dict(d).expect("select_state_dict returns a dict"),
        None if torch::has_tensor_candidate(&p, top) => top,
        None => return Err(no_state()),
    };
    // A state dict stores each parameter once; a storage shared by several tensors is allowed
    // up to this total, which keeps the decoded size proportional to the file.
    let mut budget = bytes.len().saturating_mul(2);
    let mut out = HashMap::with_capacity(state.len().min(1 << 16));
    for &(k, v) in state {
        let Some(key) = p.str(k) else {
            return Err(corrupt(format!(
                "a state-dict key is a {}, not a string",
                pickle::kind(p.get(k))
            )));
        };
        if key.len() > torch::MAX_KEY_BYTES {
            return Err(corrupt(format!(
                "a state-dict key of {} bytes (at most {} are accepted)",
                key.len(),
                torch::MAX_KEY_BYTES
            )));
        }
        if key == "_metadata" || is_ignored_buffer(key) {
            continue;
        }
        let rec = match torch::tensor_record(&p, v) {
            Ok(Some(rec)) => rec,
            // Not a tensor: a key SwinIR-light does not have.
            Ok(None) => {
                return Err(WeightsError::UnexpectedKey {
                    key: key.to_string(),
                })
            }
            Err(RecordError::Dtype(dtype)) => {
                return Err(WeightsError::DtypeUnsupported {
                    key: key.to_string(),
                    dtype,
                })
            }
            Err(RecordError::Malformed(why)) => {
                return Err(corrupt(format!("tensor `{key}`: {why}")))
            }
        };
        // The storage entry (a `…/data/N` file of the archive).
        let storage = zip
            .entry(&format!("{archive}data/{}", rec.storage_key))
            .map_err(|e| corrupt(format!("tensor `{key}`: {e}")))?;
        let t = torch::materialize(&rec, storage, &mut budget)
            .map_err(|e| corrupt(format!("tensor `{key}`: {e}")))?;
        out.insert(key.to_string(), t);
    }
    Ok(out)
}
