//! The `.tdq` model container: a versioned, checksummed, little-endian file
//! of named tensors, parsed zero-copy from `&[u8]` without allocation (the
//! firmware `include_bytes!`s it from flash) and written by
//! [`ContainerWriter`] into a caller-provided buffer.
//!
//! # Byte layout (format version 1)
//!
//! All integers are little-endian. Offsets are from the start of the file.
//!
//! ```text
//! ┌──────────── header, 32 bytes ─────────────────────────────────────────┐
//! │  0..8   magic          b"TDQMODEL"                                    │
//! │  8..10  version        u16 = 1                                        │
//! │ 10..12  flags          u16 = 0 (no flags are defined; non-zero → error)│
//! │ 12..16  section_count  u32 ≤ MAX_SECTIONS (4096)                      │
//! │ 16..20  file_len       u32 = length of the whole file                 │
//! │ 20..24  crc32          u32, see below                                 │
//! │ 24..32  reserved       8 bytes, zero                                  │
//! ├──────────── section table: section_count × 64 bytes ──────────────────┤
//! │ entry i at 32 + 64·i:                                                 │
//! │  0..32  name     [u8; 32] ASCII graphic (0x21..=0x7E), ≥ 1 char,      │
//! │                  NUL-padded, unique within the file                   │
//! │ 32      dtype    u8: U8=0 I8=1 I16=2 I32=3 F32=4 Packed=5             │
//! │ 33      bits     u8: 2, 3, 4 or 8 for Packed, 0 otherwise             │
//! │ 34      rank     u8: 0..=4 (Packed: exactly 2, dims = [rows, cols])   │
//! │ 35      reserved u8 = 0                                               │
//! │ 36..52  dims     [u32; 4]; dims[rank..] = 0                           │
//! │ 52..56  offset   u32: payload start, multiple of ALIGN (16)           │
//! │ 56..60  len      u32: payload bytes                                   │
//! │ 60..64  reserved [u8; 4] = 0                                          │
//! ├──────────── payloads ─────────────────────────────────────────────────┤
//! │ at their offsets, in table order (ascending, non-overlapping), after  │
//! │ the table and within file_len; every byte not covered by the header,  │
//! │ the table or a payload is zero                                        │
//! └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * Payload length: Packed sections hold a [`PackedLayout`](crate::packed::PackedLayout) of
//!   `[dims[0], dims[1]]` (`len == layout.byte_len()`, padding bits zero);
//!   other dtypes hold `product(dims[..rank]) · element_size` bytes of
//!   little-endian elements (rank 0 is a scalar: one element). F32 is for
//!   metadata and reference tensors only; the integer inference path never
//!   reads it.
//! * Checksum: CRC-32/IEEE ([`crc32()`](crate::crc32::crc32)) of the whole file with the
//!   four crc bytes at 20..24 taken as zero, i.e.
//!   `crc32(bytes[0..20] ++ [0; 4] ++ bytes[24..file_len])`.
//! * The writer places the first payload right after the table (already a
//!   multiple of 16), each next payload at the next multiple of 16 after the
//!   previous one, and ends the file at the end of the last payload. Its
//!   output is a deterministic function of the section specs.
//!
//! [`Container::parse`] checks every rule above (in the order of the
//! [`ContainerError`] variants, header first), so the accessors afterwards
//! cannot fail on structure; [`ContainerWriter`] checks the same rules on
//! its input, so it cannot produce a file that `parse` rejects.
//!
//! Files: `format` (the numbers above and [`Dtype`]), `rules` (the checks
//! and layout arithmetic the parser and the writer share), `parse`
//! ([`Container`]), `section` ([`Section`] and its typed elements), `write`
//! ([`ContainerWriter`]), `error` (every error type).

mod error;
mod format;
mod parse;
mod rules;
mod section;
mod write;

pub use error::{ContainerError, DtypeError, SectionError, ShapeIssue};
pub use format::{
    Dtype, ALIGN, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_RANK, MAX_SECTIONS, SECTION_ENTRY_LEN,
    SECTION_NAME_LEN,
};
pub use parse::{Container, Sections};
pub use section::{Element, Elements, Section};
pub use write::{ContainerWriter, SectionSpec};
