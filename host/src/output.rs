//! Writing results: whole files or nothing, and output paths checked before
//! any long computation.
//!
//! A write goes to a hidden temporary file beside the target,
//! `.<name>.tmp-<pid>-<n>`, which is synced and renamed onto the target, so
//! no reader ever sees half a file. A process killed mid-write leaves its
//! temporary behind; the next write to the same target removes every such
//! leftover whose process is gone.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The folder and file name of `path` (`.` for a bare name).
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: the output path has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// A fresh temporary path beside `path` for this process.
pub fn temp_path_for(path: &Path) -> Result<PathBuf> {
    let (dir, name) = split(path)?;
    remove_stale_temps(&dir, &name);
    Ok(dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

/// Removes `.<name>.tmp-<pid>…` files in `dir` whose process no longer runs
/// (best effort: a file that cannot be removed is left).
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !process_alive(p)) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Whether process `pid` still runs. Where this cannot be known, it is taken
/// as running (the temporary is kept).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path_for(path)?;
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// Checks, before any work, that `output` can be written as a file of one
/// of `extensions` (lower case, without the dot): its folder exists, it is
/// not a folder itself, its extension is allowed, and it is none of
/// `inputs` (writing over an input would destroy it).
pub fn check_output_path(output: &Path, extensions: &[&str], inputs: &[&Path]) -> Result<()> {
    let (dir, _) = split(output)?;
    if !dir.is_dir() {
        bail!(
            "output {}: folder {} does not exist",
            output.display(),
            dir.display()
        );
    }
    if output.is_dir() {
        bail!("output {} is a folder, not a file", output.display());
    }
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !ext.as_deref().is_some_and(|e| extensions.contains(&e)) {
        bail!(
            "output {}: unsupported extension {}, expected {}",
            output.display(),
            ext.map_or("(none)".to_string(), |e| format!(".{e}")),
            extensions
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    if let Ok(out) = fs::canonicalize(output) {
        for input in inputs {
            if fs::canonicalize(input).is_ok_and(|i| i == out) {
                bail!(
                    "output {} is the input {}: refusing to overwrite it",
                    output.display(),
                    input.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tdq-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_dead_writers_temp_is_removed_by_the_next_write_and_a_live_ones_kept() {
        let d = scratch("stale");
        // PIDs above the kernel's pid_max (4,194,304) never run.
        let dead = d.join(".m.tdq.tmp-4194999-0");
        let live = d.join(format!(".m.tdq.tmp-{}-77", std::process::id()));
        let other = d.join(".other.tdq.tmp-4194999-0");
        for p in [&dead, &live, &other] {
            fs::write(p, b"partial").unwrap();
        }
        write_atomic(&d.join("m.tdq"), b"whole").unwrap();
        assert_eq!(fs::read(d.join("m.tdq")).unwrap(), b"whole");
        assert!(!dead.exists(), "stale temporary left behind");
        assert!(live.exists(), "a running writer's temporary was removed");
        assert!(other.exists(), "another target's temporary was removed");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn output_paths_are_checked_before_work() {
        let d = scratch("check");
        let input = d.join("in.png");
        fs::write(&input, b"x").unwrap();
        let err = |o: &Path, exts: &[&str]| {
            check_output_path(o, exts, &[&input])
                .unwrap_err()
                .to_string()
        };
        assert!(err(&d.join("missing/o.png"), &["png"]).contains("does not exist"));
        assert!(err(&d, &["png"]).contains("is a folder"));
        assert!(err(&d.join("o.jpg"), &["png"]).contains("unsupported extension .jpg"));
        assert!(err(&d.join("o"), &["png"]).contains("(none)"));
        assert!(err(&input, &["png"]).contains("is the input"));
        check_output_path(&d.join("o.PNG"), &["png"], &[&input]).unwrap();
        let _ = fs::remove_dir_all(&d);
    }
}
