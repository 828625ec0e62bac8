//! libFuzzer target: see `tdquant_fuzz::Target::Image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tdquant_fuzz::Target::Image.run(data);
});
