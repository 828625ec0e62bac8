//! Where the data lives: `$TDQUANT_DATA`, defaulting to `../shared/data`.

use std::path::PathBuf;

/// Environment variable naming the data root.
pub const DATA_ENV: &str = "TDQUANT_DATA";
/// Data root used when [`DATA_ENV`] is unset (relative to the working directory).
pub const DEFAULT_DATA_ROOT: &str = "../shared/data";

/// The data root: an explicit override, else `$TDQUANT_DATA`, else [`DEFAULT_DATA_ROOT`].
pub fn data_root(override_path: Option<&std::path::Path>) -> PathBuf {
    if let Some(p) = override_path {
        return p.to_path_buf();
    }
    match std::env::var_os(DATA_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_DATA_ROOT),
    }
}

/// For tests: the data root if it exists, else `None` after printing why the caller skips.
pub fn data_root_for_test(what: &str) -> Option<PathBuf> {
    let root = data_root(None);
    if root.is_dir() {
        Some(root)
    } else if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        // CI always has the shared data beside the checkout: a missing root
        // there is a broken setup, not a reason to skip.
        panic!("{what}: data root {} not found under CI", root.display());
    } else {
        eprintln!(
            "SKIPPED {what}: data root {} not found (set {DATA_ENV} to the shared data folder)",
            root.display()
        );
        None
    }
}
