//! Image reading of every PNG colour type / bit depth and JPEG, error
//! reporting, and atomic PNG writing.

use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba};
use tdquant_core::crc32;
use tdquant_host::image_io::{read_rgb8, save_png_atomic, ImageIoError};

/// A fresh, empty temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tdquant-image-io-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- a minimal PNG writer (stored deflate) for layouts `image` cannot write

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, ch) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = ch.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(ch);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// PNG with the given IHDR fields, scanlines (without filter bytes, each
/// `row_bytes` long) and extra chunks placed before IDAT.
fn png_bytes(
    w: u32,
    h: u32,
    depth: u8,
    color: u8,
    rows: &[Vec<u8>],
    extra: &[(&[u8; 4], Vec<u8>)],
) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |ty: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = ty.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    for (ty, d) in extra {
        chunk(ty, d);
    }
    let mut raw = Vec::new();
    for r in rows {
        raw.push(0);
        raw.extend_from_slice(r);
    }
    chunk(b"IDAT", &zlib_stored(&raw));
    chunk(b"IEND", &[]);
    out
}

fn px(img: &RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

#[test]
fn png_8bit_colour_types() {
    let d = TempDir::new("png8");
    let gray = ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 50 + y * 100) as u8]));
    gray.save(d.path("g.png")).unwrap();
    let img = read_rgb8(&d.path("g.png")).unwrap();
    assert_eq!(img.dimensions(), (3, 2));
    assert_eq!(px(&img, 2, 1), [200, 200, 200]);

    let ga = ImageBuffer::from_fn(3, 2, |x, _| LumaA([(x * 40) as u8, (x * 100) as u8]));
    ga.save(d.path("ga.png")).unwrap();
    let img = read_rgb8(&d.path("ga.png")).unwrap();
    assert_eq!(px(&img, 0, 0), [0, 0, 0]);
    assert_eq!(
        px(&img, 2, 0),
        [80, 80, 80],
        "alpha dropped, not premultiplied"
    );

    let rgb = RgbImage::from_fn(3, 2, |x, y| Rgb([x as u8, y as u8, 250]));
    rgb.save(d.path("rgb.png")).unwrap();
    assert_eq!(read_rgb8(&d.path("rgb.png")).unwrap(), rgb);

    let rgba = ImageBuffer::from_fn(3, 2, |x, y| {
        Rgba([x as u8 + 10, y as u8 + 20, 30, (x * 40) as u8])
    });
    rgba.save(d.path("rgba.png")).unwrap();
    let img = read_rgb8(&d.path("rgba.png")).unwrap();
    assert_eq!(
        px(&img, 0, 1),
        [10, 21, 30],
        "fully transparent pixel keeps its colour"
    );
    assert_eq!(px(&img, 2, 0), [12, 20, 30]);
}

#[test]
fn png_16bit_colour_types() {
    let d = TempDir::new("png16");
    // (v + 128) / 257: 0 → 0, 128 → 0, 129 → 1, 25828 = 257·100 + 128 → 100,
    // 25829 → 101, 65535 → 255.
    let vals: [u16; 6] = [0, 128, 129, 25828, 25829, 65535];
    let want: [u8; 6] = [0, 0, 1, 100, 101, 255];
    let g16 = ImageBuffer::from_fn(6, 1, |x, _| Luma([vals[x as usize]]));
    g16.save(d.path("g16.png")).unwrap();
    let img = read_rgb8(&d.path("g16.png")).unwrap();
    for x in 0..6 {
        assert_eq!(px(&img, x, 0), [want[x as usize]; 3]);
    }
    let ga16 = ImageBuffer::from_fn(6, 1, |x, _| LumaA([vals[x as usize], 1000]));
    ga16.save(d.path("ga16.png")).unwrap();
    let img = read_rgb8(&d.path("ga16.png")).unwrap();
    for x in 0..6 {
        assert_eq!(px(&img, x, 0), [want[x as usize]; 3]);
    }
    let rgb16 = ImageBuffer::from_fn(6, 1, |x, _| {
        let i = x as usize;
        Rgb([vals[i], vals[5 - i], 257 * 7])
    });
    rgb16.save(d.path("rgb16.png")).unwrap();
    let img = read_rgb8(&d.path("rgb16.png")).unwrap();
    for (x, &v) in want.iter().enumerate() {
        assert_eq!(px(&img, x as u32, 0), [v, want[5 - x], 7]);
    }
    let rgba16 = ImageBuffer::from_fn(6, 1, |x, _| Rgba([vals[x as usize], 0, 65535, 0]));
    rgba16.save(d.path("rgba16.png")).unwrap();
    let img = read_rgb8(&d.path("rgba16.png")).unwrap();
    for (x, &v) in want.iter().enumerate() {
        assert_eq!(px(&img, x as u32, 0), [v, 0, 255]);
    }
}

