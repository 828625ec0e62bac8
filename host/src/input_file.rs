//! Reading an input file whole, with a size cap, refusing anything but a regular file.
//!
//! `std::fs::read` on `/dev/zero` grows without bound, and on a FIFO blocks until a writer
//! comes. Here the type and size are checked before reading, the file is opened non-blocking
//! (a FIFO swapped in after the check cannot block), checked again on the open handle, and
//! read through a `take` of the cap plus one byte, so a file that grows while read is refused
//! too. Errors are `std::io::Error`s whose message names the problem (`InvalidInput` for a
//! special file, `FileTooLarge` for one over the cap).

use std::fs::Metadata;
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// What kind of non-regular file `meta` is, for messages.
fn describe(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn check(meta: &Metadata, max_bytes: u64) -> Result<(), Error> {
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{}, not a regular file", describe(meta)),
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_large(meta.len(), max_bytes));
    }
    Ok(())
}

fn too_large(len: u64, max_bytes: u64) -> Error {
    Error::new(
        ErrorKind::FileTooLarge,
        format!("{len} bytes, more than the {max_bytes} accepted"),
    )
}

/// The bytes of the regular file at `path`, refused if it is larger than `max_bytes`.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, Error> {
    check(&std::fs::metadata(path)?, max_bytes)?;
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?
    };
    let meta = f.metadata()?;
    check(&meta, max_bytes)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

/// Context naming the file an error came from, added only when the error does
/// not name it already (the weights and bounds loaders put the path in most of
/// their messages; "loading model m.pth: m.pth: …" would say it twice).
pub trait PathContext<T> {
    /// On error: `"{what} {path}: {error}"`, or the error alone when its
    /// message already contains `path`.
    fn path_context(self, what: &str, path: &Path) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> PathContext<T> for Result<T, E> {
    fn path_context(self, what: &str, path: &Path) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            let shown = path.display().to_string();
            if format!("{e:#}").contains(&shown) {
                e
            } else {
                e.context(format!("{what} {shown}"))
            }
        })
    }
}
