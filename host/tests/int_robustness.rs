//! The integer runner never panics: random and mutated `.tdq` files, random
//! images of random sizes, wrong buffer sizes and tilings give an error or a
//! valid output. (Overflow checks are on for `tdquant-core` in release, so an
//! arithmetic overflow anywhere would panic and fail these tests.)

mod common;

use std::sync::OnceLock;

use common::Rng;
use tdquant_core::int::model::meta;
use tdquant_core::int::{
    self, IntModel, IntModelError, RunError, ScalarKernels, SectionKind, SectionLayout, Tiling,
};
use tdquant_core::BitWidth;
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::export::GoldenExport;

/// A valid W2A2 model exported from the golden bounds (once per test binary).
fn model_bytes() -> Option<&'static [u8]> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let root = data_root_for("int_robustness", TestData::Bundle)?;
            let mut golden = GoldenExport::new(&root).unwrap();
            Some(golden.export(2).unwrap().bytes)
        })
        .as_deref()
}

/// Runs `model` on a random `h × w` image; checks the outcome is sane.
fn run_random(
    model: &IntModel<'_>,
    rng: &mut Rng,
    h: usize,
    w: usize,
) -> Result<Vec<u8>, RunError> {
    let img: Vec<u8> = (0..h * w * 3).map(|_| rng.next() as u8).collect();
    let s = model.scale();
    let need = int::scratch_len(h, w).unwrap();
    let mut words = vec![0i32; need.words];
    let mut bytes = vec![0u8; need.bytes];
    let mut out = vec![0u8; h * w * 3 * s * s];
    int::upscale(
        &mut ScalarKernels,
        model,
        &img,
        h,
        w,
        &mut out,
        &mut words,
        &mut bytes,
    )?;
    Ok(out)
}

/// Offsets `(payload start, len)` of every section, read from the table.
fn sections(bytes: &[u8]) -> Vec<(usize, usize)> {
    let c = tdquant_core::Container::parse(bytes).unwrap();
    let base = bytes.as_ptr() as usize;
    c.sections()
        .map(|s| (s.data().as_ptr() as usize - base, s.data().len()))
        .collect()
}

/// Rewrites the header CRC so that a mutated file passes the container check.
fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() < 32 {
        return;
    }
    bytes[20..24].fill(0);
    let crc = tdquant_core::crc32(bytes);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn mutated_models_never_panic() {
    let Some(valid) = model_bytes() else { return };
    let secs = sections(valid);
    let mut rng = Rng(0x7d9);
    let (mut parsed, mut rejected, mut ran, mut run_err) = (0, 0, 0, 0);
    for trial in 0..600 {
        let mut bytes = valid.to_vec();
        match trial % 6 {
            // Random flips anywhere, CRC left stale: must be rejected.
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            // Truncation / extension.
            1 => {
                if rng.below(2) == 0 {
                    bytes.truncate(rng.below(bytes.len()));
                } else {
                    bytes.extend((0..1 + rng.below(64)).map(|_| rng.next() as u8));
                }
            }
            // Header or section table fields, CRC fixed.
            2 => {
                let table_end = 32 + 64 * secs.len();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(table_end);
                    bytes[at] = rng.next() as u8;
                }
                fix_crc(&mut bytes);
            }
            // Payload bytes of one section (constants, weights, meta), CRC fixed.
            _ => {
                let (start, len) = secs[rng.below(secs.len())];
                for _ in 0..1 + rng.below(16) {
                    let at = start + rng.below(len);
                    bytes[at] = match rng.below(4) {
                        0 => 0,
                        1 => 0xFF,
                        2 => 0x80,
                        _ => rng.next() as u8,
                    };
                }
                fix_crc(&mut bytes);
            }
        }
        match IntModel::parse(&bytes) {
            Err(_) => rejected += 1,
            Ok(model) => {
                parsed += 1;
                let (h, w) = (1 + rng.below(12), 1 + rng.below(12));
                match run_random(&model, &mut rng, h, w) {
                    Ok(_) => ran += 1,
                    Err(_) => run_err += 1,
                }
            }
        }
    }
    println!("600 mutated files: {rejected} rejected by parse, {parsed} parsed ({ran} ran, {run_err} run errors)");
    assert!(
        rejected > 100 && parsed > 100,
        "mutations should hit both outcomes"
    );
}

