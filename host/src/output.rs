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

/// An RGB8 PNG written row band by row band (bounded memory for any image
/// size), atomically: nothing appears at the target unless
/// [`PngRows::finish`] succeeds.
pub struct PngRows {
    path: PathBuf,
    tmp: PathBuf,
    file: fs::File,
    writer: Option<png::StreamWriter<'static, std::io::BufWriter<fs::File>>>,
}

/// The IEND chunk every complete PNG ends with.
const PNG_IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

impl PngRows {
    /// Starts a `width × height` RGB8 PNG for `path`.
    pub fn create(path: &Path, width: u32, height: u32) -> Result<Self> {
        let tmp = temp_path_for(path)?;
        let started = (|| -> Result<_> {
            let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let mut enc =
                png::Encoder::new(std::io::BufWriter::new(file.try_clone()?), width, height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let w = enc.write_header()?.into_stream_writer()?;
            Ok((file, w))
        })();
        match started {
            Ok((file, w)) => Ok(Self {
                path: path.to_path_buf(),
                tmp,
                file,
                writer: Some(w),
            }),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e.context(format!("writing {}", path.display())))
            }
        }
    }

    /// Appends whole rows (`k · width · 3` bytes).
    pub fn write_rows(&mut self, rows: &[u8]) -> Result<()> {
        let w = self
            .writer
            .as_mut()
            .context("PNG writer already finished")?;
        w.write_all(rows)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Completes the PNG and moves it onto the target.
    pub fn finish(mut self) -> Result<()> {
        let w = self.writer.take().context("PNG writer already finished")?;
        let done = (|| -> Result<()> {
            // Dropping the stream writer writes IEND and flushes the buffer,
            // neither reporting errors: check the file's tail instead.
            w.finish()?;
            self.file.sync_all()?;
            let len = self.file.metadata()?.len();
            let mut tail = [0u8; 12];
            {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = fs::File::open(&self.tmp)?;
                f.seek(SeekFrom::Start(len.saturating_sub(12)))?;
                f.read_exact(&mut tail)?;
            }
            if tail != PNG_IEND {
                bail!("incomplete PNG (no IEND chunk)");
            }
            fs::rename(&self.tmp, &self.path)?;
            Ok(())
        })();
        if done.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        done.with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for PngRows {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Abandoned (an error upstream): leave nothing behind.
            let _ = fs::remove_file(&self.tmp);
        }
    }
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
    fn png_rows_stream_a_whole_png_or_leave_nothing() {
        let d = scratch("png");
        let target = d.join("o.png");
        let mut w = PngRows::create(&target, 3, 4).unwrap();
        let px: Vec<u8> = (0..3 * 4 * 3).map(|i| i as u8).collect();
        w.write_rows(&px[..18]).unwrap();
        assert!(!target.exists(), "visible before finish");
        w.write_rows(&px[18..]).unwrap();
        w.finish().unwrap();
        let back = image::open(&target).unwrap().to_rgb8();
        assert_eq!(back.as_raw(), &px);
        // Abandoned half-way: neither the target nor a temporary remains.
        let t2 = d.join("half.png");
        let mut w = PngRows::create(&t2, 3, 4).unwrap();
        w.write_rows(&px[..9]).unwrap();
        drop(w);
        assert!(!t2.exists());
        let left: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
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
