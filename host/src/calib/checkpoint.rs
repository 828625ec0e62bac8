//! DQC checkpoints: [`DqcState::save`] / [`DqcState::load`].
//!
//! # Format
//!
//! A safetensors file with three f32 tensors, `bounds` `[384, 2]`, `adam_m` and `adam_v`
//! `[768]`, and two `__metadata__` keys: `"tdquant"`, the compact JSON of the iteration, Adam
//! step, RNG state, configuration fingerprint and loss log, and `"sha256"`, the SHA-256 of the
//! payload: the JSON string exactly as stored, then the three tensors' bytes, each part preceded
//! by its length as a little-endian u64.
//!
//! # Loading
//!
//! Nothing in a checkpoint is trusted before its checksum matches: a resumed run would
//! otherwise publish bounds computed from a flipped byte. Then the format tag, the fingerprint
//! (the run's configuration and weights), the iteration (within `0..=iters` of the run, and
//! equal to the length of the loss log) and every tensor (dtype, shape, finite values) are
//! checked, each refusal naming the expected and the found value. The file is read with a size
//! cap ([`MAX_CHECKPOINT_BYTES`]) and special files are refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::data::SplitMix64;
use super::dqc::{DqcConfig, DqcState, LossRecord};
use super::schedule::FlatAdam;
use crate::model::hook::NUM_SITES;
use crate::output::write_atomic;

/// Format tag of DQC checkpoints.
pub const CHECKPOINT_FORMAT: &str = "tdquant-dqc-checkpoint-v2";
/// Largest checkpoint read (one is about 100 bytes per logged iteration plus 9 KiB).
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 20;

/// The `__metadata__` key of the JSON metadata.
pub const META_KEY: &str = "tdquant";
/// The `__metadata__` key of the payload checksum.
pub const SHA_KEY: &str = "sha256";

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    format: String,
    iteration: usize,
    adam_step: u64,
    rng_state: u64,
    fingerprint: String,
    log: Vec<LossRecord>,
}

