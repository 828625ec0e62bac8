//! Loading SwinIR-light weights, with no Python.
//!
//! Two file formats are read (detected by content, not by extension):
//! - the official zip-format PyTorch checkpoint (`.pth`), whose top-level dict holds the state dict
//!   under `"params"` (BasicSR / SwinIR releases). The state dict is taken from `"params"` if that
//!   key exists, else from `"params_ema"`, else the top-level dict itself is taken as the state dict
//!   (what SwinIR's `main_test_swinir.py` does with `param_key_g = 'params'`; the official files
//!   and the local stand-in have only `"params"`). The pickle is decoded with candle's
//!   [`candle_core::pickle`] machinery; the zip container is read by a small stored-entry reader
//!   here (`StoredZip`) because the `zip` 9.8 crate behind `candle_core::pickle::read_all`
//!   rejects the central directory `torch.save` writes ("Invalid Central Directory header"), so
//!   candle's own `.pth` loader cannot open these files. Entries are CRC-32 checked;
//! - `.safetensors`.
//!
//! The state dict is then validated strictly against the SwinIR-light key set and shapes
//! ([`expected_shapes`]): every expected key must be present with its exact shape, and no other
//! key may be present, except the buffers `….attn.relative_position_index` and `….attn_mask`,
//! which are dropped (the model recomputes them for every input size). The upscaling factor is
//! inferred from `upsample.0.weight`, shaped `[3·s², 60, 3, 3]` with `s ∈ {2, 3, 4}`.
//!
//! Every failure is a typed [`WeightsError`]; garbage input never panics (the pickle decoder is
//! additionally run under `catch_unwind`, a panic there is reported as [`WeightsError::Corrupt`]).
//! [`SwinIrWeights::sha256`] is the SHA-256 of the file bytes, recorded by the calibration output.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

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
    #[error("cannot read weights file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
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
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
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
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_bytes(&bytes, &path.display().to_string())
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
        guarded(origin, || read_pth(bytes, origin)).map(|m| (WeightsFormat::Pth, m))
    } else if looks_like_safetensors(bytes) {
        guarded(origin, || {
            candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
                WeightsError::Corrupt {
                    origin: origin.to_string(),
                    reason: e.to_string(),
                }
            })
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

/// Runs `f`, turning a panic inside the (third-party) decoders into [`WeightsError::Corrupt`].
fn guarded<T>(
    origin: &str,
    f: impl FnOnce() -> Result<T, WeightsError>,
) -> Result<T, WeightsError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "decoder panicked".into());
            Err(WeightsError::Corrupt {
                origin: origin.to_string(),
                reason: format!("decoder panicked: {msg}"),
            })
        }
    }
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
    let dir_name = PathBuf::from(pkl.strip_suffix(".pkl").expect("ends with .pkl"));
    let pkl_bytes = zip.entry(&pkl).map_err(corrupt)?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut Cursor::new(pkl_bytes))
        .map_err(|e| corrupt(format!("pickle: {e}")))?;
    let obj = stack
        .finalize()
        .map_err(|e| corrupt(format!("pickle: {e}")))?;
    let Object::Dict(top) = obj else {
        return Err(WeightsError::NoStateDict {
            origin: origin.to_string(),
        });
    };
    let state = select_state_dict(top).ok_or_else(|| WeightsError::NoStateDict {
        origin: origin.to_string(),
    })?;

    let mut out = HashMap::with_capacity(state.len());
    for (name, value) in state {
        let Object::Unicode(key) = name.clone() else {
            return Err(corrupt("a state-dict key is not a string".into()));
        };
        if key == "_metadata" {
            continue;
        }
        let info = match value.into_tensor_info(name, &dir_name) {
            Ok(Some(info)) => info,
            Ok(None) => {
                if is_ignored_buffer(&key) {
                    continue;
                }
                // Not a tensor: a key SwinIR-light does not have.
                return Err(WeightsError::UnexpectedKey { key });
            }
            Err(e) => {
                if is_ignored_buffer(&key) {
                    continue;
                }
                return Err(WeightsError::DtypeUnsupported {
                    key,
                    dtype: e.to_string(),
                });
            }
        };
        if is_ignored_buffer(&key) {
            continue;
        }
        let layout = &info.layout;
        let dims = layout.dims().to_vec();
        let numel: usize = dims.iter().product();
        let elem = info.dtype.size_in_bytes();
        let fortran = layout.is_fortran_contiguous();
        if !layout.is_contiguous() && !fortran {
            return Err(corrupt(format!("tensor `{key}` is not contiguous")));
        }
        // The storage entry (a `…/data/N` file of the archive).
        let storage = zip.entry(&info.path).map_err(corrupt)?;
        let start = layout.start_offset();
        let end = numel
            .checked_mul(elem)
            .and_then(|n| n.checked_add(start))
            .ok_or_else(|| corrupt(format!("tensor `{key}`: size overflow")))?;
        if end > storage.len() {
            return Err(corrupt(format!(
                "tensor `{key}` needs bytes {start}..{end} of storage {} which holds {}",
                info.path,
                storage.len()
            )));
        }
        let t = if fortran && dims.len() > 1 {
            let rev: Vec<usize> = dims.iter().rev().copied().collect();
            let t = Tensor::from_raw_buffer(&storage[start..end], info.dtype, &rev, &Device::Cpu)?;
            let perm: Vec<usize> = (0..dims.len()).rev().collect();
            t.permute(perm)?.contiguous()?
        } else {
            Tensor::from_raw_buffer(&storage[start..end], info.dtype, &dims, &Device::Cpu)?
        };
        out.insert(key, t);
    }
    Ok(out)
}

