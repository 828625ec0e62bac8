//! Model-independent 2DQuant calibration primitives.
//!
//! * [`fakequant`]: the learnable-bound fake quantizer (forward bit-exact to
//!   the released f32 code, half-to-even rounding; backward = the released
//!   straight-through estimator), plus no-grad slice kernels and codes.
//! * [`dobi`](mod@dobi): DOBI bound search (released code and paper variants, fast
//!   single sweep and brute-force reference) and the MinMax / Percentile
//!   baselines.
//! * [`schedule`]: learning-rate schedules and Adam for DQC.
//! * [`quantmodel`]: the fake-quant SwinIR-light ([`QuantHook`]: 384
//!   quantizers, observation pass for DOBI / baselines, fake quantization).
//! * [`bounds_file`]: the bounds file (safetensors + metadata) and its checks.
//! * [`data`]: calibration patches (MATLAB-bicubic LR crops, SplitMix64).
//! * [`dqc`]: DQC (distillation of the bounds; checkpoint / resume).
//! * [`calibrate`]: the `tdquant calibrate` pipeline and presets.
//! * [`report`]: loss CSV / PNG and the run report.

pub mod bounds_file;
pub mod calibrate;
pub mod checkpoint;
pub mod data;
pub mod dobi;
pub mod dqc;
pub mod fakequant;
mod par;
pub mod quantmodel;
pub mod report;
pub mod schedule;

pub use dobi::{
    dobi, dobi_bruteforce, dobi_candidates, dobi_objectives, minmax_bounds, percentile_bounds,
    ptq4sr_percentile_bounds, select_candidate, CalibError, DobiConfig, DobiEval, DobiResult,
    DobiStep, DobiStrategy, PTQ4SR_BINS, PTQ4SR_TAIL, PTQ4SR_TAIL_8BIT,
};
pub use fakequant::{codes_f32_slice, fake_quant, fake_quant_f32_slice, FakeQuantizer, QuantGrid};
pub use quantmodel::{
    check_bits, DobiMode, HookMode, InitMethod, InitPlan, QuantHook, SiteInit, SUPPORTED_BITS,
};
pub use schedule::{adam, AdamConfig, LrSchedule, ScheduledAdam};