/// Why a checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed (the cause is part of the message, not a `source()`).
    #[error("checkpoint {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: String,
    },
    /// Not a readable checkpoint (not safetensors, metadata missing or not JSON).
    #[error("{path}: not a DQC checkpoint: {what}")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The payload does not match its checksum.
    #[error(
        "{path}: checkpoint is corrupt: payload SHA-256 {found}, the checkpoint records {expected}"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The recorded checksum.
        expected: String,
        /// The checksum of the payload as read.
        found: String,
    },
    /// Another checkpoint format.
    #[error("{path}: checkpoint format {found:?}, expected {CHECKPOINT_FORMAT:?}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format tag found.
        found: String,
    },
    /// The checkpoint belongs to another configuration or weights file.
    #[error(
        "{path}: checkpoint belongs to another configuration: fingerprint {found}, expected \
         {expected} (this run's options and weights)"
    )]
    Fingerprint {
        /// The file.
        path: PathBuf,
        /// This run's fingerprint.
        expected: String,
        /// The checkpoint's.
        found: String,
    },
    /// An iteration outside the run.
    #[error("{path}: checkpoint at iteration {found}, but this run has {iters} iterations")]
    Iteration {
        /// The file.
        path: PathBuf,
        /// The iteration recorded.
        found: usize,
        /// The run's iteration count.
        iters: usize,
    },
    /// A tensor or the log is inconsistent.
    #[error("{path}: checkpoint {what}")]
    Payload {
        /// The file.
        path: PathBuf,
        /// What is wrong (expected and found).
        what: String,
    },
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// SHA-256 of the checkpoint payload (module docs), lower-case hex: `meta_json` is the
/// `"tdquant"` metadata string, then the bytes of `bounds`, `adam_m` and `adam_v`. Public for
/// tools that rewrite checkpoints (the structure-aware fuzzer).
pub fn payload_sha256(meta_json: &str, bounds: &[u8], m: &[u8], v: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [meta_json.as_bytes(), bounds, m, v] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl DqcState {
    /// Write the checkpoint atomically (`fingerprint` identifies the run
    /// configuration; [`DqcState::load`] refuses another one).
    pub fn save(&self, path: &Path, fingerprint: &str) -> anyhow::Result<()> {
        let b: Vec<f32> = self.bounds.iter().flat_map(|&(l, u)| [l, u]).collect();
        let (bb, mb, vb) = (le_bytes(&b), le_bytes(&self.adam.m), le_bytes(&self.adam.v));
        let n = b.len();
        fn view(
            shape: Vec<usize>,
            data: &[u8],
        ) -> anyhow::Result<safetensors::tensor::TensorView<'_>> {
            Ok(safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape,
                data,
            )?)
        }
        let views = vec![
            ("adam_m", view(vec![self.adam.m.len()], &mb)?),
            ("adam_v", view(vec![self.adam.v.len()], &vb)?),
            ("bounds", view(vec![n / 2, 2], &bb)?),
        ];
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            iteration: self.iteration,
            adam_step: self.adam.t,
            rng_state: self.rng.state,
            fingerprint: fingerprint.into(),
            log: self.log.clone(),
        };
        let js = serde_json::to_string(&meta)?;
        let sha = payload_sha256(&js, &bb, &mb, &vb);
        let mut md = std::collections::HashMap::new();
        md.insert(META_KEY.to_string(), js);
        md.insert(SHA_KEY.to_string(), sha);
        let bytes = safetensors::tensor::serialize(views, Some(md))?;
        write_atomic(path, &bytes)
    }

    /// Read a checkpoint written by [`DqcState::save`] for the same configuration
    /// (`fingerprint`) and a run of `cfg.iters` iterations; see the module docs for what is
    /// checked.
    pub fn load(path: &Path, cfg: &DqcConfig, fingerprint: &str) -> Result<Self, CheckpointError> {
        let p = || path.to_path_buf();
        let data = crate::input_file::read_regular(path, MAX_CHECKPOINT_BYTES).map_err(|e| {
            CheckpointError::Io {
                path: p(),
                cause: e.to_string(),
            }
        })?;
        let not = |what: String| CheckpointError::NotACheckpoint { path: p(), what };
        let st = safetensors::SafeTensors::deserialize(&data).map_err(|e| not(format!("{e}")))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&data).map_err(|e| not(format!("{e}")))?;
        let md = header.metadata().as_ref();
        let js = md
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| not(format!("no {META_KEY:?} metadata")))?;
        let recorded = md.and_then(|m| m.get(SHA_KEY)).ok_or_else(|| {
            not(format!(
                "no {SHA_KEY:?} checksum (written by an older tdquant?)"
            ))
        })?;
        let payload = |name: &str, shape: &[usize]| -> Result<&[u8], CheckpointError> {
            let t = st.tensor(name).map_err(|_| CheckpointError::Payload {
                path: p(),
                what: format!("lacks the tensor {name:?}"),
            })?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(CheckpointError::Payload {
                    path: p(),
                    what: format!(
                        "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                        t.dtype(),
                        t.shape()
                    ),
                });
            }
            Ok(t.data())
        };
        let n = 2 * NUM_SITES;
        let bb = payload("bounds", &[NUM_SITES, 2])?;
        let mb = payload("adam_m", &[n])?;
        let vb = payload("adam_v", &[n])?;
        let found = payload_sha256(js, bb, mb, vb);
        if !found.eq_ignore_ascii_case(recorded) {
            return Err(CheckpointError::Checksum {
                path: p(),
                expected: recorded.clone(),
                found,
            });
        }
        let meta: CheckpointMeta =
            serde_json::from_str(js).map_err(|e| not(format!("metadata JSON: {e}")))?;
        if meta.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError::Format {
                path: p(),
                found: meta.format,
            });
        }
        if meta.fingerprint != fingerprint {
            return Err(CheckpointError::Fingerprint {
                path: p(),
                expected: fingerprint.into(),
                found: meta.fingerprint,
            });
        }
        if meta.iteration > cfg.iters {
            return Err(CheckpointError::Iteration {
                path: p(),
                found: meta.iteration,
                iters: cfg.iters,
            });
        }
        if meta.log.len() != meta.iteration {
            return Err(CheckpointError::Payload {
                path: p(),
                what: format!(
                    "loss log has {} records, expected one per iteration ({})",
                    meta.log.len(),
                    meta.iteration
                ),
            });
        }
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let b = floats(bb);
        if let Some(i) = b.iter().position(|x| !x.is_finite()) {
            return Err(CheckpointError::Payload {
                path: p(),
                what: format!("bound {i} is {}, expected a finite value", b[i]),
            });
        }
        let mut adam = FlatAdam::new(n, cfg.adam());
        adam.m = floats(mb);
        adam.v = floats(vb);
        adam.t = meta.adam_step;
        Ok(Self {
            bounds: b.chunks_exact(2).map(|c| (c[0], c[1])).collect(),
            adam,
            rng: SplitMix64::new(meta.rng_state),
            iteration: meta.iteration,
            log: meta.log,
        })
    }
}
