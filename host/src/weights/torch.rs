//! From a decoded `torch.save` pickle to tensors: the tensor records of the state dict
//! (`_rebuild_tensor_v2` calls: dtype, shape, strides, storage key, offset), then their elements,
//! read from the archive's storage entries with every index checked.

use candle_core::{DType, Device, Tensor};

use super::pickle::{kind, Obj, ObjId, Pickle};

/// Longest state-dict key accepted (SwinIR-light's longest is 67 bytes).
pub const MAX_KEY_BYTES: usize = 4096;
/// Most dimensions accepted for one tensor.
pub const MAX_DIMS: usize = 64;

/// A tensor as the pickle describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRecord {
    /// Element type (from the storage class).
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub strides: Vec<usize>,
    /// Offset of the first element in the storage, in elements.
    pub offset: usize,
    /// Storage key: the entry `<archive>/data/<key>`.
    pub storage_key: String,
    /// Number of elements the storage declares.
    pub storage_numel: usize,
}

/// Why a state-dict value could not be taken as a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The value is malformed (names the problem).
    Malformed(String),
    /// A storage class other than the float, byte and long ones.
    Dtype(String),
}

fn malformed<T>(what: impl Into<String>) -> Result<T, RecordError> {
    Err(RecordError::Malformed(what.into()))
}

/// The state dict of a checkpoint's top-level dict: `"params"`, else `"params_ema"`, else the
/// top-level dict itself if any of its values is a reduced or built object (a tensor candidate).
/// `None` when there is none. Among duplicate keys the last one counts, as in Python.
pub fn select_state_dict<'p>(p: &'p Pickle<'_>, top: &'p [(ObjId, ObjId)]) -> Option<ObjId> {
    for name in ["params", "params_ema"] {
        let found = top
            .iter()
            .rev()
            .find(|(k, v)| p.str(*k) == Some(name) && p.dict(*v).is_some());
        if let Some((_, v)) = found {
            return Some(*v);
        }
    }
    None
}

/// True if `top` holds at least one value that could be a tensor.
pub fn has_tensor_candidate(p: &Pickle<'_>, top: &[(ObjId, ObjId)]) -> bool {
    top.iter()
        .any(|(_, v)| matches!(p.get(*v), Obj::Reduce { .. } | Obj::Built { .. }))
}

/// An integer ≥ 0 that fits in `usize`.
fn index(p: &Pickle<'_>, id: ObjId, what: &str) -> Result<usize, RecordError> {
    match p.get(id) {
        Obj::Int(v) => match usize::try_from(*v) {
            Ok(u) => Ok(u),
            Err(_) => malformed(format!("{what} is {v}, expected an integer >= 0")),
        },
        Obj::BigInt => malformed(format!("{what} is an integer wider than 64 bits")),
        other => malformed(format!("{what} is a {}, expected an integer", kind(other))),
    }
}

/// A tuple of integers ≥ 0 (a shape or strides).
fn index_tuple(p: &Pickle<'_>, id: ObjId, what: &str) -> Result<Vec<usize>, RecordError> {
    let Some(items) = p.tuple(id) else {
        return malformed(format!("{what} is a {}, expected a tuple", kind(p.get(id))));
    };
    if items.len() > MAX_DIMS {
        return malformed(format!(
            "{what} has {} dimensions, at most {MAX_DIMS} are accepted",
            items.len()
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, &it) in items.iter().enumerate() {
        match p.get(it) {
            Obj::Int(v) if *v < 0 => {
                let shown: Vec<String> = items
                    .iter()
                    .map(|&j| p.int(j).map_or_else(|| "?".into(), |v| v.to_string()))
                    .collect();
                return malformed(format!(
                    "{what} ({}): dimension {i} is negative ({v})",
                    shown.join(", ")
                ));
            }
            _ => out.push(index(p, it, &format!("{what}[{i}]"))?),
        }
    }
    Ok(out)
}

/// The tensor a state-dict value describes: `Ok(None)` for a value that is not a tensor at all
/// (not a `_rebuild_tensor_v2` call, possibly wrapped in `_rebuild_parameter` or
/// `_rebuild_from_type_v2`).
pub fn tensor_record(p: &Pickle<'_>, value: ObjId) -> Result<Option<TensorRecord>, RecordError> {
    let Obj::Reduce { callable, args } = *p.get(value) else {
        return Ok(None);
    };
    let (callable, args) = match p.global(callable) {
        Some(("torch._tensor", "_rebuild_from_type_v2")) => match p.tuple(args) {
            Some(a) if a.len() >= 3 => (a[0], a[2]),
            _ => return malformed("_rebuild_from_type_v2 needs a tuple of at least 3 arguments"),
        },
        Some(("torch._utils", "_rebuild_parameter")) => {
            match p.tuple(args).and_then(|a| a.first()).map(|&d| p.get(d)) {
                Some(Obj::Reduce { callable, args }) => (*callable, *args),
                _ => return malformed("_rebuild_parameter's first argument is not a tensor"),
            }
        }
        _ => (callable, args),
    };
    if p.global(callable) != Some(("torch._utils", "_rebuild_tensor_v2")) {
        return Ok(None);
    }
    let a = match p.tuple(args) {
        Some(a) if a.len() >= 4 => a,
        _ => return malformed("_rebuild_tensor_v2 needs a tuple of at least 4 arguments"),
    };
    let Obj::PersistentId(pid) = *p.get(a[0]) else {
        return malformed(format!(
            "the storage argument is a {}, expected a persistent id",
            kind(p.get(a[0]))
        ));
    };
    let s = match p.tuple(pid) {
        Some(s) if s.len() >= 5 && p.str(s[0]) == Some("storage") => s,
        _ => {
            return malformed(
                "the persistent id is not a ('storage', class, key, location, size) tuple",
            )
        }
    };
    let Some((module, class)) = p.global(s[1]) else {
        return malformed("the storage class is not a global");
    };
    let dtype = match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "LongStorage" => DType::I64,
        _ => return Err(RecordError::Dtype(format!("storage type {module}.{class}"))),
    };
    let Some(storage_key) = p.str(s[2]) else {
        return malformed("the storage key is not a string");
    };
    if storage_key.len() > MAX_KEY_BYTES {
        return malformed(format!(
            "storage key of {} bytes, at most {MAX_KEY_BYTES} are accepted",
            storage_key.len()
        ));
    }
    let storage_numel = index(p, s[4], "the storage size")?;
    let offset = index(p, a[1], "the storage offset")?;
    let shape = index_tuple(p, a[2], "the size")?;
    let strides = index_tuple(p, a[3], "the stride")?;
    if shape.len() != strides.len() {
        return malformed(format!(
            "size {shape:?} and stride {strides:?} have different lengths"
        ));
    }
    Ok(Some(TensorRecord {
        dtype,
        shape,
        strides,
        offset,
        storage_key: storage_key.to_string(),
        storage_numel,
    }))
}

/// Row-major strides of `shape` (`None` on overflow).
fn row_major(shape: &[usize]) -> Option<Vec<usize>> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1usize;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc = acc.checked_mul(shape[i])?;
    }
    Some(s)
}

