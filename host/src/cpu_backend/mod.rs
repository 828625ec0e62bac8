//! The fast CPU backend of the integer model: the same arithmetic as the scalar
//! oracle ([`tdquant_core::int::runner::upscale`]), byte for byte, with the
//! packed weights and little-endian constants decoded once into native
//! vectors and the work spread over threads (rayon).
//!
//! Only loops and data layout change; every value is the same integer
//! expression as in the oracle. Core's functions are called directly where
//! they are not hot (`normalize`, LayerNorm output, `FixedQuant::code`,
//! `av_codes`, requantizers, `CodeAffine::t`, `exp2_neg_q31`); the hot ones
//! are restated here on pre-decoded constants:
//!
//! * linears: weights transposed to `k × rows` `i16`, a token's accumulators
//!   built by contiguous multiply-adds (in `i16` when `max code² · k` fits,
//!   else `i32`; both exact) — then `CodeAffine::t` as in core;
//! * softmax: the relative-position bias pre-shifted per head, thresholds
//!   decoded to `i64`; GELU thresholds decoded to `(H, L)` pairs;
//! * convolutions: `i16` patches × `i16` weights, per-tap `i32` sums (exact
//!   for int8 weights) added in `i64`; output rows in parallel;
//! * attention: windows in parallel (disjoint), `proj` outputs buffered and
//!   added back pixel-parallel through the inverse window map;
//! * MLP: blocks of 64 tokens in parallel (tokens are independent);
//! * the hot loops are compiled again with AVX2 enabled (the `Avx2` level's
//!   fallback).
//!
//! Where the CPU has AVX2 or AVX-512 (F, BW, DQ, VL, VNNI) and the model
//! allows it (weight, key and value codes `≤ 127`, i.e. up to 7 bits),
//! attention, MLP and convolutions run on explicit kernels instead, one
//! orchestration ([`x86_64::blocks`]) over each level's primitives: the
//! attention windows updating the stream in place (they partition the
//! pixels), LayerNorm with `x̂` in `i64` instead of `i128`, the large
//! buffers kept between calls. AVX-512 ([`x86_64::avx512`]):
//! `vpdpbusd`/`vpdpwssd` dot products of codes, an 8-lane `exp2_neg_q31`,
//! the AttnProb and GELU codes by 4-step binary searches on sorted
//! thresholds. AVX2 ([`x86_64::avx2`]): `vpmaddubsw`/`vpmaddwd` dot products
//! (one operand offset by −128 so that no pair saturates), a 4-lane
//! `exp2_neg_q31`, the codes by counting thresholds. Each kernel states why
//! it is exact.
//!
//! # Layout (after tract-linalg)
//!
//! * [`scalar`]: the portable kernel of every operator;
//! * [`x86_64`]: per-ISA modules (explicit AVX2 and AVX-512 VNNI kernels,
//!   AVX2 builds of the portable kernels; an `aarch64` NEON module would
//!   sit beside it); all `unsafe` code of the backend lives there;
//! * [`dispatch`]: one table of kernels per instruction-set level, picked
//!   once per model from `crate::cpu_features` (the one place that asks the
//!   CPU);
//! * [`prepared`], [`prepared_vnni`]: the model's constants decoded into
//!   each family's layout; [`model`]: the forward pass over them.
//!
//! `host/tests/int_fast.rs` compares whole outputs at every level with the
//! oracle; `kernel_tests` checks every ISA kernel against core's scalar
//! operator (proptest, `==`, ≥ 1,000 cases plus edge cases).

pub(crate) mod dispatch;
#[cfg(test)]
mod kernel_tests;
pub(crate) mod model;
pub(crate) mod prepared;
pub(crate) mod prepared_vnni;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use tdquant_core::backend::{BackendError, Capabilities, IntegerBackend, UpscaleArgs};

pub use model::FastIntModel;

use crate::cpu_features::Isa;

/// The fast CPU backend behind the workspace's backend trait, at one
/// instruction-set level. Each call decodes the model (a few milliseconds);
/// callers that run one model many times keep a [`FastIntModel`] instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFastBackend {
    isa: Isa,
}

impl CpuFastBackend {
    /// The backend at level `isa` (unavailable when this CPU lacks it).
    pub fn new(isa: Isa) -> Self {
        Self { isa }
    }

    /// Its level.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

impl IntegerBackend for CpuFastBackend {
    fn name(&self) -> &str {
        match self.isa {
            Isa::Portable => "cpu-portable",
            Isa::Avx2 => "cpu-avx2",
            Isa::Avx512Vnni => "cpu-avx512-vnni",
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            accelerator: false,
            parallel: true,
            available: self.isa.available(),
        }
    }

    fn run(&self, args: UpscaleArgs<'_>) -> Result<(), BackendError> {
        if !self.isa.available() {
            return Err(BackendError::Unavailable(
                "this CPU lacks the instruction set of the backend",
            ));
        }
        // The oracle's argument errors, before any work.
        args.check_io()?;
        let fast = FastIntModel::with_isa(args.model, self.isa).map_err(|_| {
            BackendError::Unsupported("model constants outside the fast kernels' ranges")
        })?;
        // The sizes were checked above, and a decoded model's stages refuse
        // nothing core accepts: the remaining errors are internal.
        fast.upscale_into(args.img, args.h, args.w, args.out)
            .map_err(|_| BackendError::Unsupported("a stage of the fast forward pass"))
    }
}
