//! Where the data lives.
//!
//! The data root holds `models/`, `benchmark/`, `calib/` and (for the
//! exactness tests) `golden/`. It is, in this order:
//!
//! 1. the `--data` flag;
//! 2. `$TDQUANT_DATA`;
//! 3. the shared data folder beside the checkout, `../shared/data` (looked
//!    up from the working directory, then from the workspace root), when it
//!    exists;
//! 4. the bundle embedded in the repository, `assets/` (the stand-in ×4
//!    weights, Set5, a small calibration pool and the golden DOBI bounds; see
//!    `assets/SOURCES.md`), so a fresh clone runs with no data beside it.

use std::fmt;
use std::path::{Path, PathBuf};

mod skip_log;
pub use skip_log::{record_skip, SKIP_LOG_ENV};

/// Environment variable naming the data root.
pub const DATA_ENV: &str = "TDQUANT_DATA";
/// The shared data folder, relative to the checkout's working directory.
pub const SHARED_DATA: &str = "../shared/data";

/// Why this folder is the data root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootSource {
    /// `--data`.
    Flag,
    /// `$TDQUANT_DATA`.
    Env,
    /// `../shared/data` beside the checkout.
    Shared,
    /// The repository's `assets/` bundle.
    Embedded,
}

impl fmt::Display for RootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootSource::Flag => "--data",
            RootSource::Env => "$TDQUANT_DATA",
            RootSource::Shared => "the shared data folder beside the checkout",
            RootSource::Embedded => "the bundle embedded in the repository",
        })
    }
}

/// A resolved data root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRoot {
    /// The folder.
    pub path: PathBuf,
    /// How it was chosen.
    pub source: RootSource,
}

impl DataRoot {
    /// True when the root holds the PyTorch goldens (`golden/x4_local_fp.safetensors`):
    /// only the shared data folder does.
    pub fn has_goldens(&self) -> bool {
        self.path.join("golden/x4_local_fp.safetensors").is_file()
    }
}

/// The workspace root this binary was built from.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The embedded bundle, `<workspace>/assets`.
pub fn embedded_root() -> PathBuf {
    workspace_root().join("assets")
}

/// Resolves the data root (see the module docs); `flag` is `--data`.
pub fn resolve(flag: Option<&Path>) -> DataRoot {
    if let Some(p) = flag {
        return DataRoot {
            path: p.to_path_buf(),
            source: RootSource::Flag,
        };
    }
    if let Some(v) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        return DataRoot {
            path: PathBuf::from(v),
            source: RootSource::Env,
        };
    }
    for shared in [
        PathBuf::from(SHARED_DATA),
        workspace_root().join(SHARED_DATA),
    ] {
        if shared.is_dir() {
            return DataRoot {
                path: shared,
                source: RootSource::Shared,
            };
        }
    }
    DataRoot {
        path: embedded_root(),
        source: RootSource::Embedded,
    }
}

/// The data root's path (see [`resolve`]).
pub fn data_root(flag: Option<&Path>) -> PathBuf {
    resolve(flag).path
}

/// What a test needs from the data root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestData {
    /// The default model, Set5, the calibration pool and the golden DOBI
    /// bounds: the embedded bundle has them, so such a test always runs.
    Bundle,
    /// The PyTorch goldens and all benchmark sets: only the shared data
    /// folder has them.
    Shared,
}

/// For tests: the data root holding `need`, or `None` after recording why
/// the caller skips. Under `CI` (which always has the shared data) a missing
/// root is a failure, not a skip.
pub fn data_root_for(what: &str, need: TestData) -> Option<PathBuf> {
    let root = resolve(None);
    let ok = match need {
        TestData::Bundle => root.path.join("models").is_dir(),
        TestData::Shared => root.has_goldens(),
    };
    if ok {
        return Some(root.path);
    }
    let reason = match need {
        TestData::Bundle => format!("data root {} has no models/", root.path.display()),
        TestData::Shared => format!(
            "needs the shared data folder (../shared/data or ${DATA_ENV}: the PyTorch goldens, \
             the official-format .pth, Set14 and B100); data root is {} ({})",
            root.path.display(),
            root.source
        ),
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{what}: {reason} — CI always has the shared data");
    }
    record_skip(what, &reason);
    None
}

/// For tests that need the shared data (goldens, Set14, B100): see [`data_root_for`].
pub fn data_root_for_test(what: &str) -> Option<PathBuf> {
    data_root_for(what, TestData::Shared)
}

/// File stem of the default model, the stand-in ×4 SwinIR-light.
pub const DEFAULT_MODEL_STEM: &str = "swinir_light_x4_local";

/// The default model under the data root: `models/swinir_light_x4_local.pth`
/// (the shared data folder), else the params-only `.safetensors` of the same
/// weights (the embedded bundle; same tensors bit for bit, so the same
/// weights hash and the same outputs).
pub fn default_model(data_root: &Path) -> PathBuf {
    let models = data_root.join("models");
    let pth = models.join(format!("{DEFAULT_MODEL_STEM}.pth"));
    let st = models.join(format!("{DEFAULT_MODEL_STEM}.safetensors"));
    if !pth.is_file() && st.is_file() {
        st
    } else {
        pth
    }
}
