//! libFuzzer target: see `tdquant_fuzz::Target::Pth`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tdquant_fuzz::Target::Pth.run(data);
});