#[test]
fn png_palette_and_low_bit_depths() {
    let d = TempDir::new("pal");
    // 8-bit palette with tRNS: indices 0..3 over a 4x1 image.
    let plte = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7];
    let p = png_bytes(
        4,
        1,
        8,
        3,
        &[vec![0, 1, 2, 3]],
        &[(b"PLTE", plte.clone()), (b"tRNS", vec![0, 128])],
    );
    std::fs::write(d.path("pal8.png"), p).unwrap();
    let img = read_rgb8(&d.path("pal8.png")).unwrap();
    assert_eq!(img.dimensions(), (4, 1));
    assert_eq!(
        (0..4).map(|x| px(&img, x, 0)).collect::<Vec<_>>(),
        vec![[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 8, 7]]
    );
    // 2-bit palette: indices 3,2,1,0 packed in one byte (0b11_10_01_00).
    let p = png_bytes(4, 1, 2, 3, &[vec![0b1110_0100]], &[(b"PLTE", plte)]);
    std::fs::write(d.path("pal2.png"), p).unwrap();
    let img = read_rgb8(&d.path("pal2.png")).unwrap();
    assert_eq!(
        (0..4).map(|x| px(&img, x, 0)).collect::<Vec<_>>(),
        vec![[9, 8, 7], [0, 0, 255], [0, 255, 0], [255, 0, 0]]
    );
    // 1-bit gray: 1,0,1,1,0,0,0,1 → 255/0.
    let p = png_bytes(8, 1, 1, 0, &[vec![0b1011_0001]], &[]);
    std::fs::write(d.path("g1.png"), p).unwrap();
    let img = read_rgb8(&d.path("g1.png")).unwrap();
    let got: Vec<u8> = (0..8).map(|x| px(&img, x, 0)[0]).collect();
    assert_eq!(got, vec![255, 0, 255, 255, 0, 0, 0, 255]);
    // 4-bit gray: 0x0F, 0x5A → 0, 255, 85, 170 (scaled by 17).
    let p = png_bytes(4, 1, 4, 0, &[vec![0x0F, 0x5A]], &[]);
    std::fs::write(d.path("g4.png"), p).unwrap();
    let img = read_rgb8(&d.path("g4.png")).unwrap();
    let got: Vec<[u8; 3]> = (0..4).map(|x| px(&img, x, 0)).collect();
    assert_eq!(got, vec![[0; 3], [255; 3], [85; 3], [170; 3]]);
    // Our hand-made writer also round-trips plain RGB.
    let p = png_bytes(2, 1, 8, 2, &[vec![1, 2, 3, 4, 5, 6]], &[]);
    std::fs::write(d.path("rgb.png"), p).unwrap();
    let img = read_rgb8(&d.path("rgb.png")).unwrap();
    assert_eq!((px(&img, 0, 0), px(&img, 1, 0)), ([1, 2, 3], [4, 5, 6]));
}

#[test]
fn jpeg_colour_and_gray() {
    let d = TempDir::new("jpeg");
    let rgb = RgbImage::from_pixel(16, 8, Rgb([200, 100, 50]));
    rgb.save(d.path("c.jpg")).unwrap();
    let img = read_rgb8(&d.path("c.jpg")).unwrap();
    assert_eq!(img.dimensions(), (16, 8));
    for p in img.pixels() {
        for (a, b) in p.0.iter().zip([200u8, 100, 50]) {
            assert!(a.abs_diff(b) <= 3, "{:?}", p.0);
        }
    }
    let gray = ImageBuffer::from_pixel(8, 8, Luma([90u8]));
    gray.save(d.path("g.jpeg")).unwrap();
    let img = read_rgb8(&d.path("g.jpeg")).unwrap();
    for p in img.pixels() {
        assert!(
            p.0[0] == p.0[1] && p.0[1] == p.0[2] && p.0[0].abs_diff(90) <= 1,
            "{:?}",
            p.0
        );
    }
}

