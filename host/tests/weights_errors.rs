//! Weights loader: the real checkpoint loads; broken files give distinct, informative errors.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use tdquant_core::crc32;
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::weights::{self, WeightsError, WeightsFormat};

const MODEL_SHA256: &str = "f6465b56e49148c96b9fce1f6ee54537c32bd66d5c3658766bdc63a4ff2c0427";

fn model_path(what: &str) -> Option<PathBuf> {
    data_root_for_test(what).map(|r| r.join("models/swinir_light_x4_local.pth"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The variant name of an error (`Corrupt`, `MissingKey`, …).
fn variant_name(e: &WeightsError) -> String {
    let debug = format!("{e:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A fresh scratch folder `name` and the bytes of the real checkpoint
/// (`None` without the test data).
fn model_bytes(what: &str, name: &str) -> Option<(PathBuf, Vec<u8>)> {
    let bytes = std::fs::read(model_path(what)?).unwrap();
    Some((common::scratch(name), bytes))
}

/// The error of loading `bytes` written to `dir/name` (printed, so that a
/// failing run shows every message).
fn load_error(dir: &Path, name: &str, bytes: &[u8]) -> WeightsError {
    let err = weights::load(write(dir, name, bytes)).unwrap_err();
    println!("{name}: {err}");
    err
}

fn real_tensors(pth: &Path) -> HashMap<String, Tensor> {
    weights::load(pth).unwrap().tensors
}

fn save_st(dir: &Path, name: &str, t: &HashMap<String, Tensor>) -> PathBuf {
    let p = dir.join(name);
    candle_core::safetensors::save(t, &p).unwrap();
    p
}

#[test]
fn real_pth_loads() {
    let Some(pth) = model_path("real_pth_loads") else {
        return;
    };
    let w = weights::load(&pth).unwrap();
    assert_eq!(w.scale, 4);
    assert_eq!(w.format, WeightsFormat::Pth);
    assert_eq!(w.tensors.len(), weights::expected_shapes(4).len());
    assert_eq!(w.tensors.len(), 330, "366 tensors minus 36 buffers");
    assert_eq!(w.num_params(), 929_628);
    assert_eq!(w.sha256.as_deref(), Some(MODEL_SHA256));
    assert_eq!(weights::file_sha256(&pth).unwrap(), MODEL_SHA256);
    for t in w.tensors.values() {
        assert_eq!(t.dtype(), DType::F32);
    }
}

#[test]
fn safetensors_roundtrip_matches_pth() {
    let Some(pth) = model_path("safetensors_roundtrip") else {
        return;
    };
    let dir = common::scratch("roundtrip");
    let a = weights::load(&pth).unwrap();
    // Include the ignored buffers too: they must be dropped, not rejected.
    let mut t = a.tensors.clone();
    t.insert(
        "layers.0.residual_group.blocks.1.attn_mask".into(),
        Tensor::zeros((64, 64, 64), DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    t.insert(
        "layers.0.residual_group.blocks.1.attn.relative_position_index".into(),
        Tensor::zeros((64, 64), DType::I64, &candle_core::Device::Cpu).unwrap(),
    );
    let p = save_st(&dir, "w.safetensors", &t);
    let b = weights::load(&p).unwrap();
    assert_eq!(b.format, WeightsFormat::Safetensors);
    assert_eq!(b.scale, 4);
    assert_eq!(b.tensors.len(), a.tensors.len());
    for (k, ta) in &a.tensors {
        let d = common::max_abs(&(ta - &b.tensors[k]).unwrap());
        assert_eq!(d, 0.0, "{k}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_pth_is_corrupt() {
    let Some((dir, bytes)) = model_bytes("truncated_pth", "truncated") else {
        return;
    };
    for (name, len) in [
        ("half.pth", bytes.len() / 2),
        ("100.pth", 100),
        ("minus1.pth", bytes.len() - 1),
    ] {
        let err = load_error(&dir, name, &bytes[..len]);
        assert!(
            matches!(err, WeightsError::Corrupt { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_pickle_is_corrupt() {
    let Some((dir, mut bytes)) = model_bytes("damaged_pickle", "damaged") else {
        return;
    };
    // Overwrite bytes inside the stored data.pkl (right after its local header): the zip CRC
    // or the pickle decoder must reject it.
    let at = bytes
        .windows(8)
        .position(|w| w == b"data.pkl")
        .expect("data.pkl entry")
        + 8;
    for b in &mut bytes[at + 10..at + 200] {
        *b = 0xA5;
    }
    let err = load_error(&dir, "damaged.pth", &bytes);
    assert!(matches!(err, WeightsError::Corrupt { .. }), "{err:?}");
    // A zip signature followed by garbage.
    let mut g = b"PK\x03\x04".to_vec();
    g.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let err = load_error(&dir, "garbage.pth", &g);
    assert!(matches!(err, WeightsError::Corrupt { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn non_zip_files_are_rejected() {
    let dir = common::scratch("nonzip");
    for (name, bytes) in [
        (
            "text.pth",
            b"this is not a PyTorch checkpoint at all\n".to_vec(),
        ),
        ("empty.pth", Vec::new()),
        (
            "legacy.pth",
            vec![
                0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
            ],
        ),
        (
            "bad.safetensors",
            [&8u64.to_le_bytes()[..], b"not json"].concat(),
        ),
    ] {
        let err = load_error(&dir, name, &bytes);
        assert!(
            matches!(err, WeightsError::NotAZipOrPickle { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name));
    }
    // A safetensors header that lies about its length.
    let mut b = 1_000_000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{\"a\":1}");
    let err = load_error(&dir, "short.safetensors", &b);
    assert!(matches!(err, WeightsError::Corrupt { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_file_is_io() {
    let err = weights::load("/nonexistent/tdquant/w.pth").unwrap_err();
    assert!(matches!(err, WeightsError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/tdquant/w.pth"));
}

/// The error of loading the real checkpoint's tensors, edited by `edit` and
/// saved as safetensors (`None` without the test data).
fn edited_error(
    what: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> Option<WeightsError> {
    let pth = model_path(what)?;
    let dir = common::scratch(what);
    let mut t = real_tensors(&pth);
    edit(&mut t);
    let err = weights::load(save_st(&dir, "edited.safetensors", &t)).unwrap_err();
    println!("{err}");
    let _ = std::fs::remove_dir_all(&dir);
    Some(err)
}

#[test]
fn renamed_key_is_missing_key() {
    let old = "layers.2.residual_group.blocks.3.mlp.fc1.weight";
    let new = "layers.2.residual_group.blocks.3.mlp.fc_1.weight";
    let Some(err) = edited_error("renamed_key", |t| {
        let v = t.remove(old).unwrap();
        t.insert(new.into(), v);
    }) else {
        return;
    };
    match &err {
        WeightsError::MissingKey { key, unexpected } => {
            assert_eq!(key, old);
            assert_eq!(unexpected.as_deref(), Some(new));
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    assert!(err.to_string().contains(old) && err.to_string().contains(new));
}

#[test]
fn extra_key_is_unexpected() {
    let extra = "layers.0.residual_group.blocks.0.attn.qkv.q.weight_quantizer.lower_bound";
    let Some(err) = edited_error("extra_key", |t| {
        let zero = Tensor::zeros(1, DType::F32, &candle_core::Device::Cpu).unwrap();
        t.insert(extra.into(), zero);
    }) else {
        return;
    };
    assert!(
        matches!(&err, WeightsError::UnexpectedKey { key } if key == extra),
        "{err:?}"
    );
    assert!(err.to_string().contains(extra));
}

#[test]
fn wrong_shape_is_shape_mismatch() {
    let key = "layers.1.residual_group.blocks.0.attn.proj.weight";
    let Some(err) = edited_error("wrong_shape", |t| {
        let v = t[key].reshape((30, 120)).unwrap();
        t.insert(key.into(), v);
    }) else {
        return;
    };
    match &err {
        WeightsError::ShapeMismatch {
            key: k,
            expected,
            found,
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, &vec![60, 60]);
            assert_eq!(found, &vec![30, 120]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(key) && msg.contains("[60, 60]") && msg.contains("[30, 120]"));
}

#[test]
fn bad_scale_and_dtype() {
    let Some(pth) = model_path("bad_scale") else {
        return;
    };
    let dir = common::scratch("scale");
    let t0 = real_tensors(&pth);
    let zeros =
        |shape: &[usize]| Tensor::zeros(shape, DType::F32, &candle_core::Device::Cpu).unwrap();
    // The real tensors with `edits` applied, loaded from a safetensors file.
    let load_edited = |name: &str, edits: Vec<(&str, Tensor)>| {
        let mut t = t0.clone();
        t.extend(edits.into_iter().map(|(k, v)| (k.to_string(), v)));
        weights::load(save_st(&dir, name, &t))
    };
    let up = |out: usize, bias: usize| {
        vec![
            ("upsample.0.weight", zeros(&[out, 60, 3, 3])),
            ("upsample.0.bias", zeros(&[bias])),
        ]
    };
    let norm_as = |dt: DType| vec![("norm.weight", t0["norm.weight"].to_dtype(dt).unwrap())];

    let err = load_edited("s5.safetensors", up(75, 75)).unwrap_err();
    println!("{err}");
    assert!(
        matches!(&err, WeightsError::BadScale { found } if found == &vec![75, 60, 3, 3]),
        "{err:?}"
    );
    assert!(err.to_string().contains("[75, 60, 3, 3]"));

    // A ×2 head with the ×4 body is a valid ×2 model…
    let w = load_edited("s2.safetensors", up(12, 12)).unwrap();
    assert_eq!(w.scale, 2);
    // …but a ×2 weight with a ×4 bias is not.
    let err = load_edited("s2b.safetensors", up(12, 48)).unwrap_err();
    assert!(
        matches!(&err, WeightsError::ShapeMismatch { key, .. } if key == "upsample.0.bias"),
        "{err:?}"
    );

    let err = load_edited("u32.safetensors", norm_as(DType::U32)).unwrap_err();
    println!("{err}");
    assert!(
        matches!(&err, WeightsError::DtypeUnsupported { key, .. } if key == "norm.weight"),
        "{err:?}"
    );

    // f16 is accepted and converted.
    let w = load_edited("f16.safetensors", norm_as(DType::F16)).unwrap();
    assert_eq!(w.tensors["norm.weight"].dtype(), DType::F32);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_upsample_is_missing_key() {
    let Some(pth) = model_path("missing_upsample") else {
        return;
    };
    let mut t = real_tensors(&pth);
    t.remove("upsample.0.weight");
    let err = weights::from_tensors(t).unwrap_err();
    assert!(
        matches!(&err, WeightsError::MissingKey { key, .. } if key == "upsample.0.weight"),
        "{err:?}"
    );
}

fn u16_at(b: &[u8], i: usize) -> usize {
    u16::from_le_bytes([b[i], b[i + 1]]) as usize
}

fn u32_at(b: &[u8], i: usize) -> usize {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize
}

#[test]
fn pth_without_params_is_no_state_dict() {
    let Some((dir, orig)) = model_bytes("no_state_dict", "nostate") else {
        return;
    };
    let mut b = orig.clone();
    // The central-directory entry of data.pkl.
    let cd = (0..b.len() - 4)
        .rev()
        .filter(|&i| &b[i..i + 4] == b"PK\x01\x02")
        .find(|&i| {
            let n = u16_at(&b, i + 28);
            b[i + 46..i + 46 + n].ends_with(b"data.pkl")
        })
        .expect("data.pkl central entry");
    let size = u32_at(&b, cd + 20);
    let lho = u32_at(&b, cd + 42);
    let start = lho + 30 + u16_at(&b, lho + 26) + u16_at(&b, lho + 28);
    let data = &mut b[start..start + size];
    let at = data
        .windows(6)
        .position(|w| w == b"params")
        .expect("params key");
    data[at + 5] = b'z'; // "params" → "paramz": a valid pickle without a state dict
    let crc = crc32(&b[start..start + size]);
    b[cd + 16..cd + 20].copy_from_slice(&crc.to_le_bytes());
    let err = load_error(&dir, "paramz.pth", &b);
    assert!(matches!(err, WeightsError::NoStateDict { .. }), "{err:?}");
    assert!(err.to_string().contains("paramz.pth"));
    // Without the CRC fix the same edit is caught as corruption.
    let mut c = orig;
    c[start + at + 5] = b'z';
    let err = load_error(&dir, "crc.pth", &c);
    assert!(matches!(err, WeightsError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("CRC"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Byte edits inside the pickle (with the CRC fixed up so they reach the decoder) give errors,
/// never panics or a silently loaded model.
#[test]
fn edited_pickles_are_rejected_without_panicking() {
    let Some(pth) = model_path("edited_pickles") else {
        return;
    };
    let orig = std::fs::read(&pth).unwrap();
    let cd = (0..orig.len() - 4)
        .rev()
        .filter(|&i| &orig[i..i + 4] == b"PK\x01\x02")
        .find(|&i| {
            let n = u16_at(&orig, i + 28);
            orig[i + 46..i + 46 + n].ends_with(b"data.pkl")
        })
        .unwrap();
    let size = u32_at(&orig, cd + 20);
    let lho = u32_at(&orig, cd + 42);
    let start = lho + 30 + u16_at(&orig, lho + 26) + u16_at(&orig, lho + 28);
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut n = 0;
    for pos in [
        0usize,
        1,
        2,
        3,
        20,
        97,
        500,
        1234,
        4000,
        9999,
        size / 2,
        size - 2,
        size - 1,
    ] {
        for val in [b'.', 0xFF, b'0', b')', b'q', 0x00] {
            let mut b = orig.clone();
            if b[start + pos] == val {
                continue;
            }
            b[start + pos] = val;
            let crc = crc32(&b[start..start + size]);
            b[cd + 16..cd + 20].copy_from_slice(&crc.to_le_bytes());
            let r = weights::load_bytes(&b, "edited.pth");
            let kind = r.as_ref().map_or_else(variant_name, |_| "Ok".to_string());
            *seen.entry(kind).or_default() += 1;
            n += 1;
            // An edit that only touches, say, a float's low bits can load; anything structural
            // must be an error.
            if let Ok(w) = r {
                assert_eq!(w.tensors.len(), 330);
            }
        }
    }
    println!("{n} edits: {seen:?}");
    assert!(seen.keys().any(|k| k != "Ok"));
}
