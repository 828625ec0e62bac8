//! Integer vs fake-quant PSNR for one bit width, set and conv precision (the
//! measurements of `docs/integer-semantics.md`):
//!
//! ```text
//! cargo run --release -p tdquant-host --example int_experiment -- BITS SET CONVS [fq]
//!   BITS   2 | 3 | 4            (golden dobi_released_wBITS bounds)
//!   SET    Set5 | Set14 | B100
//!   CONVS  conv_first,rstb,conv_after_body,upsample weight bits, e.g. 8,8,8,8 or 16,8,8,16
//!   fq     also evaluate the fake-quant model
//! ```
use std::time::Instant;
use tdquant_host::calib::calibrate::eval_bounds;
use tdquant_host::data_root::data_root;
use tdquant_host::export::{calib_stats, export, load_export_bounds, ConvBits, ExportOptions};
use tdquant_host::intmodel::{eval_int, IntSr};
use tdquant_host::model::SwinIR;

fn main() -> anyhow::Result<()> {
    let root = data_root(None);
    let args: Vec<String> = std::env::args().collect();
    let bits: u8 = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(4);
    let set = args.get(2).cloned().unwrap_or("Set5".into());
    let variant = args.get(3).cloned().unwrap_or("i8".into());
    let weights = tdquant_host::weights::load(root.join("models/swinir_light_x4_local.pth"))?;
    let model = SwinIR::from_weights(&weights)?;
    let loaded = load_export_bounds(
        &root.join(format!("golden/dobi_released_w{bits}.safetensors")),
        &tdquant_host::calib::bounds_file::BoundsExpect {
            bits: Some(bits),
            ..Default::default()
        },
    )?;
    let stats = calib_stats(&model, loaded.calibration_batch.as_ref().unwrap())?;
    println!("{stats:?}");
    let b = |s: &str| {
        if s == "16" {
            ConvBits::I16
        } else {
            ConvBits::I8
        }
    };
    let v: Vec<&str> = variant.split(',').collect();
    let opts = ExportOptions {
        conv_first: b(v[0]),
        rstb_conv: b(v.get(1).unwrap_or(&"8")),
        conv_after_body: b(v.get(2).unwrap_or(&"8")),
        upsample: b(v.get(3).unwrap_or(&"8")),
    };
    let out = export(&weights, &loaded.bounds, bits, &stats, &opts)?;
    println!(
        "{opts:?}: {} bytes ratio {:.3} F={}",
        out.bytes.len(),
        out.ratio(),
        out.stream_frac
    );
    let sr = IntSr::from_bytes(out.bytes)?;
    let t = Instant::now();
    let r = eval_int(&sr, &root, &[set.as_str()], None)?;
    println!(
        "int: {:?} in {:.1}s",
        r.sets.iter().map(|s| s.mean_psnr_y).collect::<Vec<_>>(),
        t.elapsed().as_secs_f64()
    );
    if args.get(4).is_some() {
        let t = Instant::now();
        let f = eval_bounds(
            &model,
            &root,
            std::slice::from_ref(&set),
            bits,
            Some(&loaded.bounds),
        )?;
        println!(
            "fq: {:?} in {:.1}s",
            f.sets.iter().map(|s| s.mean_psnr_y).collect::<Vec<_>>(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
