//! The dispatch table: for each instruction-set level, the kernel of every
//! operator the forward pass calls through a pointer. A model picks its
//! table once, when it is built ([`Kernels::for_isa`]); no kernel asks the
//! CPU again.
//!
//! Entries are `unsafe fn` because a level's kernels are compiled for
//! instructions the baseline target lacks: calling one is sound only on a
//! CPU that has them, which `for_isa` checks before it hands out the table.

use anyhow::Result;

use super::model::FastIntModel;
use super::prepared::FastConv;
use super::scalar;
#[cfg(target_arch = "x86_64")]
use super::x86_64::blocks::BlockKernels;
use crate::cpu_features::Isa;

/// Output row `y` of a convolution, portable weight layout:
/// `(conv, input, h, w, y, out_row)`.
pub(crate) type ConvRow = unsafe fn(&FastConv, &[i32], usize, usize, usize, &mut [i64]);

/// One attention window's `proj` outputs:
/// `(model, block, stream, hp, wp, window, delta)`.
pub(crate) type Window =
    unsafe fn(&FastIntModel<'_>, usize, &[i32], usize, usize, usize, &mut [i64]) -> Result<()>;

/// The MLP branch on up to 64 tokens: `(model, block, tokens)`.
pub(crate) type MlpChunk = unsafe fn(&FastIntModel<'_>, usize, &mut [i32]) -> Result<()>;

/// The kernels of one instruction-set level.
pub(crate) struct Kernels {
    /// The level.
    pub(crate) isa: Isa,
    /// Convolution rows.
    pub(crate) conv_row: ConvRow,
    /// Attention windows.
    pub(crate) window: Window,
    /// MLP chunks.
    pub(crate) mlp_chunk: MlpChunk,
    /// The explicit kernels (AVX2 or AVX-512 VNNI), which work on their
    /// own weight layouts.
    #[cfg(target_arch = "x86_64")]
    blocks: Option<BlockKernels>,
}

static PORTABLE: Kernels = Kernels {
    isa: Isa::Portable,
    conv_row: scalar::conv::conv_row,
    window: scalar::attention::window,
    mlp_chunk: scalar::mlp::mlp_chunk,
    #[cfg(target_arch = "x86_64")]
    blocks: None,
};

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    // Where a model or a convolution does not fit the explicit kernels
    // (codes above 127, wide weights), the AVX2 build of the portable
    // kernels runs.
    conv_row: super::x86_64::avx2::conv_row,
    window: super::x86_64::avx2::window,
    mlp_chunk: super::x86_64::avx2::mlp_chunk,
    blocks: Some(super::x86_64::avx2::KERNELS),
};

#[cfg(target_arch = "x86_64")]
static AVX512_VNNI: Kernels = Kernels {
    isa: Isa::Avx512Vnni,
    // Where a model or a convolution does not fit the VNNI kernels (codes
    // above 127, wide weights), the AVX2 build of the portable kernels runs.
    conv_row: super::x86_64::avx2::conv_row,
    window: super::x86_64::avx2::window,
    mlp_chunk: super::x86_64::avx2::mlp_chunk,
    blocks: Some(super::x86_64::avx512::KERNELS),
};

impl Kernels {
    /// The table of `isa`, or `None` when this CPU cannot run it.
    pub(crate) fn for_isa(isa: Isa) -> Option<&'static Kernels> {
        if !isa.available() {
            return None;
        }
        match isa {
            Isa::Portable => Some(&PORTABLE),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(&AVX2),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Some(&AVX512_VNNI),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }

    /// The explicit kernels, where the level has them.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn block_kernels(&self) -> Option<&BlockKernels> {
        self.blocks.as_ref()
    }

    /// Whether the level has explicit kernels.
    pub(crate) fn has_block_kernels(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.blocks.is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}