/// `"params"`, else `"params_ema"`, else the top-level dict if it holds anything but dicts.
fn select_state_dict(top: Vec<(Object, Object)>) -> Option<Vec<(Object, Object)>> {
    let find = |top: &Vec<(Object, Object)>, name: &str| {
        top.iter().position(|(k, v)| {
            matches!(k, Object::Unicode(s) if s == name) && matches!(v, Object::Dict(_))
        })
    };
    let idx = find(&top, "params").or_else(|| find(&top, "params_ema"));
    match idx {
        Some(i) => match top.into_iter().nth(i) {
            Some((_, Object::Dict(d))) => Some(d),
            _ => None,
        },
        None => {
            let has_tensor = top
                .iter()
                .any(|(_, v)| matches!(v, Object::Reduce { .. } | Object::Build { .. }));
            has_tensor.then_some(top)
        }
    }
}

/// A minimal reader for the zip archives `torch.save` writes: entries stored (not compressed),
/// zip64 records honoured, CRC-32 checked. (The `zip` crate 9.8 that candle uses rejects the
/// central directory PyTorch writes, so candle's own `.pth` reader cannot open these files.)
struct StoredZip<'a> {
    bytes: &'a [u8],
    /// name → (offset of the local header, stored size, crc32).
    entries: Vec<(String, u64, u64, u32)>,
}

fn le16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("read past the end at {at}"))
}

fn le32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| format!("read past the end at {at}"))
}

fn le64(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or_else(|| format!("read past the end at {at}"))
}

