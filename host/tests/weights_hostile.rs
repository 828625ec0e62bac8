//! Hostile `.pth` files, each built here: the reader ends in a clear error naming the problem,
//! in bounded time and memory, never a crash; valid strided tensors read exactly; and the
//! real checkpoint decodes to the same bits as candle's pickle reader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::weights::{self, WeightsError};

/// The stored zip and pickle writer the fuzzer builds its `.pth` seeds with.
#[path = "../../fuzz/src/pth.rs"]
mod pth;

use pth::Pickler;

impl Pickler {
    /// `{"params": OrderedDict(items)}` where `items` writes key/value pairs.
    pub fn state_dict(f: impl FnOnce(&mut Pickler)) -> Vec<u8> {
        let mut p = Pickler::default();
        p.op(b"\x80\x02}").str("params");
        p.global("collections", "OrderedDict").op(b")R(");
        f(&mut p);
        p.op(b"us.");
        p.0
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn err_of(bytes: &[u8]) -> WeightsError {
    let t0 = Instant::now();
    let r = weights::read_raw(bytes, "crafted.pth");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    match r {
        Ok((_, m)) => panic!("crafted file loaded {} tensors", m.len()),
        Err(e) => {
            println!("{e}");
            e
        }
    }
}

fn assert_corrupt(e: &WeightsError, needle: &str) {
    assert!(matches!(e, WeightsError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`");
}

/// 300,000 nested lists (`]` ×N, `a` ×(N−1)): a stack overflow for a recursive decoder.
pub fn deep_nesting(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    pth::archive(&p, &[])
}

/// A memo object re-referenced into a tuple of itself, `steps` times: 2^steps objects for a
/// decoder that copies on GET, under `params` so the reader looks at it.
pub fn memo_bomb(steps: usize) -> Vec<u8> {
    let mut p = b"\x80\x02}X\x06\x00\x00\x00params]q\x000".to_vec();
    for _ in 0..steps {
        p.extend(b"h\x00h\x00\x86q\x000");
    }
    p.extend(b"h\x00s.");
    pth::archive(&p, &[])
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let b = deep_nesting(300_000);
    assert!(b.len() > 600_000);
    let e = err_of(&b);
    assert_corrupt(&e, "nested deeper than 100 levels");
    assert!(e.to_string().contains("a/data.pkl: pickle byte "), "{e}");
}

#[test]
fn memo_bomb_is_linear() {
    // Under the depth limit: shared references, 2^90 leaves for a copying decoder.
    let e = err_of(&memo_bomb(90));
    assert!(matches!(e, WeightsError::NoStateDict { .. }), "{e:?}");
    // Past it: refused by depth.
    assert_corrupt(&err_of(&memo_bomb(150)), "nested deeper");
    // A list appended to itself (a cycle) is never walked; appended again and again, its
    // depth grows until refused.
    let p = b"\x80\x02]q\x00h\x00a.";
    let e = err_of(&pth::archive(p, &[]));
    assert!(matches!(e, WeightsError::NoStateDict { .. }), "{e:?}");
    let mut p = b"\x80\x02]q\x00".to_vec();
    p.extend(b"h\x00a".repeat(200));
    p.push(b'.');
    assert_corrupt(&err_of(&pth::archive(&p, &[])), "nested deeper");
}

#[test]
fn huge_declared_lengths_are_checked() {
    // A string claiming 4 GiB in a 20-byte pickle.
    let p = b"\x80\x02X\xff\xff\xff\xffabc.";
    assert_corrupt(&err_of(&pth::archive(p, &[])), "string of 4294967295 bytes");
    let p = b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc.";
    assert_corrupt(
        &err_of(&pth::archive(p, &[])),
        "string of 18446744073709551615",
    );
    // A memo key far beyond anything stored: no table sized by it.
    let p = b"\x80\x02]r\xff\xff\xff\xffj\xfe\xff\xff\xff.";
    assert_corrupt(
        &err_of(&pth::archive(p, &[])),
        "memo key 4294967294 was never stored",
    );
    // A tensor whose size overflows, one larger than its storage, one past its end, one whose
    // storage lies about its length.
    let data = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    for (numel, offset, size, stride, needle) in [
        (4, 0, vec![1i64 << 40, 1 << 40], vec![1, 1], "overflows"),
        (4, 0, vec![0, 1 << 40, 1 << 40], vec![1, 1, 1], "overflows"),
        (4, 0, vec![8], vec![1], "more than the 4 of storage 0"),
        (4, 3, vec![2], vec![1], "reaches past the 4 elements"),
        (4, 0, vec![2, 2], vec![1 << 62, 1], "reaches past"),
        (
            1 << 40,
            0,
            vec![2],
            vec![1],
            "declares 1099511627776 elements",
        ),
        (
            4,
            0,
            vec![-3, 2],
            vec![1, 1],
            "dimension 0 is negative (-3)",
        ),
        (4, -1, vec![2], vec![1], "storage offset is -1"),
    ] {
        let pkl = Pickler::state_dict(|p| {
            p.str("w")
                .tensor("FloatStorage", "0", numel, offset, &size, &stride);
        });
        let e = err_of(&pth::archive(&pkl, &[("0", data.clone())]));
        assert_corrupt(&e, needle);
        assert!(e.to_string().contains("tensor `w`"), "{e}");
    }
    // Zip records that lie: an entry count the directory cannot hold, a directory past the end.
    let good = pth::archive(&Pickler::state_dict(|_| {}), &[]);
    let eocd = good.len() - 22;
    let mut b = good.clone();
    b[eocd + 10..eocd + 12].copy_from_slice(&0xFFFEu16.to_le_bytes());
    assert_corrupt(&err_of(&b), "declares 65534 entries");
    let mut b = good.clone();
    b[eocd + 16..eocd + 20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    assert_corrupt(&err_of(&b), "central directory at byte 4294967280");
    // An unknown storage type is a dtype problem, named.
    let pkl = Pickler::state_dict(|p| {
        p.str("w").tensor("IntStorage", "0", 4, 0, &[4], &[1]);
    });
    let e = err_of(&pth::archive(&pkl, &[("0", data.clone())]));
    assert!(
        matches!(&e, WeightsError::DtypeUnsupported { key, dtype } if key == "w" && dtype.contains("torch.IntStorage")),
        "{e:?}"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let data = f32_bytes(&(0..24).map(|i| i as f32).collect::<Vec<_>>());
    let pkl = Pickler::state_dict(|p| {
        p.str("w")
            .tensor("FloatStorage", "0", 24, 0, &[2, 3, 4], &[12, 4, 1]);
    });
    let full = pth::archive(&pkl, &[("0", data)]);
    let (_, m) = weights::read_raw(&full, "full.pth").unwrap();
    assert_eq!(m["w"].dims(), &[2, 3, 4]);
    for len in 0..full.len() {
        let r = weights::read_raw(&full[..len], "cut.pth");
        assert!(r.is_err(), "prefix of {len} bytes loaded");
    }
    // Truncating only the pickle (CRC fixed) never loads either.
    for len in 0..pkl.len() {
        let b = pth::archive(&pkl[..len], &[("0", vec![0; 96])]);
        assert!(
            weights::read_raw(&b, "cut.pkl").is_err(),
            "pickle prefix {len}"
        );
    }
}

#[test]
fn strided_and_other_dtypes_read_exactly() {
    let vals: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    // (name, storage class, storage key, storage numel, offset, size, stride): row-major,
    // column-major (a transposed weight), an arbitrary strided view with an offset, a size-1
    // dimension with a meaningless stride, and the f64 and f16 storages.
    type View = (
        &'static str,
        &'static str,
        &'static str,
        i64,
        i64,
        &'static [i64],
        &'static [i64],
    );
    const VIEWS: [View; 6] = [
        ("c", "FloatStorage", "0", 24, 0, &[4, 6], &[6, 1]),
        ("f", "FloatStorage", "0", 24, 0, &[4, 6], &[1, 4]),
        ("s", "FloatStorage", "0", 24, 1, &[2, 3], &[12, 3]),
        ("one", "FloatStorage", "0", 24, 5, &[1, 2], &[i64::MAX, 2]),
        ("d", "DoubleStorage", "1", 2, 0, &[2], &[1]),
        ("h", "HalfStorage", "2", 2, 0, &[2], &[1]),
    ];
    let pkl = Pickler::state_dict(|p| {
        for (name, class, key, numel, offset, size, stride) in VIEWS {
            p.str(name).tensor(class, key, numel, offset, size, stride);
        }
    });
    let doubles: Vec<u8> = [1.25f64, -2.5]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let halves: Vec<u8> = [0x3C00u16, 0xC000]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let b = pth::archive(
        &pkl,
        &[("0", f32_bytes(&vals)), ("1", doubles), ("2", halves)],
    );
    let (_, m) = weights::read_raw(&b, "strided.pth").unwrap();
    let v2 = |k: &str| {
        m[k].to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(v2("c"), vals);
    let f: Vec<f32> = (0..4)
        .flat_map(|i| (0..6).map(move |j| (i, j)))
        .map(|(i, j)| vals[i + 4 * j])
        .collect();
    assert_eq!(v2("f"), f);
    assert_eq!(
        v2("s"),
        vec![vals[1], vals[4], vals[7], vals[13], vals[16], vals[19]]
    );
    assert_eq!(v2("one"), vec![vals[5], vals[7]]);
    assert_eq!(m["d"].dtype(), DType::F64);
    assert_eq!(v2("d"), vec![1.25, -2.5]);
    assert_eq!(m["h"].dtype(), DType::F16);
    assert_eq!(v2("h"), vec![1.0, -2.0]);
}

#[test]
fn storage_shared_by_many_tensors_is_bounded() {
    // 2,000 tensors viewing one 64 KiB storage: 128 MB decoded from a ~200 KB file. Refused
    // once the tensors exceed twice the file's size.
    let data = vec![0u8; 1 << 16];
    let pkl = Pickler::state_dict(|p| {
        for i in 0..2000 {
            p.str(&format!("w{i}"))
                .tensor("FloatStorage", "0", 1 << 14, 0, &[1 << 14], &[1]);
        }
    });
    let e = err_of(&pth::archive(&pkl, &[("0", data)]));
    assert_corrupt(&e, "a storage shared by too many tensors");
}

#[test]
fn special_files_are_refused_before_reading() {
    let e = weights::load("/dev/zero").unwrap_err();
    println!("{e}");
    match &e {
        WeightsError::Io { cause, .. } => {
            assert_eq!(cause.kind(), std::io::ErrorKind::InvalidInput)
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("/dev/zero") && e.to_string().contains("character device"));
    // A FIFO with no writer: refused at once, not waited on.
    let dir = std::env::temp_dir().join(format!("tdq-weights-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("w.pth");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let t0 = Instant::now();
    let e = weights::load(&fifo).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("a FIFO, not a regular file"), "{e}");
    let e = weights::load(&dir).unwrap_err();
    assert!(e.to_string().contains("a directory"), "{e}");
    assert!(weights::file_sha256("/dev/zero").is_err());
    // A (sparse) file one byte over the cap: refused from its size, nothing read.
    let big = dir.join("big.pth");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(weights::MAX_WEIGHTS_FILE_BYTES + 1).unwrap();
    let t0 = Instant::now();
    let e = weights::load(&big).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2));
    match &e {
        WeightsError::Io { cause, .. } => {
            assert_eq!(cause.kind(), std::io::ErrorKind::FileTooLarge)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .contains("1073741825 bytes, more than the 1073741824 accepted"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tdquant() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tdquant"))
}

/// Peak RSS (KiB) of all waited-for children so far.
fn children_max_rss_kib() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) },
        0
    );
    ru.ru_maxrss
}

/// The CLI given each crafted file as `--model` exits 1 with a message naming the problem, no
/// panic text, within 20 s and 512 MiB.
#[test]
fn cli_refuses_crafted_models_in_bounded_memory() {
    let dir = std::env::temp_dir().join(format!("tdq-weights-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.png");
    image::RgbImage::from_pixel(4, 4, image::Rgb([9, 99, 199]))
        .save(&input)
        .unwrap();
    let deep = dir.join("deep.pth");
    std::fs::write(&deep, deep_nesting(300_000)).unwrap();
    let bomb = dir.join("bomb.pth");
    std::fs::write(&bomb, memo_bomb(90)).unwrap();
    let cases: [(&Path, &str); 3] = [
        (&deep, "nested deeper than 100 levels"),
        (&bomb, "no state dict"),
        (
            Path::new("/dev/zero"),
            "character device, not a regular file",
        ),
    ];
    for (model, needle) in cases {
        let t0 = Instant::now();
        let out = tdquant()
            .arg("upscale")
            .arg(&input)
            .arg("-o")
            .arg(dir.join("out.png"))
            .arg("--model")
            .arg(model)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        println!(
            "{}: {:?} in {:?}: {err}",
            model.display(),
            out.status,
            t0.elapsed()
        );
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(20));
    }
    let rss = children_max_rss_kib();
    println!("peak child RSS {rss} KiB");
    assert!(rss < 512 * 1024, "a child peaked at {rss} KiB");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real checkpoint decodes to exactly the tensors candle's own pickle reader gives.
#[test]
fn real_checkpoint_matches_candle_pickle_bit_for_bit() {
    let Some(root) = data_root_for_test("real_checkpoint_matches_candle") else {
        return;
    };
    let path: PathBuf = root.join("models/swinir_light_x4_local.pth");
    let bytes = std::fs::read(&path).unwrap();
    let (_, ours) = weights::read_raw(&bytes, "real").unwrap();
    let theirs = candle_reference(&bytes);
    assert_eq!(ours.len(), 330);
    assert_eq!(theirs.len(), 330);
    for (k, t) in &theirs {
        let a = ours[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(ours[k].dims(), t.dims(), "{k}");
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{k} differs");
    }
}

/// The tensors of the real checkpoint through `candle_core::pickle` (contiguous or
/// column-major, as that checkpoint has), with the entries found by a central-directory scan.
fn candle_reference(b: &[u8]) -> HashMap<String, Tensor> {
    use candle_core::pickle::{Object, Stack};
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let mut entries = HashMap::new();
    for i in 0..b.len() - 4 {
        if b[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            let n = u16_at(i + 28);
            let name = String::from_utf8_lossy(&b[i + 46..i + 46 + n]).into_owned();
            let lho = u32_at(i + 42);
            let start = lho + 30 + u16_at(lho + 26) + u16_at(lho + 28);
            entries.insert(name, &b[start..start + u32_at(i + 20)]);
        }
    }
    let pkl = entries
        .keys()
        .find(|k| k.ends_with("data.pkl"))
        .unwrap()
        .clone();
    let dir = std::path::PathBuf::from(pkl.strip_suffix(".pkl").unwrap());
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut std::io::Cursor::new(entries[&pkl]))
        .unwrap();
    let Object::Dict(top) = stack.finalize().unwrap() else {
        panic!()
    };
    let (_, Object::Dict(state)) = top
        .into_iter()
        .find(|(k, _)| k == &Object::Unicode("params".into()))
        .unwrap()
    else {
        panic!()
    };
    let mut out = HashMap::new();
    for (name, value) in state {
        let Object::Unicode(key) = name.clone() else {
            panic!()
        };
        if weights::is_ignored_buffer(&key) {
            continue;
        }
        let Ok(Some(info)) = value.into_tensor_info(name, &dir) else {
            continue;
        };
        let dims = info.layout.dims().to_vec();
        let n: usize = dims.iter().product::<usize>() * 4;
        let s = info.layout.start_offset();
        let raw = &entries[&info.path][s..s + n];
        let t = if info.layout.is_contiguous() {
            Tensor::from_raw_buffer(raw, info.dtype, &dims, &Device::Cpu).unwrap()
        } else {
            let rev: Vec<usize> = dims.iter().rev().copied().collect();
            let perm: Vec<usize> = (0..dims.len()).rev().collect();
            Tensor::from_raw_buffer(raw, info.dtype, &rev, &Device::Cpu)
                .unwrap()
                .permute(perm)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        out.insert(key, t);
    }
    out
}
