//! A reader for the zip archives `torch.save` writes: entries stored (not compressed), zip64
//! records honoured, CRC-32 checked.
//!
//! Every offset and length read from the file is checked against the bytes present with
//! overflow-free arithmetic, so a lying header ends in an error, never a panic or an allocation
//! sized by the header. (The `zip` crate that candle uses rejects the central directory PyTorch
//! writes, so candle's own `.pth` reader cannot open these files.)

use std::cell::Cell;
use std::collections::HashMap;

/// One stored entry of the central directory.
struct Entry {
    /// Offset of the local header.
    local_header: u64,
    /// Stored (= uncompressed) size.
    size: u64,
    /// CRC-32 from the central directory.
    crc: u32,
    /// Set once the CRC has been checked, so that an entry read for many tensors is hashed once.
    verified: Cell<bool>,
}

/// The entries of a stored zip archive, borrowed from its bytes.
pub(crate) struct StoredZip<'a> {
    bytes: &'a [u8],
    /// Entry names in central-directory order.
    names: Vec<String>,
    entries: HashMap<String, Entry>,
}

/// Signature of the end-of-central-directory record.
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

/// `len` bytes of `b` at `at`, or an error naming what was being read.
fn slice<'b>(b: &'b [u8], at: u64, len: u64, what: &str) -> Result<&'b [u8], String> {
    let start = usize::try_from(at).ok();
    let end = at.checked_add(len).and_then(|e| usize::try_from(e).ok());
    match (start, end) {
        (Some(s), Some(e)) if e <= b.len() => Ok(&b[s..e]),
        _ => Err(format!(
            "{what} at byte {at} (+{len}) lies past the end of the {}-byte file",
            b.len()
        )),
    }
}

