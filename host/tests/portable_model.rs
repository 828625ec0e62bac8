//! The device path (`model::kernels::portable`, what `--device cuda` runs) on the CPU, for the
//! whole model: the FP forward, the fake-quant forward and the DQC loss and bound gradients
//! equal the fused CPU kernels' within float reassociation. Its own test binary, because
//! `run_portable_on_cpu` switches the whole process.

#[path = "common/device_pass.rs"]
mod device_pass;

use device_pass::{assert_same_within_reassociation, minmax_bounds, pass, test_batch};
use tdquant_host::data_root::{data_root_for, default_model, TestData};
use tdquant_host::model::kernels::portable::run_portable_on_cpu;
use tdquant_host::model::SwinIR;

#[test]
fn device_path_matches_the_fused_kernels_on_the_whole_model() {
    let Some(root) = data_root_for("portable_model", TestData::Bundle) else {
        return;
    };
    let model = SwinIR::load(default_model(&root)).unwrap();
    let x = test_batch();
    let bounds = minmax_bounds(&model, &x);
    let fused = pass(&model, &x, &bounds);
    run_portable_on_cpu(true);
    let portable = pass(&model, &x, &bounds);
    run_portable_on_cpu(false);
    assert_same_within_reassociation("device compositions on the CPU vs fused", &fused, &portable);
}
