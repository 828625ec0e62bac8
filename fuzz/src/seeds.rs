//! Valid inputs of every format, built in code: the starting points of the mutation fuzzer and
//! the initial libFuzzer corpora (`mutate --write-seeds DIR`). Extra `.tdq` seeds (a real export
//! is 700 KB, too large to build here) are read from the folder `TDQ_FUZZ_SEEDS` if set.

use tdquant_core::container::{ContainerWriter, Dtype, SectionSpec};
use tdquant_host::calib::bounds_file::bound_keys;
use tdquant_host::calib::data::SplitMix64;
use tdquant_host::calib::dqc::{DqcConfig, DqcState, LossRecord};
use tdquant_host::model::hook::SiteId;

use crate::formats::Safetensors;
use crate::pth::{self, Pickler};
use crate::{Target, FINGERPRINT, ITERS};

/// The storages every fuzzed pickle is archived with: `0` 24 f32, `1` 4 f64, `2` 4 f16,
/// `3` 6 i64.
pub fn pth_storages() -> Vec<(&'static str, Vec<u8>)> {
    let f32s: Vec<u8> = (0..24)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    let f64s: Vec<u8> = (0..4)
        .flat_map(|i| (i as f64 - 1.5).to_le_bytes())
        .collect();
    let f16s: Vec<u8> = [0x3C00u16, 0xC000, 0x0001, 0x7C00]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let i64s: Vec<u8> = (0..6i64).flat_map(|i| (i - 2).to_le_bytes()).collect();
    vec![("0", f32s), ("1", f64s), ("2", f16s), ("3", i64s)]
}

/// Pickles of state dicts over [`pth_storages`], covering every tensor form the reader knows.
pub fn pth_pickles() -> Vec<Vec<u8>> {
    let body = |p: &mut Pickler| {
        p.str("c")
            .tensor("FloatStorage", "0", 24, 0, &[4, 6], &[6, 1]);
        p.op(b"q\x06")
            .str("t")
            .tensor("FloatStorage", "0", 24, 0, &[6, 4], &[1, 6]);
        p.str("s")
            .tensor("FloatStorage", "0", 24, 1, &[2, 3], &[12, 3]);
        p.str("d").tensor("DoubleStorage", "1", 4, 0, &[4], &[1]);
        p.str("h")
            .tensor("HalfStorage", "2", 4, 0, &[2, 2], &[2, 1]);
        p.str("layers.0.residual_group.blocks.0.attn.relative_position_index")
            .tensor("LongStorage", "3", 6, 0, &[2, 3], &[3, 1]);
        p.str("e")
            .tensor("FloatStorage", "0", 24, 0, &[0, 3], &[3, 1]);
        p.str("alias").op(b"h\x06");
    };
    let mut out = Vec::new();
    // {"params": OrderedDict(...)} with `_metadata` set by BUILD, as torch.save writes.
    let mut p = Pickler::default();
    p.op(b"\x80\x02}q\x00").str("params");
    p.global("collections", "OrderedDict").op(b")Rq\x01(");
    body(&mut p);
    p.op(b"u}q\x02").str("version").int(1).op(b"sbs.");
    out.push(p.0);
    // A bare state dict, a `params_ema` one, and a `_rebuild_parameter` wrapper.
    let mut p = Pickler::default();
    p.op(b"\x80\x02");
    p.global("collections", "OrderedDict").op(b")R(");
    body(&mut p);
    p.op(b"u.");
    out.push(p.0);
    let mut p = Pickler::default();
    p.op(b"\x80\x02}").str("params_ema").op(b"}(");
    p.str("w")
        .global("torch._utils", "_rebuild_parameter")
        .op(b"(");
    p.tensor("FloatStorage", "0", 24, 2, &[3, 2], &[2, 1]);
    p.op(b"\x88}tR");
    p.op(b"us.");
    out.push(p.0);
    out
}

/// A small weights file in safetensors form.
fn weights_safetensors() -> Vec<u8> {
    let st = Safetensors {
        metadata: None,
        tensors: vec![
            (
                "a".into(),
                safetensors::Dtype::F32,
                vec![2, 2],
                vec![0u8; 16],
            ),
            ("b".into(), safetensors::Dtype::F16, vec![3], vec![0x3C; 6]),
        ],
    };
    st.write().expect("valid tensors")
}

