//! Integer-path PSNR against the fake-quant PSNR of the same bounds
//! (acceptance: within 0.10 dB at W4A4 ×4 on Set5; Set14/B100 and the
//! W3A3/W2A2 gaps are measured with `tdquant eval --int` and reported in
//! `docs/integer-semantics.md`).

use tdquant_host::calib::calibrate::eval_bounds;
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::export::GoldenExport;
use tdquant_host::intmodel::{eval_int, IntSr};

#[test]
fn integer_psnr_within_0_1_db_of_fake_quant_w4a4_set5() {
    let Some(root) = data_root_for_test("int_psnr") else {
        return;
    };
    let bits = 4;
    let mut golden = GoldenExport::new(&root).unwrap();
    let (loaded, exported) = golden.export_with_bounds(bits).unwrap();
    let model = golden.model();
    let sr = IntSr::from_bytes(exported.bytes).unwrap();
    let int = eval_int(&sr, &root, &["Set5"], None).unwrap();
    let fq = eval_bounds(
        model,
        &root,
        &["Set5".to_string()],
        bits,
        Some(&loaded.bounds),
    )
    .unwrap();
    let (pi, pf) = (int.sets[0].mean_psnr_y, fq.sets[0].mean_psnr_y);
    println!(
        "W4A4 Set5 PSNR-Y: integer {pi:.4} dB, fake-quant {pf:.4} dB, gap {:+.4} dB",
        pi - pf
    );
    for (a, b) in int.sets[0].images.iter().zip(&fq.sets[0].images) {
        println!(
            "  {:<10} integer {:.4}  fake-quant {:.4}",
            a.name, a.psnr_y, b.psnr_y
        );
    }
    assert!((pi - pf).abs() <= 0.10, "integer {pi} vs fake-quant {pf}");
}