impl<'a> StoredZip<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        const EOCD: &[u8] = b"PK\x05\x06";
        // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
        let lo = bytes.len().saturating_sub(22 + 0xFFFF);
        let eocd = (lo..bytes.len().saturating_sub(21))
            .rev()
            .find(|&i| &bytes[i..i + 4] == EOCD)
            .ok_or("no end-of-central-directory record (truncated file?)")?;
        let mut count = le16(bytes, eocd + 10)? as u64;
        let mut cd_size = le32(bytes, eocd + 12)? as u64;
        let mut cd_off = le32(bytes, eocd + 16)? as u64;
        if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_off == 0xFFFF_FFFF {
            let loc = eocd.checked_sub(20).ok_or("no zip64 locator")?;
            if le32(bytes, loc)? != 0x0706_4b50 {
                return Err("bad zip64 locator".into());
            }
            let e64 = le64(bytes, loc + 8)? as usize;
            if le32(bytes, e64)? != 0x0606_4b50 {
                return Err("bad zip64 end-of-central-directory record".into());
            }
            count = le64(bytes, e64 + 32)?;
            cd_size = le64(bytes, e64 + 40)?;
            cd_off = le64(bytes, e64 + 48)?;
        }
        let end = cd_off
            .checked_add(cd_size)
            .filter(|&e| e <= bytes.len() as u64)
            .ok_or("central directory lies outside the file")?;
        let mut entries = Vec::new();
        let mut at = cd_off as usize;
        for _ in 0..count {
            if at + 46 > end as usize || le32(bytes, at)? != 0x0201_4b50 {
                return Err(format!("bad central directory entry at {at}"));
            }
            let method = le16(bytes, at + 10)?;
            let crc = le32(bytes, at + 16)?;
            let mut csize = le32(bytes, at + 20)? as u64;
            let mut usz = le32(bytes, at + 24)? as u64;
            let nlen = le16(bytes, at + 28)? as usize;
            let elen = le16(bytes, at + 30)? as usize;
            let clen = le16(bytes, at + 32)? as usize;
            let mut lho = le32(bytes, at + 42)? as u64;
            let name = bytes
                .get(at + 46..at + 46 + nlen)
                .ok_or("entry name past the end")?;
            let name = String::from_utf8_lossy(name).into_owned();
            // zip64 extra field: the 0xFFFFFFFF fields, in the order usize, csize, offset.
            let extra = bytes
                .get(at + 46 + nlen..at + 46 + nlen + elen)
                .ok_or("extra field past the end")?;
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = le16(extra, e)?;
                let len = le16(extra, e + 2)? as usize;
                if id == 1 {
                    let mut p = e + 4;
                    if usz == 0xFFFF_FFFF {
                        usz = le64(extra, p)?;
                        p += 8;
                    }
                    if csize == 0xFFFF_FFFF {
                        csize = le64(extra, p)?;
                        p += 8;
                    }
                    if lho == 0xFFFF_FFFF {
                        lho = le64(extra, p)?;
                    }
                }
                e += 4 + len;
            }
            if method != 0 {
                return Err(format!(
                    "entry {name} is compressed (method {method}); PyTorch stores entries"
                ));
            }
            if csize != usz {
                return Err(format!("entry {name}: stored sizes disagree"));
            }
            entries.push((name, lho, csize, crc));
            at += 46 + nlen + elen + clen;
        }
        Ok(StoredZip { bytes, entries })
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.0.as_str())
    }

    /// The bytes of entry `name`, CRC-checked.
    fn entry(&self, name: &str) -> Result<&'a [u8], String> {
        let (_, lho, size, crc) = self
            .entries
            .iter()
            .find(|e| e.0 == name)
            .ok_or_else(|| format!("zip entry {name} not found"))?;
        let lho = *lho as usize;
        if le32(self.bytes, lho)? != 0x0403_4b50 {
            return Err(format!("zip entry {name}: bad local header"));
        }
        let nlen = le16(self.bytes, lho + 26)? as usize;
        let elen = le16(self.bytes, lho + 28)? as usize;
        let start = lho + 30 + nlen + elen;
        let data = usize::try_from(*size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| format!("zip entry {name} extends past the end of the file"))?;
        if crc32(data) != *crc {
            return Err(format!("zip entry {name}: CRC-32 mismatch"));
        }
        Ok(data)
    }
}

/// CRC-32 (IEEE, as in zip).
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, v) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *v = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}