/// `.tdq` containers of every section dtype.
fn tdq_containers() -> Vec<Vec<u8>> {
    let packed = [0x5Au8; 8];
    let i32s: Vec<u8> = (0..6i32)
        .flat_map(|i| (i * 1000 - 7).to_le_bytes())
        .collect();
    let f32s: Vec<u8> = (0..4).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let specs = [
        SectionSpec {
            name: "meta",
            dtype: Dtype::I32,
            bits: 0,
            shape: &[6],
            data: &i32s,
        },
        SectionSpec {
            name: "w.packed",
            dtype: Dtype::Packed,
            bits: 4,
            shape: &[2, 8],
            data: &packed,
        },
        SectionSpec {
            name: "u8",
            dtype: Dtype::U8,
            bits: 0,
            shape: &[2, 2, 1],
            data: &[1, 2, 3, 4],
        },
        SectionSpec {
            name: "f",
            dtype: Dtype::F32,
            bits: 0,
            shape: &[4],
            data: &f32s,
        },
    ];
    let mut out = Vec::new();
    for n in [specs.len(), 1] {
        let s = &specs[..n];
        match ContainerWriter::required_len(s) {
            Ok(len) => {
                let mut b = vec![0u8; len];
                if ContainerWriter::write(s, &mut b).is_ok() {
                    out.push(b);
                }
            }
            Err(e) => panic!("seed container: {e:?}"),
        }
    }
    out
}

/// A metadata-less bounds file (as the golden ones), plus `n_bit` extras.
fn bounds_files() -> Vec<Vec<u8>> {
    let mut tensors = Vec::new();
    for (i, site) in SiteId::all().enumerate() {
        let (l, u) = bound_keys(site);
        let lo = -1.0 - i as f32 / 512.0;
        tensors.push((
            l,
            safetensors::Dtype::F32,
            vec![1],
            lo.to_le_bytes().to_vec(),
        ));
        tensors.push((
            u,
            safetensors::Dtype::F32,
            vec![1],
            (-lo).to_le_bytes().to_vec(),
        ));
    }
    let plain = Safetensors {
        metadata: None,
        tensors: tensors.clone(),
    };
    let first = SiteId::all().next().expect("sites").checkpoint_prefix();
    tensors.push((
        format!("{first}.n_bit"),
        safetensors::Dtype::F32,
        vec![1],
        4f32.to_le_bytes().to_vec(),
    ));
    let extra = Safetensors {
        metadata: Some([("other".to_string(), "{}".to_string())].into()),
        tensors,
    };
    vec![plain.write().expect("valid"), extra.write().expect("valid")]
}

/// Checkpoints at iterations 0 and 3 of a [`ITERS`]-iteration run.
fn checkpoints() -> Vec<Vec<u8>> {
    let cfg = DqcConfig {
        iters: ITERS,
        ..DqcConfig::paper()
    };
    let mut out = Vec::new();
    for it in [0usize, 3] {
        let bounds = SiteId::all().map(|_| (-1.0f32, 1.0f32)).collect();
        let mut s = DqcState::new(bounds, &cfg, SplitMix64::new(7));
        s.iteration = it;
        s.adam.t = it as u64;
        s.log = (1..=it)
            .map(|i| LossRecord {
                iter: i,
                lr: 1e-3,
                loss: 0.5,
                output: 0.25,
                feature: 0.25,
            })
            .collect();
        let p = std::env::temp_dir().join(format!("tdq-fuzz-seed-{}.ckpt", std::process::id()));
        s.save(&p, FINGERPRINT).expect("writing a seed checkpoint");
        out.push(std::fs::read(&p).expect("reading it back"));
        let _ = std::fs::remove_file(&p);
    }
    out
}

/// Small PNGs of several colour types and bit depths, and a JPEG.
fn images() -> Vec<Vec<u8>> {
    use image::{DynamicImage, ImageFormat};
    let rgb = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 80, y as u8 * 120, 7]));
    let imgs = [
        DynamicImage::ImageRgb8(rgb.clone()),
        DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(2, 2, |x, _| {
            image::Luma([x as u16 * 40000])
        })),
        DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            1,
            1,
            image::Rgba([1, 2, 3, 4]),
        )),
        DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(
            2,
            1,
            image::LumaA([9, 200]),
        )),
    ];
    let mut out = Vec::new();
    for img in imgs {
        let mut b = std::io::Cursor::new(Vec::new());
        img.write_to(&mut b, ImageFormat::Png).expect("png");
        out.push(b.into_inner());
    }
    let mut b = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(rgb)
        .write_to(&mut b, ImageFormat::Jpeg)
        .expect("jpeg");
    out.push(b.into_inner());
    out
}

/// The seeds of `target`.
pub fn seeds(target: Target) -> Vec<Vec<u8>> {
    match target {
        Target::Pth => {
            let st = pth_storages();
            let mut v: Vec<Vec<u8>> = pth_pickles().iter().map(|p| pth::archive(p, &st)).collect();
            v.extend(pth_pickles());
            v.push(weights_safetensors());
            v
        }
        Target::Tdq => {
            let mut v = tdq_containers();
            if let Some(dir) = std::env::var_os("TDQ_FUZZ_SEEDS") {
                if let Ok(rd) = std::fs::read_dir(dir) {
                    let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
                    files.sort();
                    for f in files {
                        if f.extension().is_some_and(|e| e == "tdq") {
                            if let Ok(b) = std::fs::read(&f) {
                                v.push(b);
                            }
                        }
                    }
                }
            }
            v
        }
        Target::Bounds => bounds_files(),
        Target::Checkpoint => checkpoints(),
        Target::Image => images(),
    }
}
