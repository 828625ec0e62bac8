//! The device half of `scripts/gpu-check.sh`: Set5 parity (CPU oracle vs
//! GPU, SHA-256 per image, both kernel paths) at every bit width, then the
//! kernel benchmark. Needs no data beyond what the bundle carries and no
//! cargo; exits 1 on any mismatch.
//!
//! ```text
//! gpu_parity --models DIR --images DIR [--bench-size 256] [--bench-iters 5]
//! ```
//!
//! `DIR/w4.tdq, w3.tdq, w2.tdq` are `tdquant export` outputs; the images are
//! PNG (RGB/RGBA/gray, 8-bit) LR inputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use tdquant_core::backend::{IntegerBackend, ScalarOracle, UpscaleArgs};
use tdquant_core::int::IntModel;
use tdquant_gpu::{parity, CudaBackend, GpuOperators, KernelPath};

/// H200 HBM3e peak bandwidth, bytes/s (the roofline of the benchmark).
const PEAK_BYTES_PER_S: f64 = 4.8e12;

fn read_png(path: &Path) -> Result<(Vec<u8>, usize, usize), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let px = &buf[..info.buffer_size()];
    let rgb: Vec<u8> = match info.color_type {
        png::ColorType::Rgb => px.to_vec(),
        png::ColorType::Rgba => px
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => px.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => px
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        other => {
            return Err(format!(
                "{}: unsupported colour type {other:?}",
                path.display()
            ))
        }
    };
    Ok((rgb, h, w))
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(models), Some(images)) = (arg(&args, "--models"), arg(&args, "--images")) else {
        eprintln!("usage: gpu_parity --models DIR --images DIR [--bench-size N] [--bench-iters N]");
        return ExitCode::from(2);
    };
    let bench_size: usize = arg(&args, "--bench-size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let bench_iters: usize = arg(&args, "--bench-iters")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    match run(
        Path::new(&models),
        Path::new(&images),
        bench_size,
        bench_iters,
    ) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("gpu_parity: MISMATCH (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("gpu_parity: ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    models: &Path,
    images: &Path,
    bench_size: usize,
    bench_iters: usize,
) -> Result<bool, String> {
    let gpu = CudaBackend::new();
    let info = gpu.device().map_err(|e| e.to_string())?;
    println!("device: {}", info.name);
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(images)
        .map_err(|e| format!("{}: {e}", images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    if pngs.is_empty() {
        return Err(format!("no PNG images in {}", images.display()));
    }
    let inputs: Vec<(String, Vec<u8>, usize, usize)> = pngs
        .iter()
        .map(|p| {
            let (img, h, w) = read_png(p)?;
            let name = p
                .file_stem()
                .map_or("?".into(), |s| s.to_string_lossy().into_owned());
            Ok((name, img, h, w))
        })
        .collect::<Result<_, String>>()?;

    let mut all_ok = true;
    let mut w4: Option<Vec<u8>> = None;
    for bits in [4, 3, 2] {
        let path = models.join(format!("w{bits}.tdq"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let model = IntModel::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let s = model.scale();
        // The CPU oracle is single-threaded: one thread per image.
        let oracle: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = inputs
                .iter()
                .map(|(_, img, h, w)| {
                    let model = &model;
                    scope.spawn(move || {
                        let mut out = vec![0u8; h * w * 3 * s * s];
                        ScalarOracle
                            .upscale(model, img, *h, *w, &mut out)
                            .map(|()| out)
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("oracle thread panicked".into()))
                })
                .collect()
        });
        for ((name, img, h, w), want) in inputs.iter().zip(oracle) {
            let want = want?;
            for path in [KernelPath::Fused, KernelPath::PerOperator] {
                let mut got = vec![0u8; want.len()];
                let args = UpscaleArgs {
                    model: &model,
                    img,
                    h: *h,
                    w: *w,
                    out: &mut got,
                };
                gpu.upscale_path(args, path)
                    .map_err(|e| format!("W{bits} {name}: {e}"))?;
                let p = parity::compare(&want, &got, w * s);
                let verdict = if p.matches() {
                    "identical".to_string()
                } else {
                    all_ok = false;
                    format!(
                        "MISMATCH: {}",
                        p.first_diff
                            .map_or_else(|| "hash".into(), |d| d.to_string())
                    )
                };
                println!(
                    "W{bits}A{bits} {name:<10} {h}x{w} {path:?}: cpu {} gpu {} {verdict}",
                    p.sha_reference, p.sha_other
                );
            }
        }
        if bits == 4 {
            w4 = Some(bytes);
        }
    }

    // ---- benchmark: W4A4, one random bench_size² LR image ----
    let bytes = w4.ok_or("no W4 model")?;
    let model = IntModel::parse(&bytes).map_err(|e| e.to_string())?;
    let (h, w) = (bench_size, bench_size);
    let mut seed = 0x1234_5678_9abc_def1u64;
    let img: Vec<u8> = (0..h * w * 3)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let s = model.scale();
    let mut out = vec![0u8; h * w * 3 * s * s];
    for path in [KernelPath::Fused, KernelPath::PerOperator] {
        let mut upscale = || {
            let args = UpscaleArgs {
                model: &model,
                img: &img,
                h,
                w,
                out: &mut out,
            };
            gpu.upscale_path(args, path).map_err(|e| e.to_string())
        };
        upscale()?; // warm-up
        let mut times = Vec::new();
        for _ in 0..bench_iters.max(1) {
            let t0 = Instant::now();
            upscale()?;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "bench W4A4 {h}x{w} LR x{s} {path:?}: end-to-end {:.1} ms median of {} (incl. model upload and copies), {:.2} images/s",
            median * 1e3,
            times.len(),
            1.0 / median
        );
        let (_, rows) = gpu
            .profile_upscale(&model, &img, h, w, path)
            .map_err(|e| e.to_string())?;
        let total: f64 = rows.iter().map(|r| r.seconds).sum();
        println!(
            "  {:<18} {:>8} {:>10} {:>10} {:>9} {:>8}",
            "kernel", "launches", "ms", "MB", "GB/s", "%4.8TB/s"
        );
        for r in &rows {
            let gbs = r.bytes as f64 / r.seconds.max(1e-12) / 1e9;
            println!(
                "  {:<18} {:>8} {:>10.3} {:>10.1} {:>9.1} {:>8.2}",
                r.kernel,
                r.launches,
                r.seconds * 1e3,
                r.bytes as f64 / 1e6,
                gbs,
                100.0 * gbs * 1e9 / PEAK_BYTES_PER_S
            );
        }
        println!(
            "  kernels total {:.1} ms (each launch synchronised)",
            total * 1e3
        );
    }
    Ok(all_ok)
}
