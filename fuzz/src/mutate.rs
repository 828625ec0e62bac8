//! Structure-aware mutation: byte-level edits biased towards each format's weak spots (pickle
//! opcodes, zip and container length fields, safetensors header numbers, PNG dimensions), then
//! the format's integrity data repaired where it can be so the edit reaches the parser's
//! structure checks. Deterministic: the same RNG state gives the same input.

use crate::formats::{stored_entries, tdq_fix_crc};
use crate::pth;
use crate::rng::Rng;
use crate::Target;

/// Longest input produced.
pub const MAX_LEN: usize = 1 << 20;

/// Integers that break length and index arithmetic.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX,
];

/// Pickle fragments: every opcode of the subset, with arguments at their edges.
const PICKLE_TOKENS: &[&[u8]] = &[
    b"(",
    b")",
    b"]",
    b"}",
    b"t",
    b"l",
    b"d",
    b"R",
    b"b",
    b"s",
    b"u",
    b"a",
    b"e",
    b"N",
    b".",
    b"0",
    b"1",
    b"2",
    b"Q",
    b"\x85",
    b"\x86",
    b"\x87",
    b"\x88",
    b"\x89",
    b"\x81",
    b"\x93",
    b"\x94",
    b"h\x00",
    b"h\x05",
    b"h\x06",
    b"j\xff\xff\xff\xff",
    b"q\x00",
    b"q\x06",
    b"r\xff\xff\xff\xff",
    b"K\x00",
    b"K\xff",
    b"M\xff\xff",
    b"J\xff\xff\xff\xff",
    b"J\x00\x00\x00\x80",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x8a\x01\xff",
    b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    b"G\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"X\x00\x00\x00\x00",
    b"X\xff\xff\xff\xff",
    b"\x8c\x01a",
    b"\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
    b"C\x02ab",
    b"\x95\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x80\x02",
    b"\x80\x09",
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ctorch\nFloatStorage\n",
    b"ctorch\nIntStorage\n",
    b"ccollections\nOrderedDict\n",
    b"X\x07\x00\x00\x00storage",
    b"X\x06\x00\x00\x00params",
    b"X\x01\x00\x00\x000",
    b"X\x01\x00\x00\x009",
];

/// Generic byte edits, 1 to 8 of them.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>, donors: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(8) {
        let n = data.len();
        match rng.below(9) {
            0 if n > 0 => {
                let i = rng.below(n);
                data[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                data[i] = INTERESTING[rng.below(6)] as u8;
            }
            2 if n >= 8 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let i = rng.below(n - w + 1);
                data[i..i + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
            3 if n > 1 => {
                let i = rng.below(n);
                let len = 1 + rng.below((n - i).min(64));
                data.drain(i..i + len);
            }
            4 if n > 1 => {
                let i = rng.below(n);
                let len = 1 + rng.below((n - i).min(256));
                let chunk = data[i..i + len].to_vec();
                let at = rng.below(n + 1);
                data.splice(at..at, chunk);
            }
            5 => {
                let at = rng.below(n + 1);
                let k = 1 + rng.below(8);
                let junk: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
                data.splice(at..at, junk);
            }
            6 if !donors.is_empty() => {
                let d = &donors[rng.below(donors.len())];
                if !d.is_empty() {
                    let i = rng.below(d.len());
                    let len = 1 + rng.below((d.len() - i).min(512));
                    let at = rng.below(n + 1);
                    let end = (at + len).min(n);
                    data.splice(at..end, d[i..i + len].iter().copied());
                }
            }
            7 if n > 0 => data.truncate(rng.below(n)),
            _ if n > 0 => {
                let i = rng.below(n);
                data[i] = rng.next() as u8;
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data.truncate(MAX_LEN);
}

/// Inserts or overwrites pickle tokens.
fn pickle_edit(rng: &mut Rng, p: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let t = PICKLE_TOKENS[rng.below(PICKLE_TOKENS.len())];
        let at = rng.below(p.len() + 1);
        if rng.one_in(2) || at + t.len() > p.len() {
            p.splice(at..at, t.iter().copied());
        } else {
            p.splice(at..at + t.len(), t.iter().copied());
        }
    }
}

/// Replaces a run of ASCII digits in a safetensors JSON header by an edge number, and fixes
/// the header length.
fn safetensors_header_edit(rng: &mut Rng, data: &mut Vec<u8>) {
    let Some(len) = data
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    else {
        return;
    };
    if len > data.len() - 8 {
        return;
    }
    let mut header = data[8..8 + len].to_vec();
    let runs: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].is_ascii_digit() && (i == 0 || !header[i - 1].is_ascii_digit()))
        .collect();
    if runs.is_empty() {
        return;
    }
    let start = runs[rng.below(runs.len())];
    let end = (start..header.len())
        .find(|&i| !header[i].is_ascii_digit())
        .unwrap_or(header.len());
    let new: String = match rng.below(5) {
        0 => INTERESTING[rng.below(INTERESTING.len())].to_string(),
        1 => "-1".into(),
        2 => "1e400".into(),
        3 => (rng.below(4096)).to_string(),
        _ => "18446744073709551616".into(),
    };
    header.splice(start..end, new.bytes());
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(&header);
    out.extend(&data[8 + len..]);
    *data = out;
}

/// Half the time the format-aware `edit`, otherwise a byte-level mutation drawing on `donors`.
fn edit_or_bytes(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    donors: &[Vec<u8>],
    edit: fn(&mut Rng, &mut Vec<u8>),
) {
    if rng.one_in(2) {
        edit(rng, data);
    } else {
        bytes(rng, data, donors);
    }
}

/// One mutated input of `target` from `seed`.
pub fn mutate(target: Target, rng: &mut Rng, seed: &[u8], donors: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    match target {
        Target::Pth => match (rng.below(3), stored_entries(seed)) {
            (0 | 1, Some(entries)) if !entries.is_empty() => {
                // Edit the pickle (or a storage) and re-archive: CRCs stay right.
                let mut entries = entries;
                let (pkl, mut stored): (Vec<_>, Vec<_>) = entries
                    .drain(..)
                    .partition(|(n, _)| n.ends_with("data.pkl"));
                let mut pickle = pkl.into_iter().next().map(|e| e.1).unwrap_or_default();
                let mut storages: Vec<(&str, Vec<u8>)> = stored
                    .iter_mut()
                    .filter_map(|(n, d)| n.strip_prefix("a/data/").map(|k| (k, std::mem::take(d))))
                    .collect();
                if rng.one_in(5) && !storages.is_empty() {
                    let i = rng.below(storages.len());
                    bytes(rng, &mut storages[i].1, &[]);
                } else {
                    edit_or_bytes(rng, &mut pickle, donors, pickle_edit);
                }
                data = pth::archive(&pickle, &storages);
            }
            _ => edit_or_bytes(rng, &mut data, donors, pickle_edit),
        },
        Target::Tdq => {
            bytes(rng, &mut data, donors);
            if !rng.one_in(8) {
                if let Some(fixed) = tdq_fix_crc(&data) {
                    data = fixed;
                }
            }
        }
        Target::Bounds | Target::Checkpoint => {
            edit_or_bytes(rng, &mut data, donors, safetensors_header_edit)
        }
        Target::Image => {
            bytes(rng, &mut data, donors);
        }
    }
    data
}