/// The elements of `rec`, read from its storage entry `storage`, as a CPU tensor of its dtype.
/// `budget` is the number of bytes the tensors of this file may still take; this one's bytes are
/// taken from it. Every index is checked: the tensor must lie inside its storage and may not
/// have more elements than it (no overlapping or broadcast strides).
pub fn materialize(
    rec: &TensorRecord,
    storage: &[u8],
    budget: &mut usize,
) -> Result<Tensor, String> {
    let elem = rec.dtype.size_in_bytes();
    let declared = rec.storage_numel.checked_mul(elem);
    if declared != Some(storage.len()) {
        return Err(format!(
            "storage {} declares {} elements of {elem} bytes, its archive entry holds {} bytes",
            rec.storage_key,
            rec.storage_numel,
            storage.len()
        ));
    }
    let numel = rec
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("size {:?} overflows", rec.shape))?;
    if numel == 0 {
        // Empty, but the other dimensions still make candle's strides: they must not overflow.
        let strides_fit = rec
            .shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(elem, |a, &d| a.checked_mul(d))
            .is_some_and(|b| b <= isize::MAX as usize);
        if !strides_fit {
            return Err(format!("size {:?} overflows", rec.shape));
        }
        return Tensor::zeros(rec.shape.as_slice(), rec.dtype, &Device::Cpu)
            .map_err(|e| e.to_string());
    }
    if numel > rec.storage_numel {
        return Err(format!(
            "size {:?} has {numel} elements, more than the {} of storage {} \
             (overlapping strides are not supported)",
            rec.shape, rec.storage_numel, rec.storage_key
        ));
    }
    let last = rec
        .shape
        .iter()
        .zip(&rec.strides)
        .try_fold(rec.offset, |a, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
        });
    match last {
        Some(l) if l < rec.storage_numel => {}
        _ => {
            return Err(format!(
                "offset {} with size {:?} and stride {:?} reaches past the {} elements of \
                 storage {}",
                rec.offset, rec.shape, rec.strides, rec.storage_numel, rec.storage_key
            ))
        }
    }
    let nbytes = numel * elem; // ≤ storage.len(), checked above
    if nbytes > *budget {
        return Err(
            "with this one, the tensors take more than twice the file's size (a storage \
             shared by too many tensors)"
                .into(),
        );
    }
    *budget -= nbytes;
    let contiguous = row_major(&rec.shape).is_some_and(|rm| {
        rm.iter()
            .zip(&rec.strides)
            .zip(&rec.shape)
            .all(|((r, s), &d)| d == 1 || r == s)
    });
    let start = rec.offset * elem; // ≤ last · elem < storage.len()
    let buf: Vec<u8> = if contiguous {
        storage[start..start + nbytes].to_vec()
    } else {
        gather(storage, elem, rec.offset, &rec.shape, &rec.strides, nbytes)
    };
    Tensor::from_raw_buffer(&buf, rec.dtype, &rec.shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// The elements of a strided view, in row-major order. All indices were checked to lie inside
/// the storage by the caller (the largest is `offset + Σ (dᵢ − 1)·sᵢ`).
fn gather(
    storage: &[u8],
    elem: usize,
    offset: usize,
    shape: &[usize],
    strides: &[usize],
    nbytes: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(nbytes);
    let mut idx = vec![0usize; shape.len()];
    let mut at = offset;
    loop {
        out.extend_from_slice(&storage[at * elem..at * elem + elem]);
        // Odometer step: the last dimension fastest.
        let mut d = shape.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            // Wrapping: a step past the last index of a dimension may leave the range (a size-1
            // dimension may carry any stride); it is undone before the next read, and modular
            // arithmetic makes the undo exact.
            at = at.wrapping_add(strides[d]);
            if idx[d] < shape[d] {
                break;
            }
            at = at.wrapping_sub(strides[d].wrapping_mul(shape[d]));
            idx[d] = 0;
        }
    }
}
