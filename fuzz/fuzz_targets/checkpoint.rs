//! libFuzzer target: see `tdquant_fuzz::Target::Checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tdquant_fuzz::Target::Checkpoint.run(data);
});