#[test]
fn meta_and_constant_edits_are_rejected_or_safe() {
    let Some(valid) = model_bytes() else { return };
    let secs = sections(valid);
    let meta_start = secs[0].0;
    let mut rng = Rng(99);
    for index in 0..meta::LEN {
        for value in [i32::MIN, -1, 0, 1, 2, 3, 5, 25, 31, 1000, i32::MAX] {
            let mut bytes = valid.to_vec();
            bytes[meta_start + 4 * index..meta_start + 4 * index + 4]
                .copy_from_slice(&value.to_le_bytes());
            fix_crc(&mut bytes);
            if let Ok(model) = IntModel::parse(&bytes) {
                run_random(&model, &mut rng, 5, 9).unwrap();
            }
        }
    }
}

/// A `meta` whose bit width or scale disagrees with the sections is refused
/// with the section named and both layouts spelled out.
/// The section a `BadSection` error names, with the layouts expected and
/// found; `why`: the edit that should have caused it.
fn bad_section(err: &IntModelError, why: &str) -> (&'static str, SectionLayout, SectionLayout) {
    match *err {
        IntModelError::BadSection {
            name,
            expected,
            found,
        } => (name, expected, found),
        _ => panic!("{why}: {err:?}"),
    }
}

#[test]
fn meta_disagreeing_with_sections_names_expected_and_found() {
    let Some(valid) = model_bytes() else { return };
    let meta_start = sections(valid)[0].0;
    let with_meta = |index: usize, value: i32| {
        let mut bytes = valid.to_vec();
        bytes[meta_start + 4 * index..meta_start + 4 * index + 4]
            .copy_from_slice(&value.to_le_bytes());
        fix_crc(&mut bytes);
        match IntModel::parse(&bytes) {
            Ok(_) => panic!("meta[{index}] = {value}: the edited model must be refused"),
            Err(e) => e,
        }
    };

    let err = with_meta(meta::BITS, 3);
    let (name, expected, found) = bad_section(&err, "bits 3 on a W2 file");
    assert_eq!(name, "w_attn");
    assert_eq!(expected.kind, SectionKind::Packed(BitWidth::B3));
    assert_eq!(found.kind, SectionKind::Packed(BitWidth::B2));
    assert_eq!(expected.shape(), found.shape());
    let msg = err.to_string();
    assert!(
        msg.starts_with("section w_attn: expected 3-bit packed [")
            && msg.contains("found 2-bit packed ["),
        "{msg}"
    );

    let err = with_meta(meta::SCALE, 2);
    let (name, expected, found) = bad_section(&err, "scale 2 on a x4 file");
    assert_eq!(name, "upsample.w");
    assert_eq!(expected.kind, SectionKind::I8OrI16);
    assert_eq!(
        (expected.shape()[0], found.shape()[0]),
        (3 * 2 * 2, 3 * 4 * 4)
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("section upsample.w: expected i8 or i16 [12, ") && msg.contains("found i"),
        "{msg}"
    );
}

#[test]
fn random_files_are_rejected() {
    let mut rng = Rng(5);
    for len in [0usize, 1, 31, 32, 33, 95, 96, 200, 4096] {
        for _ in 0..50 {
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len >= 8 && rng.below(2) == 0 {
                bytes[..8].copy_from_slice(b"TDQMODEL");
            }
            if len >= 32 && rng.below(2) == 0 {
                bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
                bytes[10..12].fill(0);
                bytes[12..16].copy_from_slice(&(rng.below(4) as u32).to_le_bytes());
                bytes[16..20].copy_from_slice(&(len as u32).to_le_bytes());
                bytes[24..32].fill(0);
                fix_crc(&mut bytes);
            }
            assert!(IntModel::parse(&bytes).is_err());
        }
    }
}