fn le16(b: &[u8], at: u64, what: &str) -> Result<u16, String> {
    let s = slice(b, at, 2, what)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: u64, what: &str) -> Result<u32, String> {
    let s = slice(b, at, 4, what)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: u64, what: &str) -> Result<u64, String> {
    let s = slice(b, at, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// `a + b` for offsets read from the file.
fn add(a: u64, b: u64) -> Result<u64, String> {
    a.checked_add(b)
        .ok_or_else(|| format!("offset {a} + {b} overflows"))
}

impl<'a> StoredZip<'a> {
    /// Reads the central directory of `bytes`.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
        if bytes.len() < 22 {
            return Err(format!(
                "{} bytes is too short for a zip archive (truncated file?)",
                bytes.len()
            ));
        }
        let lo = bytes.len().saturating_sub(22 + 0xFFFF);
        let eocd = (lo..=bytes.len() - 22)
            .rev()
            .find(|&i| bytes[i..i + 4] == EOCD_SIG.to_le_bytes())
            .ok_or("no end-of-central-directory record (truncated file?)")?
            as u64;
        let mut count = u64::from(le16(bytes, eocd + 10, "entry count")?);
        let mut cd_size = u64::from(le32(bytes, eocd + 12, "central directory size")?);
        let mut cd_off = u64::from(le32(bytes, eocd + 16, "central directory offset")?);
        if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_off == 0xFFFF_FFFF {
            let loc = eocd
                .checked_sub(20)
                .ok_or("zip64 locator missing before the end record")?;
            if le32(bytes, loc, "zip64 locator")? != ZIP64_LOCATOR_SIG {
                return Err("bad zip64 locator signature".into());
            }
            let e64 = le64(bytes, loc + 8, "zip64 locator")?;
            if le32(bytes, e64, "zip64 end record")? != ZIP64_EOCD_SIG {
                return Err(format!(
                    "bad zip64 end-of-central-directory record at {e64}"
                ));
            }
            count = le64(bytes, add(e64, 32)?, "zip64 entry count")?;
            cd_size = le64(bytes, add(e64, 40)?, "zip64 central directory size")?;
            cd_off = le64(bytes, add(e64, 48)?, "zip64 central directory offset")?;
        }
        let cd = slice(bytes, cd_off, cd_size, "central directory")?;
        // Each central entry takes at least 46 bytes: a count larger than that is a lie, and
        // refusing it up front keeps the loop below bounded by the bytes present.
        if count > cd.len() as u64 / 46 {
            return Err(format!(
                "the end record declares {count} entries, but the {}-byte central directory \
                 holds at most {}",
                cd.len(),
                cd.len() / 46
            ));
        }
        let mut names = Vec::with_capacity(count as usize);
        let mut entries = HashMap::with_capacity(count as usize);
        let mut at = 0u64;
        for _ in 0..count {
            if le32(cd, at, "central directory entry")? != CENTRAL_SIG {
                return Err(format!(
                    "bad central directory entry at byte {}",
                    cd_off.saturating_add(at)
                ));
            }
            let method = le16(cd, at + 10, "central directory entry")?;
            let crc = le32(cd, at + 16, "central directory entry")?;
            let mut csize = u64::from(le32(cd, at + 20, "central directory entry")?);
            let mut usize_ = u64::from(le32(cd, at + 24, "central directory entry")?);
            let nlen = u64::from(le16(cd, at + 28, "central directory entry")?);
            let elen = u64::from(le16(cd, at + 30, "central directory entry")?);
            let clen = u64::from(le16(cd, at + 32, "central directory entry")?);
            let mut lho = u64::from(le32(cd, at + 42, "central directory entry")?);
            let name = slice(cd, at + 46, nlen, "entry name")?;
            let name = String::from_utf8_lossy(name).into_owned();
            // zip64 extra field: the 0xFFFFFFFF fields, in the order usize, csize, offset.
            let extra = slice(cd, at + 46 + nlen, elen, "entry extra field")?;
            let mut e = 0u64;
            while e + 4 <= extra.len() as u64 {
                let id = le16(extra, e, "extra field")?;
                let len = u64::from(le16(extra, e + 2, "extra field")?);
                let field = slice(extra, e + 4, len, "zip64 extra field")?;
                if id == 1 {
                    let mut p = 0u64;
                    for v in [&mut usize_, &mut csize, &mut lho] {
                        if *v == 0xFFFF_FFFF {
                            *v = le64(field, p, "zip64 extra field")?;
                            p += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            if method != 0 {
                return Err(format!(
                    "entry {name} is compressed (method {method}); torch.save stores entries"
                ));
            }
            if csize != usize_ {
                return Err(format!(
                    "entry {name}: stored size {csize} differs from its size {usize_}"
                ));
            }
            if entries.contains_key(&name) {
                return Err(format!("entry {name} appears twice"));
            }
            names.push(name.clone());
            entries.insert(
                name,
                Entry {
                    local_header: lho,
                    size: csize,
                    crc,
                    verified: Cell::new(false),
                },
            );
            at = at + 46 + nlen + elen + clen;
        }
        Ok(StoredZip {
            bytes,
            names,
            entries,
        })
    }

    /// Entry names in archive order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The bytes of entry `name`, CRC-checked (once per entry).
    pub(crate) fn entry(&self, name: &str) -> Result<&'a [u8], String> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| format!("zip entry {name} not found"))?;
        let lho = e.local_header;
        if le32(self.bytes, lho, "local header")? != LOCAL_SIG {
            return Err(format!("zip entry {name}: bad local header at byte {lho}"));
        }
        let nlen = u64::from(le16(self.bytes, add(lho, 26)?, "local header")?);
        let elen = u64::from(le16(self.bytes, add(lho, 28)?, "local header")?);
        let start = add(add(lho, 30)?, nlen + elen)?;
        let data = slice(self.bytes, start, e.size, &format!("zip entry {name}"))?;
        if !e.verified.get() {
            if crc32(data) != e.crc {
                return Err(format!("zip entry {name}: CRC-32 mismatch"));
            }
            e.verified.set(true);
        }
        Ok(data)
    }
}

/// CRC-32 (IEEE, as in zip).
pub(crate) fn crc32(data: &[u8]) -> u32 {
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