#[test]
fn unreadable_files_give_typed_errors_naming_the_path() {
    let d = TempDir::new("bad");
    let missing = d.path("missing.png");
    let e = read_rgb8(&missing).unwrap_err();
    assert!(matches!(e, ImageIoError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.png"), "{e}");

    let junk = d.path("junk.png");
    std::fs::write(&junk, b"this is not an image at all").unwrap();
    let e = read_rgb8(&junk).unwrap_err();
    assert!(matches!(e, ImageIoError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("junk.png"), "{e}");

    // A valid PNG cut short.
    let good = d.path("good.png");
    RgbImage::from_fn(32, 32, |x, y| Rgb([x as u8, y as u8, 9]))
        .save(&good)
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.path("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_rgb8(&cut).unwrap_err();
    assert!(matches!(e, ImageIoError::Decode { .. }), "{e:?}");
    let msg = format!("{:#}", anyhow::Error::new(e));
    assert!(msg.contains("cut.png"), "{msg}");

    // A PNG with a broken CRC in IHDR.
    let mut bad = bytes.clone();
    bad[29] ^= 0xff;
    let crc = d.path("crc.png");
    std::fs::write(&crc, &bad).unwrap();
    assert!(matches!(
        read_rgb8(&crc).unwrap_err(),
        ImageIoError::Decode { .. }
    ));
    // anyhow shows the path and the decoder's reason.
    let msg = format!("{:#}", anyhow::Error::new(read_rgb8(&junk).unwrap_err()));
    assert!(
        msg.contains("junk.png") && msg.len() > "cannot decode image ".len() + 10,
        "{msg}"
    );
}

fn assert_no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.contains(".tmp-"), "temporary file {n} left behind");
    }
}

#[test]
fn atomic_png_write() {
    let d = TempDir::new("atomic");
    let img = RgbImage::from_fn(5, 4, |x, y| Rgb([x as u8 * 40, y as u8 * 60, 77]));
    let out = d.path("out.png");
    save_png_atomic(&out, &img).unwrap();
    assert_eq!(read_rgb8(&out).unwrap(), img);
    assert_eq!(d.entries(), vec!["out.png".to_string()]);

    // Overwriting replaces the file.
    let img2 = RgbImage::from_pixel(2, 2, Rgb([1, 2, 3]));
    save_png_atomic(&out, &img2).unwrap();
    assert_eq!(read_rgb8(&out).unwrap(), img2);
    assert_eq!(d.entries(), vec!["out.png".to_string()]);

    // Into a missing directory: an error naming the target, nothing created.
    let nowhere = d.path("no/such/dir/x.png");
    let e = save_png_atomic(&nowhere, &img).unwrap_err();
    assert!(matches!(e, ImageIoError::Write { .. }), "{e:?}");
    assert!(e.to_string().contains("x.png"), "{e}");
    assert!(!d.path("no").exists());

    // The target is a non-empty directory: rename fails, the temp file is
    // removed and the directory is untouched.
    let target_dir = d.path("target.png");
    std::fs::create_dir(&target_dir).unwrap();
    std::fs::write(target_dir.join("keep"), b"x").unwrap();
    assert!(save_png_atomic(&target_dir, &img).is_err());
    assert!(target_dir.join("keep").is_file());
    assert_no_temp_files(&d.0);

    // An image the encoder rejects (zero size): error, no file.
    let empty = RgbImage::new(0, 0);
    let z = d.path("zero.png");
    let e = save_png_atomic(&z, &empty).unwrap_err();
    assert!(
        matches!(e, ImageIoError::Encode { .. } | ImageIoError::Write { .. }),
        "{e:?}"
    );
    assert!(!z.exists());
    assert_no_temp_files(&d.0);
    assert_eq!(
        d.entries(),
        vec!["out.png".to_string(), "target.png".to_string()]
    );
}