#[test]
fn random_images_sizes_and_buffers() {
    let Some(valid) = model_bytes() else { return };
    let model = IntModel::parse(valid).unwrap();
    let mut rng = Rng(11);
    for _ in 0..12 {
        let (h, w) = (1 + rng.below(20), 1 + rng.below(20));
        let out = run_random(&model, &mut rng, h, w).unwrap();
        assert_eq!(out.len(), h * w * 3 * 16);
    }
    // Wrong buffers.
    let (h, w) = (6, 7);
    let img = vec![128u8; h * w * 3];
    let need = int::scratch_len(h, w).unwrap();
    let mut words = vec![0i32; need.words];
    let mut bytes = vec![0u8; need.bytes];
    let mut out = vec![0u8; h * w * 3 * 16];
    let upscale = |img: &[u8], h, w, out: &mut [u8], words: &mut [i32], bytes: &mut [u8]| {
        int::upscale(&mut ScalarKernels, &model, img, h, w, out, words, bytes)
    };
    assert!(matches!(
        upscale(&img[1..], h, w, &mut out, &mut words, &mut bytes),
        Err(RunError::InputLength { .. })
    ));
    assert!(matches!(
        upscale(&img, h, w, &mut out[1..], &mut words, &mut bytes),
        Err(RunError::OutputLength { .. })
    ));
    assert!(matches!(
        upscale(&img, h, w, &mut out, &mut words[1..], &mut bytes),
        Err(RunError::ScratchTooSmall { .. })
    ));
    assert!(matches!(
        upscale(&img, h, w, &mut out, &mut words, &mut bytes[1..]),
        Err(RunError::ScratchTooSmall { .. })
    ));
    assert!(matches!(
        upscale(&[], 0, w, &mut [], &mut words, &mut bytes),
        Err(RunError::BadSize)
    ));
    assert!(matches!(
        upscale(&img, usize::MAX, 2, &mut out, &mut words, &mut bytes),
        Err(RunError::BadSize)
    ));
    assert!(int::scratch_len(usize::MAX, usize::MAX).is_none());
    assert!(matches!(
        int::upscale_tiled(
            &model,
            &img,
            h,
            w,
            Tiling { tile: 0, halo: 2 },
            &mut out,
            &mut words,
            &mut bytes
        ),
        Err(RunError::BadSize)
    ));
    // Larger buffers than needed are fine.
    let mut words2 = vec![0i32; need.words + 17];
    let mut bytes2 = vec![0u8; need.bytes + 3];
    upscale(&img, h, w, &mut out, &mut words2, &mut bytes2).unwrap();
}

#[test]
fn tiling_rules() {
    let Some(valid) = model_bytes() else { return };
    let model = IntModel::parse(valid).unwrap();
    let mut rng = Rng(21);
    let (h, w) = (19, 13);
    let img: Vec<u8> = (0..h * w * 3).map(|_| rng.next() as u8).collect();
    let whole = {
        let need = int::scratch_len(h, w).unwrap();
        let mut out = vec![0u8; h * w * 48];
        int::upscale(
            &mut ScalarKernels,
            &model,
            &img,
            h,
            w,
            &mut out,
            &mut vec![0; need.words],
            &mut vec![0; need.bytes],
        )
        .unwrap();
        out
    };
    // The tiled run into `out`, with the scratch Tiling::scratch_len asks for.
    let tiled = |tiling: Tiling, out: &mut [u8]| {
        let need = tiling.scratch_len().unwrap();
        let (mut words, mut bytes) = (vec![0; need.words], vec![0; need.bytes]);
        int::upscale_tiled(&model, &img, h, w, tiling, out, &mut words, &mut bytes).unwrap();
    };
    // One core covering the image: identical to whole-image processing.
    let mut out = vec![0u8; h * w * 48];
    tiled(Tiling { tile: 19, halo: 3 }, &mut out);
    assert_eq!(out, whole);
    // Several cores: valid output, deterministic, scratch from Tiling::scratch_len suffices.
    for tiling in [
        Tiling { tile: 8, halo: 4 },
        Tiling { tile: 5, halo: 0 },
        Tiling { tile: 7, halo: 16 },
    ] {
        let mut a = vec![0u8; h * w * 48];
        let mut b = vec![1u8; h * w * 48];
        tiled(tiling, &mut a);
        tiled(tiling, &mut b);
        assert_eq!(a, b, "{tiling:?}");
        let differing = a.iter().zip(&whole).filter(|(x, y)| x != y).count();
        println!(
            "{tiling:?}: {differing} of {} output bytes differ from whole-image",
            a.len()
        );
    }
}
