//! Export of the integer model from the golden DOBI bounds: file size and
//! compression ratio against the FP32 parameters (≥ 5× at W4A4, ≥ 7× at
//! W2A2), and a parse round trip.

use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::export::GoldenExport;

#[test]
fn export_sizes_and_ratios() {
    let Some(root) = data_root_for("int_export", TestData::Bundle) else {
        return;
    };
    let mut golden = GoldenExport::new(&root).unwrap();
    for bits in [4u8, 3, 2] {
        let out = golden.export(bits).unwrap();
        println!(
            "W{bits}A{bits}: {} bytes, FP32 parameters {} bytes, ratio {:.2}x, stream Q{}, sha256 {}",
            out.bytes.len(),
            out.fp32_bytes,
            out.ratio(),
            out.stream_frac,
            tdquant_host::weights::sha256_hex(&out.bytes)
        );
        let m = tdquant_core::int::IntModel::parse(&out.bytes).unwrap();
        assert_eq!(m.bits().bits(), bits);
        assert_eq!(m.scale(), 4);
        match bits {
            4 => assert!(out.ratio() >= 5.0, "W4A4 ratio {:.3} < 5", out.ratio()),
            2 => assert!(out.ratio() >= 7.0, "W2A2 ratio {:.3} < 7", out.ratio()),
            _ => {}
        }
    }
    println!("calibration stats: {:?}", golden.stats());
}
