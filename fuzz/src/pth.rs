//! Builders of torch `.pth` files: a stored zip archive and a protocol-2 pickle writer. Kept
//! free of this crate's other modules so that the host tests build their hostile `.pth` files
//! with the same code (`#[path]`-included by `host/tests/weights_hostile.rs`).

/// A stored (uncompressed) zip archive of `entries`, CRCs correct.
pub fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u32;
        let crc = tdquant_core::crc32(data);
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend(crc.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(*data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend(crc.to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 12]);
        central.extend(off.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_off.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

/// A `.pth` archive `a/…`: `pickle` as `a/data.pkl`, `storages` as `a/data/<key>`.
pub fn archive(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let names: Vec<String> = storages
        .iter()
        .map(|(k, _)| format!("a/data/{k}"))
        .collect();
    let mut entries: Vec<(&str, &[u8])> = vec![("a/data.pkl", pickle), ("a/byteorder", b"little")];
    for (n, (_, d)) in names.iter().zip(storages) {
        entries.push((n, d));
    }
    stored_zip(&entries)
}

/// A protocol-2 pickle writer for the shapes `torch.save` produces.
#[derive(Default)]
pub struct Pickler(pub Vec<u8>);

impl Pickler {
    /// Raw opcodes.
    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// BINUNICODE.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    /// An int in the shortest form pickle writes it (BININT1/2, BININT, then LONG1).
    pub fn int(&mut self, v: i64) -> &mut Self {
        if (0..256).contains(&v) {
            self.op(&[b'K', v as u8])
        } else if (0..65536).contains(&v) {
            self.0.push(b'M');
            self.0.extend((v as u16).to_le_bytes());
            self
        } else if let Ok(v) = i32::try_from(v) {
            self.0.push(b'J');
            self.0.extend(v.to_le_bytes());
            self
        } else {
            self.op(&[0x8a, 8]);
            self.0.extend(v.to_le_bytes());
            self
        }
    }
    /// GLOBAL.
    pub fn global(&mut self, m: &str, n: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend(format!("{m}\n{n}\n").as_bytes());
        self
    }
    /// A tuple of ints.
    pub fn ints(&mut self, v: &[i64]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x);
        }
        self.op(b"t")
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(
        &mut self,
        class: &str,
        key: &str,
        numel: i64,
        offset: i64,
        size: &[i64],
        stride: &[i64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"((");
        self.str("storage")
            .global("torch", class)
            .str(key)
            .str("cpu")
            .int(numel);
        self.op(b"tQ")
            .int(offset)
            .ints(size)
            .ints(stride)
            .op(b"\x89");
        self.global("collections", "OrderedDict").op(b")Rtq\x05R")
    }
}
