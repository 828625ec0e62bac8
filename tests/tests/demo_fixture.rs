//! The committed firmware demo model is exactly what `demo_model()` builds,
//! and its expected firmware lines describe every packed section.

use std::path::Path;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.tdq")
}

#[test]
fn committed_demo_model_is_current() {
    let built = tdquant_tests::demo_model();
    let committed = std::fs::read(fixture()).expect("tests/fixtures/demo.tdq is committed");
    assert!(
        committed == built,
        "tests/fixtures/demo.tdq is stale ({} bytes committed, {} built); regenerate with \
         `cargo run --release -p tdquant-tests --example demo_fixture -- write tests/fixtures/demo.tdq`",
        committed.len(),
        built.len()
    );
}

#[test]
fn expected_lines_cover_every_packed_section() {
    let lines = tdquant_tests::expected_firmware_lines(&tdquant_tests::demo_model()).unwrap();
    assert_eq!(
        lines.len(),
        tdquant_tests::DEMO_PACKED.len() + 2,
        "{lines:#?}"
    );
    for (line, (name, bits, rows, cols)) in lines[1..].iter().zip(tdquant_tests::DEMO_PACKED) {
        let prefix = format!(
            "TDQ section={name} bits={} rows={rows} cols={cols} codes_crc32=",
            bits.bits()
        );
        assert!(line.starts_with(&prefix), "{line:?} vs {prefix:?}");
    }
}

#[test]
fn corrupt_model_is_rejected_by_the_host_view() {
    let mut bytes = tdquant_tests::demo_model();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let err = tdquant_tests::expected_firmware_lines(&bytes).unwrap_err();
    assert!(err.contains("model rejected"), "{err}");
}
