//! libFuzzer target: see `tdquant_fuzz::Target::Tdq`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tdquant_fuzz::Target::Tdq.run(data);
});
