//! Writers and repairers of the input formats beside [`crate::pth`]'s: the entries of a stored
//! zip, the `.tdq` CRC, the DQC checkpoint checksum, PNG chunk CRCs. A mutated input repaired
//! by these gets past the integrity checks, so the fuzzer reaches the structure checks behind
//! them.

use tdquant_core::crc32;
use tdquant_host::calib::checkpoint::{payload_sha256, META_KEY, SHA_KEY};

/// The stored entries of a zip written by [`stored_zip`](crate::pth::stored_zip) (a
/// local-header walk; `None` when the bytes do not parse as such).
pub fn stored_entries(b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut at = 0usize;
    let mut out = Vec::new();
    while b.get(at..at + 4)? == 0x0403_4b50u32.to_le_bytes() {
        let h = b.get(at..at + 30)?;
        let size = u32::from_le_bytes(h[18..22].try_into().ok()?) as usize;
        let nlen = u16::from_le_bytes([h[26], h[27]]) as usize;
        let elen = u16::from_le_bytes([h[28], h[29]]) as usize;
        let name = String::from_utf8(b.get(at + 30..at + 30 + nlen)?.to_vec()).ok()?;
        let start = at + 30 + nlen + elen;
        out.push((name, b.get(start..start + size)?.to_vec()));
        at = start + size;
    }
    Some(out)
}

/// `data` with its `.tdq` header CRC recomputed (`None` if too short to have one or if the
/// header's file length exceeds the data).
pub fn tdq_fix_crc(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_le_bytes(data.get(16..20)?.try_into().ok()?) as usize;
    if len < 24 || len > data.len() {
        return None;
    }
    let mut b = data.to_vec();
    b[20..24].fill(0);
    let crc = crc32(&b[..len]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    Some(b)
}

/// The metadata and tensors of a safetensors file, owned.
pub struct Safetensors {
    /// `__metadata__`.
    pub metadata: Option<std::collections::HashMap<String, String>>,
    /// `(name, dtype, shape, bytes)`, in the file's order.
    pub tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
}

impl Safetensors {
    /// Parses `data` (`None` if the `safetensors` crate refuses it).
    pub fn parse(data: &[u8]) -> Option<Self> {
        let st = safetensors::SafeTensors::deserialize(data).ok()?;
        let (_, header) = safetensors::SafeTensors::read_metadata(data).ok()?;
        let mut tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Safetensors {
            metadata: header.metadata().clone(),
            tensors,
        })
    }

    /// Serializes again (`None` if the `safetensors` crate refuses the tensors).
    pub fn write(&self) -> Option<Vec<u8>> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| {
                safetensors::tensor::TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v))
            })
            .collect::<Result<_, _>>()
            .ok()?;
        safetensors::tensor::serialize(views, self.metadata.clone()).ok()
    }
}

/// A checkpoint with its payload checksum recomputed (`None` if it does not parse as
/// safetensors with the three tensors and the metadata).
pub fn checkpoint_fix_sha(data: &[u8]) -> Option<Vec<u8>> {
    let mut st = Safetensors::parse(data)?;
    let get = |name: &str| {
        st.tensors
            .iter()
            .find(|t| t.0 == name)
            .map(|t| t.3.as_slice())
    };
    let js = st.metadata.as_ref()?.get(META_KEY)?.clone();
    let sha = payload_sha256(&js, get("bounds")?, get("adam_m")?, get("adam_v")?);
    st.metadata.as_mut()?.insert(SHA_KEY.into(), sha);
    st.write()
}

/// A PNG with the CRC of every complete chunk recomputed (`None` if not a PNG).
pub fn png_fix_crcs(data: &[u8]) -> Option<Vec<u8>> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !data.starts_with(SIG) {
        return None;
    }
    let mut b = data.to_vec();
    let mut at = SIG.len();
    while at + 12 <= b.len() {
        let len = u32::from_be_bytes(b[at..at + 4].try_into().ok()?) as usize;
        let end = at.checked_add(8)?.checked_add(len)?;
        if end + 4 > b.len() {
            break;
        }
        let crc = crc32(&b[at + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
    Some(b)
}
